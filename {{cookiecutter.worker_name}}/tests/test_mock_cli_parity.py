"""The CLI submits 1.0b30's task options and shows what workers declare and what results carry."""

from __future__ import annotations

import test_mock_cli
from test_mock_cli import Mock, ProtocolWorker, field_line

cli_mock = test_mock_cli.mock  # the running-mock fixture of the CLI tests, under this name here

SKILL = "render"
DECLARED = {
    "worker_id": "gpu-worker",
    "supported_skills": [
        {"name": SKILL, "version": "2.0", "type": "image", "description": "Renders a scene"},
    ],
    "hot_skills": [SKILL],
    "resources": {"devices": [{"type": "gpu", "model": "RTX 4090"}]},
    "installed_software": {"blender": "4.1"},
    "capabilities": {"hostname": "h", "ip_address": "127.0.0.1", "cost_per_skill": {SKILL: 0.5}},
}


def test_worker_shows_the_declared_skills_resources_software_and_costs(cli_mock: Mock) -> None:
    ProtocolWorker(cli_mock.url, "gpu-worker").send("POST", "/_worker/workers/register", DECLARED)
    shown = cli_mock.cli("worker", "gpu")
    assert shown.returncode == 0, shown.stderr
    assert field_line(shown.stdout, "skill") == "render; version 2.0; type image; hot - Renders a scene"
    assert "RTX 4090" in field_line(shown.stdout, "resources")
    assert field_line(shown.stdout, "software") == '{"blender": "4.1"}'
    assert field_line(shown.stdout, "costs") == '{"render": 0.5}'
    unknown = cli_mock.cli("worker", "nobody")
    assert (unknown.returncode, "registered: gpu-worker" in unknown.stderr) == (1, True)


def test_submit_pins_a_skill_version_and_show_tells_the_outcome(cli_mock: Mock) -> None:
    worker = ProtocolWorker(cli_mock.url, "gpu-worker")
    worker.send("POST", "/_worker/workers/register", DECLARED)
    args = ("submit", SKILL, "{}", "--skill-version", "2.0", "--max-cost", "1", "--metadata", '{"by": "cli"}')
    task_id = cli_mock.cli_json(*args)["task_id"]
    task = worker.take()
    worker.report(task, status="success", data={"ok": True}, metadata={"frames": 2}, costs={"gpu_s": 3})
    shown = cli_mock.cli("show", task_id).stdout
    assert field_line(shown, "pinned ver") == "2.0"
    assert field_line(shown, "metadata") == '{"by": "cli", "frames": 2}'
    assert field_line(shown, "costs") == '{"gpu_s": 3}'
    refused = cli_mock.cli_json("submit", SKILL, "{}", "--skill-version", "3.0")
    assert refused["status"] == "quarantined"
    assert "skill_contract_mismatch" in refused["error_message"]


def test_requirements_that_are_not_a_json_object_are_named_with_an_example(cli_mock: Mock) -> None:
    result = cli_mock.cli("submit", SKILL, "{}", "--requirements", "[1]")
    assert result.returncode == 2
    assert "--requirements must be a JSON object, got an array" in result.stderr
    assert '"devices"' in result.stderr
