"""Signing primitives both sides share: dispatch tokens, result signatures, secret hashes.

A leaf module (standard library only) so that a volunteer node, which must not install
the server's database or web stack, signs exactly what the server checks.

- A **dispatch token** is an HMAC (server-only key) over a chunk's id, cycle, span and
  attempt: the server can tell a chunk it handed out in *this* attempt from any other.
- A **result signature** is an HMAC with the lease's signing key over the result's
  canonical JSON (sorted keys, no spaces) with the ``sig`` member left out: it ties the
  rows, the chunk, the token and the node id together.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AUTH_KEY",
    "canonical",
    "derive_key",
    "dispatch_token",
    "hash_secret",
    "new_secret",
    "result_signature",
    "sign_result",
    "verify_result_signature",
]

#: The member of a result message that carries node id, lease id, token and signature.
AUTH_KEY = "auth"


def new_secret() -> str:
    """A fresh 256-bit secret, URL-safe text."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What the server stores of a node secret or an invite code (hex SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def derive_key(master: str, label: str) -> bytes:
    """A sub-key of ``master`` for one purpose (``label``), so one setting serves many."""
    return hmac.new(master.encode(), label.encode(), hashlib.sha256).digest()


def dispatch_token(key: bytes, chunk_id: int, cycle_id: int, first_id: int, last_id: int,
                   attempt: int) -> str:  # fmt: skip
    """The token a ``fetch_range`` message carries for this chunk in this attempt."""
    text = f"{chunk_id}:{cycle_id}:{first_id}:{last_id}:{attempt}"
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def canonical(message: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: sorted keys, no whitespace, ``auth.sig`` left out."""
    body = dict(message)
    auth = body.get(AUTH_KEY)
    if isinstance(auth, dict):
        body[AUTH_KEY] = {k: v for k, v in auth.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def result_signature(signing_key: str, message: Mapping[str, Any]) -> str:
    return hmac.new(bytes.fromhex(signing_key), canonical(message), hashlib.sha256).hexdigest()


def sign_result(result: Mapping[str, Any], *, node_id: int, lease_id: int, signing_key: str,
                token: str, attempt: int) -> dict[str, Any]:  # fmt: skip
    """``result`` with an ``auth`` member: who sent it, for which dispatch, signed."""
    out = dict(result)
    out[AUTH_KEY] = {"node_id": node_id, "lease_id": lease_id, "token": token,
                     "attempt": attempt}  # fmt: skip
    out[AUTH_KEY]["sig"] = result_signature(signing_key, out)
    return out


def verify_result_signature(signing_key: str, message: Mapping[str, Any], sig: str) -> bool:
    """Constant-time check of ``sig`` against the message's canonical bytes."""
    return hmac.compare_digest(result_signature(signing_key, message), sig)
