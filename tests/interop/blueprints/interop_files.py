"""Test-only blueprint: a job whose task param names an input file in S3, for tests/test_interop_s3.py."""

import os

from avtomatika import Blueprint

# avtomatika 1.0b30 in S3 mode keeps a job's files under s3://<S3_DEFAULT_BUCKET>/jobs/<job_id>/ (s3.py,
# TaskFiles._s3_prefix): the client uploads there (PUT /api/v1/jobs/<id>/files/content/<name>), and the job's
# end deletes that prefix (S3_AUTO_CLEANUP). The job pauses for a human approval before and after the task so
# the client can upload the input once the job id exists, and read the output before the cleanup.

files = Blueprint("interop_files", api_endpoint="/jobs/interop_files", api_version="v1")


@files.handler(is_start=True)
async def start(actions):
    actions.await_human_approval(
        integration="test", message="upload the input", transitions={"uploaded": "work"}
    )


@files.handler()
async def work(job_id, initial_data, actions):
    bucket = os.environ.get("S3_DEFAULT_BUCKET") or "avtomatika-payloads"
    actions.dispatch_task(
        task_type="interop_count_lines",
        params={"input_file": f"s3://{bucket}/jobs/{job_id}/{initial_data['input_name']}"},
        transitions={"success": "review", "failure": "failed"},
        result_timeout_seconds=120,
    )


@files.handler()
async def review(actions):
    actions.await_human_approval(
        integration="test", message="read the output", transitions={"done": "finished"}
    )


@files.handler(is_end=True)
async def finished():
    pass


@files.handler(is_end=True)
async def failed():
    pass
