"""Apply the Alembic migrations from code (``battletracker db upgrade``, tests, demo)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .settings import Settings

__all__ = ["MigrationsNotFound", "alembic_config", "upgrade", "upgrade_and_grant"]


class MigrationsNotFound(RuntimeError):
    """The ``alembic/`` folder is not beside the package (install with ``pip install -e``)."""


def alembic_config(settings: Settings) -> Config:
    root = Path(__file__).resolve().parent.parent
    ini = root / "alembic.ini"
    if not ini.is_file() or not (root / "alembic").is_dir():
        raise MigrationsNotFound(
            f"alembic.ini and alembic/ not found in {root}: the server runs from a checkout "
            "(pip install -e '.[server]')"
        )
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(root / "alembic"))
    cfg.attributes["database_url"] = settings.database_url
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database of ``settings`` to ``revision``."""
    command.upgrade(alembic_config(settings), revision)


def upgrade_and_grant(settings: Settings, revision: str = "head") -> list[str]:
    """``battletracker db upgrade``: migrate, then refresh the service roles' grants and set
    the passwords the settings carry (:mod:`battletracker.roles`); returns the roles that
    may log in."""
    from .db import engine_for
    from .roles import apply_roles

    upgrade(settings, revision)
    with engine_for(settings).begin() as conn:
        return apply_roles(conn, settings)
