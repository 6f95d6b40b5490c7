"""A consumer's handler and how one attempt of it ends: :class:`Handler`, :class:`Outcome`.

A :class:`Handler` is what ``@consumer.on(pattern)`` registers: the function, its
pattern, the resources that feed it and the pydantic model its event is validated into.
:meth:`Handler.attempt` runs it once and turns how it ended into an :class:`Outcome`
(returned, raised :class:`Retry` or :class:`Drop`, raised another exception, or the event
did not fit); :mod:`eventyard.sdk.settle` decides what each outcome means for the message.

:class:`Retry` and :class:`Drop` are the two exceptions that live outside
:mod:`eventyard.errors`, on purpose: they are control flow that a handler raises to settle
its event, like FastStream's ``NackMessage``, not errors (they are no
:class:`~eventyard.errors.EventyardError`, and ``except EventyardError`` never catches them).
Both :mod:`eventyard.sdk.consumer` (which builds handlers) and :mod:`eventyard.sdk.worker`
(which runs them) import this module, and it imports neither.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio.to_thread

from eventyard.sdk.event import Event

__all__ = ["MAX_VISIBILITY", "Drop", "Handler", "Outcome", "Retry"]

#: The longest visibility timeout SQS allows, in seconds (12 hours).
MAX_VISIBILITY = 43200


class Retry(Exception):
    """Raised by a handler to retry its event later. Control flow, not an error.

    The attempt counts towards ``max_attempts``: when the last attempt raises ``Retry``,
    the event goes to the dead-letter queue.

    Args:
        delay: seconds until the next attempt. The worker times delays shorter than
            the consumer's ``poll_wait`` itself (fractions count); longer ones become
            the message's visibility timeout, rounded up to whole seconds.
        reason: why, for logs and the dead-letter attributes.
    """

    def __init__(self, delay: float = 0.0, reason: str | None = None) -> None:
        if delay < 0 or math.isnan(delay):
            raise ValueError(f"Retry delay must be a number of seconds >= 0, not {delay!r}")
        super().__init__(reason or f"retry requested in {delay:g} s")
        self.delay = delay
        self.reason = reason


class Drop(Exception):
    """Raised by a handler to acknowledge its event without processing it.

    Control flow, not an error: the message is deleted and the worker logs the reason.

    Args:
        reason: why the event is dropped, for the log.
    """

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "dropped by the handler")
        self.reason = reason


@dataclass(slots=True, frozen=True)
class Outcome:
    """How one attempt of a handler ended.

    Attributes:
        kind: ``ack`` (returned), ``drop`` (raised :class:`Drop`), ``retry`` (raised
            :class:`Retry`), ``fail`` (raised another exception) or ``invalid`` (the
            event is not a valid event, or its detail does not fit the handler's model).
        reason: what happened, for logs and dead-letter attributes ("" for ``ack``).
        delay: the delay a ``retry`` asked for.
        error: the exception a ``fail`` raised.
    """

    kind: Literal["ack", "drop", "retry", "fail", "invalid"]
    reason: str = ""
    delay: float | None = None
    error: BaseException | None = None


class _Unresolved:
    """The handler's annotation names something not defined yet (resolved on first use)."""


_UNRESOLVED = _Unresolved()


@dataclass(slots=True, eq=False)
class Handler:
    """A registered handler and the resources that feed it.

    Attributes:
        name: the handler's name (unique within its consumer).
        func: the decorated function, unchanged.
        pattern: the event pattern as JSON text.
        queue: the queue the handler's rule delivers to.
        dead_letter_queue: where events go after ``max_attempts``.
        rule: the rule's name on the consumer's bus.
        max_attempts: attempts before dead-lettering.
    """

    name: str
    func: Callable[[Any], Any]
    pattern: str
    queue: str
    dead_letter_queue: str
    rule: str
    max_attempts: int
    _parameter: str
    _model: type[Any] | _Unresolved | None = field(default=None, repr=False)

    @classmethod
    def of(
        cls,
        func: Callable[[Any], Any],
        *,
        name: str,
        pattern: str,
        queue: str,
        dead_letter_queue: str,
        max_attempts: int,
    ) -> Handler:
        """The handler of ``func``, whose rule is named like its queue.

        Raises:
            TypeError: the function does not take exactly one argument, or it is
                annotated with something other than ``Event`` or a pydantic model.
        """
        parameter = _event_parameter(func, name)
        return cls(
            name=name,
            func=func,
            pattern=pattern,
            queue=queue,
            dead_letter_queue=dead_letter_queue,
            rule=queue,
            max_attempts=max_attempts,
            _parameter=parameter,
            _model=_model_of(func, parameter, name, final=False),
        )

    @property
    def is_async(self) -> bool:
        """Whether the handler is a coroutine function (else it runs in a thread)."""
        return inspect.iscoroutinefunction(self.func)

    @property
    def model(self) -> type[Any] | None:
        """The pydantic model ``detail`` is validated into, or None for plain events.

        Raises:
            TypeError: the annotation cannot be resolved or is neither ``Event`` nor a
                pydantic model.
        """
        model = self._model
        if isinstance(model, _Unresolved):
            model = _model_of(self.func, self._parameter, self.name, final=True)
            assert not isinstance(model, _Unresolved)
            self._model = model
        return model

    def argument(self, event: Event) -> Any:
        """What the handler is called with for ``event``: the event or its validated model.

        Raises:
            ValueError: ``detail`` does not validate into the model (the message says why).
        """
        model = self.model
        if model is None:
            return event
        from pydantic import ValidationError as PydanticError

        try:
            return model.model_validate(event.detail)
        except PydanticError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(detail)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ValueError(f"detail is not a valid {model.__name__}: {problems}") from None

    async def attempt(self, event: Event) -> Outcome:
        """Run the handler once on ``event`` and say how it ended (never raises ``Exception``).

        Sync handlers run in a worker thread (anyio's pool) so that they cannot block
        the event loop.
        """
        try:
            argument = self.argument(event)
        except ValueError as exc:
            return Outcome("invalid", str(exc))
        try:
            if self.is_async:
                await self.func(argument)
            else:
                await anyio.to_thread.run_sync(self.func, argument)
        except Retry as retry:
            return Outcome("retry", str(retry), delay=retry.delay)
        except Drop as drop:
            return Outcome("drop", str(drop))
        except Exception as exc:
            return Outcome("fail", _describe(exc), error=exc)
        return Outcome("ack")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_model(annotation: Any) -> bool:
    if not isinstance(annotation, type):
        return False
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - only without the pydantic extra
        return False
    return issubclass(annotation, BaseModel)


def _model_of(
    func: Callable[..., Any], parameter: str, name: str, *, final: bool
) -> type[Any] | _Unresolved | None:
    """The pydantic model the handler's event parameter is annotated with, if any."""
    try:
        hints = typing.get_type_hints(func)
    except NameError as exc:
        if not final:
            return _UNRESOLVED  # a name defined later in the module; try again at setup
        raise TypeError(f"handler {name!r}: cannot resolve its annotations: {exc}") from None
    annotation = hints.get(parameter, Any)
    if annotation is Event or annotation is Any or annotation is object:
        return None
    if _is_model(annotation):
        return typing.cast(type[Any], annotation)
    raise TypeError(
        f"handler {name!r}: annotate its parameter {parameter!r} with eventyard.Event or a "
        f"pydantic model, not {annotation!r}"
    )


def _event_parameter(func: Callable[..., Any], name: str) -> str:
    """The parameter that receives the event: the only one without a default."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        raise TypeError(f"handler {name!r} has no inspectable signature") from None
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    required = [
        p
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if not positional or len(required) > 1 or (required and required[0] is not positional[0]):
        raise TypeError(f"handler {name!r} must take exactly one argument: the event")
    return positional[0].name
