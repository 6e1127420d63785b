"""Fixtures shared by the rooms tests: no tracebacks, both transports, clients closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.clients import assert_no_tracebacks
from tests.support.rooms import VIAS


@pytest.fixture(autouse=True)
def no_tracebacks(caplog, capfd):
    yield
    assert_no_tracebacks(caplog.records, capfd.readouterr().err)


@pytest.fixture(params=VIAS)
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    """Register clients to be closed after the test."""
    made: list[Any] = []

    def keep(client: Any) -> Any:
        made.append(client)
        return client

    yield keep
    for c in made:
        c.close()
