"""The local S3 server of the compose stack: moto's S3 on port 9000, the bucket created before it is ready.

``python serve.py`` serves; ``python serve.py --check`` is the healthcheck (exit 0 once the bucket answers).
Objects live in memory only: a restart of the service empties the bucket. Any access key is accepted.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request

from moto.server import ThreadedMotoServer

PORT = 9000


def bucket_url() -> str:
    """This server's URL of the bucket named by S3_DEFAULT_BUCKET (avtomatika's default name)."""
    return f"http://127.0.0.1:{PORT}/{os.environ.get('S3_DEFAULT_BUCKET') or 'avtomatika-payloads'}"


def check() -> int:
    """0 when the bucket exists, 1 otherwise (the compose healthcheck)."""
    try:
        urllib.request.urlopen(urllib.request.Request(bucket_url(), method="HEAD"), timeout=2).close()
    except (urllib.error.URLError, OSError) as exc:
        print(f"s3: not ready ({exc})", file=sys.stderr)
        return 1
    return 0


def serve() -> int:
    """Serve until SIGTERM or SIGINT."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request (healthchecks included)
    server = ThreadedMotoServer(ip_address="0.0.0.0", port=PORT, verbose=False)  # noqa: S104 - in a container
    server.start()
    urllib.request.urlopen(urllib.request.Request(bucket_url(), method="PUT"), timeout=10).close()
    print(f"s3: serving on port {PORT} with bucket {bucket_url().rsplit('/', 1)[1]}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(check() if sys.argv[1:] == ["--check"] else serve())
