"""The ``node`` commands of issue 14: run, check, status, install-service, uninstall-service.

Each is a thin click command over a plain module (:mod:`.run`, :mod:`.check`,
:mod:`.status`, :mod:`.service`); the ``node`` group in :mod:`.cli` adds them.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
import httpx

__all__ = ["COMMANDS"]

DIR_HELP = "Node directory (identity, lease state, logs)."


def _default_dir() -> Path:
    from .identity import default_dir

    return default_dir()


def _dir_option(f: Any) -> Any:
    kind = click.Path(file_okay=False, path_type=Path)
    return click.option("--dir", "directory", type=kind, default=None,
                        envvar="BATTLETRACKER_NODE_DIR",
                        help=DIR_HELP + " [default: your config directory]")(f)  # fmt: skip


class FileLeases:
    """A lease kept in a JSON file, read again at every renewal."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def take(self) -> Any:
        from .run import Lease, LeaseError

        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise LeaseError(f"cannot read the lease file {self.path}: {exc}") from None
        return Lease.from_json(raw)


class ServerLeases:
    """The lease from the server the node registered with, renewed by its id."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lease_id: int | None = None

    def take(self) -> Any:
        from .api import ServerError
        from .identity import IdentityError
        from .lease import take_lease
        from .run import Lease, LeaseError

        try:
            try:
                raw = take_lease(self.directory, renew=self.lease_id)
            except ServerError as exc:
                if self.lease_id is None or exc.status not in (404, 409):
                    raise
                raw = take_lease(self.directory)  # the old lease is gone: take a new one
        except (ServerError, IdentityError) as exc:
            raise LeaseError(str(exc)) from None
        lease_id = raw.get("lease_id") if isinstance(raw, dict) else None
        self.lease_id = lease_id if isinstance(lease_id, int) else None
        return Lease.from_json(raw)


def _identity(directory: Path) -> Any:
    from .identity import IdentityError, load_identity

    try:
        return load_identity(directory)
    except IdentityError:
        return None


def _server_of(directory: Path, server: str | None) -> str | None:
    """``--server``, else the server the node registered with (its identity file)."""
    if server:
        return server
    identity = _identity(directory)
    return str(identity.server) if identity is not None else None


def _leases(directory: Path, lease_file: Path | None) -> Any:
    if lease_file is not None:
        return FileLeases(lease_file)
    if _identity(directory) is None:
        raise click.ClickException(
            f"no node identity in {directory}: register first "
            "(battletracker node register --server URL --invite CODE)"
        )
    return ServerLeases(directory)


def _setup_logging(log_file: Path | None) -> None:
    handler: logging.Handler = (logging.FileHandler(log_file) if log_file
                                else logging.StreamHandler(sys.stderr))  # fmt: skip
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


@click.command("run")
@_dir_option
@click.option("--server", help="Server URL [default: the one the node registered with].")
@click.option("--lease-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Run under a lease kept in this JSON file instead of asking the server "
                   "(an operator's own node).")  # fmt: skip
@click.option("--nice", default=10, show_default=True, type=click.IntRange(0, 19),
              help="How much lower than normal the fetch worker runs (POSIX nice).")  # fmt: skip
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Log here instead of to stderr.",
)
def run_command(directory: Path | None, server: str | None, lease_file: Path | None,
                nice: int, log_file: Path | None) -> None:  # fmt: skip
    """Keep this node up to date and fetch under its lease until stopped (Ctrl-C, SIGTERM)."""
    from .run import NodeRunner
    from .upgrade import upgrade_if_needed

    directory = directory or _default_dir()
    _setup_logging(log_file)
    server = _server_of(directory, server)
    client = httpx.Client(timeout=30, follow_redirects=False)
    argv = sys.argv[1:]

    def ensure_version(stop_worker: Any) -> None:
        if server is None:
            logging.getLogger(__name__).warning("no server known: the version is not checked")
            return
        why = upgrade_if_needed(client, server, directory, stop_worker, argv)
        if why is not None:
            from .ledger import update_runner

            update_runner(directory, upgrade_error=why)

    runner = NodeRunner(directory=directory, leases=_leases(directory, lease_file),
                        ensure_version=ensure_version, nice=nice,
                        worker_renews=lease_file is None)  # fmt: skip
    sys.exit(runner.run())


@click.command("check")
@_dir_option
@click.option("--server", help="Server URL [default: the one the node registered with].")
@click.option(
    "--lease-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check the broker and keys of a lease kept in this file.",
)
@click.pass_context
def check_command(ctx: click.Context, directory: Path | None, server: str | None,
                  lease_file: Path | None) -> None:  # fmt: skip
    """Check the server, the broker, the Wargaming API, the clock, the key and the version."""
    from ..settings import SettingsError, load_settings
    from .check import format_checks, run_checks
    from .run import LeaseError

    directory = directory or _default_dir()
    server = _server_of(directory, server)
    try:
        settings = load_settings(ctx.find_root().obj.get("config") if ctx.find_root().obj else None)
    except SettingsError as exc:
        raise click.UsageError(f"bad settings: {exc}") from None
    broker, keys = None, settings.wg_keys
    lease_problem = None
    source = FileLeases(lease_file) if lease_file is not None else (
        ServerLeases(directory) if _identity(directory) is not None else None)  # fmt: skip
    if source is not None:
        try:
            lease = source.take()
            broker, keys = lease.broker_url, lease.keys + keys
        except LeaseError as exc:
            lease_problem = f"no lease, so the broker and the keys are not checked: {exc}"
    with httpx.Client(timeout=10) as client:
        checks = run_checks(client=client, server=server, broker_url=broker, keys=keys,
                            api_url=settings.wg_api_url)  # fmt: skip
    if server is None:
        click.echo("note: no server known (register the node, or pass --server)")
    if lease_problem:
        click.echo(f"note: {lease_problem}")
    click.echo(format_checks(checks))
    if not all(c.ok for c in checks) or lease_problem:
        sys.exit(1)


@click.command("status")
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(directory: Path | None, as_json: bool) -> None:
    """The lease, version, chunks and accounts today and in total, and the last error."""
    from .status import format_status, local_status

    directory = directory or _default_dir()
    local = local_status(directory)
    server_view, server_error = _server_view(directory)
    if as_json:
        click.echo(json.dumps({"local": local, "server": server_view}, indent=1))
        return
    click.echo(format_status(local, server_view, server_error))


def _server_view(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The server's record of this node (``GET /api/v1/nodes/me``), or why not."""
    identity = _identity(directory)
    if identity is None:
        return None, "this node is not registered"
    try:
        response = httpx.get(identity.server.rstrip("/") + "/api/v1/nodes/me", timeout=10,
                             headers={"Authorization": identity.authorization})  # fmt: skip
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return None, f"the server did not answer: {exc}"
    if not isinstance(data, dict):
        return None, "the server's answer is not an object"
    keep = ("state", "chunks_stored", "accounts_stored", "rejected_results", "trust",
            "last_seen", "note")  # fmt: skip
    return {k: data.get(k) for k in keep}, None


@click.command("install-service")
@_dir_option
@click.option(
    "--system",
    type=click.Choice(["linux", "macos", "windows"]),
    default=None,
    help="Write the service of this system [default: this machine's].",
)
@click.option("--start/--no-start", default=True, help="Register and start it too.")
def install_service_command(directory: Path | None, system: str | None, start: bool) -> None:
    """Start the node at login and keep it running (systemd user unit, launchd agent, Task)."""
    from .service import current_system, install_service

    directory = directory or _default_dir()
    for line in install_service(system or current_system(), venv=Path(sys.prefix),
                                node_dir=directory.resolve(), start=start):  # fmt: skip
        click.echo(line)


@click.command("uninstall-service")
@_dir_option
@click.option("--system", type=click.Choice(["linux", "macos", "windows"]), default=None)
def uninstall_service_command(directory: Path | None, system: str | None) -> None:
    """Stop the node's service and remove it (the node's files stay)."""
    from .service import current_system, uninstall_service

    directory = directory or _default_dir()
    for line in uninstall_service(system or current_system(), node_dir=directory.resolve()):
        click.echo(line)


COMMANDS = [run_command, check_command, status_command, install_service_command,
            uninstall_service_command]  # fmt: skip
