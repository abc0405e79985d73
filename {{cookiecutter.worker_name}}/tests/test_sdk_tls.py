"""TLS and mTLS (tls.py): the settings' checks, and a worker against the mock orchestrator served over
https on loopback with certificates made here (trustme), requiring client certificates as avtomatika's
`TLS_REQUIRE_CLIENT_CERT=true` does (rxon `create_server_ssl_context`)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from avtomatika_worker import Backoff, Wiring, WorkerConfig
from avtomatika_worker.errors import ConfigError, OrchestratorUnavailableError
from avtomatika_worker.tls import TlsFile, TlsSettings, _validity
from avtomatika_worker.transport import OrchestratorClient
from mock_orchestrator import MockSettings, create_app

from sdk_faults import CLIENT_TOKEN, WORKER_ID, WORKER_TOKEN, ControlClient, make_worker

NOW = datetime.now(UTC)
SAFETY_DEADLINE = 15.0  # only so that a broken build fails instead of hanging


@dataclass
class Pki:
    """A CA, the orchestrator's certificate and client certificates, as files in `root`."""

    root: Path
    ca: trustme.CA
    server: trustme.LeafCert

    def client(
        self, name: str, common_name: str = WORKER_ID, ca: trustme.CA | None = None, **dates: Any
    ) -> tuple[str, str]:
        """Write a client certificate (CN=`common_name`) and its key; returns their paths."""
        leaf = (ca or self.ca).issue_cert(common_name, common_name=common_name, **dates)
        cert, key = self.root / f"{name}.pem", self.root / f"{name}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return str(cert), str(key)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a worker with this CA and the matching client certificate."""
        cert, key = self.client("good")
        return {
            "ORCHESTRATOR_URL": "https://127.0.0.1:8443",
            "WORKER_TOKEN": WORKER_TOKEN,
            "WORKER_ID": WORKER_ID,
            "WORKER_TLS_CA_FILE": str(self.root / "ca.pem"),
            "WORKER_TLS_CERT_FILE": cert,
            "WORKER_TLS_KEY_FILE": key,
            **extra,
        }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(root / "other-ca.pem"))
    return Pki(root, ca, ca.issue_cert("127.0.0.1"))


def settings(env: dict[str, str]) -> TlsSettings:
    return TlsSettings.from_env(env)


def refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        TlsSettings.from_env(env)
    return str(caught.value)


# ---- settings ------------------------------------------------------------------------------------


def test_without_tls_variables_aiohttp_keeps_its_default_context() -> None:
    tls = settings({"ORCHESTRATOR_URL": "https://orchestrator.example"})
    assert not tls.enabled
    assert tls.ssl_context() is None


def test_a_ca_bundle_and_a_client_certificate_make_one_verifying_context(pki: Pki) -> None:
    tls = settings(pki.env())
    context = tls.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # Only the bundle's CA is trusted, not the system's as well.
    assert [c["subject"] for c in context.get_ca_certs()] == [
        c["subject"] for c in ssl.create_default_context(cafile=str(pki.root / "ca.pem")).get_ca_certs()
    ]
    assert tls.cert_expires is not None and tls.cert_expires > NOW


def test_the_official_sdk_names_are_read_when_ours_are_not_set(pki: Pki) -> None:
    env = pki.env()
    official = {
        "ORCHESTRATOR_URL": env["ORCHESTRATOR_URL"],
        "TLS_CA_PATH": env["WORKER_TLS_CA_FILE"],
        "TLS_CERT_PATH": env["WORKER_TLS_CERT_FILE"],
        "TLS_KEY_PATH": env["WORKER_TLS_KEY_FILE"],
    }
    tls = settings(official)
    assert tls.ca == TlsFile("TLS_CA_PATH", env["WORKER_TLS_CA_FILE"])
    assert tls.cert is not None and tls.cert.variable == "TLS_CERT_PATH"
    # Ours win over the official name, and an error names the variable that was read.
    ours = settings({**official, "WORKER_TLS_CA_FILE": str(pki.root / "other-ca.pem")})
    assert ours.ca == TlsFile("WORKER_TLS_CA_FILE", str(pki.root / "other-ca.pem"))
    message = refused({**official, "TLS_CA_PATH": str(pki.root / "nowhere.pem")})
    assert message.startswith(
        f"TLS_CA_PATH={str(pki.root / 'nowhere.pem')!r} is invalid: the file does not exist"
    )


