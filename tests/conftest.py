"""Shared fixtures: isolated PostgreSQL databases and Kafka topics on the real services.

The services come from `deploy/services up` (`deploy/test` does it and exports
LEDGER_TEST_DATABASE_URL / LEDGER_TEST_KAFKA_BOOTSTRAP). A test that asks for them when they
are missing fails loudly; it is never skipped. Tests that ask for none of these fixtures
(tests/unit) need no services at all.

The ledger's store and service settings from the caller's shell (LEDGER_DATABASE_URL,
LEDGER_KAFKA_BOOTSTRAP, ... as exported by `eval "$(deploy/services up)"`) are removed here,
so a test never writes to the shared `ledger` database by accident and settings defaults are
the documented ones: each test names its store explicitly.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

for _name in (
    "LEDGER_DATABASE_URL",
    "LEDGER_KAFKA_BOOTSTRAP",
    "LEDGER_POLICY_FILE",
    "LEDGER_API_TOKENS_FILE",
):
    os.environ.pop(_name, None)

_HOW_TO_START = (
    'start the services with `eval "$(deploy/services up)"` and export '
    "LEDGER_TEST_DATABASE_URL=$LEDGER_DATABASE_URL "
    "LEDGER_TEST_KAFKA_BOOTSTRAP=$LEDGER_KAFKA_BOOTSTRAP, or simply run `deploy/test`"
)


def _require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set: {_HOW_TO_START}", pytrace=False)
    return value


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _safe_name(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit] or "t"


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3.0 loads its protocol schemas with the legacy importlib.resources API.
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


# ---------------------------------------------------------------------------------- PostgreSQL


class _Databases:
    """Creates uniquely named databases and drops all of them at session end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.created: list[str] = []

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.server_url, autocommit=True, connect_timeout=5)

    def create(self, label: str) -> str:
        from psycopg import sql

        dbname = f"ledger_test_{_safe_name(label, 30)}_{uuid.uuid4().hex[:10]}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        self.created.append(dbname)
        return _with_database(self.server_url, dbname)

    def drop_all(self) -> None:
        """Hand every database of the session to a detached process that drops them (a
        DROP DATABASE forces a checkpoint: tests.pg_cleanup)."""
        from tests.pg_cleanup import drop_in_background

        if self.created:
            drop_in_background(self.server_url, list(reversed(self.created)))
        self.created.clear()


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of the test PostgreSQL server (its `ledger` database); checked to answer."""
    url = _require_env("LEDGER_TEST_DATABASE_URL")
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL at LEDGER_TEST_DATABASE_URL={url} does not answer ({exc}): "
            f"{_HOW_TO_START}",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def _pg_databases(pg_server_url: str) -> Iterator[_Databases]:
    databases = _Databases(pg_server_url)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def pg_url(_pg_databases: _Databases) -> str:
    """A fresh PostgreSQL database shared by the whole session (dropped at the end)."""
    return _pg_databases.create("session")


@pytest.fixture
def fresh_pg_url(_pg_databases: _Databases, request: pytest.FixtureRequest) -> Callable[[], str]:
    """Factory: each call returns the URL of a new, empty database (dropped at session end)."""

    def make() -> str:
        return _pg_databases.create(request.node.name)

    return make


# --------------------------------------------------------------------------------------- Kafka


def _quiet_kafka_logs() -> None:
    import logging

    # kafka-python logs every refused connection at WARNING; the fixtures report failures.
    logging.getLogger("kafka").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """host:port of the test Kafka broker; checked with a metadata round trip."""
    bootstrap = _require_env("LEDGER_TEST_KAFKA_BOOTSTRAP")
    _quiet_kafka_logs()
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="csp-ledger-tests",
            bootstrap_timeout_ms=10_000,
            request_timeout_ms=10_000,
        )
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:
        pytest.fail(
            f"Kafka at LEDGER_TEST_KAFKA_BOOTSTRAP={bootstrap} does not answer "
            f"({type(exc).__name__}: {exc}): {_HOW_TO_START}",
            pytrace=False,
        )
    return bootstrap


@pytest.fixture
def kafka_topics(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """Factory `make(name, partitions=4) -> str`: a new uniquely named topic for this test.

    The name starts with the test's name (handy in broker logs); the topics are deleted
    afterwards, best effort.
    """
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=kafka_bootstrap,
        client_id="csp-ledger-tests",
        bootstrap_timeout_ms=10_000,
        request_timeout_ms=15_000,
    )
    created: list[str] = []
    prefix = _safe_name(request.node.name, 60).replace("_", "-")

    def make(name: str, partitions: int = 4) -> str:
        topic = f"{prefix}.{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.{uuid.uuid4().hex[:8]}"
        admin.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": 1}},
            timeout_ms=15_000,
            wait_for_metadata=True,
        )
        created.append(topic)
        return topic

    yield make

    try:
        if created:
            admin.delete_topics(created, timeout_ms=15_000, raise_errors=False)
    except Exception:  # cleanup is best effort: topic names are unique anyway
        pass
    finally:
        admin.close()
