"""Interop: TLS and mTLS against the REAL orchestrator with TLS_ENABLED, TLS_CA_PATH and
TLS_REQUIRE_CLIENT_CERT=true, certificates made here (trustme). 1.0b30 takes the client certificate's
Common Name as the worker's identity (rxon `extract_cert_identity`, avtomatika `verify_worker_auth`).

A worker whose certificate names its WORKER_ID serves jobs over https and takes cancels over wss. A wrong
CA bundle, a certificate the orchestrator does not trust, none at all, an expired one, or one naming
another worker id each give one clear line naming the setting, and the worker does not spin.
"""

from __future__ import annotations

import os
import re
import select
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from interop.real import (
    SCENARIO_WORKER,
    WORKER_TOKEN,
    RealOrchestrator,
    baked_worker,
    real_orchestrator,
    recorded,
)
from processes import wait_for

pytestmark = pytest.mark.interop

WORKER_ID = f"interop-tls-{os.getpid()}"
EXIT_ID = f"{WORKER_ID}-exit"  # the workers that exit by themselves
RETRIES_SEEN = 3  # the window of the no-spin checks: until the worker logged this many retries


@dataclass
class Pki:
    """A CA, the orchestrator's certificate and client certificates, as files in `root`."""

    root: Path
    ca: trustme.CA

    def client(
        self, name: str, common_name: str = WORKER_ID, ca: trustme.CA | None = None, **dates: datetime
    ) -> dict[str, str]:
        """A client certificate (CN=`common_name`) and key, as a worker's WORKER_TLS_* variables."""
        leaf = (ca or self.ca).issue_cert(common_name, common_name=common_name, **dates)
        cert, key = self.root / f"{name}.pem", self.root / f"{name}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return {
            "WORKER_TLS_CA_FILE": str(self.root / "ca.pem"),
            "WORKER_TLS_CERT_FILE": str(cert),
            "WORKER_TLS_KEY_FILE": str(key),
        }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(root / "other-ca.pem"))
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(root / "server.pem"))
    server.private_key_pem.write_to_path(str(root / "server.key"))
    return Pki(root, ca)


@pytest.fixture(scope="module")
def orchestrator(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOrchestrator]:
    env = {
        "TLS_ENABLED": "true",
        "TLS_CERT_PATH": str(pki.root / "server.pem"),
        "TLS_KEY_PATH": str(pki.root / "server.key"),
        "TLS_CA_PATH": str(pki.root / "ca.pem"),
        "TLS_REQUIRE_CLIENT_CERT": "true",
    }
    client_api = ssl.create_default_context(cafile=str(pki.root / "ca.pem"))
    control = pki.client("client-api", common_name="interop-client-api")
    client_api.load_cert_chain(control["WORKER_TLS_CERT_FILE"], control["WORKER_TLS_KEY_FILE"])
    workdir = tmp_path_factory.mktemp("orchestrator-tls")
    with real_orchestrator(workdir, env=env, client_ssl=client_api) as orch:
        assert orch.base_url.startswith("https://")
        yield orch


def test_a_worker_with_a_matching_client_certificate_serves_jobs_and_takes_cancels_over_wss(
    orchestrator: RealOrchestrator, pki: Pki, project: Path, tmp_path: Path
) -> None:
    env = {**pki.client("matching"), "WORKER_ENABLE_WEBSOCKETS": "true"}
    with baked_worker(orchestrator, project, WORKER_ID, script=SCENARIO_WORKER, env=env) as worker:
        job = orchestrator.run_job("inventory", {"items": ["pear"]})
        assert job["status"] == "finished", (job, worker.tail())
        assert job["assigned_worker_id"] == WORKER_ID
        wait_for(
            lambda: "WebSocket command channel connected" in worker.tail(), 30, "the wss command channel"
        )
        wait_for(
            lambda: bool(orchestrator.workers()[WORKER_ID].get("capabilities", {}).get("websockets")),
            30,
            "a heartbeat with capabilities.websockets",
        )
        # check_redis off: only the command over wss can stop this handler.
        state_file = tmp_path / "cancel.jsonl"
        params = {"state_file": str(state_file), "check_redis": False}
        job_id = orchestrator.create_job(
            "scenario", {"skill": "wait_for_cancel", "params": params}, result_timeout=300
        )
        wait_for(lambda: bool(recorded(state_file)), 30, "the handler to start")
        assert orchestrator.cancel(job_id) == {"status": "cancellation_request_accepted"}
        wait_for(lambda: recorded(state_file)[-1]["event"] != "started", 30, f"the cancel\n{worker.tail()}")
        assert recorded(state_file)[-1]["event"] == "cancelled_error"


