"""`python -m avtomatika_worker.health`: exit 0 when the worker's liveness file says it is healthy.

Used by the image's HEALTHCHECK (no curl, no port). Healthy means: the file `WORKER_HEALTH_FILE` says
`ok` and was written less than `3 x WORKER_HEARTBEAT_INTERVAL + WORKER_POLL_TIMEOUT` seconds ago.
Otherwise one line says why, and the exit code is 1.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping

from .config import SECRET_VARIABLES, WorkerConfig, load_env_file
from .errors import ConfigError
from .liveness import check, max_age

# Placeholders for the two required variables: the check needs neither, but WorkerConfig does.
_PLACEHOLDERS = {"ORCHESTRATOR_URL": "http://localhost", "WORKER_TOKEN": "unused-by-health-check"}


def main(environ: Mapping[str, str] | None = None) -> int:
    """Check the liveness file named by the environment; print the problem and return 1 if unhealthy."""
    if environ is None:
        load_env_file()
        environ = os.environ
    # The check needs no secret: it neither reads secret files nor trips on a token set two ways.
    secrets = SECRET_VARIABLES | {f"{name}_FILE" for name in SECRET_VARIABLES}
    env = {**_PLACEHOLDERS, **{k: v for k, v in environ.items() if v.strip() and k not in secrets}}
    try:
        config = WorkerConfig.from_env("health-check", env)
    except ConfigError as exc:
        print(f"unhealthy: configuration error: {exc}", file=sys.stderr)
        return 1
    problem = check(config.health_path, max_age(config), time.time())
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
