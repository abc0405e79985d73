"""What the dispatcher filters and ranks on: resources, installed software/artifacts, costs, extra capabilities.

The variable names and meanings are the official SDK's (CPU_CORES, RAM_GB, GPU_MODEL, GPU_ID, GPU_VRAM_GB,
WORKER_DEVICES, INSTALLED_SOFTWARE, INSTALLED_ARTIFACTS, COST_PER_SKILL, WORKER_EXTRA_*), but a bad value
stops start-up with a message instead of being dropped with a warning.
"""

from __future__ import annotations

import json
import math
import platform
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .detect import Detected
from .errors import ConfigError

N = TypeVar("N", int, float)

EXTRA_PREFIX = "WORKER_EXTRA_"

_RULES: dict[str, tuple[str, str]] = {
    "CPU_CORES": ("must be a whole number >= 1 (overrides the detected cores)", "8"),
    "RAM_GB": ("must be a number of GiB > 0 (overrides the detected memory)", "16"),
    "GPU_MODEL": ("must be a GPU model name (declares one GPU instead of the detected ones)", "NVIDIA A100"),
    "GPU_ID": ("must be a device id", "0"),
    "GPU_VRAM_GB": ("must be a whole number of GiB >= 0", "40"),
    "WORKER_DEVICES": (
        'must be a JSON list of objects with a "type" (rxon HardwareDevice)',
        '\'[{"type": "fpga", "model": "U250", "properties": {"lanes": 16}}]\'',
    ),
    "INSTALLED_SOFTWARE": ("must be a JSON object of names to version strings", '\'{"ffmpeg": "6.1"}\''),
    "INSTALLED_ARTIFACTS": (
        'must be a JSON list of names or objects with a "name" (rxon InstalledArtifact)',
        '\'[{"name": "llama-3-8b", "version": "1.0"}]\'',
    ),
    "COST_PER_SKILL": ("must be a JSON object of skill names to numbers >= 0", "'{\"resize\": 0.5}'"),
}


def _invalid(name: str, value: str) -> ConfigError:
    rule, example = _RULES[name]
    return ConfigError(f"{name}={value!r} is invalid: {rule} (e.g. {name}={example})")


