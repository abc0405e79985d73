"""Resources, costs, capabilities and hot skills: detection, environment, and what the worker publishes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from avtomatika_worker import ConfigError, Wiring, Worker, WorkerConfig
from avtomatika_worker.detect import (
    NVIDIA_SMI_QUERY,
    Detected,
    cgroup_cpu_limit,
    cgroup_memory_limit,
    detect,
    detect_gpus,
    parse_nvidia_smi,
)
from avtomatika_worker.hot_skills import NONE_HOT, HotSkills
from avtomatika_worker.ratelimit import RateLimits
from avtomatika_worker.resources import ResourceSettings

from services import eventually

GIB = 1024**3
SMI_OUTPUT = "0, NVIDIA A100-SXM4-40GB, 40960, GPU-aaa\n1, NVIDIA GeForce RTX 4090, 24564, GPU-bbb\n"
NO_GPU = Detected(cpu_cores=2, ram_gb=4.0, gpus=[])


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def meminfo(tmp_path: Path, gib: int) -> Path:
    return write(tmp_path, {"meminfo": f"MemTotal:       {gib * 1024 * 1024} kB\n"}) / "meminfo"


# ---- detection ------------------------------------------------------------------------------------


def test_cgroup_v2_cpu_max_gives_whole_cores_of_the_quota(tmp_path: Path) -> None:
    write(tmp_path, {"cpu.max": "250000 100000\n", "memory.max": "max\n"})
    machine = detect(
        cgroup_root=tmp_path, meminfo=meminfo(tmp_path, 64), cpus=lambda: 16, runner=lambda a: None
    )
    assert machine.cpu_cores == 2
    assert machine.ram_gb == 64.0


def test_cgroup_v2_memory_max_below_the_host_memory_wins(tmp_path: Path) -> None:
    write(tmp_path, {"cpu.max": "max 100000\n", "memory.max": f"{3 * GIB}\n"})
    machine = detect(
        cgroup_root=tmp_path, meminfo=meminfo(tmp_path, 64), cpus=lambda: 8, runner=lambda a: None
    )
    assert (machine.cpu_cores, machine.ram_gb) == (8, 3.0)


def test_cgroup_v1_quota_and_limit_are_read_when_there_is_no_v2(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "cpu,cpuacct/cpu.cfs_quota_us": "400000\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            "memory/memory.limit_in_bytes": f"{2 * GIB}\n",
        },
    )
    assert cgroup_cpu_limit(tmp_path) == 4.0
    assert cgroup_memory_limit(tmp_path) == 2 * GIB


def test_cgroup_v1_unlimited_values_mean_no_limit(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "cpu/cpu.cfs_quota_us": "-1\n",
            "cpu/cpu.cfs_period_us": "100000\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_memory_limit(tmp_path) is None


def test_a_fractional_quota_below_one_core_still_declares_one(tmp_path: Path) -> None:
    write(tmp_path, {"cpu.max": "50000 100000\n"})
    assert (
        detect(
            cgroup_root=tmp_path, meminfo=meminfo(tmp_path, 1), cpus=lambda: 4, runner=lambda a: None
        ).cpu_cores
        == 1
    )


def test_nvidia_smi_output_becomes_gpu_devices() -> None:
    calls: list[Sequence[str]] = []

    def runner(args: Sequence[str]) -> str:
        calls.append(args)
        return SMI_OUTPUT

    gpus = detect_gpus(runner)
    assert calls == [NVIDIA_SMI_QUERY]
    assert gpus == [
        {
            "type": "gpu",
            "model": "NVIDIA A100-SXM4-40GB",
            "id": "0",
            "properties": {"memory_gb": 40, "uuid": "GPU-aaa"},
        },
        {
            "type": "gpu",
            "model": "NVIDIA GeForce RTX 4090",
            "id": "1",
            "properties": {"memory_gb": 24, "uuid": "GPU-bbb"},
        },
    ]


def test_no_nvidia_smi_means_no_gpus() -> None:
    assert detect_gpus(lambda args: None) == []


@pytest.mark.parametrize(
    "failure",
    [
        subprocess.CalledProcessError(9, "nvidia-smi", stderr="NVIDIA-SMI has failed"),
        subprocess.TimeoutExpired("nvidia-smi", 15),
        PermissionError("denied"),
    ],
)
def test_a_broken_nvidia_smi_is_logged_once_and_start_up_goes_on(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    def runner(args: Sequence[str]) -> str:
        raise failure

    assert detect_gpus(runner) == []
    assert len([r for r in caplog.records if "nvidia-smi" in r.getMessage()]) == 1


def test_garbled_nvidia_smi_output_is_reported_not_guessed(caplog: pytest.LogCaptureFixture) -> None:
    assert detect_gpus(lambda args: "No devices were found\n") == []
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_nvidia_smi("garbage")
    assert "nvidia-smi" in caplog.text


# ---- environment ----------------------------------------------------------------------------------


def test_the_official_variables_override_and_extend_what_was_detected() -> None:
    env = {
        "CPU_CORES": "6",
        "RAM_GB": "12.5",
        "GPU_MODEL": "NVIDIA L4",
        "GPU_ID": "3",
        "GPU_VRAM_GB": "24",
        "WORKER_DEVICES": '[{"type": "fpga", "model": "U250"}]',
        "INSTALLED_SOFTWARE": '{"ffmpeg": "6.1"}',
        "INSTALLED_ARTIFACTS": '["yolo", {"name": "llama", "version": "3"}]',
        "COST_PER_SKILL": '{"resize": 0.5, "ocr": 2}',
        "WORKER_EXTRA_REGION": "eu-west",
        "WORKER_EXTRA_LABELS": '{"tier": "gold"}',
    }
    detected = Detected(cpu_cores=2, ram_gb=4.0, gpus=parse_nvidia_smi(SMI_OUTPUT))
    fields = ResourceSettings.from_env(env).registration(detected)
    assert fields["resources"] == {
        "properties": {"cpu_cores": 6, "ram_gb": 12.5},
        "devices": [
            {"type": "gpu", "model": "NVIDIA L4", "id": "3", "properties": {"memory_gb": 24}},
            {"type": "fpga", "model": "U250"},
        ],
    }
    assert fields["installed_software"] == {"ffmpeg": "6.1"}
    assert fields["installed_artifacts"] == [{"name": "yolo"}, {"name": "llama", "version": "3"}]
    capabilities = fields["capabilities"]
    assert capabilities["cost_per_skill"] == {"resize": 0.5, "ocr": 2.0}
    assert capabilities["extra"] == {"region": "eu-west", "labels": {"tier": "gold"}}
    assert capabilities["hostname"] and capabilities["ip_address"]


def test_without_variables_the_detected_machine_is_published() -> None:
    detected = Detected(cpu_cores=3, ram_gb=7.5, gpus=parse_nvidia_smi(SMI_OUTPUT))
    fields = ResourceSettings.from_env({}).registration(detected)
    assert fields["resources"]["properties"] == {"cpu_cores": 3, "ram_gb": 7.5}
    assert [d["model"] for d in fields["resources"]["devices"]] == [
        "NVIDIA A100-SXM4-40GB",
        "NVIDIA GeForce RTX 4090",
    ]
    assert set(fields["installed_software"]) == {"python"}
    assert "installed_artifacts" not in fields
    assert set(fields["capabilities"]) == {"hostname", "ip_address"}


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("CPU_CORES", "0", "whole number >= 1"),
        ("CPU_CORES", "two", "whole number >= 1"),
        ("RAM_GB", "-1", "GiB > 0"),
        ("GPU_VRAM_GB", "lots", "whole number of GiB"),
        ("WORKER_DEVICES", '{"type": "gpu"}', "JSON list of objects"),
        ("WORKER_DEVICES", '[{"model": "x"}]', 'with a "type"'),
        ("INSTALLED_SOFTWARE", '{"ffmpeg": 6}', "names to version strings"),
        ("INSTALLED_ARTIFACTS", "[1]", 'with a "name"'),
        ("COST_PER_SKILL", '{"resize": -1}', "numbers >= 0"),
        ("COST_PER_SKILL", "cheap", "numbers >= 0"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_the_rule_and_an_example(
    name: str, value: str, rule: str
) -> None:
    env = {"GPU_MODEL": "NVIDIA L4", name: value}
    with pytest.raises(ConfigError) as caught:
        ResourceSettings.from_env(env)
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r} is invalid: ")
    assert rule in message
    assert f"(e.g. {name}=" in message


def test_gpu_details_without_gpu_model_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"GPU_VRAM_GB='24' is invalid: .*GPU_MODEL, which is not set"):
        ResourceSettings.from_env({"GPU_VRAM_GB": "24"})


def test_a_worker_extra_value_that_looks_like_json_must_be_json() -> None:
    with pytest.raises(ConfigError, match=r"WORKER_EXTRA_LABELS='\{tier' is invalid: .*valid JSON"):
        ResourceSettings.from_env({"WORKER_EXTRA_LABELS": "{tier"})


def test_worker_config_reads_the_resource_variables() -> None:
    env = {"ORCHESTRATOR_URL": "http://localhost:8080", "WORKER_TOKEN": "t", "COST_PER_SKILL": '{"a": 1}'}
    assert WorkerConfig.from_env("w", env).resources.cost_per_skill == {"a": 1.0}
    with pytest.raises(ConfigError, match=r"^CPU_CORES="):
        WorkerConfig.from_env("w", {**env, "CPU_CORES": "0"})


# ---- hot skills -----------------------------------------------------------------------------------


def test_hot_skills_publish_registered_names_and_withdraw_the_last_with_a_placeholder() -> None:
    hot = HotSkills()
    assert hot.published(["resize"]) is None
    hot.add("resize")
    hot.add("some-model")  # not a skill: kept, not published
    assert hot.published(["resize", "ocr"]) == ["resize"]
    hot.remove("resize")
    assert hot.published(["resize", "ocr"]) == [NONE_HOT]


def test_hot_skills_call_the_listener_once_per_change_from_any_thread() -> None:
    hot, calls = HotSkills(), []
    hot.listen(lambda: calls.append(threading.current_thread().name))
    threads = [threading.Thread(target=hot.add, args=("resize",), name=f"t{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hot.remove("resize")
    hot.remove("resize")
    assert len(calls) == 2
    with pytest.raises(ValueError, match="hot skill name ''"):
        hot.add("")


class Recorder:
    """A loopback orchestrator that records registration and heartbeat bodies and holds polls."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any]] = []

    async def record(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.bodies.append((request.method, body))
        return web.json_response({"status": "ok"})

    async def poll(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.Response(status=204)

    def heartbeats(self) -> list[dict[str, Any]]:
        return [b for m, b in self.bodies if m == "PATCH" and b]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/_worker/workers/register", self.record)
        app.router.add_patch("/_worker/workers/{worker_id}", self.record)
        app.router.add_get("/_worker/workers/{worker_id}/tasks/next", self.poll)
        return app


@pytest.fixture
async def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Recorder, str]]:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    orchestrator = Recorder()
    server = TestServer(orchestrator.app(), host="127.0.0.1", port=0)
    await server.start_server()
    yield orchestrator, str(server.make_url("")).rstrip("/")
    await server.close()