def test_the_config_carries_the_tls_settings_and_hides_the_key_password(pki: Pki) -> None:
    cert, key = encrypted_client(pki, b"s3cret-pass")
    env = pki.env(WORKER_TLS_CERT_FILE=cert, WORKER_TLS_KEY_FILE=key, WORKER_TLS_KEY_PASSWORD="s3cret-pass")
    config = WorkerConfig.from_env("inventory-checker", env)
    assert config.tls.cert == TlsFile("WORKER_TLS_CERT_FILE", cert)
    assert config.tls.key_password == "s3cret-pass"
    assert "s3cret-pass" not in repr(config)


@pytest.mark.parametrize(
    ("variable", "content", "expected"),
    [
        (
            "WORKER_TLS_CA_FILE",
            None,
            "the file does not exist (mount it there or point WORKER_TLS_CA_FILE at it)",
        ),
        (
            "WORKER_TLS_CA_FILE",
            "just text\n",
            "the file is not a PEM CA bundle (-----BEGIN CERTIFICATE-----)",
        ),
        ("WORKER_TLS_CERT_FILE", "\x00\xff binary", "the file cannot be read (not PEM text)"),
        ("WORKER_TLS_KEY_FILE", "-----BEGIN CERTIFICATE-----\n", "the file is not a PEM private key"),
        (
            "WORKER_TLS_CERT_FILE",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "the first certificate in it cannot be read (use a PEM X.509 certificate)",
        ),
    ],
)
def test_a_missing_or_malformed_file_is_named_with_its_value_the_rule_and_a_fix(
    pki: Pki, tmp_path: Path, variable: str, content: str | None, expected: str
) -> None:
    path = tmp_path / "bad.pem"
    if content is not None:
        path.write_bytes(content.encode("latin-1"))
    message = refused(pki.env(**{variable: str(path)}))
    assert message.startswith(f"{variable}={str(path)!r} is invalid: {expected}"), message


def test_an_expired_client_certificate_stops_start_up(pki: Pki) -> None:
    cert, key = pki.client("expired", not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(days=1))
    message = refused(pki.env(WORKER_TLS_CERT_FILE=cert, WORKER_TLS_KEY_FILE=key))
    assert message.startswith(f"WORKER_TLS_CERT_FILE={cert!r} is invalid: the certificate expired on ")
    assert "renew it and restart the worker" in message


