"""The store port, migrations, engine + sink and timeline query against a real ClickHouse (chdb, or a server)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from projections.engine import Applied, Engine, Record
from projections.migrate import Migration, discover, migrate
from projections.origin import Origin
from projections.registry import PROJECTIONS, Projection
from projections.sink import Sink
from projections.store import connect
from projections.timeline.queries import customer_timeline
from tests.support.events import journey

pytestmark = pytest.mark.integration


def test_migrations_apply_once_and_refuse_edits(bare_client):
    applied = migrate(bare_client)
    assert [(m.projection, m.version) for m in applied] == [(m.projection, m.version) for m in discover()]
    assert ("timeline", 1) in {(m.projection, m.version) for m in applied}
    assert migrate(bare_client) == []
    first = discover()[0]
    edited = Migration(first.projection, first.version, first.name, first.sql + "\n-- edited")
    with pytest.raises(RuntimeError, match="never edited"):
        migrate(bare_client, [edited])


def store(sink: Sink, engine: Engine, events, offsets=None, states=None) -> Applied:
    """Apply events read at the given offsets of topic "t" (default 0, 1, ...) and store the rows."""
    offsets = range(len(events)) if offsets is None else offsets
    records = [Record(e, Origin("omnitrail.x", 0, o), Origin("omnitrail.x", 0, o)) for e, o in zip(events, offsets)]
    applied = engine.apply(records, {} if states is None else states)
    sink.write(engine.tables(applied))
    return applied


def test_duplicate_deliveries_read_once_in_time_order(bare_client):
    migrate(bare_client)
    events = journey("s-1") + journey("s-2")
    sink, engine = Sink(bare_client), Engine()
    assert store(sink, engine, events).failed == {}
    # Redelivered after a crash, in another batch, to a worker that lost its states: the rows collapse.
    store(sink, engine, list(reversed(events[:4])), offsets=[3, 2, 1, 0])
    rows = customer_timeline(bare_client, "s-1")
    assert [r["event_id"] for r in rows] == [e.id for e in journey("s-1")]
    assert rows[0]["offset"] == 0 and rows[0]["topic"] == "omnitrail.x"
    since = journey("s-1")[5].time
    assert [r["event_id"] for r in customer_timeline(bare_client, "s-1", since)] == [e.id for e in journey("s-1")[5:]]


def test_sink_retries_until_the_store_accepts(bare_client):
    # The table is missing at first (as after a failed write); the sink must wait, not drop the batch.
    events = journey("s-3")
    creator = threading.Timer(0.5, migrate, args=(bare_client,))
    creator.start()
    started = time.monotonic()
    store(Sink(bare_client, max_backoff=0.2), Engine(), events)
    assert time.monotonic() - started >= 0.4
    assert len(customer_timeline(bare_client, "s-3")) == len(events)


def test_a_second_process_cannot_open_an_embedded_store_in_use(bare_client, store_url):
    if not store_url.startswith("chdb://"):
        pytest.skip("only an embedded store is owned by one process")
    code = ("from projections.store import StoreLocked, connect\n"
            f"try:\n    connect({store_url!r})\nexcept StoreLocked as e:\n    print('locked:', e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "locked:" in result.stdout and "is the worker running?" in result.stdout


def test_unknown_url_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match="use chdb:///abs/path or http"):
        connect("postgres://localhost/x")


def test_an_event_a_projection_cannot_fold_is_reported_and_the_rest_written(bare_client):
    migrate(bare_client)
    timeline = PROJECTIONS["timeline"]

    def fragile(event, origin):
        if event.name == "CallEnded":
            raise ValueError("boom")
        return timeline.project(event, origin)

    events = journey("s-4")
    engine = Engine([Projection("fragile", timeline.table, timeline.schema, fragile)], [])
    failed = store(Sink(bare_client), engine, events).failed
    assert failed == {4: "projection fragile failed: ValueError: boom"}
    assert len(customer_timeline(bare_client, "s-4")) == len(events) - 1