def worker_for(url: str, env: dict[str, str], **overrides: Any) -> Worker:
    config = WorkerConfig(
        worker_type="inventory-checker", orchestrator_url=url, worker_token="t", worker_id="res-01",
        heartbeat_interval=30.0, poll_timeout=10.0, shutdown_timeout=1.0,
        rate_limits=RateLimits(enabled=False), resources=ResourceSettings.from_env(env), **overrides,
    )  # fmt: skip
    worker = Worker("inventory-checker", config=config, wiring=Wiring())

    @worker.task("resize")
    async def resize(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {}

    return worker


async def test_registration_carries_resources_software_artifacts_and_capabilities(
    recorder: tuple[Recorder, str],
) -> None:
    orchestrator, url = recorder
    env = {"GPU_MODEL": "NVIDIA L4", "GPU_VRAM_GB": "24", "COST_PER_SKILL": '{"resize": 1.5}'}
    env |= {"INSTALLED_ARTIFACTS": '["yolo"]', "WORKER_EXTRA_REGION": "eu"}
    async with worker_for(url, env, enable_websockets=True):
        await eventually(lambda: bool(orchestrator.heartbeats()), what="a heartbeat")
    registration = orchestrator.bodies[0][1]
    assert registration["resources"]["devices"] == [
        {"type": "gpu", "model": "NVIDIA L4", "id": "0", "properties": {"memory_gb": 24}}
    ]
    assert registration["resources"]["properties"]["cpu_cores"] >= 1
    assert registration["installed_artifacts"] == [{"name": "yolo"}]
    assert set(registration["installed_software"]) == {"python"}
    assert registration["capabilities"]["cost_per_skill"] == {"resize": 1.5}
    assert registration["capabilities"]["extra"] == {"region": "eu"}
    # A heartbeat's capabilities replace the registered ones on 1.0b30: costs and extra must survive it.
    assert orchestrator.heartbeats()[0]["capabilities"] == {
        "websockets": True, "cost_per_skill": {"resize": 1.5}, "extra": {"region": "eu"},
    }  # fmt: skip


async def test_a_hot_skill_added_from_a_thread_reaches_the_orchestrator_with_the_next_heartbeat(
    recorder: tuple[Recorder, str],
) -> None:
    orchestrator, url = recorder
    async with worker_for(url, {}) as worker:
        await eventually(lambda: bool(orchestrator.heartbeats()), what="the first heartbeat")
        assert "hot_skills" not in orchestrator.heartbeats()[0]
        await asyncio.to_thread(worker.add_to_hot_skills, "resize")
        await eventually(
            lambda: orchestrator.heartbeats()[-1].get("hot_skills") == ["resize"], what="hot_skills published"
        )
        worker.remove_from_hot_skills("resize")
        await eventually(
            lambda: orchestrator.heartbeats()[-1].get("hot_skills") == [NONE_HOT], what="hot skill withdrawn"
        )
    assert json.dumps(orchestrator.heartbeats())  # every body was JSON


async def test_handlers_mark_their_skill_hot_and_cold_through_their_keyword_arguments() -> None:
    from avtomatika_worker import Worker
    from avtomatika_worker.testing import TaskRun

    hot_worker = Worker("hot-test")

    @hot_worker.task("load")
    async def load(params: dict[str, Any], add_to_hot_skills: Callable[[str], None]) -> dict[str, Any]:
        add_to_hot_skills("load")
        return {"status": "success"}

    @hot_worker.task("unload")
    def unload(params: dict[str, Any], remove_from_hot_skills: Callable[[str], None]) -> dict[str, Any]:
        remove_from_hot_skills("load")  # a sync handler, in a thread
        return {"status": "success"}

    await TaskRun(hot_worker, "load")({})
    assert hot_worker.hot_skills.names() == {"load"}
    await TaskRun(hot_worker, "unload")({})
    assert hot_worker.hot_skills.names() == set()


def test_with_skill_dependencies_a_skill_is_hot_once_every_item_it_needs_is() -> None:
    from avtomatika_worker import Worker

    deps_worker = Worker("deps-test", skill_dependencies={"summarise": ["llama", "tokenizer"]})
    hot = deps_worker.hot_skills
    deps_worker.add_to_hot_skills("llama")
    assert hot.published(["summarise", "translate"]) is None  # nothing hot yet
    deps_worker.add_to_hot_skills("tokenizer")
    assert hot.published(["summarise", "translate"]) == ["summarise"]
    deps_worker.add_to_hot_skills("translate")  # a skill without dependencies is hot by its own name
    assert hot.published(["summarise", "translate"]) == ["summarise", "translate"]


def test_skill_dependencies_must_list_item_names() -> None:
    from avtomatika_worker import Worker

    with pytest.raises(TypeError, match=r"skill_dependencies\['summarise'\]='llama' must be a list"):
        Worker("deps-test", skill_dependencies={"summarise": "llama"})  # type: ignore[dict-item]