def test_a_client_certificate_close_to_its_end_is_warned_about_at_start(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = pki.client("ending", not_after=NOW + timedelta(days=3))
    with caplog.at_level(logging.WARNING, logger="avtomatika_worker"):
        assert settings(pki.env(WORKER_TLS_CERT_FILE=cert, WORKER_TLS_KEY_FILE=key)).ssl_context() is not None
    assert [r.getMessage().split(" expires on ")[0] for r in caplog.records] == [
        f"the client certificate WORKER_TLS_CERT_FILE={cert!r}"
    ]


def test_a_client_certificate_not_yet_valid_points_at_the_clock(pki: Pki) -> None:
    cert, key = pki.client("future", not_before=NOW + timedelta(days=2), not_after=NOW + timedelta(days=30))
    message = refused(pki.env(WORKER_TLS_CERT_FILE=cert, WORKER_TLS_KEY_FILE=key))
    assert "the certificate is not valid before" in message and "check this machine's clock" in message


def test_a_key_of_another_certificate_is_refused(pki: Pki) -> None:
    _, other_key = pki.client("other", common_name="someone-else")
    message = refused(pki.env(WORKER_TLS_KEY_FILE=other_key))
    assert message.startswith(f"WORKER_TLS_KEY_FILE={other_key!r} is invalid: it is not the private key of ")


def encrypted_client(pki: Pki, password: bytes) -> tuple[str, str]:
    cert, key = pki.client("encrypted")
    loaded = serialization.load_pem_private_key(Path(key).read_bytes(), None)
    Path(key).write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return cert, key


def test_an_encrypted_key_needs_its_password_which_may_come_from_a_file(pki: Pki, tmp_path: Path) -> None:
    cert, key = encrypted_client(pki, b"open-sesame")
    env = pki.env(WORKER_TLS_CERT_FILE=cert, WORKER_TLS_KEY_FILE=key)
    assert "the key is encrypted and WORKER_TLS_KEY_PASSWORD is not set" in refused(env)
    wrong = refused({**env, "WORKER_TLS_KEY_PASSWORD": "nope"})
    assert "WORKER_TLS_KEY_PASSWORD is wrong" in wrong and "nope" not in wrong
    secret = tmp_path / "key-password"
    secret.write_text("open-sesame\n")
    assert settings({**env, "WORKER_TLS_KEY_PASSWORD_FILE": str(secret)}).ssl_context() is not None


def test_a_key_needs_a_certificate_and_a_certificate_may_hold_its_key(pki: Pki, tmp_path: Path) -> None:
    env = pki.env()
    message = refused({k: v for k, v in env.items() if k != "WORKER_TLS_CERT_FILE"})
    assert "is set but WORKER_TLS_CERT_FILE is not" in message
    assert "the file holds no private key" in refused(
        {k: v for k, v in env.items() if k != "WORKER_TLS_KEY_FILE"}
    )
    combined = tmp_path / "combined.pem"
    combined.write_text(
        Path(env["WORKER_TLS_CERT_FILE"]).read_text() + Path(env["WORKER_TLS_KEY_FILE"]).read_text()
    )
    tls = settings({**env, "WORKER_TLS_CERT_FILE": str(combined), "WORKER_TLS_KEY_FILE": ""})
    assert tls.key == TlsFile("WORKER_TLS_CERT_FILE", str(combined))


def test_tls_files_with_an_http_orchestrator_url_are_refused(pki: Pki) -> None:
    message = refused(pki.env(ORCHESTRATOR_URL="http://127.0.0.1:8080"))
    assert "WORKER_TLS_CA_FILE is set but ORCHESTRATOR_URL='http://127.0.0.1:8080' is http://" in message


@pytest.mark.parametrize("not_after", [NOW + timedelta(days=90), datetime(2061, 5, 4, 3, 2, 1, tzinfo=UTC)])
def test_the_validity_dates_read_without_a_crypto_library_match_cryptography(
    pki: Pki, not_after: datetime
) -> None:
    # 2050 and later are GeneralizedTime in X.509, earlier dates UTCTime: both forms are read.
    cert, _ = pki.client("dates", not_after=not_after)
    pem = Path(cert).read_bytes()
    parsed = x509.load_pem_x509_certificate(pem)
    der = parsed.public_bytes(serialization.Encoding.DER)
    assert _validity(der) == (parsed.not_valid_before_utc, parsed.not_valid_after_utc)


def test_the_orchestrators_refusal_of_a_certificate_identity_names_the_setting(pki: Pki) -> None:
    tls = settings(pki.env())
    # avtomatika 1.0b30's texts (security.py verify_worker_auth).
    mismatch = tls.refusal_hint("Unauthorized: Certificate CN 'w2' does not match worker_id 'w1'", "w1")
    assert mismatch is not None and "WORKER_TLS_CERT_FILE=" in mismatch and "CN=w1" in mismatch
    required = TlsSettings().refusal_hint("Unauthorized: Client certificate required.", "w1")
    assert required is not None and "WORKER_AUTH_MODE=mtls-only" in required
    assert tls.refusal_hint("Unauthorized: Invalid individual worker token", "w1") is None


# ---- against an https server ---------------------------------------------------------------------


def server_context(pki: Pki) -> ssl.SSLContext:
    """What avtomatika builds for TLS_ENABLED=true, TLS_CA_PATH and TLS_REQUIRE_CLIENT_CERT=true."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.server.configure_cert(context)
    pki.ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass
class TlsMock:
    url: str
    identities: list[str]  # the Common Name of the client certificate of every request
    client_context: ssl.SSLContext  # for the control API: the CA and a good client certificate


@pytest.fixture
async def mock(pki: Pki) -> AsyncIterator[TlsMock]:
    identities: list[str] = []

    @web.middleware
    async def identity(request: web.Request, handler: Any) -> web.StreamResponse:
        peer = request.transport.get_extra_info("ssl_object").getpeercert() if request.transport else None
        names = [
            value for rdn in (peer or {}).get("subject", ()) for key, value in rdn if key == "commonName"
        ]
        identities.extend(names or ["(none)"])
        response: web.StreamResponse = await handler(request)
        return response

    app = create_app(
        MockSettings(worker_token=WORKER_TOKEN, client_token=CLIENT_TOKEN, poll_hold_seconds=30.0)
    )
    app.middlewares.insert(0, identity)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock, ssl_context=server_context(pki))
    await site.start()
    client = ssl.create_default_context(cafile=str(pki.root / "ca.pem"))
    client.load_cert_chain(*pki.client("control", common_name="control"))
    try:
        yield TlsMock(f"https://127.0.0.1:{sock.getsockname()[1]}", identities, client)
    finally:
        await runner.cleanup()


def tls_config(pki: Pki, url: str, **env: str) -> TlsSettings:
    return TlsSettings.from_env({**pki.env(**env), "ORCHESTRATOR_URL": url})


async def test_a_worker_with_the_matching_client_certificate_serves_tasks_over_https(
    pki: Pki, mock: TlsMock, tmp_path: Path
) -> None:
    worker = make_worker(mock.url, tmp_path, tls=tls_config(pki, mock.url))
    connector = aiohttp.TCPConnector(ssl=mock.client_context)
    headers = {"X-Client-Token": CLIENT_TOKEN}
    async with (
        aiohttp.ClientSession(base_url=mock.url, headers=headers, connector=connector) as session,
        worker,
    ):
        control = ControlClient(session)
        done = await control.finished(await control.submit("check_inventory", {"items": ["a", "b"]}))
    assert done["status"] == "success" and done["data"] == {"items_checked": 2}
    assert set(mock.identities) == {WORKER_ID, "control"}


async def test_the_websocket_channel_uses_the_same_client_certificate(
    pki: Pki, mock: TlsMock, tmp_path: Path
) -> None:
    config = WorkerConfig(
        worker_type="inventory-checker", orchestrator_url=mock.url, worker_token=WORKER_TOKEN,
        worker_id=WORKER_ID, tls=tls_config(pki, mock.url),
    )  # fmt: skip
    client = OrchestratorClient(config)
    try:
        await client.register({"worker_id": WORKER_ID, "worker_type": "t", "supported_skills": []})
        ws = await asyncio.wait_for(client.ws_connect(), SAFETY_DEADLINE)
        await ws.close()
    finally:
        await client.close()
    assert mock.identities == [WORKER_ID, WORKER_ID]


@dataclass
class Attempts:
    """The backoff's sleep seam: records each retry delay and parks the worker after `limit` of them."""

    limit: int
    delays: list[float]
    reached: asyncio.Event

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) >= self.limit:
            self.reached.set()
            await asyncio.Event().wait()


