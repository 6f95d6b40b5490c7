"""Settings: flags > ``EVENTYARD_*`` environment variables > config file > defaults.

One frozen :class:`Settings` object is built at start-up (:meth:`Settings.load`) and
handed to every component. Each setting comes from the first of these that gives it:

1. a command-line flag of ``eventyard serve`` (``--port 8080``);
2. an environment variable ``EVENTYARD_<KEY>`` (``EVENTYARD_PORT=8080``);
3. the config file: ``--config PATH`` or ``EVENTYARD_CONFIG``, else ``eventyard.toml`` in
   the working directory, else the ``[tool.eventyard]`` table of ``pyproject.toml`` in
   the working directory (one file is read, never several);
4. the default.

The config file's keys are the settings' names (``data_dir``, ``log_level``…). An unknown
key, a value of the wrong type or a value that cannot work is a
:class:`~eventyard.errors.ConfigurationError` naming where the value came from (the
file and its line, the variable, or the flag). ``docs/configuration.md`` lists them all.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from eventyard.errors import ConfigurationError

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_PORT",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "PYPROJECT_TABLE",
    "Settings",
    "find_config_file",
    "nats_servers",
    "parse_retention",
]

DEFAULT_PORT = 4010
CONFIG_FILE = "eventyard.toml"
PYPROJECT_TABLE = "tool.eventyard"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "console", "json")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
# fields that are not settings a user gives
_NOT_KEYS = frozenset({"extra", "config_file", "sources"})
_ORG_ID_RE = re.compile(r"^o-[a-z0-9]{10,32}$")  # AWS Organizations' id pattern
# An AWS region's shape (us-east-1, us-gov-west-1, ap-southeast-4): lower case, as the
# ARN patterns of the APIs require; an ARN of any other region would not parse back.
_REGION_RE = re.compile(r"[a-z]{2,}(-[a-z]+)+-[0-9]{1,3}")
# a NATS stream or bucket name's safe alphabet (no '.', '*', '>', spaces or slashes)
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_HOST_PORT_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?")
# the longest catalog resync interval: a safety net that waits an hour is none
_MAX_RESYNC_INTERVAL = 3600.0
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_KEEP = frozenset({"0", "forever", "never", "unlimited"})


def parse_retention(text: str) -> float | None:
    """A retention duration in seconds, None for "keep forever".

    ``"7d"``, ``"36h"``, ``"90m"``, ``"3600s"``, ``"2w"`` or a number of seconds;
    ``"0"`` or ``"forever"`` keep everything.

    Raises:
        ValueError: not a duration.
    """
    value = text.strip().lower()
    if value in _KEEP:
        return None
    match = _DURATION_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 7d, 36h, 90m or forever")
    seconds = float(match[1]) * _UNITS[match[2]]
    return seconds or None


@dataclass(slots=True, frozen=True)
class Settings:
    """Everything that can be configured.

    Attributes:
        host: interface to listen on.
        port: TCP port (0 picks a free one).
        data_dir: where the embedded store keeps its files; with a ``store`` URL, where
            this process keeps its own files (the master key file by default, the admin
            socket): every process of a cluster has its own.
        store: the store URL; empty: the embedded SQLite store in ``data_dir``.
            ``nats://host:4222[,host2:4222,...]`` selects the JetStream store on those
            NATS servers, which any number of processes may share.
        store_replicas: with a JetStream store, the replicas of its streams and buckets
            (1, or 3 on a cluster of at least 3 nodes; at most 5). Only the process that
            creates a stream sets it.
        store_prefix: with a JetStream store, the prefix of its streams, buckets and
            subjects: several independent routers can share one NATS cluster.
        account_id: the 12-digit account in ARNs and envelopes.
        region: the region in ARNs and envelopes.
        org_id: the organization of the home account (``o-…``), what
            ``aws:PrincipalOrgID`` conditions of bus policies compare for requests from
            it; empty: none. Other accounts take theirs from their own record.
        max_entries_size: PutEvents total entry size limit in bytes (AWS: 1 MB since 2026).
        max_pattern_length: EventPattern length limit (AWS default quota 2048, max 4096).
        http_timeout: seconds before an HTTP target attempt times out.
        retry_base_delay: first retry delay in seconds; doubles each retry.
        retry_max_delay: cap of the retry delay in seconds.
        target_concurrency: concurrent in-flight attempts per target.
        delivery_window: delivery records the engine holds in memory at most; the rest
            of the backlog waits in the store and is claimed by target and due time.
        delivery_lease: seconds a claimed delivery record stays this process's without
            a renewal (renewed every third of it while held); when a process dies, its
            records become claimable by the others this long after its last renewal.
        max_backlog: pending delivery records past which PutEvents answers
            ``ThrottlingException`` (0: never).
        resume_backlog: pending delivery records below which PutEvents is accepted
            again after throttling (0: 90 % of ``max_backlog``).
        shutdown_timeout: seconds SIGTERM waits for in-flight deliveries.
        catalog_resync_interval: seconds between two reads of the catalog's change feed
            (the safety net behind the store's notifications: a change another process
            made applies here within this time even if its notification is lost).
        header_timeout: seconds a client has to send a request's line and headers.
        body_timeout: seconds a client has to send a request's body after its headers.
        max_connections: open client connections at most; one more is closed at once.
        max_body_bytes_in_flight: request body bytes all connections together may have
            announced (``Content-Length``) or sent and not yet had answered; past it a
            request is answered at once, before its body is read, with a retryable
            ``ThrottlingException`` (SQS: ``RequestThrottled``), HTTP 503. A request
            alone in flight is always admitted, however large (up to the body limit).
        max_buses: custom event buses per account at most (AWS's default quota: 100).
        max_rules_per_bus: rules on one bus at most (AWS's default quota: 300).
        max_queues: queues per account at most.
        max_tags: tags on one resource at most (AWS: 50).
        outbound_allow: comma-separated CIDR blocks, addresses and host names that push
            targets may reach beyond public addresses (``--demo`` adds loopback).
        insecure_no_auth: allow ``serve`` on a non-loopback address while no access key
            exists (every request then acts in the home account); without it such a
            start is refused. Once a key exists, signatures are required anyway.
        allowed_hosts: comma-separated host names (``*.example.com`` for subdomains, ``*``
            for any) that requests may name in ``Host`` besides IP addresses, loopback
            names and this machine's name: the names a proxy or DNS gives the server.
        master_key_file: the file holding the master key that encrypts access-key
            secrets (default: ``master.key`` beside the database file); created ``0600``
            on first use. ``EVENTYARD_MASTER_KEY`` (the key's text) takes precedence.
        auth_max_skew: how far (seconds) a signed request's date may be from the
            server's clock (AWS: 300).
        demo: create a demo bus, rule and queue at start-up.
        schedule_time_scale: how many times faster than the wall clock the scheduler's
            clock runs (1: real time). For tests only: 60 fires ``rate(1 minute)`` every
            second.
        schedule_time_origin: with ``schedule_time_scale``, the Unix time from which the
            fast clock runs (0: the server's start); the same value across restarts
            keeps one timeline. For tests only.
        target_failing_after: failed attempts in a row after which a target is told
            ``FAILING`` on the system bus (:mod:`eventyard.server.system_events`).
        failing_target_interval: seconds between the attempts of a target that is failing
            (its last ``target_failing_after`` attempts, of any of its records, failed and
            could be retried): its backlog is probed one attempt at a time, so a dead
            target's retries do not take the CPU and store writes the others need; the
            pace starts at
            ``retry_base_delay`` and doubles up to this (and never above
            ``retry_max_delay``); the first success ends it. 0: no pacing.
        dlq_event_interval: seconds between two ``Dead-Letter Queue Messages`` events of
            one dead-letter queue at most (the messages between are counted).
        monitor_interval: seconds between two checks of the queues' alarm thresholds.
        schedule_late_after: seconds after its tick from which a scheduled rule's firing
            is told ``Scheduled Rule Fired Late``.
        log_retention: how long the log keeps events (:func:`parse_retention`: ``7d``,
            ``36h``; ``forever`` or ``0`` keeps them).
        log_retention_by_bus: per-bus overrides of ``log_retention``, by bus name (the
            internal name, ``<account>:<bus>``, for another account's bus).
        trace_retention: how long the trace journal keeps its entries.
        retention_interval: seconds between two passes of retention (log, archives'
            ``RetentionDays``, trace journal).
        replay_rate: events per second one replay sends at most.
        replay_settle: seconds a replay waits after the end of a one-minute slice of
            event time before it replays that slice (events of that time may still be
            arriving).
        trace: keep the trace journal (each delivery attempt, dead letter, queue
            receive and delete, for ``eventyard trace``); false saves its writes.
        log_level: debug, info, warning or error; debug adds one access-log line per
            request.
        log_format: ``console`` (for people), ``json`` (one object per line) or ``auto``
            (console when stderr is a terminal, else json).
        extra: settings of optional components, by name (not read from any source).
        config_file: the config file the settings were read from, if any.
        sources: where each setting that is not a default came from (``--port``,
            ``EVENTYARD_PORT``, ``eventyard.toml:3``), by key.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: str = "./.eventyard"
    store: str = ""
    store_replicas: int = 1
    store_prefix: str = "eventyard"
    account_id: str = "000000000000"
    region: str = "us-east-1"
    org_id: str = ""
    max_entries_size: int = 1024 * 1024
    max_pattern_length: int = 2048
    http_timeout: float = 5.0
    retry_base_delay: float = 1.0
    retry_max_delay: float = 300.0
    target_concurrency: int = 32
    delivery_window: int = 4096
    delivery_lease: float = 30.0
    max_backlog: int = 1_000_000
    resume_backlog: int = 0
    shutdown_timeout: float = 10.0
    catalog_resync_interval: float = 1.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 4096
    max_body_bytes_in_flight: int = 64 * 1024 * 1024
    max_buses: int = 100
    max_rules_per_bus: int = 300
    max_queues: int = 1000
    max_tags: int = 50
    outbound_allow: str = ""
    insecure_no_auth: bool = False
    allowed_hosts: str = ""
    master_key_file: str = ""
    auth_max_skew: float = 300.0
    demo: bool = False
    schedule_time_scale: float = 1.0
    schedule_time_origin: float = 0.0
    target_failing_after: int = 3
    failing_target_interval: float = 1.0
    dlq_event_interval: float = 60.0
    monitor_interval: float = 10.0
    schedule_late_after: float = 60.0
    log_retention: str = "7d"
    log_retention_by_bus: dict[str, str] = field(default_factory=dict)
    trace_retention: str = "1d"
    retention_interval: float = 300.0
    replay_rate: float = 1000.0
    replay_settle: float = 10.0
    trace: bool = True
    log_level: str = "info"
    log_format: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def setting_types(cls) -> dict[str, type]:
        """Every setting a flag, a variable or the config file can give, with its type."""
        defaults = cls()
        return {
            f.name: type(getattr(defaults, f.name)) for f in fields(cls) if f.name not in _NOT_KEYS
        }

    @classmethod
    def load(
        cls,
        *,
        config: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        **flags: Any,
    ) -> Settings:
        """The settings from flags, environment variables, a config file and defaults.

        Args:
            config: the config file to read (``--config``); default ``EVENTYARD_CONFIG``,
                else :func:`find_config_file` in ``cwd``.
            environ: the environment (default ``os.environ``).
            cwd: where to look for ``eventyard.toml`` and ``pyproject.toml`` (default:
                the working directory).
            **flags: command-line values by setting name; None means "not given".

        Raises:
            ConfigurationError: a config file cannot be read, has an unknown key or a
                value of the wrong type, or a setting from any source cannot work; the
                message names the setting and where it came from.
        """
        env = os.environ if environ is None else environ
        path = _config_path(config, env, Path(cwd) if cwd is not None else Path.cwd())
        return cls._merge(path, env, flags)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Defaults, then ``EVENTYARD_<KEY>`` variables, then non-None ``flags``; no file.

        Raises:
            ConfigurationError: a setting cannot work.
        """
        return cls._merge(None, os.environ if environ is None else environ, flags)

    @classmethod
    def _merge(
        cls, path: Path | None, env: Mapping[str, str], flags: Mapping[str, Any]
    ) -> Settings:
        keys = cls.setting_types()
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        if path is not None:
            for key, (value, origin) in _read_config(path, keys).items():
                values[key], origins[key] = value, origin
        for key, kind in keys.items():
            name = f"EVENTYARD_{key.upper()}"
            raw = env.get(name)
            if raw is not None:
                values[key], origins[key] = _from_text(raw, kind, f"{name}={raw!r}"), name
        for key, value in flags.items():
            if key not in keys:
                raise TypeError(f"unknown setting {key!r}")
            if value is not None:
                origin = f"--{key.replace('_', '-')}"
                values[key], origins[key] = _checked(value, keys[key], origin), origin
        config_file = str(path) if path is not None else None
        settings = replace(cls(), **values, config_file=config_file, sources=origins)
        for key, problem in settings.problems():
            where = origins.get(key)
            raise ConfigurationError(f"{problem} (from {where})" if where else problem)
        return settings

    def to_toml(self) -> str:
        """Every setting as a config file would give it, each with where it came from."""
        lines = []
        for key in self.setting_types():
            value = getattr(self, key)
            text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
            if isinstance(value, str):
                text = json.dumps(value)  # a JSON string is a TOML basic string
            elif isinstance(value, dict):
                inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
                text = "{" + inner + "}"
            lines.append(f"{key} = {text}  # {self.sources.get(key, 'default')}")
        return "\n".join(lines) + "\n"

    def check(self) -> None:
        """Reject settings that cannot work, with a message naming the setting.

        Raises:
            ConfigurationError: the first problem found.
        """
        for _, problem in self.problems():
            raise ConfigurationError(problem)

    def problems(self) -> Iterator[tuple[str, str]]:
        """``(key, message)`` for each setting that cannot work."""
        if not (len(self.account_id) == 12 and self.account_id.isdigit()):
            yield "account_id", f"account_id must be 12 digits, got {self.account_id!r}"
        if not _REGION_RE.fullmatch(self.region):
            yield (
                "region",
                "region must be an AWS region name in lower case such as us-east-1 or "
                f"eu-west-2, got {self.region!r}",
            )
        if self.org_id and not _ORG_ID_RE.match(self.org_id):
            yield "org_id", f"org_id must look like o-a1b2c3d4e5, got {self.org_id!r}"
        if not 1 <= self.max_pattern_length <= 4096:
            yield "max_pattern_length", "max_pattern_length must be between 1 and 4096"
        if self.max_entries_size < 1:
            yield "max_entries_size", "max_entries_size must be positive"
        if not 0 <= self.port <= 65535:
            yield "port", f"port must be between 0 and 65535, got {self.port}"
        if not self.host:
            yield "host", "host must not be empty"
        if not self.data_dir:
            yield "data_dir", "data_dir must not be empty"
        store_problem = _store_problem(self.store)
        if store_problem:
            yield "store", store_problem
        if not 1 <= self.store_replicas <= 5:
            yield (
                "store_replicas",
                f"store_replicas must be between 1 and 5 (1, or 3 on a 3-node NATS cluster), "
                f"got {self.store_replicas}",
            )
        if not _PREFIX_RE.fullmatch(self.store_prefix):
            yield (
                "store_prefix",
                "store_prefix must be 1 to 32 letters, digits, '-' or '_' (it names NATS "
                f"streams, buckets and subjects), got {self.store_prefix!r}",
            )
        for key in (
            "http_timeout",
            "shutdown_timeout",
            "retry_base_delay",
            "retry_max_delay",
            "header_timeout",
            "body_timeout",
            "auth_max_skew",
            "schedule_time_scale",
            "dlq_event_interval",
            "monitor_interval",
            "schedule_late_after",
            "retention_interval",
            "replay_rate",
        ):
            if getattr(self, key) <= 0:
                yield key, f"{key} must be positive, got {getattr(self, key)}"
        if not 0 < self.catalog_resync_interval <= _MAX_RESYNC_INTERVAL:
            yield (
                "catalog_resync_interval",
                f"catalog_resync_interval must be above 0 and at most {_MAX_RESYNC_INTERVAL:g} "
                f"seconds, got {self.catalog_resync_interval}",
            )
        if self.replay_settle < 0:
            yield "replay_settle", "replay_settle must not be negative"
        for key in ("log_retention", "trace_retention"):
            try:
                parse_retention(getattr(self, key))
            except ValueError as exc:
                yield key, f"{key}: {exc}"
        for bus, value in self.log_retention_by_bus.items():
            try:
                parse_retention(str(value))
            except ValueError as exc:
                yield "log_retention_by_bus", f"log_retention_by_bus[{bus!r}]: {exc}"
        if self.schedule_time_origin < 0:
            yield "schedule_time_origin", "schedule_time_origin must not be negative"
        if self.target_failing_after < 1:
            yield "target_failing_after", "target_failing_after must be at least 1"
        if not 0 <= self.failing_target_interval <= 3600:
            yield (
                "failing_target_interval",
                "failing_target_interval must be between 0 (no pacing) and 3600 seconds, "
                f"got {self.failing_target_interval}",
            )
        if self.target_concurrency < 1:
            yield "target_concurrency", "target_concurrency must be at least 1"
        if self.delivery_window < 1:
            yield "delivery_window", "delivery_window must be at least 1"
        if not 1.0 <= self.delivery_lease <= 3600.0:
            yield (
                "delivery_lease",
                f"delivery_lease must be between 1 and 3600 seconds, got {self.delivery_lease}",
            )
        if self.max_backlog < 0:
            yield "max_backlog", "max_backlog must be 0 (no limit) or positive"
        if self.resume_backlog < 0 or (
            self.resume_backlog and self.resume_backlog >= self.max_backlog
        ):
            yield (
                "resume_backlog",
                f"resume_backlog must be 0 (90 % of max_backlog) or below max_backlog "
                f"({self.max_backlog}), got {self.resume_backlog}",
            )
        for key in (
            "max_connections",
            "max_body_bytes_in_flight",
            "max_buses",
            "max_rules_per_bus",
            "max_queues",
            "max_tags",
        ):
            if getattr(self, key) < 1:
                yield key, f"{key} must be at least 1, got {getattr(self, key)}"
        if self.log_level.lower() not in LOG_LEVELS:
            yield (
                "log_level",
                (f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"),
            )
        if self.log_format.lower() not in LOG_FORMATS:
            yield (
                "log_format",
                (f"log_format must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}"),
            )


def find_config_file(cwd: str | os.PathLike[str]) -> Path | None:
    """The config file found in ``cwd``: ``eventyard.toml``, else a ``pyproject.toml``
    with a ``[tool.eventyard]`` table, else None."""
    directory = Path(cwd)
    own = directory / CONFIG_FILE
    if own.is_file():
        return own
    pyproject = directory / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    # a cheap look first: a project without the table is never parsed (nor blamed)
    if re.search(r"^\s*\[\s*tool\s*\.\s*eventyard\s*\]", text, re.MULTILINE) is None:
        return None
    return pyproject


def nats_servers(store: str) -> list[str]:
    """The servers of a ``nats://h1:4222,h2:4222`` store URL, each as ``nats://h:p``.

    A server without a port gets NATS's 4222; ``nats://`` may be repeated before each
    server (``nats://h1:4222,nats://h2:4222``).

    Raises:
        ConfigurationError: the URL is not a ``nats://`` URL of host[:port] servers.
    """
    problem = _store_problem(store)
    if problem or not store:
        raise ConfigurationError(problem or "no store URL")
    servers = []
    for part in store.removeprefix("nats://").split(","):
        address = part.strip().removeprefix("nats://")
        match = _HOST_PORT_RE.fullmatch(address)
        assert match is not None  # _store_problem checked it
        servers.append(f"nats://{address}" if match[1] else f"nats://{address}:4222")
    return servers


def _store_problem(store: str) -> str | None:
    """Why ``store`` is not a usable store URL, or None ("" is the SQLite default)."""
    if not store:
        return None
    shape = "nats://host:4222[,host2:4222,...]"
    if not store.startswith("nats://"):
        scheme = store.split("://", 1)[0] + "://" if "://" in store else store
        return (
            f"store must be a NATS URL such as {shape} (the SQLite store is chosen by "
            f"data_dir, with no store), got {scheme!r}"
        )
    for part in store.removeprefix("nats://").split(","):
        address = part.strip().removeprefix("nats://")
        match = _HOST_PORT_RE.fullmatch(address)
        if match is None:
            return f"store must be {shape}: {address!r} is not host or host:port"
        if match[1] and not 1 <= int(match[1]) <= 65535:
            return f"store must be {shape}: port {match[1]} of {address!r} is not 1 to 65535"
    return None


def _config_path(
    config: str | os.PathLike[str] | None, env: Mapping[str, str], cwd: Path
) -> Path | None:
    given = config if config is not None else env.get("EVENTYARD_CONFIG") or None
    if given is None:
        return find_config_file(cwd)
    path = Path(given)
    if not path.is_absolute():
        path = cwd / path
    if not path.is_file():
        origin = "--config" if config is not None else "EVENTYARD_CONFIG"
        raise ConfigurationError(f"config file {given} (from {origin}) does not exist")
    return path


def _read_config(path: Path, keys: Mapping[str, type]) -> dict[str, tuple[Any, str]]:
    """The settings a config file gives, each with where it was given (``file:line``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    table: Any = document
    table_name = None
    if path.name == "pyproject.toml":
        table_name = PYPROJECT_TABLE
        table = document.get("tool", {}).get("eventyard", {})
    lines = text.splitlines()
    values: dict[str, tuple[Any, str]] = {}
    for key, given in table.items():
        line = _line_of(lines, key, table_name)
        where = f"{path}:{line}" if line else str(path)
        if key not in keys:
            close = difflib.get_close_matches(key.replace("-", "_"), list(keys), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(f"{where}: unknown key {key!r}{hint}")
        value = _checked(given, keys[key], f"{where}: {key}")
        if key == "data_dir" and "://" not in value and not os.path.isabs(value):
            # a relative directory in a file means relative to that file
            value = os.path.normpath(path.parent / value)
        values[key] = (value, where)
    return values


def _line_of(lines: list[str], key: str, table: str | None) -> int | None:
    """The line (1-based) where ``key`` is set, in ``table`` or at the top level.

    tomllib does not report positions; a key of this flat table is a line that starts
    with it, which a cheap scan finds.
    """
    start = 0
    if table is not None:
        header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, table.split("."))))
        start = next((i + 1 for i, line in enumerate(lines) if header.match(line)), 0)
    pattern = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    for number in range(start, len(lines)):
        if table is None and lines[number].lstrip().startswith("["):
            break
        if table is not None and number > start and lines[number].lstrip().startswith("["):
            break
        if pattern.match(lines[number]):
            return number + 1
    return None


def _checked(value: Any, kind: type, where: str) -> Any:
    """``value`` if it is a ``kind`` (an int is a float too); else ConfigurationError."""
    if kind is float and type(value) is int:
        return float(value)
    if kind is dict and type(value) is dict:
        if all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return value
        raise ConfigurationError(f"{where} must be a table of strings, got {value!r}")
    if type(value) is kind:
        return value
    raise ConfigurationError(
        f"{where} must be {_article(kind)}, got {type(value).__name__} {value!r}"
    )


def _from_text(raw: str, kind: type, where: str) -> Any:
    """An environment variable's text as a ``kind``; ConfigurationError if it is not one."""
    text = raw.strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is dict:
            return _pairs(text)
    except ValueError:
        raise ConfigurationError(f"{where} is not {_article(kind)}") from None
    return raw


def _pairs(text: str) -> dict[str, str]:
    """``"a=1,b=2"`` as ``{"a": "1", "b": "2"}`` (a table setting in one variable)."""
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(part)
        pairs[key.strip()] = value.strip()
    return pairs


def _article(kind: type) -> str:
    return {
        dict: "a table of strings (NAME=VALUE,NAME=VALUE in a variable)",
        bool: "a boolean (true or false)",
        int: "an integer",
        float: "a number",
        str: "a string",
    }.get(kind, kind.__name__)