def run_to_exit(project: Path, orchestrator: RealOrchestrator, env: dict[str, str]) -> tuple[int, str]:
    """Run my_worker.py of the baked project until it exits by itself; its exit code and output."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(project),
        "ORCHESTRATOR_URL": orchestrator.base_url,
        "WORKER_TOKEN": WORKER_TOKEN,
        "WORKER_ID": EXIT_ID,
        "REDIS_URL": orchestrator.redis_url,
        "WORKER_SPOOL_DIR": str(project.parent / "spool-tls-exit"),
        "WORKER_HEALTH_FILE": str(project.parent / "health-tls-exit.json"),
        "WORKER_RATE_LIMITS": orchestrator.worker_rate_limits,
        **env,
    }
    done = subprocess.run(
        [sys.executable, str(project / "my_worker.py")],
        env=environment,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,  # a safety net: it exits within seconds
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def problem_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|error:", line)]


def test_a_client_certificate_naming_another_worker_id_is_refused_with_one_line(
    orchestrator: RealOrchestrator, pki: Pki, project: Path
) -> None:
    env = pki.client("mismatched", common_name="someone-else")
    code, output = run_to_exit(project, orchestrator, env)
    assert code == 1, output
    lines = problem_lines(output)
    assert len(lines) == 1, output
    assert f"Certificate CN 'someone-else' does not match worker_id '{EXIT_ID}'" in lines[0]
    assert f"WORKER_TLS_CERT_FILE={env['WORKER_TLS_CERT_FILE']!r}" in lines[0]
    assert f"issue it with CN={EXIT_ID}" in lines[0]


def test_an_expired_client_certificate_stops_start_up_with_one_line(
    orchestrator: RealOrchestrator, pki: Pki, project: Path
) -> None:
    now = datetime.now(UTC)
    env = pki.client("expired", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    code, output = run_to_exit(project, orchestrator, env)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    shown = f"WORKER_TLS_CERT_FILE={env['WORKER_TLS_CERT_FILE']!r}"
    assert lines[0].startswith(f"configuration error: {shown} is invalid: the certificate expired on "), (
        output
    )
    assert lines[0].endswith("(renew it and restart the worker)"), output


class CountingRelay(socketserver.ThreadingTCPServer):
    """Relays loopback TCP connections to the orchestrator untouched (TLS stays end to end); counts them."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = ("127.0.0.1", int(upstream.rsplit(":", 1)[1]))
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _Pipe)
        self.url = f"https://127.0.0.1:{self.server_address[1]}"


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: CountingRelay = self.server  # type: ignore[assignment]
        server.connections += 1
        with socket.create_connection(server.upstream) as upstream:
            peer = {self.request: upstream, upstream: self.request}
            while True:
                readable, _, _ = select.select(list(peer), [], [], 120)
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    peer[end].sendall(data)
                if not readable:
                    return


@pytest.fixture
def relay(orchestrator: RealOrchestrator) -> Iterator[CountingRelay]:
    server = CountingRelay(orchestrator.base_url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong CA bundle", "WORKER_TLS_CA_FILE={other_ca!r} holds no CA that signed it"),
        ("certificate of another CA", "it may refuse the client certificate WORKER_TLS_CERT_FILE={cert!r}"),
        (
            "no client certificate",
            "(TLS_REQUIRE_CLIENT_CERT=true), set WORKER_TLS_CERT_FILE and WORKER_TLS_KEY_FILE",
        ),
    ],
)
def test_a_tls_failure_is_one_warning_naming_the_setting_and_the_worker_backs_off(
    orchestrator: RealOrchestrator,
    pki: Pki,
    project: Path,
    relay: CountingRelay,
    case: str,
    expected: str,
) -> None:
    env = pki.client(case.replace(" ", "-"))
    if case == "wrong CA bundle":
        env["WORKER_TLS_CA_FILE"] = str(pki.root / "other-ca.pem")
    elif case == "certificate of another CA":
        env = {**pki.client("foreign", ca=trustme.CA()), "WORKER_TLS_CA_FILE": env["WORKER_TLS_CA_FILE"]}
    else:
        env = {"WORKER_TLS_CA_FILE": env["WORKER_TLS_CA_FILE"]}
    env |= {"ORCHESTRATOR_URL": relay.url, "LOG_LEVEL": "DEBUG"}
    worker_id = f"{WORKER_ID}-{case.replace(' ', '-')}"
    with baked_worker(orchestrator, project, worker_id, env=env, wait_registered=False) as worker:
        retried = re.compile(rf"registration failed .* retry {RETRIES_SEEN} in ")
        wait_for(lambda: bool(retried.search(worker.tail())), 60, f"{RETRIES_SEEN} retries\n{worker.tail()}")
        connections = relay.connections
        lines = problem_lines(worker.log.read_text(errors="replace"))
        assert worker.alive() and worker_id not in orchestrator.workers()
    # One connection per attempt (the next may be under way): backoff, no spinning.
    assert RETRIES_SEEN <= connections <= RETRIES_SEEN + 2, connections
    assert len(lines) == 1, lines
    assert "registration failed" in lines[0]
    assert (
        expected.format(other_ca=str(pki.root / "other-ca.pem"), cert=env.get("WORKER_TLS_CERT_FILE"))
        in lines[0]
    )
