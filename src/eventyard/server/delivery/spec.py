"""What the delivery engine needs to know about one target: :class:`TargetSpec`.

The router builds a spec from each stored AWS ``Target`` (:meth:`TargetSpec.from_target`)
and the engine and the target kinds read it; it lives apart from both so that neither
imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eventyard.server.config import Settings

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_ATTEMPTS", "TargetSpec"]

#: ``RetryPolicy`` defaults, as AWS has them.
DEFAULT_MAX_ATTEMPTS: Final = 185
DEFAULT_MAX_AGE: Final = 86400.0


@dataclass(slots=True, frozen=True)
class TargetSpec:
    """How to deliver to one target, as the engine needs it.

    Attributes:
        key: the target key ``<bus>/<rule>/<target-id>`` of the delivery records.
        arn: the target's ``Arn`` (a webhook URL, a queue ARN or an event-bus ARN).
        rule_arn: the ARN of the rule, for the dead-letter message.
        max_attempts: ``RetryPolicy.MaximumRetryAttempts``, retries after the first attempt.
        max_age: ``RetryPolicy.MaximumEventAgeInSeconds``, counted from ingestion.
        dlq_arn: ``DeadLetterConfig.Arn``, or None to drop what cannot be delivered.
        timeout: seconds one HTTP attempt may take.
        concurrency: attempts in flight at once for this target.
    """

    key: str
    arn: str
    rule_arn: str
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_age: float = DEFAULT_MAX_AGE
    dlq_arn: str | None = None
    timeout: float = 5.0
    concurrency: int = 32

    def __post_init__(self) -> None:
        if self.max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0, not {self.max_attempts}")
        if self.max_age <= 0 or self.timeout <= 0:
            raise ValueError("max_age and timeout must be positive")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, not {self.concurrency}")

    @classmethod
    def from_target(
        cls,
        key: str,
        target: Mapping[str, Any],
        rule_arn: str,
        settings: Settings | None = None,
    ) -> TargetSpec:
        """Build the spec of an AWS ``Target`` dict (as PutTargets stores it).

        Args:
            key: the target key ``<bus>/<rule>/<target-id>``.
            target: the Target, with ``Arn`` and optionally ``RetryPolicy`` and
                ``DeadLetterConfig``.
            rule_arn: the ARN of the target's rule.
            settings: the server settings, for ``http_timeout`` and
                ``target_concurrency``; the defaults of :class:`Settings` if None.

        Raises:
            KeyError: the Target has no ``Arn``.
            ValueError: a value is out of range.
        """
        retry = target.get("RetryPolicy") or {}
        dlq = target.get("DeadLetterConfig") or {}
        attempts = retry.get("MaximumRetryAttempts")
        age = retry.get("MaximumEventAgeInSeconds")
        dlq_arn = dlq.get("Arn")
        settings = settings or Settings()
        return cls(
            key=key,
            arn=str(target["Arn"]),
            rule_arn=rule_arn,
            max_attempts=DEFAULT_MAX_ATTEMPTS if attempts is None else int(attempts),
            max_age=DEFAULT_MAX_AGE if age is None else float(age),
            dlq_arn=str(dlq_arn) if dlq_arn else None,
            timeout=settings.http_timeout,
            concurrency=settings.target_concurrency,
        )