def _json(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise _invalid(name, raw) from None


def _device(name: str, raw: str, item: Any) -> dict[str, Any]:
    allowed = {"type", "model", "id", "properties", "metrics"}
    if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not set(item) <= allowed:
        raise _invalid(name, raw)
    if any(k in item and not isinstance(item[k], dict) for k in ("properties", "metrics")):
        raise _invalid(name, raw)
    if any(k in item and not isinstance(item[k], str) for k in ("model", "id")):
        raise _invalid(name, raw)
    return dict(item)


def _artifact(name: str, raw: str, item: Any) -> dict[str, Any]:
    if isinstance(item, str) and item:
        return {"name": item}
    allowed = {"name", "version", "type", "properties"}
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not set(item) <= allowed:
        raise _invalid(name, raw)
    if "properties" in item and not isinstance(item["properties"], dict):
        raise _invalid(name, raw)
    if any(k in item and not isinstance(item[k], str) for k in ("version", "type")):
        raise _invalid(name, raw)
    return dict(item)


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


def _set(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or raw.strip() == "" else raw.strip()


def _checked(
    env: Mapping[str, str], name: str, convert: Callable[[str], N], ok: Callable[[N], bool]
) -> N | None:
    """The variable `name` converted and checked; None when unset; ConfigError when it fails either."""
    raw = _set(env, name)
    if raw is None:
        return None
    try:
        number = convert(raw)
    except ValueError:
        raise _invalid(name, raw) from None
    if not ok(number):
        raise _invalid(name, raw)
    return number


def _int(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    return _checked(env, name, int, lambda n: n >= minimum)


def _positive_float(env: Mapping[str, str], name: str) -> float | None:
    return _checked(env, name, float, lambda n: 0 < n < math.inf)


def _gpu(env: Mapping[str, str]) -> dict[str, Any] | None:
    model = _set(env, "GPU_MODEL")
    if model is None:
        for name in ("GPU_ID", "GPU_VRAM_GB"):
            if (value := _set(env, name)) is not None:
                raise ConfigError(
                    f"{name}={value!r} is invalid: it describes the GPU declared by GPU_MODEL, which is not set "
                    f"(e.g. GPU_MODEL='NVIDIA A100' {name}={value})"
                )
        return None
    vram = _int(env, "GPU_VRAM_GB", 0)
    return {
        "type": "gpu",
        "model": model,
        "id": _set(env, "GPU_ID") or "0",
        "properties": {"memory_gb": vram or 0},
    }


def _list(env: Mapping[str, str], name: str) -> list[Any]:
    raw = _set(env, name)
    if raw is None:
        return []
    parsed = _json(name, raw)
    if not isinstance(parsed, list):
        raise _invalid(name, raw)
    check = _device if name == "WORKER_DEVICES" else _artifact
    return [check(name, raw, item) for item in parsed]


def _software(env: Mapping[str, str]) -> dict[str, str]:
    raw = _set(env, "INSTALLED_SOFTWARE")
    if raw is None:
        return _running_python()
    parsed = _json("INSTALLED_SOFTWARE", raw)
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise _invalid("INSTALLED_SOFTWARE", raw)
    return dict(parsed)


def _running_python() -> dict[str, str]:
    return {"python": ".".join(platform.python_version_tuple()[:2])}


def _costs(env: Mapping[str, str]) -> dict[str, float]:
    raw = _set(env, "COST_PER_SKILL")
    if raw is None:
        return {}
    parsed = _json("COST_PER_SKILL", raw)
    if not isinstance(parsed, dict) or not all(_number(v) for v in parsed.values()):
        raise _invalid("COST_PER_SKILL", raw)
    return {str(k): float(v) for k, v in parsed.items()}


def _extra(env: Mapping[str, str]) -> dict[str, Any]:
    """WORKER_EXTRA_<NAME>=value as {"<name>": value}; JSON objects/lists are decoded (as the official SDK)."""
    extra: dict[str, Any] = {}
    for key, value in env.items():
        if key.startswith(EXTRA_PREFIX) and len(key) > len(EXTRA_PREFIX):
            name = key[len(EXTRA_PREFIX) :].lower()
            if value.lstrip().startswith(("{", "[")):
                try:
                    extra[name] = json.loads(value)
                    continue
                except ValueError:
                    raise ConfigError(
                        f"{key}={value!r} is invalid: a value starting with " + "{ or [ must be valid JSON "
                        f"(e.g. {key}='" + '{"tier": "gold"}' + f"' or {key}=gold)"
                    ) from None
            extra[name] = value
    return extra


@dataclass(frozen=True)
class ResourceSettings:
    """What the environment declares about this worker for the dispatcher (overrides and additions)."""

    cpu_cores: int | None = None
    ram_gb: float | None = None
    gpu: dict[str, Any] | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    installed_software: dict[str, str] = field(default_factory=_running_python)
    installed_artifacts: list[dict[str, Any]] = field(default_factory=list)
    cost_per_skill: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ResourceSettings:
        """Read the official SDK's variables; raises ConfigError naming the variable, value and rule."""
        return cls(
            cpu_cores=_int(env, "CPU_CORES", 1),
            ram_gb=_positive_float(env, "RAM_GB"),
            gpu=_gpu(env),
            devices=_list(env, "WORKER_DEVICES"),
            installed_software=_software(env),
            installed_artifacts=_list(env, "INSTALLED_ARTIFACTS"),
            cost_per_skill=_costs(env),
            extra=_extra(env),
        )

    def resources(self, detected: Detected) -> dict[str, Any]:
        """rxon `Resources`: cpu_cores/ram_gb properties (declared, else detected) and devices."""
        gpus = [self.gpu] if self.gpu is not None else detected.gpus
        properties = {
            "cpu_cores": self.cpu_cores if self.cpu_cores is not None else detected.cpu_cores,
            "ram_gb": self.ram_gb if self.ram_gb is not None else detected.ram_gb,
        }
        devices = [*gpus, *self.devices]
        return {"properties": properties, **({"devices": devices} if devices else {})}

    def capabilities(self) -> dict[str, Any]:
        """rxon `WorkerCapabilities`: hostname, ip_address, cost_per_skill and extra."""
        hostname = socket.gethostname()
        capabilities: dict[str, Any] = {"hostname": hostname, "ip_address": _ip_address(hostname)}
        if self.cost_per_skill:
            capabilities["cost_per_skill"] = dict(self.cost_per_skill)
        if self.extra:
            capabilities["extra"] = dict(self.extra)
        return capabilities

    def registration(self, detected: Detected) -> dict[str, Any]:
        """The registration fields the dispatcher reads (resources, software, artifacts, capabilities)."""
        fields: dict[str, Any] = {
            "resources": self.resources(detected),
            "installed_software": dict(self.installed_software),
            "capabilities": self.capabilities(),
        }
        if self.installed_artifacts:
            fields["installed_artifacts"] = [dict(a) for a in self.installed_artifacts]
        return fields


def _ip_address(hostname: str) -> str:
    try:
        return socket.gethostbyname(hostname)
    except OSError:
        return "0.0.0.0"
