"""The web app's settings (issue 15b) are validated at start-up like every other."""

from __future__ import annotations

import pytest

from battletracker.settings import SettingsError, load_settings


@pytest.mark.parametrize(("name", "value"), [
    ("WEB_TRUSTED_PROXIES", "10.0.0.0/8, not-an-address"),
    ("METRICS_NETWORKS", "300.1.1.1"),
    ("LOGIN_FAILURES_PER_ADDRESS", "0"),
    ("LOGIN_FAILURES_PER_ACCOUNT", "-1"),
    ("LOGIN_LOCKOUT_SECONDS", "0"),
    ("WG_SIGNIN_APP_ID", "has spaces"),
])
def test_bad_web_settings_name_themselves(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name.lower()):
        load_settings(environ={f"BATTLETRACKER_{name}": value})


def test_web_settings_from_the_environment() -> None:
    s = load_settings(environ={
        "BATTLETRACKER_WEB_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
        "BATTLETRACKER_METRICS_TOKEN": "scrape-me",
        "BATTLETRACKER_WG_SIGNIN_APP_ID": "abc123",
        "BATTLETRACKER_LOGIN_FAILURES_PER_ACCOUNT": "3",
    })
    assert s.web_trusted_proxies == "127.0.0.1, 10.0.0.0/8"
    assert s.wg_signin_app_id == "abc123" and s.login_failures_per_account == 3
    assert s.masked()["metrics_token"] == "***"  # a secret: masked when shown
    assert "scrape-me" not in repr(s)
