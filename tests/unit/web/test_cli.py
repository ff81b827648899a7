"""``battletracker web`` and ``battletracker web hash-password``."""

from __future__ import annotations

from click.testing import CliRunner

from battletracker.web.auth import verify_password
from battletracker.web.cli import web_command


def test_hash_password_prints_a_verifiable_hash() -> None:
    result = CliRunner().invoke(web_command, ["hash-password", "--password", "hunter2"])
    assert result.exit_code == 0, result.output
    encoded = result.output.strip()
    assert verify_password("hunter2", encoded) and not verify_password("hunter3", encoded)


def test_hash_password_for_the_operators_setting() -> None:
    result = CliRunner().invoke(web_command, ["hash-password", "--user", "alice"],
                                input="pw\npw\n")
    assert result.exit_code == 0, result.output
    user, _, encoded = result.output.strip().splitlines()[-1].partition(":")
    assert user == "alice" and verify_password("pw", encoded)


def test_bad_settings_are_a_clean_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BATTLETRACKER_WEB_PORT", "not-a-port")
    result = CliRunner().invoke(web_command, [])
    # the settings every command reads (battletracker.clicontext): a usage error, exit 2
    assert result.exit_code == 2 and "bad settings" in result.output
    assert "web_port" in result.output
