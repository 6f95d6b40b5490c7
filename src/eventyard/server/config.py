"""Settings: command-line flags > ``EVENTYARD_*`` environment variables > defaults.

One frozen :class:`Settings` object is built at start-up and handed to every component.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from eventyard.errors import ValidationError

__all__ = ["DEFAULT_PORT", "Settings"]

DEFAULT_PORT = 4010


@dataclass(slots=True, frozen=True)
class Settings:
    """Everything that can be configured.

    Attributes:
        host: interface to listen on.
        port: TCP port (0 picks a free one).
        data_dir: where the embedded store keeps its files.
        account_id: the 12-digit account in ARNs and envelopes.
        region: the region in ARNs and envelopes.
        max_entries_size: PutEvents total entry size limit in bytes (AWS: 1 MB since 2026).
        max_pattern_length: EventPattern length limit (AWS default quota 2048, max 4096).
        http_timeout: seconds before an HTTP target attempt times out.
        retry_base_delay: first retry delay in seconds; doubles each retry.
        retry_max_delay: cap of the retry delay in seconds.
        target_concurrency: concurrent in-flight attempts per target.
        shutdown_timeout: seconds SIGTERM waits for in-flight deliveries.
        demo: create a demo bus, rule and queue at start-up.
        log_level: debug, info, warning or error (structured JSON lines on stderr).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: str = "./.eventyard"
    account_id: str = "000000000000"
    region: str = "us-east-1"
    max_entries_size: int = 1024 * 1024
    max_pattern_length: int = 2048
    http_timeout: float = 5.0
    retry_base_delay: float = 1.0
    retry_max_delay: float = 300.0
    target_concurrency: int = 32
    shutdown_timeout: float = 10.0
    demo: bool = False
    log_level: str = "info"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``EVENTYARD_<FIELD>`` variables, then non-None ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(f"EVENTYARD_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _convert(f.name, raw, type(getattr(cls(), f.name)))
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        settings.check()
        return settings

    def check(self) -> None:
        """Reject settings that cannot work, with a message naming the setting."""
        if not (len(self.account_id) == 12 and self.account_id.isdigit()):
            raise ValidationError(f"account_id must be 12 digits, got {self.account_id!r}")
        if not 1 <= self.max_pattern_length <= 4096:
            raise ValidationError("max_pattern_length must be between 1 and 4096")
        if self.max_entries_size < 1:
            raise ValidationError("max_entries_size must be positive")
        if not 0 <= self.port <= 65535:
            raise ValidationError(f"port must be between 0 and 65535, got {self.port}")


def _convert(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        raise ValidationError(
            f"EVENTYARD_{name.upper()}={raw!r} is not a valid {kind.__name__}"
        ) from None
    return raw
