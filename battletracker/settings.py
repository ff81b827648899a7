"""Typed settings: defaults, then ``battletracker.toml``, then ``BATTLETRACKER_*`` variables.

Every setting is declared once in :class:`Settings`; :func:`load_settings` reads the config
file and the environment only when called (never at import time) and validates everything
once, so a typo fails at start-up with the name of the offending setting instead of deep
inside a task at 3 a.m.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .constants import PS_THRESHOLD
from .release import VersionError, parse_version

__all__ = [
    "ApiKey",
    "IdRange",
    "Settings",
    "SettingsError",
    "load_settings",
    "mask_url",
    "parse_keys",
    "parse_networks",
    "parse_range",
]

ENV_PREFIX = "BATTLETRACKER_"
DEFAULT_CONFIG_FILE = "battletracker.toml"
DEFAULT_API_URL = "https://api-console.worldoftanks.com/wotx/"
#: Anything whose name matches is masked when settings are printed or logged.
HIDDEN = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL|BROKER_URL|OPERATORS", re.I)


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


@dataclass(frozen=True)
class ApiKey:
    """One Wargaming application id and the requests/s it may spend."""

    app_id: str
    rps: float

    def __repr__(self) -> str:
        return f"ApiKey(app_id='{_mask(self.app_id)}', rps={self.rps})"


@dataclass(frozen=True)
class IdRange:
    """An inclusive range of account ids."""

    min_id: int
    max_id: int

    def __str__(self) -> str:
        return f"{self.min_id}-{self.max_id}"


@dataclass(frozen=True)
class Settings:
    """Everything battletracker can be told. Built by :func:`load_settings`."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/battletracker"
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    #: Base URL of the API; ``account/info/`` is appended.
    wg_api_url: str = DEFAULT_API_URL
    #: Keys this worker may use (``appid:rps,appid:rps``).
    wg_keys: tuple[ApiKey, ...] = ()
    #: Initial ranges only: the live ranges are stored in ``platform_ranges``.
    xbox_range: IdRange = IdRange(5_000, 15_500_000)
    ps_range: IdRange = IdRange(1_073_740_000, 1_085_000_000)
    #: Account ids per chunk (one ``fetch_range`` task); a multiple of 100.
    chunk_size: int = 10_000
    growth_margin: int = 50_000
    growth_step: int = 200_000
    elasticsearch_url: str | None = None
    #: When beat starts the night's cycle, ``HH:MM`` UTC.
    cycle_time: str = "02:30"
    #: A cycle records the date of (start time - this many hours): a night that starts
    #: at 02:30 UTC records the previous day, the day the battles were played.
    date_lag_hours: int = 12
    #: A dispatched chunk not stored after this long is published again.
    stale_after_seconds: int = 900
    #: How often a chunk is handed out before it is marked failed for the operator.
    max_attempts: int = 5
    #: Requests kept in flight by one fetch task (0: derived from the rate).
    fetch_concurrency: int = 0
    request_timeout: float = 10.0
    #: Each worker process serves Prometheus metrics on this port + its index (0: off).
    worker_metrics_port: int = 0
    #: Web app.
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    #: Server processes of ``battletracker web`` (``--workers``); login limits are split
    #: between them (each gets 1/N).
    web_workers: int = 1
    secret_key: str = "change-me"
    guest_login: bool = False
    guest_password: str = "guest"
    #: ``user:pbkdf2-hash`` pairs, comma-separated (``battletracker web hash-password``).
    operators: tuple[tuple[str, str], ...] = ()
    session_max_age: int = 8 * 3600
    #: Where players sign in with Wargaming; default is the real OpenID endpoint.
    wg_openid_url: str = "https://api-console.worldoftanks.com/wotx/auth/login/"
    # -- volunteer nodes (issue 12) ------------------------------------------------------
    #: The broker URL nodes connect to, without credentials (``amqps://host:5671/vhost``
    #: over the internet); empty: ``broker_url``'s host, port and vhost.
    node_broker_url: str = ""
    #: RabbitMQ management API that makes each node's own broker user
    #: (``http://admin:pw@rabbitmq:15672``); empty: nodes share ``node_broker_url``.
    broker_admin_url: str = ""
    #: Node broker users are named this prefix + the node id.
    node_user_prefix: str = "bt-node-"
    #: How long a lease lasts; a node renews it every third of this.
    lease_seconds: int = 300
    #: The version nodes must run (empty: this server's version).
    required_node_version: str = ""
    #: Share of each night's stored chunks the server fetches again to check nodes.
    spot_check_fraction: float = 0.01
    #: Below this trust a node is quarantined: its results refused, its chunks re-issued.
    trust_threshold: float = 0.5
    #: Node side: where ``node register`` keeps the identity and the lease (empty: the
    #: user's config directory).
    node_dir: str = ""
    # -- volunteer install (issue 14): what the server offers nodes to install from ------
    #: The wheel the server offers nodes to install and upgrade from ("": none offered).
    node_wheel: str = ""
    #: The pip constraints file the server offers nodes to install with (``scripts/lock``
    #: writes it; offered only when the file exists; "": none offered).
    node_constraints: str = "constraints/node.txt"
    # -- operator stack (issue 15a): Elasticsearch/Kibana, database roles ---------------------
    #: Replicas of each exported index: 0 on a single node (a replica there has nowhere to
    #: go and keeps the cluster yellow); 1 on a cluster of two or more.
    elasticsearch_replicas: int = 0
    #: Daily indices are deleted this many days after creation. Two a day, one shard each:
    #: 2 x retention shards must stay below Elasticsearch's 1,000 shards per node.
    elasticsearch_retention_days: int = 365
    #: Kibana's URL, for ``battletracker export kibana`` (and ``doctor``); unset: skip.
    kibana_url: str | None = None
    #: Passwords ``battletracker db upgrade`` gives the web app's read-only role and the
    #: workers' role (``battletracker_web``, ``battletracker_worker``); empty: the role
    #: exists but cannot log in with a password.
    db_web_password: str = ""
    db_worker_password: str = ""
    # -- web app on the internet (issue 15b): sign-in, proxies, logins, /metrics ---------
    #: Application id used only for "Sign in with Wargaming" ("" turns sign-in off). It
    #: shows in the browser's address bar, so it must never be one of the crawl keys.
    wg_signin_app_id: str = ""
    #: Proxies whose ``X-Forwarded-For``/``-Proto`` headers are believed: comma-separated
    #: addresses or networks ("" believes none). Behind TLS at a proxy this is what makes
    #: the session cookie ``Secure``.
    web_trusted_proxies: str = ""
    #: Prometheus sends ``Authorization: Bearer <metrics_token>`` to read ``/metrics``.
    metrics_token: str = ""
    #: Addresses that may read ``/metrics`` without the token (direct connections only).
    metrics_networks: str = "127.0.0.0/8,::1/128"
    #: Failed logins allowed per client address and per user name within
    #: ``login_lockout_seconds``; more are refused without checking the password.
    login_failures_per_address: int = 20
    login_failures_per_account: int = 5
    login_lockout_seconds: int = 900
    # -- nightly cycle stages (issue 13)
    #: Soft time limit of each stage task after fetching (diffs, ranges, boards, export),
    #: seconds; the hard limit is 5 minutes more, both capped at 28 minutes (RabbitMQ's
    #: consumer timeout is 30). A stage that hits it is sent again with both doubled, up
    #: to the cap, then marked failed. Sized from the store benchmark
    #: (``scripts/bench_store.py``: COPY + the whole ``compute_diffs`` of 200 k accounts,
    #: 5 % changed, at ~35 k rows/s on 2 shared cores, i.e. ~8 minutes for the ~17 M
    #: accounts of a full night): about twice the measured time.
    stage_soft_time_limit: int = 15 * 60
    #: Days ``total_battles`` keeps every night's snapshots; a whole month older than this
    #: keeps only its Sunday snapshots (``battletracker db compact``, daily by beat). The
    #: diffs are kept for ever, so a player's history loses no total, only daily points.
    snapshot_daily_days: int = 90
    # -- performance (issue 16) --
    #: Seconds a key's one-second window is widened by on the node, against jitter
    #: between a request leaving and the API counting it (see wargaming/ratelimit.py).
    fetch_rate_margin: float = 0.01
    #: Where this config came from, for messages.
    source: str = field(default="defaults", compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def range_for(self, platform: str) -> IdRange:
        return {"xbox": self.xbox_range, "ps": self.ps_range}[platform]

    def masked(self) -> dict[str, str]:
        """All settings as strings, secrets masked: safe to print or log."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            text = _to_text(value)
            # any URL may carry a password (``https://user:pw@es:9200``), not only those named
            hide = HIDDEN.search(f.name) or "://" in text
            out[f.name] = mask_url(text) if hide else text
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.masked().items())
        return f"Settings({inner})"


# -- parsing ------------------------------------------------------------------------------


def parse_keys(text: str) -> tuple[ApiKey, ...]:
    """Parse ``appid:rps,appid:rps`` (rps optional, default 10)."""
    keys = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        app_id, _, rps_text = part.partition(":")
        app_id = app_id.strip()
        if not app_id or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", app_id):
            raise SettingsError(f"wg_keys: {part!r} is not 'appid:rps'")
        try:
            rps = float(rps_text) if rps_text.strip() else 10.0
        except ValueError:
            raise SettingsError(f"wg_keys: rate {rps_text!r} of a key is not a number") from None
        keys.append(ApiKey(app_id, rps))
    return tuple(keys)


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse ``10.0.0.0/8, 127.0.0.1`` into networks (an address is a one-address network)."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or network") from None
    return tuple(out)


def parse_range(name: str, text: str) -> IdRange:
    """Parse ``min-max`` into an :class:`IdRange`."""
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not m:
        raise SettingsError(f"{name}: {text!r} is not 'min-max' (two account ids)")
    return IdRange(int(m.group(1)), int(m.group(2)))


def _parse_operators(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        user, sep, pw_hash = part.partition(":")
        if not sep or not user or not pw_hash:
            raise SettingsError("operators: each entry must be 'user:password-hash'")
        pairs.append((user, pw_hash))
    return tuple(pairs)


def _parse_bool(name: str, text: str) -> bool:
    low = text.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}: {text!r} is not a boolean (true/false)")


def _convert(name: str, raw: Any) -> Any:
    """Turn a raw value (env string or TOML value) into the field's type."""
    f = _FIELDS.get(name)
    if f is None or name == "source":
        raise SettingsError(f"unknown setting {name!r}")
    default = f.default
    if name == "wg_keys":
        if isinstance(raw, list):
            raw = ",".join(str(x) for x in raw)
        return parse_keys(str(raw))
    if name in ("xbox_range", "ps_range"):
        return parse_range(name, str(raw))
    if name == "operators":
        if isinstance(raw, dict):
            return tuple((str(k), str(v)) for k, v in raw.items())
        return _parse_operators(str(raw))
    if name in ("elasticsearch_url", "kibana_url"):
        return str(raw).strip() or None
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else _parse_bool(name, str(raw))
    if isinstance(default, int):
        if isinstance(raw, bool):
            raise SettingsError(f"{name}: expected an integer, got {raw!r}")
        try:
            return int(str(raw).replace("_", "")) if not isinstance(raw, int) else raw
        except ValueError:
            raise SettingsError(f"{name}: {raw!r} is not an integer") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{name}: {raw!r} is not a number") from None
    if not isinstance(raw, str):
        raise SettingsError(f"{name}: expected a string, got {raw!r}")
    return raw


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _validate(s: Settings) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise SettingsError(msg)

    need(s.chunk_size >= 100 and s.chunk_size % 100 == 0 and s.chunk_size <= 100_000,
         f"chunk_size: {s.chunk_size} must be a multiple of 100 between 100 and 100000")
    need(s.growth_margin >= 0, "growth_margin: must be >= 0")
    need(s.growth_step > 0, "growth_step: must be > 0")
    for name in ("xbox_range", "ps_range"):
        r = getattr(s, name)
        need(0 < r.min_id <= r.max_id, f"{name}: {r} must have 0 < min <= max")
    need(s.xbox_range.max_id < s.ps_range.min_id, "xbox_range and ps_range must not overlap")
    # ids decide the platform (models.platform_of): a range across the line would label
    # its chunks wrongly and every result for them would be rejected
    need(s.xbox_range.max_id < PS_THRESHOLD,
         f"xbox_range: {s.xbox_range} must stay below {PS_THRESHOLD} (PlayStation ids)")
    need(s.ps_range.min_id >= PS_THRESHOLD,
         f"ps_range: {s.ps_range} must start at or above {PS_THRESHOLD}")
    for k in s.wg_keys:
        need(0 < k.rps <= 1000, f"wg_keys: rate {k.rps} of a key must be in (0, 1000]")
    need(s.wg_api_url.startswith(("http://", "https://")),
         f"wg_api_url: {s.wg_api_url!r} must be an http(s) URL")
    need(s.database_url.startswith("postgresql"),
         "database_url: must be a postgresql:// URL")
    need(bool(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", s.cycle_time)),
         f"cycle_time: {s.cycle_time!r} must be HH:MM (UTC)")
    need(0 <= s.date_lag_hours <= 48, "date_lag_hours: must be between 0 and 48")
    need(s.stale_after_seconds >= 10, "stale_after_seconds: must be >= 10")
    need(s.max_attempts >= 1, "max_attempts: must be >= 1")
    need(0 <= s.fetch_concurrency <= 64, "fetch_concurrency: must be between 0 and 64")
    need(0 <= s.fetch_rate_margin <= 0.5, "fetch_rate_margin: must be between 0 and 0.5 s")
    need(0 < s.request_timeout <= 120, "request_timeout: must be in (0, 120]")
    need(0 < s.web_port < 65536, "web_port: must be a TCP port")
    need(1 <= s.web_workers <= 64, "web_workers: must be 1-64")
    need(0 <= s.worker_metrics_port < 65000, "worker_metrics_port: must be a TCP port or 0")
    need(s.session_max_age > 0, "session_max_age: must be > 0")
    need(5 <= s.lease_seconds <= 86_400, "lease_seconds: must be between 5 and 86400")
    need(0 <= s.spot_check_fraction <= 1, "spot_check_fraction: must be between 0 and 1")
    need(0 <= s.trust_threshold <= 1, "trust_threshold: must be between 0 and 1")
    for name in ("node_broker_url", "broker_admin_url"):
        url = getattr(s, name)
        need(not url or "://" in url, f"{name}: {url!r} must be a URL")
    if s.required_node_version:
        try:
            parse_version(s.required_node_version)
        except VersionError as exc:
            raise SettingsError(f"required_node_version: {exc}") from None
    need(not s.node_wheel or s.node_wheel.endswith(".whl"),
         f"node_wheel: {s.node_wheel!r} must be the path of a .whl file")
    for name in ("web_trusted_proxies", "metrics_networks"):
        try:
            parse_networks(getattr(s, name))
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}") from None
    need(s.login_failures_per_address >= 1, "login_failures_per_address: must be >= 1")
    need(s.login_failures_per_account >= 1, "login_failures_per_account: must be >= 1")
    need(1 <= s.login_lockout_seconds <= 86_400,
         "login_lockout_seconds: must be between 1 and 86400")
    need(s.wg_signin_app_id == "" or bool(re.fullmatch(r"[A-Za-z0-9_-]{1,64}",
                                                       s.wg_signin_app_id)),
         "wg_signin_app_id: must be an application id (letters, digits, _ or -)")
    need(1 <= s.stage_soft_time_limit <= 28 * 60,
         "stage_soft_time_limit: must be between 1 and 1680 seconds")
    if s.elasticsearch_url is not None:
        need(s.elasticsearch_url.startswith(("http://", "https://")),
             "elasticsearch_url: must be an http(s) URL")
    if s.kibana_url is not None:
        need(s.kibana_url.startswith(("http://", "https://")), "kibana_url: must be an http(s) URL")
    need(0 <= s.elasticsearch_replicas <= 5, "elasticsearch_replicas: must be between 0 and 5")
    # 2 indices a day; 1,000 shards per node is Elasticsearch's default ceiling, and Kibana
    # and the players index need some of them
    need(31 <= s.snapshot_daily_days <= 3660,
         "snapshot_daily_days: must be between 31 and 3660 (a month of daily snapshots at least)")
    need(7 <= s.elasticsearch_retention_days <= 450,
         "elasticsearch_retention_days: must be between 7 and 450 (2 shards a day must stay "
         "below the 1,000 shards a node holds)")


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from defaults, the config file, the environment, then ``overrides``.

    The config file is ``config_path``, else ``$BATTLETRACKER_CONFIG``, else
    ``./battletracker.toml`` if it exists. A missing file that was named explicitly is an
    error; unknown keys anywhere are errors.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources = ["defaults"]
    path = config_path or env.get(ENV_PREFIX + "CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise SettingsError(f"config file {str(p)!r} does not exist")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {str(p)!r}: {exc}") from None
        table = data.get("battletracker", data)
        if table is not data and len(data) > 1:
            stray = sorted(k for k in data if k != "battletracker")
            raise SettingsError(
                f"config file {str(p)!r}: keys {stray} outside the [battletracker] table"
            )
        for key, raw in table.items():
            values[key] = _convert(key, raw)
        sources.append(str(p))
    for var, raw in sorted(env.items()):
        if not var.startswith(ENV_PREFIX) or var == ENV_PREFIX + "CONFIG":
            continue
        name = var[len(ENV_PREFIX):].lower()
        if name not in _FIELDS or name == "source":
            raise SettingsError(f"{var}: unknown setting (see battletracker config show)")
        values[name] = _convert(name, raw)
        sources.append(var)
    for key, raw in overrides.items():
        values[key] = raw if not isinstance(raw, str) else _convert(key, raw)
    try:
        return Settings(**values, source=", ".join(dict.fromkeys(sources)))
    except TypeError as exc:  # a wrong type slipped through overrides
        raise SettingsError(str(exc)) from None


def _mask(text: str) -> str:
    return text[:2] + "…" if len(text) > 2 else "…"


def mask_url(text: str) -> str:
    """Mask the password of a URL (and any other non-URL secret entirely)."""
    if "://" in text:
        # up to the last "@": SQLAlchemy and kombu read "u:p@ss@host" as password "p@ss"
        return re.sub(r"(//[^:/@]*:).*@", r"\1***@", text)
    return "***" if text and text not in ("()", "None") else text


def _to_text(value: Any) -> str:
    if isinstance(value, tuple):
        if value and isinstance(value[0], ApiKey):
            return ",".join(f"{_mask(k.app_id)}:{k.rps:g}" for k in value)
        if value and isinstance(value[0], tuple):
            return ",".join(u for u, _ in value)
        return "()"
    return str(value)
