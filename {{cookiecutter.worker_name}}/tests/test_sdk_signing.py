"""Canonical JSON and sealing must match what the orchestrator (rxon 1.0b17) verifies."""

import hashlib
import hmac
import time

import pytest

from avtomatika_worker.signing import canonical_json, seal, sign, sign_task, task_signature_problem

# Golden vector computed once with rxon 1.0b17 (the orchestrator's own code, /tmp/orch/x/rxon):
#   d = rxon.utils.to_dict(GOLDEN_MESSAGE); d.pop("security"); d.pop("_signature")
#   orjson.dumps(d, option=orjson.OPT_SORT_KEYS)        -> GOLDEN_CANONICAL
#   rxon.security.sign_payload(GOLDEN_MESSAGE, "golden-token") -> GOLDEN_SIGNATURE
GOLDEN_MESSAGE = {
    "worker_id": "golden-worker",
    "status": "idle",
    "current_tasks": ["job-1"],
    "data": {"b": 2.0, "a": None, "n": [1, None, 0.5], "txt": "склад ✓", "small": 1e-7, "f": 123.456},
    "timestamp": 1795871513,
    "nonce": "00112233445566778899aabbccddeeff",
    "security": {"signature": "x", "signer_id": "golden-worker"},
    "_signature": "y",
}
GOLDEN_CANONICAL = (
    '{"current_tasks":["job-1"],"data":{"b":2,"f":123.456,"n":[1,null,0.5],"small":1e-7,'
    '"txt":"склад ✓"},"nonce":"00112233445566778899aabbccddeeff","status":"idle",'
    '"timestamp":1795871513,"worker_id":"golden-worker"}'
).encode()
GOLDEN_SIGNATURE = "c2d9fefdfd18f17ec04460f48a79b1a4ab6d74d18c1144ce5259d3ec42283dbc"


def test_canonical_form_matches_rxon_golden_vector() -> None:
    assert canonical_json(GOLDEN_MESSAGE) == GOLDEN_CANONICAL


def test_signature_matches_rxon_golden_vector() -> None:
    assert sign(GOLDEN_MESSAGE, "golden-token") == GOLDEN_SIGNATURE


def test_null_members_are_dropped_recursively_but_null_list_items_kept() -> None:
    message = {"a": None, "b": {"c": None, "d": 1}, "e": [None, {"f": None}]}
    assert canonical_json(message) == b'{"b":{"d":1},"e":[null,{}]}'


def test_integral_floats_become_ints() -> None:
    assert canonical_json({"x": 2.0, "y": -0.0, "z": 2.5}) == b'{"x":2,"y":0,"z":2.5}'


def test_non_ascii_is_not_escaped() -> None:
    assert canonical_json({"city": "Zürich"}) == '{"city":"Zürich"}'.encode()


def test_keys_are_sorted_at_every_level() -> None:
    assert canonical_json({"b": 1, "a": {"z": 1, "y": 2}}) == b'{"a":{"y":2,"z":1},"b":1}'


def test_security_and_underscore_signature_are_excluded_only_at_top_level() -> None:
    message = {"security": "s", "_signature": "t", "inner": {"security": "kept"}}
    assert canonical_json(message) == b'{"inner":{"security":"kept"}}'


def test_seal_adds_int_timestamp_nonce_and_verifiable_signature() -> None:
    before = int(time.time())
    sealed = seal({"worker_id": "w-1", "status": "idle"}, "w-1", "secret")
    assert isinstance(sealed["timestamp"], int)
    assert before <= sealed["timestamp"] <= int(time.time())
    assert sealed["security"]["signer_id"] == "w-1"
    unsigned = {k: v for k, v in sealed.items() if k != "security"}
    payload = canonical_json(unsigned)
    expected = hmac.new(b"secret", payload, hashlib.sha256).hexdigest()
    assert sealed["security"]["signature"] == expected


def test_seal_returns_new_dict_with_fresh_nonce_each_time() -> None:
    message = {"worker_id": "w-1"}
    first = seal(message, "w-1", "secret")
    second = seal(message, "w-1", "secret")
    assert message == {"worker_id": "w-1"}
    assert first["nonce"] != second["nonce"]
    assert first["security"]["signature"] != second["security"]["signature"]


