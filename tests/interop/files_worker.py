"""The baked worker plus a handler reading an s3:// input and writing an output file, for
tests/test_interop_s3.py (run with cwd = the baked project and PYTHONPATH including it)."""

from __future__ import annotations

from typing import Any

from avtomatika_worker import TaskFiles
from my_worker import worker


@worker.task("interop_count_lines")
async def interop_count_lines(params: dict[str, Any], files: TaskFiles) -> dict[str, Any]:
    """Count the input's lines; the report is uploaded under the job's prefix."""
    source = await files.download("input_file")
    lines = source.read_bytes().count(b"\n")
    report = files.path("report.txt")
    report.write_text(f"{source.name}: {lines} lines\n")
    return {"status": "success", "data": {"lines": lines, "report": str(report)}}


if __name__ == "__main__":
    worker.run()
