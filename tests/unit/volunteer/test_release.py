"""Versions: one ordering for the server's requirement and the node's own version."""

from __future__ import annotations

import itertools

import pytest

from battletracker.release import VersionError, older_than, parse_version, required_version
from battletracker.settings import Settings, SettingsError, load_settings


def test_versions_order_like_pep440() -> None:
    ordered = ["0.1.0.dev1", "0.1.0a1", "0.1.0b2", "0.1.0rc1", "0.1.0", "0.1.0.post1",
               "0.1.1", "0.2", "1.0.0"]  # fmt: skip
    for a, b in itertools.pairwise(ordered):
        assert older_than(a, b) and not older_than(b, a), (a, b)
    assert not older_than("0.1", "0.1.0") and not older_than("0.1.0", "0.1")


@pytest.mark.parametrize("text", ["", "x", "1..2", "1.2.3-evil", "1.2; rm -rf", "9" * 80])
def test_garbage_is_not_a_version(text: str) -> None:
    with pytest.raises(VersionError):
        parse_version(text)


def test_required_version_is_the_setting_or_the_servers_own() -> None:
    assert required_version(Settings(required_node_version="2.0.1")) == "2.0.1"
    from battletracker.release import installed_version

    assert required_version(Settings()) == installed_version()
    with pytest.raises(SettingsError, match="required_node_version"):
        load_settings(environ={"BATTLETRACKER_REQUIRED_NODE_VERSION": "soon"})
    with pytest.raises(SettingsError, match="node_wheel"):
        load_settings(environ={"BATTLETRACKER_NODE_WHEEL": "/tmp/thing.zip"})
