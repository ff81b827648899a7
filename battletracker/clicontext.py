"""The settings of a ``battletracker`` command line: one place every sub-command reads them.

The root group takes ``--config`` (or ``$BATTLETRACKER_CONFIG``); every command, whatever
package its group lives in (``cycle``, ``stats``, ``web``...), gets its settings here, so
the root option is never ignored by one of them.
"""

from __future__ import annotations

import click

from .settings import Settings, SettingsError, load_settings

__all__ = ["settings_of"]


def settings_of(ctx: click.Context) -> Settings:
    """Settings of the root command's ``--config``, loaded on first use (so ``--help``
    works with a broken config) and shared by every command of this invocation."""
    obj = ctx.find_root().ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config"))
        except SettingsError as exc:
            raise click.UsageError(f"bad settings: {exc}") from None
    settings: Settings = obj["settings"]
    return settings
