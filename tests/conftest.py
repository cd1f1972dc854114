"""Broker fixtures for the uplink tests: a private mosquitto per test, or one shared per session.

``shared_broker`` is the broker CI starts (``GRIDGATE_TEST_MQTT=HOST:PORT``, see .ci/run) or, when
that is unset, one started here for the whole session. Tests on it must only use topics and client
ids under their own ``ids`` and must never stop it; a test that stops, restarts or configures a
broker (auth, TLS, persistence) starts its own with ``broker`` or ``Broker(...)``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mosquitto import Address, Broker, Endpoint, Recorder, TopicIds

SHARED_BROKER_ENV = "GRIDGATE_TEST_MQTT"


@pytest.fixture(scope="session")
def run_token() -> str:
    # a broker that outlives this run keeps retained messages: a fresh token per run keeps a
    # second run from reading the first one's retained status
    return secrets.token_hex(3)


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Address]:
    given = os.environ.get(SHARED_BROKER_ENV)
    if given:
        yield Endpoint.parse(given)
        return
    b = Broker(tmp_path_factory.mktemp("shared-broker"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private broker this test may stop, kill and restart."""
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def ids(request: pytest.FixtureRequest, run_token: str) -> TopicIds:
    return TopicIds.for_test(request.node.name, run_token)


@pytest.fixture
def recorder(shared_broker: Address, ids: TopicIds) -> Iterator[Recorder]:
    """Subscribed (QoS 1) to this test's topics on the shared broker before anything is sent."""
    r = Recorder(shared_broker, f"{ids.prefix}/#")
    try:
        yield r
    finally:
        r.close()
