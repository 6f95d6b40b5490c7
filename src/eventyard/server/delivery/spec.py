"""What the delivery engine needs to know about one target: :class:`TargetSpec`.

The router builds a spec from each rule's :class:`~eventyard.server.catalog.Target`
(:meth:`TargetSpec.from_target`)
and the engine and the target kinds read it; it lives apart from both so that neither
imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from eventyard.server.catalog import Target
from eventyard.server.config import Settings
from eventyard.server.delivery.http_parameters import HttpParameters

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
        account: the account that owns the rule, read from its internal key: whose
            permission an event-bus target is judged by. Empty when not known; an
            event-bus target then refuses to deliver (it never acts for the home
            account by default).
        message_group_id: ``SqsParameters.MessageGroupId`` for a FIFO queue target.
        http_parameters: the target's ``HttpParameters``, compiled; None without.
        signing_keys: the key bytes of the target's signing secrets, newest first
            (:mod:`eventyard.server.delivery.signing`); empty: deliveries are not
            signed. Left out of ``repr``.
    """

    key: str
    arn: str
    rule_arn: str
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_age: float = DEFAULT_MAX_AGE
    dlq_arn: str | None = None
    timeout: float = 5.0
    concurrency: int = 32
    account: str = ""
    message_group_id: str | None = None
    http_parameters: HttpParameters | None = None
    signing_keys: tuple[bytes, ...] = field(default=(), repr=False)

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
        target: Target,
        rule_arn: str,
        settings: Settings | None = None,
        *,
        account: str = "",
        signing_keys: tuple[bytes, ...] = (),
    ) -> TargetSpec:
        """Build the spec of a rule's target.

        Args:
            key: the target key ``<bus>/<rule>/<target-id>``.
            target: the target, with its retry policy and dead-letter queue.
            rule_arn: the ARN of the target's rule.
            settings: the server settings, for ``http_timeout`` and
                ``target_concurrency``; the defaults of :class:`Settings` if None.
            account: the account that owns the rule.
            signing_keys: the target's signing secrets, unsealed (the caller holds the
                master key).

        Raises:
            ValueError: a value is out of range, or the ``HttpParameters`` do not
                compile.
        """
        settings = settings or Settings()
        attempts = target.max_attempts
        return cls(
            key=key,
            arn=target.arn,
            rule_arn=rule_arn,
            max_attempts=DEFAULT_MAX_ATTEMPTS if attempts is None else attempts,
            max_age=DEFAULT_MAX_AGE if target.max_age is None else target.max_age,
            dlq_arn=target.dlq_arn,
            timeout=settings.http_timeout,
            concurrency=settings.target_concurrency,
            account=account,
            message_group_id=target.message_group_id,
            http_parameters=HttpParameters.from_doc(target.http_parameters),
            signing_keys=signing_keys,
        )