@pytest.fixture
def attempts() -> Attempts:
    return Attempts(8, [], asyncio.Event())


async def failed_registration(
    url: str, tmp_path: Path, tls: TlsSettings, attempts: Attempts, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Start a worker that cannot register; returns the warnings logged over `attempts.limit` tries."""
    wiring = Wiring(backoff=Backoff(base=0.01, cap=0.05, sleep=attempts.sleep))
    worker = make_worker(url, tmp_path, wiring=wiring, tls=tls)
    with caplog.at_level(logging.WARNING, logger="avtomatika_worker"):
        starting = asyncio.create_task(worker.start())
        try:
            await asyncio.wait_for(attempts.reached.wait(), SAFETY_DEADLINE)
            warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        finally:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await worker.stop()
    assert all(delay > 0 for delay in attempts.delays)  # every retry waited its backoff
    return warnings


async def test_a_wrong_ca_bundle_gives_one_warning_naming_the_setting_and_backs_off(
    pki: Pki, mock: TlsMock, tmp_path: Path, attempts: Attempts, caplog: pytest.LogCaptureFixture
) -> None:
    tls = tls_config(pki, mock.url, WORKER_TLS_CA_FILE=str(pki.root / "other-ca.pem"))
    warnings = await failed_registration(mock.url, tmp_path, tls, attempts, caplog)
    assert len(warnings) == 1, warnings
    assert "the orchestrator's TLS certificate is not trusted" in warnings[0]
    assert f"WORKER_TLS_CA_FILE={str(pki.root / 'other-ca.pem')!r} holds no CA that signed it" in warnings[0]
    assert mock.identities == []  # no request got through


@pytest.mark.parametrize("problem", ["expired", "foreign CA"])
async def test_a_client_certificate_the_server_refuses_is_named_in_one_warning(
    pki: Pki,
    mock: TlsMock,
    tmp_path: Path,
    attempts: Attempts,
    caplog: pytest.LogCaptureFixture,
    problem: str,
) -> None:
    if problem == "expired":  # expired since start-up: the settings were checked while it was valid
        cert, key = pki.client(
            "lapsed", not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(days=1)
        )
    else:
        cert, key = pki.client("foreign", ca=trustme.CA())
    tls = replace(
        tls_config(pki, mock.url),
        cert=TlsFile("WORKER_TLS_CERT_FILE", cert),
        key=TlsFile("WORKER_TLS_KEY_FILE", key),
    )
    warnings = await failed_registration(mock.url, tmp_path, tls, attempts, caplog)
    assert len(warnings) == 1, warnings
    assert f"it may refuse the client certificate WORKER_TLS_CERT_FILE={cert!r}" in warnings[0]
    assert mock.identities == []


async def test_no_client_certificate_for_a_server_that_requires_one_suggests_the_settings(
    pki: Pki, mock: TlsMock
) -> None:
    tls = TlsSettings.from_env({"ORCHESTRATOR_URL": mock.url, "WORKER_TLS_CA_FILE": str(pki.root / "ca.pem")})
    message = await registration_error(mock.url, tls)
    assert "set WORKER_TLS_CERT_FILE and WORKER_TLS_KEY_FILE" in message


async def registration_error(url: str, tls: TlsSettings) -> str:
    config = WorkerConfig(
        worker_type="t", orchestrator_url=url, worker_token=WORKER_TOKEN, worker_id=WORKER_ID, tls=tls
    )
    client = OrchestratorClient(config)
    try:
        with pytest.raises(OrchestratorUnavailableError) as caught:
            await client.register({"worker_id": WORKER_ID})
    finally:
        await client.close()
    return str(caught.value)


async def test_an_https_url_for_a_plain_http_server_says_so(pki: Pki) -> None:
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        url = f"https://127.0.0.1:{sock.getsockname()[1]}"
        message = await registration_error(url, tls_config(pki, url))
    finally:
        await runner.cleanup()
    assert "the orchestrator does not speak TLS on this port" in message and "use http://" in message


async def test_a_host_the_orchestrators_certificate_does_not_name_is_reported(
    pki: Pki, mock: TlsMock
) -> None:
    url = mock.url.replace("127.0.0.1", "localhost")  # the certificate names only 127.0.0.1
    message = await registration_error(url, tls_config(pki, url))
    assert "the orchestrator's TLS certificate is not valid for the host of ORCHESTRATOR_URL" in message
