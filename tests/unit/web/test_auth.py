"""Password hashing and signed sessions (no database, no HTTP)."""

from __future__ import annotations

import base64
import time

import pytest

from battletracker.web.auth import (
    Identity,
    SessionCodec,
    check_operator,
    hash_password,
    verify_password,
)


def test_hash_round_trip_and_salt() -> None:
    a = hash_password("s3cret", iterations=1000)
    b = hash_password("s3cret", iterations=1000)
    assert a != b  # salted
    assert a.startswith("pbkdf2_sha256$1000$")
    assert "," not in a and ":" not in a  # fits "user:hash,user:hash"
    assert verify_password("s3cret", a)
    assert verify_password("s3cret", b)
    assert not verify_password("s3cret ", a)
    assert not verify_password("", a)


@pytest.mark.parametrize("bad", ["", "plain", "md5$1$aa$bb", "pbkdf2_sha256$x$aa$bb",
                                 "pbkdf2_sha256$0$aa$bb", "pbkdf2_sha256$1000$$",
                                 "pbkdf2_sha256$1000$!!$??"])
def test_malformed_hash_never_matches(bad: str) -> None:
    assert not verify_password("anything", bad)


def test_known_vector() -> None:
    # RFC 7914 section 11: PBKDF2-HMAC-SHA256("password", "salt", c=1, dkLen=32).
    encoded = hash_password("password", iterations=1, salt=b"salt")
    algorithm, iterations, salt, digest = encoded.split("$")
    assert (algorithm, iterations, salt) == ("pbkdf2_sha256", "1", "c2FsdA")
    raw = base64.b64decode(digest + "=" * (-len(digest) % 4))
    assert raw.hex() == "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"


def test_check_operator() -> None:
    ops = (("alice", hash_password("wonder", iterations=1000)),)
    assert check_operator(ops, "alice", "wonder")
    assert not check_operator(ops, "alice", "wrong")
    assert not check_operator(ops, "bob", "wonder")
    assert not check_operator((), "alice", "wonder")


def test_session_token_round_trip_forgery_and_expiry() -> None:
    codec = SessionCodec("k1", max_age=1)
    token = "t" * 43
    value = codec.dumps(token)
    assert codec.loads(value) == token
    assert SessionCodec("k2", max_age=60).loads(value) is None  # other key
    assert codec.loads(value[:-2] + "xx") is None
    assert codec.loads(None) is None and codec.loads("") is None
    assert codec.loads(codec.dumps({"operator": "mallory"})) is None  # not a token
    time.sleep(2.1)
    assert codec.loads(value) is None  # expired


def test_identity_roles() -> None:
    assert Identity(guest=True).may_read and not Identity(guest=True).is_operator
    assert Identity(operator="alice").is_operator and Identity(operator="alice").may_read
    assert Identity(account_id=5).is_player and not Identity().may_read
