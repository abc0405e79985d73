"""The one driver that plays a contract scenario (interop/scenarios.py) against any `Target`."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import redis

from interop.real import CLIENT_TOKEN
from interop.scenarios import SCENARIOS, THIS_SKILL, UNKNOWN_JOB, Step
from interop.targets import SCENARIO_BLUEPRINT, Target
from interop.wire import WORKER_PREFIX, Reply, WireClient

CANCEL_FLAG_TTL = 3600
OUTCOME_TIMEOUT = 20.0
WS_TIMEOUT = 10.0


def substitute(value: Any, names: dict[str, str]) -> Any:
    """Replace `{name}` placeholders in every string of `value`."""
    if isinstance(value, str):
        for key, text in names.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(substitute(v, names) for v in value)
    return value


class ScenarioRun:
    """The state of one scenario played against one target; each action is a method named as `Step.do`."""

    def __init__(self, target: Target, http: aiohttp.ClientSession, name: str) -> None:
        self.target = target
        self.http = http
        suffix = secrets.token_hex(4)
        self.client = WireClient(http, target.base_url, f"contract-{suffix}", target.worker_token)
        self.skill = f"contract_{name[:40]}_{suffix}"
        self.handles: list[str] = []
        self.tasks: list[dict[str, Any]] = []
        self.params: dict[str, Any] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    def names(self) -> dict[str, str]:
        """Placeholder values."""
        names = {"worker_id": self.client.worker_id}
        if self.tasks:
            names.update(task_id=self.tasks[-1]["task_id"], job_id=self.tasks[-1]["job_id"])
        if len(self.tasks) > 1:
            names["previous_task_id"] = self.tasks[-2]["task_id"]
        return names

    async def register(self, step: Step) -> Any:
        """Register with the scenario's skill (args: mode, token, worker_header)."""
        return (await self.client.register([self.skill], **step.args)).pair()

    async def replay(self, step: Step) -> Any:
        """Send the previous request again, byte for byte."""
        return (await self.client.replay()).pair()

    async def heartbeat_empty(self, step: Step) -> Any:
        """Empty-body heartbeat, for this worker or (worker=unknown) an unregistered id."""
        unknown = step.args.get("worker") == "unknown"
        return (
            await self.client.heartbeat(None, self.client.worker_id + "-unknown" if unknown else None)
        ).pair()

    async def heartbeat(self, step: Step) -> Any:
        """Signed heartbeat with `body`."""
        return (await self.client.heartbeat(substitute(step.args["body"], self.names()))).pair()

    async def event(self, step: Step) -> Any:
        """Signed event about the current task (about no task before the first poll)."""
        body = dict(step.args)
        if self.tasks:
            body = {
                "target_job_id": self.tasks[-1]["job_id"],
                "target_task_id": self.tasks[-1]["task_id"],
                **body,
            }
        return (await self.client.event(body)).pair()

    async def register_declaring(self, step: Step) -> Any:
        """Register with the scenario's skill entry extended by `skill` (version, schemas...) and `record`."""
        skill = {"name": self.skill, "type": self.skill, **step.args.get("skill", {})}
        body = {
            "worker_id": self.client.worker_id,
            "worker_type": "contract-probe",
            "supported_skills": [skill],
        }
        path = f"{WORKER_PREFIX}/workers/register"
        record = named(step.args.get("record", {}), self.skill)
        return (await self.client.post_signed("POST", path, body | record)).pair()

    async def create(self, step: Step) -> Any:
        """Submit a task of the scenario's skill through the target's own API (`options`: 1.0b30 task options)."""
        self.params = step.args["params"]
        options = step.args.get("options")
        if options:
            self.handles.append(await self._create_with(options))
        else:
            self.handles.append(await self.target.create(self.http, self.skill, self.params))
        return None

    async def _create_with(self, options: dict[str, Any]) -> str:
        """Create work with `options`: skill_version/skill_type (real: blueprint initial_data) and metadata."""
        if self.target.name == "real":
            url = f"{self.target.base_url}/api/v1/jobs/{SCENARIO_BLUEPRINT}"
            pinning = {k: v for k, v in options.items() if k != "metadata"}
            initial_data = {"skill": self.skill, "params": self.params, **pinning}
            body = {"initial_data": initial_data, "result_timeout": 300}
            if "metadata" in options:
                body["metadata"] = options["metadata"]
            expected, key = 202, "job_id"
        else:
            url = f"{self.target.base_url}/api/v1/tasks"
            body = {"type": self.skill, "params": self.params, **options}
            expected, key = 201, "task_id"
        async with self.http.post(url, json=body, headers={"X-Client-Token": CLIENT_TOKEN}) as resp:
            reply = await resp.json(content_type=None)
            assert resp.status == expected, (resp.status, reply)
        return str(reply[key])

    async def job_field(self, step: Step) -> Any:
        """A field of the current work as the client API shows it (real: the job, mock: the task)."""
        kind = "jobs" if self.target.name == "real" else "tasks"
        url = f"{self.target.base_url}/api/v1/{kind}/{self.handles[-1]}"
        async with self.http.get(url, headers={"X-Client-Token": CLIENT_TOKEN}) as resp:
            return (await resp.json(content_type=None)).get(step.args["field"])

    async def poll(self, step: Step) -> Any:
        """Long-poll; `task`/`retry` expectations check the task's shape here."""
        reply = await self.client.poll()
        if step.expect not in ("task", "retry"):
            return reply.pair()
        assert reply.status == 200, f"expected a task, got {reply}"
        task = reply.body
        missing = {"job_id", "task_id", "type", "params", "priority", "sig"} - set(task)
        assert not missing, f"task lacks {missing}: {task}"
        assert (task["type"], task["params"], task["priority"]) == (self.skill, self.params, 0), task
        if step.expect == "retry":
            previous = self.tasks[-1]
            assert task["job_id"] == previous["job_id"] and task["task_id"] != previous["task_id"], (
                previous,
                task,
            )
        self.tasks.append(task)
        return step.expect

    async def result(self, step: Step) -> Any:
        """Signed result for the current (or task=previous) task; args override the body."""
        args = dict(step.args)
        which = -2 if args.pop("task", "current") == "previous" else -1
        task = self.tasks[which] if self.tasks else {"job_id": UNKNOWN_JOB, "task_id": "task-unknown"}
        body = {"job_id": task["job_id"], "task_id": task["task_id"], "status": "success", **args}
        return (await self.client.result(body)).pair()

    async def polls(self, step: Step) -> Any:
        """`count` polls at once (each is counted when it arrives, so the holds overlap)."""
        replies = await asyncio.gather(*(self.client.poll() for _ in range(step.args["count"])))
        return [reply.pair() for reply in replies]

    async def exact(self, step: Step) -> Any:
        """One `request` (see EXACT_REQUESTS) compared byte for byte with its protocol headers.

        A bare int expectation compares the status only.
        """
        reply = await EXACT_REQUESTS[step.args["request"]](self)
        return reply.status if isinstance(step.expect, int) else reply.exact()

    async def ws_cycle(self, step: Step) -> Any:
        """Open the WebSocket command channel and close it again."""
        ws = await self.client.websocket()
        await ws.close()
        return "opened"

    async def cancel(self, step: Step) -> Any:
        """Cancel the current work through the target's own API."""
        reply = await self.target.cancel(self.http, self.handles[-1])
        return reply.status if isinstance(step.expect, int) else reply.pair()

    async def outcome(self, step: Step) -> Any:
        """Wait for the terminal outcome in the shared vocabulary."""
        deadline = time.monotonic() + OUTCOME_TIMEOUT
        while (seen := await self.target.outcome(self.http, self.handles[-1])) is None:
            assert time.monotonic() < deadline, f"no outcome within {OUTCOME_TIMEOUT:.0f} s"
            await asyncio.sleep(0.1)
        return seen

    async def cancel_flag(self, step: Step) -> Any:
        """Check the Redis cancel flag of the current task."""
        key = f"orchestrator:task_cancel:{self.tasks[-1]['task_id']}"
        with redis.Redis.from_url(self.target.redis_url) as client:
            value, ttl = client.get(key), client.ttl(key)
        assert value == b"1", f"{key} = {value!r}, expected '1'"
        assert CANCEL_FLAG_TTL - 60 < ttl <= CANCEL_FLAG_TTL, (
            f"{key} TTL {ttl}, expected about {CANCEL_FLAG_TTL}"
        )
        return None

    async def ws_connect(self, step: Step) -> Any:
        """Open the WebSocket command channel."""
        self.ws = await self.client.websocket()
        return None

    async def ws_receive(self, step: Step) -> Any:
        """The next command on the WebSocket."""
        assert self.ws is not None, "ws_connect first"
        message = await self.ws.receive(timeout=WS_TIMEOUT)
        assert message.type == aiohttp.WSMsgType.TEXT, f"expected a text frame, got {message}"
        return orjson.loads(message.data)

    async def close(self) -> None:
        """Release the WebSocket, if any."""
        if self.ws is not None:
            await self.ws.close()


