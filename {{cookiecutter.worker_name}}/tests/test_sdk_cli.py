"""`python -m avtomatika_worker run --app ...`, the official SDK's command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from avtomatika_worker import Worker
from avtomatika_worker.__main__ import load_app, main


def test_run_loads_the_worker_named_by_app_and_runs_it_with_the_health_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(Worker, "run_with_health_check", lambda self: ran.append("health"))
    monkeypatch.setattr(Worker, "run", lambda self: ran.append("plain"))
    assert main(["run", "--app", "my_worker:worker"]) == 0
    assert main(["run", "--app", "my_worker:worker", "--no-health-check"]) == 0
    assert ran == ["health", "plain"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("my_worker", "must be module:attribute"),
        ("no_such_module:worker", "cannot import 'no_such_module'"),
        ("my_worker:STOCK_NOT_THERE", "is nothing, not an avtomatika_worker.Worker"),
        ("my_worker:check_inventory", "is function, not an avtomatika_worker.Worker"),
    ],
)
def test_a_bad_app_is_a_clear_error(target: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_app(target)


def test_reload_is_refused_with_the_alternative() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "avtomatika_worker", "run", "--app", "my_worker:worker", "--reload"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--reload is not supported" in result.stderr
