"""The mock orchestrator's dashboard in real headless Chromium, against a baked project's mock and worker.

Needs Debian's `chromium` (or CHROMIUM_PATH) and the `playwright` Python package; never downloads a
browser. Set DASHBOARD_SCREENSHOT=/some/file.png to keep a screenshot of the final page.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from baking import bake_in, make_sandbox, read_env_file
from processes import answers, free_port, logged_process, redis_server, skip_or_fail, wait_for

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# Headless and quiet: the machine may have no network, so nothing may phone home or wait for it.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WORKER_ID = "dashboard-worker"
EXPECT_TIMEOUT_MS = 20_000  # an upper bound for slow CI machines; expectations return as soon as they hold


@dataclass
class Stack:
    """A running mock orchestrator (with a worker attached) and how to reach it."""

    url: str
    client_token: str
    logs: list[Path] = field(default_factory=list)

    def dump_logs(self) -> None:
        """Print the processes' output (shown by pytest when a test fails)."""
        for log in self.logs:
            print(f"===== {log.name} =====\n{log.read_text(errors='replace')}")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def _start(stack: Stack, procs: ExitStack, args: list[str], env: dict[str, str], cwd: Path, name: str) -> Any:
    log = cwd.parent / f"{name}.log"
    stack.logs.append(log)
    return procs.enter_context(logged_process(args, env, log, cwd))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Bake the default project, then run its mock orchestrator and its worker as processes."""
    project = bake_in(make_sandbox(tmp_path / "sandbox"), tmp_path / "out")
    tokens = read_env_file(project / ".env")  # the secrets the project was generated with
    url = f"http://127.0.0.1:{free_port()}"
    stack = Stack(url=url, client_token=tokens["CLIENT_TOKEN"])
    common = dict(_clean_env(), WORKER_TOKEN=tokens["WORKER_TOKEN"], PYTHONDONTWRITEBYTECODE="1")
    with redis_server() as redis_url, ExitStack() as procs:
        mock_env = dict(
            common,
            CLIENT_TOKEN=stack.client_token,
            MOCK_HOST="127.0.0.1",
            MOCK_PORT=url.rsplit(":", 1)[1],
            MOCK_POLL_HOLD_SECONDS="2",
            MOCK_DEMO_TASK="",
            REDIS_URL=redis_url,
        )
        mock = _start(stack, procs, [sys.executable, "-m", "mock_orchestrator"], mock_env, project, "mock")
        wait_for(
            lambda: mock.poll() is not None or answers(f"{url}/_public/status"), 30, "the mock to answer"
        )
        assert mock.poll() is None, f"the mock orchestrator exited with {mock.returncode}"
        worker_env = dict(
            common,
            ORCHESTRATOR_URL=url,
            REDIS_URL=redis_url,
            WORKER_ID=WORKER_ID,
            WORKER_HEARTBEAT_INTERVAL="1",
        )
        _start(stack, procs, [sys.executable, "my_worker.py"], worker_env, project, "worker")
        try:
            yield stack
        finally:
            stack.dump_logs()


@pytest.fixture
def page() -> Iterator[Any]:
    """A fresh page of the system's headless Chromium (never a downloaded browser)."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install -r requirements-dev.txt)")
    if not CHROMIUM.exists():
        skip_or_fail(
            f"Chromium is not installed at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
        )
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1360, "height": 900})
        finally:
            browser.close()


def _watch_page(page: Any, token: str) -> tuple[list[str], list[Any]]:
    """Collect page errors (CSP violations included) and every request, to check how the token travels."""
    problems: list[str] = []
    requests: list[Any] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("request", lambda request: requests.append(request))
    return problems, requests


def _submit(page: Any, task_type: str, params: str) -> None:
    page.get_by_label("Type").select_option(task_type)
    page.get_by_label("Params").fill(params)
    page.get_by_role("button", name="Submit", exact=True).click()


def _task_row(page: Any, task_type: str) -> Any:
    return page.locator("#tasks tbody tr").filter(has_text=task_type)