def _worker_path(run: ScenarioRun) -> str:
    return f"/_worker/workers/{run.client.worker_id}"


EXACT_REQUESTS: dict[str, Callable[[ScenarioRun], Awaitable[Reply]]] = {
    "register": lambda run: run.client.register([run.skill]),
    "register_wrong_token": lambda run: run.client.register([run.skill], token="not-the-token"),
    "register_bad_json": lambda run: run.client.send(
        "POST", "/_worker/workers/register", b"{nope", run.client.headers()
    ),
    "heartbeat_empty": lambda run: run.client.heartbeat(None),
    "heartbeat": lambda run: run.client.heartbeat({"status": "idle"}),
    "heartbeat_bad_json": lambda run: run.client.send(
        "PATCH", _worker_path(run), b"{nope", run.client.headers()
    ),
    "poll": lambda run: run.client.poll(),
    "result": lambda run: run.client.result(
        {"job_id": UNKNOWN_JOB, "task_id": "task-unknown", "status": "success"}
    ),
    "event": lambda run: run.client.event({"event_type": "progress", "payload": {"progress": 0.5}}),
    "ws_upgrade": lambda run: run.client.websocket_handshake(),
    "ws_plain_get": lambda run: run.client.websocket_handshake(upgrade=False),
}


async def play(
    target: Target, http: aiohttp.ClientSession, name: str, scenarios: dict[str, list[Step]] = SCENARIOS
) -> None:
    """Run scenario `name` (of `scenarios`) against `target`, asserting every step's answer."""
    run = ScenarioRun(target, http, name)
    try:
        for index, step in enumerate(scenarios[name], 1):
            action: Callable[[Step], Awaitable[Any]] = getattr(run, step.do)
            observed = await action(step)
            expected = substitute(step.expect, run.names())
            if step.expect is not None:
                assert observed == expected, (
                    f"{target.name}: step {index} {step.do} {step.args or ''} answered\n  {observed!r}\n"
                    f"expected (what avtomatika 1.0b30 answers)\n  {expected!r}"
                )
    finally:
        await run.close()


def named(value: Any, skill: str) -> Any:
    """`value` with every THIS_SKILL (a key or a string) replaced by the scenario's skill name."""
    if isinstance(value, dict):
        return {named(k, skill): named(v, skill) for k, v in value.items()}
    if isinstance(value, list):
        return [named(v, skill) for v in value]
    return skill if value == THIS_SKILL else value
