"""Canonical JSON and HMAC-SHA256 signatures, byte-compatible with rxon 1.0b17."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from hashlib import sha256
from typing import Any

import orjson

# Top-level members that never take part in a signature (rxon.security.sign_payload).
ALWAYS_UNSIGNED = ("security", "_signature")


def normalize(value: Any) -> Any:
    """Drop null members of objects (recursively) and turn integral floats into ints."""
    if isinstance(value, dict):
        return {str(key): normalize(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical_bytes(payload: Any, ignore_fields: Iterable[str] = ()) -> bytes:
    """Serialise a message the way rxon does before signing it."""
    data = normalize(payload)
    if isinstance(data, dict):
        for field in (*ALWAYS_UNSIGNED, *ignore_fields):
            data.pop(field, None)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def sign(payload: Any, secret: str, ignore_fields: Iterable[str] = ()) -> str:
    """Return the hex HMAC-SHA256 of the canonical form of ``payload``."""
    if not secret:
        raise ValueError("Secret key for signing cannot be empty.")
    message = canonical_bytes(payload, ignore_fields)
    return hmac.new(secret.encode("utf-8"), message, sha256).hexdigest()


def verify(payload: Any, signature: str, secret: str, ignore_fields: Iterable[str] = ()) -> bool:
    """Check ``signature`` against ``payload`` in constant time."""
    if not signature or not secret:
        return False
    # compare_digest raises TypeError on non-ASCII text, exactly like the orchestrator (-> HTTP 500).
    return hmac.compare_digest(sign(payload, secret, ignore_fields), signature)
