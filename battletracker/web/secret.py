"""The secret key signs session cookies: a known or short one would be a master key."""

from __future__ import annotations

import re
import secrets

from ..settings import SettingsError

__all__ = ["MIN_SECRET_LENGTH", "InsecureSecretKey", "check_secret_key", "new_secret_key"]

#: 32 characters of ``token_urlsafe`` carry 192 bits; shorter keys are refused.
MIN_SECRET_LENGTH = 32
#: Fewer different characters is a pattern, not a key ("abcd" * 16). Not more: 32 random
#: hex digits (``openssl rand -hex 16``) show fewer than 12 different ones 1.7 % of the time.
MIN_DISTINCT = 8
#: Placeholders seen in examples and old configs (compared case-insensitively, as parts).
_PLACEHOLDER = re.compile(r"change.?me|changeit|example|secret.?key|placeholder|default|"
                          r"password|x{6,}|(.)\1{7,}", re.I)


class InsecureSecretKey(SettingsError):
    """``secret_key`` is a default, a placeholder or too short: the web app will not start."""


def new_secret_key() -> str:
    """A fresh random key (64 URL-safe characters), as the demo and the tests use."""
    return secrets.token_urlsafe(48)


def check_secret_key(key: str) -> None:
    """Raise :class:`InsecureSecretKey` unless ``key`` is long and not a known placeholder."""
    hint = ("set secret_key (BATTLETRACKER_SECRET_KEY) to a random value, e.g. the output "
            "of 'battletracker web new-secret'")
    if len(key) < MIN_SECRET_LENGTH:
        raise InsecureSecretKey(
            f"secret_key: {len(key)} characters is too short (at least "
            f"{MIN_SECRET_LENGTH}); {hint}")
    if _PLACEHOLDER.search(key) or len(set(key)) < MIN_DISTINCT:
        raise InsecureSecretKey(f"secret_key: looks like a placeholder, not a secret; {hint}")