def test_seal_replaces_a_stale_security_member() -> None:
    sealed = seal({"worker_id": "w-1", "security": {"signature": "old"}}, "w-1", "secret")
    assert sealed["security"]["signature"] != "old"


# Computed with rxon 1.0b17: sign_payload(GOLDEN_TASK, "orch-secret", ignore_fields=["sig", "orchestrator_signature"])
GOLDEN_TASK = {
    "job_id": "j-1",
    "task_id": "task-1",
    "type": "check",
    "params": {"items": ["apple"], "w": 2.0},
    "priority": 0,
    "step": 1,
    "timestamp": 1795871513,
    "tracing_context": {},
    "deadline": 1795871651.679986,
    "security": {"x": 1},
}
GOLDEN_TASK_SIG = "28066f770b5ef7fe70780de8418c4336a96d8cf0512e0666a1fc58a82122f144"


def test_task_sig_matches_the_orchestrator_golden_vector() -> None:
    assert sign_task(GOLDEN_TASK, "orch-secret") == GOLDEN_TASK_SIG
    signed = dict(GOLDEN_TASK, sig=GOLDEN_TASK_SIG, unknown=None)
    assert task_signature_problem(signed, "orch-secret") is None


def test_task_sig_problems_are_named() -> None:
    assert "no orchestrator signature" in (task_signature_problem(dict(GOLDEN_TASK), "orch-secret") or "")
    forged = dict(GOLDEN_TASK, sig=GOLDEN_TASK_SIG, params={"items": ["pear"]})
    assert "does not match" in (task_signature_problem(forged, "orch-secret") or "")
    assert "does not match" in (task_signature_problem(dict(signed_copy()), "other-secret") or "")


def signed_copy() -> dict[str, object]:
    return dict(GOLDEN_TASK, sig=GOLDEN_TASK_SIG)


# Computed with rxon 1.0b17 from TaskPayload(..., metadata={"tenant": "acme"}) as avtomatika 1.0b30's dispatcher signs it.
SIGNED_WITH_METADATA = {
    "deadline": 1795871651,
    "job_id": "j-2",
    "metadata": {"tenant": "acme"},
    "params": {"n": 1},
    "priority": 0,
    "step": 2,
    "task_id": "task-2",
    "timestamp": 1795871513,
    "tracing_context": {},
    "type": "versioned",
    "sig": "24cf8bf09b496c1d29b669102c18b55469de5e7301d8d82e31c24020f39e2a0f",
}
# The same for a job without metadata: the pick-up path may add it after signing.
SIGNED_WITHOUT_METADATA = {
    "job_id": "j-3",
    "params": {"n": 1},
    "task_id": "task-3",
    "timestamp": 1795871513,
    "tracing_context": {},
    "type": "versioned",
    "sig": "0c2de9632765c975b112b2f60d8bb774ec0fb800c662874e3bd97787121931fe",
}
ADDED_AT_PICK_UP = {"skill_version": "2.0.0", "skill_type": "echo", "security": {"roles": ["admin"]}}


@pytest.mark.parametrize("task", [SIGNED_WITH_METADATA, SIGNED_WITHOUT_METADATA])
def test_members_the_orchestrator_adds_after_signing_do_not_break_the_task_signature(task: dict) -> None:
    assert task_signature_problem(task, "orch-secret") is None
    assert task_signature_problem(task | ADDED_AT_PICK_UP, "orch-secret") is None


def test_metadata_added_at_pick_up_is_accepted_but_signed_metadata_cannot_be_changed() -> None:
    added = SIGNED_WITHOUT_METADATA | {"metadata": {"tenant": "acme"}}
    assert task_signature_problem(added, "orch-secret") is None
    changed = SIGNED_WITH_METADATA | {"metadata": {"tenant": "evil"}}
    assert "does not match" in (task_signature_problem(changed, "orch-secret") or "")
    dropped = {k: v for k, v in SIGNED_WITH_METADATA.items() if k != "metadata"}
    assert "does not match" in (task_signature_problem(dropped, "orch-secret") or "")


@pytest.mark.parametrize("member", ["params", "deadline", "type", "step", "job_id"])
def test_a_changed_signed_member_breaks_the_task_signature(member: str) -> None:
    forged = SIGNED_WITH_METADATA | {member: "forged"}
    assert "does not match" in (task_signature_problem(forged, "orch-secret") or "")
