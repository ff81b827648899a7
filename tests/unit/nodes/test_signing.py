"""Dispatch tokens and result signatures: what the node signs is exactly what the server checks."""

from __future__ import annotations

import copy

from battletracker.signing import (
    canonical,
    derive_key,
    dispatch_token,
    hash_secret,
    sign_result,
    verify_result_signature,
)

KEY = "ab" * 32
RESULT = {"v": 1, "chunk_id": 7, "cycle_id": 2, "first_id": 100, "last_id": 199,
          "rows": [[100, "x", None, None, *range(14)]], "empty": 99}  # fmt: skip


def _signed() -> dict[str, object]:
    return sign_result(RESULT, node_id=3, lease_id=4, signing_key=KEY, token="t", attempt=1)


def test_a_signed_result_verifies_and_any_change_breaks_it() -> None:
    signed = _signed()
    sig = signed["auth"]["sig"]  # type: ignore[index]
    assert verify_result_signature(KEY, signed, sig)
    for change in ("rows", "node_id", "attempt", "token", "chunk_id"):
        forged = copy.deepcopy(signed)
        if change == "rows":
            forged["rows"][0][4] += 1  # type: ignore[index]
        elif change == "chunk_id":
            forged["chunk_id"] = 8
        else:
            forged["auth"][change] = 9  # type: ignore[index]
        assert not verify_result_signature(KEY, forged, sig), change
    assert not verify_result_signature("cd" * 32, signed, sig)


def test_canonical_bytes_ignore_key_order_and_the_signature_itself() -> None:
    signed = _signed()
    reordered = dict(reversed(list(signed.items())))
    assert canonical(reordered) == canonical(signed)
    assert b'"sig"' not in canonical(signed)


def test_tokens_differ_per_chunk_span_and_attempt() -> None:
    key = derive_key("server secret", "dispatch-token")
    base = dispatch_token(key, 7, 2, 100, 199, 1)
    others = {dispatch_token(key, 8, 2, 100, 199, 1), dispatch_token(key, 7, 3, 100, 199, 1),
              dispatch_token(key, 7, 2, 100, 299, 1), dispatch_token(key, 7, 2, 100, 199, 2),
              dispatch_token(derive_key("other", "dispatch-token"), 7, 2, 100, 199, 1)}  # fmt: skip
    assert base not in others and len(others) == 5
    assert derive_key("s", "a") != derive_key("s", "b")


def test_secret_hash_is_not_the_secret() -> None:
    assert hash_secret("s3cret") != "s3cret" and len(hash_secret("s3cret")) == 64
