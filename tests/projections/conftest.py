"""A fresh ClickHouse store per test: embedded chdb, or a server container where Docker is enabled."""

import pytest

from projections.migrate import migrate
from projections.store import connect
from tests.support.brokers import running_clickhouse


@pytest.fixture
def store_url(tmp_path):
    with running_clickhouse(tmp_path) as url:
        yield url


@pytest.fixture
def bare_client(store_url):
    """A client on an empty store: no migrations applied."""
    c = connect(store_url)
    yield c
    c.close()


@pytest.fixture
def client(bare_client):
    """A client on a store with every projection's migrations applied."""
    migrate(bare_client)
    return bare_client
