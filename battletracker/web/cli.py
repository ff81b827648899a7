"""``battletracker web``: serve the dashboard; ``hash-password`` and ``new-secret``."""

from __future__ import annotations

import click

from ..clicontext import settings_of
from ..settings import SettingsError, load_settings
from .auth import hash_password

__all__ = ["web_command"]


@click.group("web", invoke_without_command=True)
@click.option("--host", default=None, help="Interface to listen on (default: web_host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (default: web_port).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: $BATTLETRACKER_CONFIG or ./battletracker.toml).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Server processes (default: web_workers, 1); each gets 1/N of the "
                   "login limits.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log every request (a reverse proxy in front usually does already).")
@click.pass_context
def web_command(ctx: click.Context, host: str | None, port: int | None,
                config_path: str | None, workers: int | None, access_log: bool) -> None:
    """Serve the dashboard, the JSON API, /metrics and /healthz with uvicorn."""
    if ctx.invoked_subcommand is not None:
        return
    from .secret import check_secret_key
    from .server import serve  # uvicorn and the app only when serving

    if config_path is None:  # the root command's --config, as every command reads it
        settings = settings_of(ctx)
    else:
        try:
            settings = load_settings(config_path)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        check_secret_key(settings.secret_key)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if workers is not None:
        settings = settings.replace(web_workers=workers)
    config_path = config_path or ctx.find_root().ensure_object(dict).get("config")
    shown_host = host or settings.web_host
    shown_port = settings.web_port if port is None else port
    click.echo(f"battletracker web on http://{shown_host}:{shown_port}/")
    serve(settings, host, port, config_path=config_path, access_log=access_log)


@web_command.command("new-secret")
def new_secret_command() -> None:
    """Print a random value for the ``secret_key`` setting."""
    from .secret import new_secret_key

    click.echo(new_secret_key())


@web_command.command("hash-password")
@click.option("--user", default=None,
              help="Print 'user:hash', ready for the operators setting.")
@click.password_option("--password", prompt="Password",
                       help="The password (prompted, with confirmation, when omitted).")
def hash_password_command(user: str | None, password: str) -> None:
    """Print a PBKDF2-SHA256 hash of a password for the ``operators`` setting."""
    encoded = hash_password(password)
    click.echo(f"{user}:{encoded}" if user else encoded)
