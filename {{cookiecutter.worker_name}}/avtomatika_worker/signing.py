"""Canonical JSON and HMAC-SHA256 sealing of worker messages, byte-compatible with rxon 1.0b17."""

from __future__ import annotations

import functools
import hmac
import os
import time
from hashlib import sha256
from typing import Any

import orjson

# Top-level members that are never covered by the signature (rxon.security.sign_payload).
_UNSIGNED_MEMBERS = ("security", "_signature")
# What avtomatika 1.0b30's dispatcher signs: the members of rxon's TaskPayload but `security` and `sig`.
# The pick-up path adds `skill_version`, `skill_type` (and `security`/`metadata` when the task had none)
# after signing (avtomatika/services/worker_service.py, get_next_task), so only these members are checked.
_SIGNED_TASK_MEMBERS = frozenset(
    {
        "job_id", "task_id", "type", "params", "tracing_context", "params_metadata", "priority",
        "deadline", "metadata", "timestamp", "policy", "step", "depth", "parent_hash",
    }
)  # fmt: skip


def _normalise(value: Any) -> Any:
    """Drop null object members recursively and turn integral floats into ints, like rxon."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical_json(obj: Any, ignore: tuple[str, ...] = ()) -> bytes:
    """Return the exact bytes the orchestrator signs: normalised, keys sorted, compact, UTF-8."""
    # The JSON round trip mirrors rxon.utils.to_dict (NaN -> null -> dropped, non-str keys -> str),
    # which is also what the orchestrator sees after parsing the body we send.
    data = _normalise(orjson.loads(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)))
    if isinstance(data, dict):
        for member in _UNSIGNED_MEMBERS + ignore:
            data.pop(member, None)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


@functools.lru_cache(maxsize=8)
def _keyed(token: str) -> hmac.HMAC:
    # The keyed state, computed once per token: each signature copies it (hot path: every message).
    return hmac.new(token.encode("utf-8"), digestmod=sha256)


def sign(message: dict[str, Any], token: str) -> str:
    """Return the hex HMAC-SHA256 of the message's canonical form keyed with the token."""
    if not token:
        raise ValueError("the signing token must not be empty")
    mac = _keyed(token).copy()
    mac.update(canonical_json(message))
    return mac.hexdigest()


def seal(message: dict[str, Any], worker_id: str, token: str) -> dict[str, Any]:
    """Return a new dict with a fresh int timestamp, random nonce and `security` signature."""
    sealed = {k: v for k, v in message.items() if k not in _UNSIGNED_MEMBERS}
    sealed["timestamp"] = int(time.time())
    # A fresh nonce makes every send unique: the orchestrator rejects byte-identical repeats as replays.
    sealed["nonce"] = os.urandom(16).hex()
    sealed["security"] = {"signature": sign(sealed, token), "signer_id": worker_id}
    return sealed


def sign_task(task: dict[str, Any], secret: str) -> str:
    """The orchestrator's `sig` of a task: HMAC-SHA256 keyed with ORCHESTRATOR_SECRET_KEY."""
    if not secret:
        raise ValueError("the orchestrator secret must not be empty")
    signed = {k: v for k, v in task.items() if k in _SIGNED_TASK_MEMBERS}
    return hmac.new(secret.encode("utf-8"), canonical_json(signed), sha256).hexdigest()


def _without(task: dict[str, Any], member: str) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k != member}


def task_signature_problem(task: dict[str, Any], secret: str) -> str | None:
    """Why the task's `sig` does not prove it came from the orchestrator, or None when it does."""
    sig = task.get("sig") or task.get("orchestrator_signature")
    if not isinstance(sig, str) or not sig:
        return "the task carries no orchestrator signature (sig)"
    if hmac.compare_digest(sign_task(task, secret), sig):
        return None
    # `metadata` is signed when the job had it at dispatch, or added at pick-up when it did not.
    if "metadata" in task and hmac.compare_digest(sign_task(_without(task, "metadata"), secret), sig):
        return None
    return "the task's orchestrator signature (sig) does not match ORCHESTRATOR_SECRET_KEY"
    return None