def test_dashboard_submits_a_task_shows_its_result_and_cancels_a_long_one(page: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    problems, requests = _watch_page(page, stack.client_token)
    page.goto(f"{stack.url}/#token={stack.client_token}")

    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("#workers tbody")).to_contain_text(WORKER_ID)
    expect(page.locator("#workers tbody")).to_contain_text("check_inventory")
    assert stack.client_token not in page.url, "the token must leave the address bar once it is stored"

    _submit(page, "check_inventory", '{"items": ["apple"]}')
    done = _task_row(page, "check_inventory")
    expect(done.locator(".badge")).to_have_text("success")
    expect(done).to_contain_text('"in_stock":{"apple":12}')
    expect(done.get_by_role("button", name="Cancel")).to_be_hidden()

    _submit(page, "long_running_task", '{"steps": 600, "step_seconds": 0.05}')
    slow = _task_row(page, "long_running_task")
    expect(slow.locator(".badge")).to_contain_text("running")
    expect(slow).to_contain_text(WORKER_ID)
    slow.get_by_role("button", name="Cancel").click()
    expect(slow.locator(".badge")).to_have_text("cancelled")
    expect(slow.get_by_role("button", name="Cancel")).to_be_hidden()

    page.screenshot(path=os.environ.get("DASHBOARD_SCREENSHOT", str(stack.logs[0].parent / "dashboard.png")))
    assert problems == []
    api_calls = [r for r in requests if "/api/v1/" in r.url]
    assert api_calls and all(r.headers.get("x-client-token") == stack.client_token for r in api_calls)
    assert not [r.url for r in requests if stack.client_token in r.url], "the token must never be in a URL"


def test_dashboard_names_the_problem_with_invalid_params(page: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    page.goto(f"{stack.url}/#token={stack.client_token}")
    expect(page.locator("#workers tbody")).to_contain_text(WORKER_ID)
    params = page.get_by_label("Params")

    _submit(page, "check_inventory", '{"items": ["apple",]}')
    expect(page.locator("#submit-message")).to_contain_text("Params is not valid JSON")
    expect(params).to_have_attribute("aria-invalid", "true")

    _submit(page, "check_inventory", '["apple"]')
    expect(page.locator("#submit-message")).to_contain_text("must be a JSON object")
    expect(page.locator("#submit-message")).to_contain_text("not an array")
    expect(page.locator("#tasks-empty")).to_be_visible()


def test_dashboard_asks_for_the_token_when_it_is_missing_or_refused(page: Any, stack: Stack) -> None:
    from playwright.sync_api import expect

    page.goto(f"{stack.url}/")
    token_field = page.get_by_label("CLIENT_TOKEN")
    expect(token_field).to_be_visible()
    expect(page.locator("#connection")).to_have_text("Not connected")

    token_field.fill("not-the-token")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#token-reason")).to_contain_text("refused this token")

    token_field.fill(stack.client_token)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#connection")).to_have_text("Live")
    expect(token_field).to_be_hidden()
    page.reload()  # the token was stored in the browser, so a reload reconnects without asking
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("#workers tbody")).to_contain_text(WORKER_ID)


def test_dashboard_durations_agree_with_the_cli_and_never_show_60(page: Any, stack: Stack) -> None:
    # The CLI's human_duration (cli_format.py) gives these; tests/test_mock_cli.py checks that side.
    expected = {
        0.0004: "0 ms",
        0.9996: "1.0 s",
        9.96: "10 s",
        59.6: "1 min 0 s",
        299.6: "5 min 0 s",
        3599.6: "1 h 0 min",
        7199.6: "2 h 0 min",
        90061: "25 h 1 min",
    }
    page.goto(f"{stack.url}/#token={stack.client_token}")
    page.wait_for_function("() => window.MockFormat !== undefined")
    shown = page.evaluate("values => values.map(v => window.MockFormat.duration(v))", list(expected))
    assert dict(zip(expected, shown, strict=True)) == expected
