"""Schedules: AWS's ``rate(...)`` and ``cron(...)`` expressions, and what fires them.

* :mod:`.expression`: parsing and validation of schedule expressions with AWS's syntax,
  and the next fire time of a schedule. Pure functions of time, no I/O: the EventBridge
  API (``PutRule``) and the ``scheduler`` API share it.
* :mod:`.ticker`: the component the runtime starts that fires each enabled scheduled rule
  at each tick, exactly once across restarts and processes (a claim on a catalog
  document, written in the same transaction as the event).

EventBridge Scheduler (the ``scheduler`` API, :mod:`eventyard.server.api.scheduler`):

* :mod:`.timing`: ``at(...)`` schedules, time zones across daylight-saving changes,
  start and end dates and flexible windows; pure functions of time, no I/O;
* :mod:`.definitions`: the catalog kinds of schedules, groups and tick states, and the
  payload one tick delivers;
* :mod:`.invoker`: the component the runtime starts that fires each enabled schedule at
  each tick, exactly once, with the same claim as the ticker.

This package may import the router, the delivery clock and the store, and is imported by
the runtime and the AWS API layer; see ``docs/schedules.md`` for the behaviour.
"""
