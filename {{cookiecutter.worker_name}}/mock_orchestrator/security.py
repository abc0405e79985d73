"""Worker authentication and the signed-message checks ("zero trust"), as in avtomatika 1.0b30.

Authentication follows rxon 1.0b17's listener and avtomatika's ``security.py``; the message checks follow
``services/worker_service.py: _verify_zero_trust``, in its order and with its texts.
"""

from __future__ import annotations

from typing import Any

from .models import SECURITY_CONTEXT, ModelError, check
from .replay import ReplayCache
from .settings import MockSettings
from .signing import verify

TOKEN_HEADER = "X-Worker-Token"
WORKER_ID_HEADER = "X-Worker-ID"
# Identity the real orchestrator gives a global-token request that names no worker at all.
ANONYMOUS_WORKER_ID = "unknown_authenticated_by_global_token"
MAX_CLOCK_SKEW_SECONDS = 60


def worker_id_hint(header_id: str | None, path_id: str | None, body: Any) -> Any:
    """The claimed identity: the path segment, else the X-Worker-ID header, else the body's worker_id."""
    if path_id:
        return path_id
    if header_id:
        return header_id
    if isinstance(body, dict) and "worker_id" in body:
        return body["worker_id"]
    return None


def authenticate(settings: MockSettings, token: str | None, hint: Any) -> Any:
    """Return the authenticated worker id or raise PermissionError with the orchestrator's text."""
    if not token:
        raise PermissionError(f"Unauthorized: Missing {TOKEN_HEADER} header or client certificate.")
    if not hint:
        if token == settings.worker_token:
            return ANONYMOUS_WORKER_ID
        raise PermissionError("Unauthorized: Invalid token or missing worker_id hint")
    individual = settings.worker_tokens.get(hint) if isinstance(hint, str) else None
    if individual:  # an individual token (workers.toml) is the only one accepted for that worker
        if token == individual:
            return hint
        raise PermissionError("Unauthorized: Invalid individual worker token")
    if token == settings.worker_token:
        return hint
    raise PermissionError("Unauthorized: No valid token found")


def _check_timestamp(settings: MockSettings, payload: dict[str, Any]) -> None:
    timestamp = payload.get("timestamp")
    if not timestamp:
        raise PermissionError("Missing required timestamp for replay protection")
    # int() of a string or float is what the orchestrator does: "12" passes here, "x" is a 400.
    if abs(int(settings.clock()) - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise PermissionError("Message timestamp expired (replay protection)")


def _check_replay(replay: ReplayCache, payload: dict[str, Any], worker_id: Any) -> None:
    nonce = payload.get("event_id") or payload.get("nonce") or payload.get("message_id")
    if not nonce and isinstance(payload.get("security"), dict):
        nonce = payload["security"].get("signature")
    if nonce and not replay.remember(f"{worker_id}:{nonce}"):
        raise PermissionError("Duplicate message detected (replay attack)")


def _security_context(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        # The orchestrator crashes on a non-object security member: HTTP 500 with this text.
        raise TypeError(f"'{type(raw).__name__}' object has no attribute 'signature'")
    try:
        return dict(check(SECURITY_CONTEXT, raw))
    except ModelError as exc:
        raise ValueError(f"Failed to instantiate SecurityContext: {exc}") from None


def verify_signed(
    settings: MockSettings,
    replay: ReplayCache,
    payload: dict[str, Any],
    worker_id: Any,
    ignore_fields: tuple[str, ...] = (),
) -> None:
    """Check timestamp, nonce, security context and signature; PermissionError (403) on failure."""
    _check_timestamp(settings, payload)
    # The nonce is consumed before the signature is checked, exactly like the orchestrator.
    _check_replay(replay, payload, worker_id)
    raw_security = payload.get("security")
    if not raw_security:
        raise PermissionError("Missing required security context")
    security = _security_context(raw_security)
    signature = security.get("signature")
    if not signature:
        raise PermissionError("Missing required cryptographic signature")
    signer_id = security.get("signer_id")
    if signer_id and signer_id != worker_id:
        raise PermissionError(f"Message signer ID '{signer_id}' does not match worker ID '{worker_id}'")
    if not verify(payload, signature, settings.key_for(worker_id), ignore_fields):
        raise PermissionError("Invalid cryptographic signature")
