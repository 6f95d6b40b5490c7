"""Fuzzing ``POST /``: no generated request gets a 5xx, a crash, a hang or a non-AWS error.

One in-process server (the real app over a SQLite store in a temporary directory) takes
a fixed, derandomized set of generated requests: the stateful :class:`ApiMachine`
(model-based requests for every EventBridge and SQS operation, envelope garbage, and
working paths with fuzzed contents) and, separately, model requests per operation so
that every operation the server serves is called. Afterwards the server is still ready
and its memory did not run away. ``bench/fuzz.py`` runs the same generators for 100,000
requests (docs/fuzzing.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.fuzz.harness import InProcessServer, Tally, rss_bytes
from tests.fuzz.machine import ApiMachine
from tests.fuzz.requests import (
    SERVICES,
    FuzzRequest,
    auth_request,
    garbage_request,
    model_operations,
    model_request,
)

# Deterministic and bounded: the same requests on every run, about 15 s in all.
_FIXED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    # The generated requests are large by design (huge strings, deep nesting).
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Each sequence is sent to the same server, whose state it changes: replaying a sequence
# while shrinking meets other state, so shrinking is short and may report "flaky"; the
# failure message names the request either way.
_MACHINE = settings(_FIXED, max_examples=60, stateful_step_count=50)

_MEMORY_GROWTH_LIMIT = 400 * 2**20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with InProcessServer(Path(tmp_path_factory.mktemp("fuzz-data"))) as running:
        yield running


@pytest.fixture(scope="module")
def tally() -> Tally:
    return Tally()


def _check(server: InProcessServer, tally: Tally, request: FuzzRequest) -> None:
    answer = server.call(request)
    found = tally.add(request, answer)
    assert not found, f"{request!r}\n -> {answer.status} {answer.body[:500]!r}\n {found}"


def test_generators_cover_every_operation_the_server_serves(server: InProcessServer) -> None:
    served = {
        prefix: set(getattr(server.app.state.runtime.services[prefix], attr))
        for prefix, attr in (("AWSEvents", "_ops"), ("AmazonSQS", "_operations"))
    }
    for service, (prefix, _) in SERVICES.items():
        assert served[prefix] <= set(model_operations(service)), service


_OPERATIONS = [(service, op) for service in SERVICES for op in model_operations(service)]


@pytest.mark.parametrize(("service", "operation"), _OPERATIONS)
def test_model_requests_for_each_operation_get_a_clean_answer(
    server: InProcessServer, tally: Tally, service: str, operation: str
) -> None:
    @settings(_FIXED, max_examples=8)
    @given(request=model_request(service, operation))
    def run(request: FuzzRequest) -> None:
        _check(server, tally, request)

    run()


@settings(_FIXED, max_examples=300)
@given(request=garbage_request())
def test_envelope_garbage_gets_a_clean_4xx(
    server: InProcessServer, tally: Tally, request: FuzzRequest
) -> None:
    _check(server, tally, request)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessServer, str]]:
    """A server with an access key: every request is verified, nothing runs in dev mode."""
    with InProcessServer(Path(tmp_path_factory.mktemp("fuzz-keyed"))) as running:
        yield running, running.create_key("222233334444")


def test_bent_credentials_get_a_clean_4xx(keyed: tuple[InProcessServer, str]) -> None:
    server, key_id = keyed
    tally = Tally()

    @settings(_FIXED, max_examples=400)
    @given(request=auth_request(key_id))
    def run(request: FuzzRequest) -> None:
        _check(server, tally, request)

    run()
    print(f"{tally.requests} requests: {dict(tally.statuses)}")
    assert set(tally.statuses) <= {"400", "403"}, tally.statuses
    assert server.error_log.exceptions == []


def test_interleaved_hostile_requests_keep_every_promise(
    server: InProcessServer, tally: Tally
) -> None:
    ApiMachine.server, ApiMachine.tally, ApiMachine.strict = server, tally, True
    run_state_machine_as_test(ApiMachine, settings=_MACHINE)


def test_after_the_fuzzing_the_server_is_ready_and_its_memory_bounded(
    server: InProcessServer, tally: Tally
) -> None:
    print(f"{tally.requests} requests: {dict(tally.statuses)}")
    assert server.get("/readyz").status == 200
    assert server.get("/livez").status == 200
    assert tally.requests > 2000, tally.requests
    assert rss_bytes() - server.rss_at_start < _MEMORY_GROWTH_LIMIT
    assert server.error_log.exceptions == []
