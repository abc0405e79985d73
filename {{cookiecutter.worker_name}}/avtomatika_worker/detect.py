"""What this machine offers: CPU cores and memory (the container's cgroup limits, else the host's), GPUs."""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMINFO = Path("/proc/meminfo")
NVIDIA_SMI_QUERY = ("--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits")
_GIB = 1024**3
# cgroup v1 reports "no limit" as a page-rounded huge number rather than "max".
_V1_NO_LIMIT = 1 << 60

Runner = Callable[[Sequence[str]], str | None]


@dataclass(frozen=True)
class Detected:
    """Detected CPU cores, memory in GiB and GPU devices (HardwareDevice-shaped dicts)."""

    cpu_cores: int
    ram_gb: float
    gpus: list[dict[str, Any]]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup CPU quota in cores (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), or None when unlimited."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            return _ratio(parts[0], parts[1])
        return None
    for folder in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        quota = _read(root / folder / "cpu.cfs_quota_us")
        period = _read(root / folder / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_memory_limit(root: Path = CGROUP_ROOT) -> int | None:
    """The cgroup memory limit in bytes (v2 `memory.max`, v1 `memory.limit_in_bytes`), or None."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        raw = _read(path)
        if raw is None:
            continue
        if raw == "max":
            return None
        try:
            limit = int(raw)
        except ValueError:
            return None
        return limit if 0 < limit < _V1_NO_LIMIT else None
    return None


def host_memory(meminfo: Path = MEMINFO) -> int | None:
    """The host's total memory in bytes (`/proc/meminfo`, else sysconf)."""
    for line in (_read(meminfo) or "").splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def host_cpus() -> int:
    """CPUs this process may run on (its affinity), else the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_nvidia_smi(args: Sequence[str]) -> str | None:
    """Run `nvidia-smi args`; None when it is not installed (output on success, raises on failure)."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=15, check=True)
    return done.stdout


def parse_nvidia_smi(output: str) -> list[dict[str, Any]]:
    """GPU devices from `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits`."""
    devices: list[dict[str, Any]] = []
    for line in output.splitlines():
        fields = [part.strip() for part in line.split(",")]
        if len(fields) < 3 or not fields[1]:
            if line.strip():
                raise ValueError(f"unexpected nvidia-smi line {line!r}")
            continue
        properties: dict[str, Any] = {"memory_gb": round(float(fields[2]) / 1024)}
        if len(fields) > 3 and fields[3]:
            properties["uuid"] = fields[3]
        devices.append({"type": "gpu", "model": fields[1], "id": fields[0], "properties": properties})
    return devices


def detect_gpus(runner: Runner = run_nvidia_smi) -> list[dict[str, Any]]:
    """GPUs reported by nvidia-smi; none (logged once) when it is absent or fails."""
    try:
        output = runner(NVIDIA_SMI_QUERY)
        if output is None:
            logger.debug("nvidia-smi not found: no GPUs detected")
            return []
        return parse_nvidia_smi(output)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        logger.warning(
            "could not list GPUs with nvidia-smi (%s): declaring none; set GPU_MODEL to declare one", exc
        )
        return []


def detect(
    *,
    cgroup_root: Path = CGROUP_ROOT,
    meminfo: Path = MEMINFO,
    cpus: Callable[[], int] = host_cpus,
    runner: Runner = run_nvidia_smi,
) -> Detected:
    """Cores and memory (the cgroup's limits when lower than the host's) and GPUs of this machine."""
    cores = cpus()
    quota = cgroup_cpu_limit(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    memory = host_memory(meminfo)
    limit = cgroup_memory_limit(cgroup_root)
    if limit is not None and (memory is None or limit < memory):
        memory = limit
    ram_gb = round(memory / _GIB, 2) if memory else 0.0
    return Detected(cpu_cores=max(1, cores), ram_gb=ram_gb, gpus=detect_gpus(runner))
