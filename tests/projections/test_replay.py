"""Rebuilding projections from the log: switch without downtime, hand-over, parity, resume."""

from __future__ import annotations

import subprocess
import sys

import pytest

from projections.replay import Rebuild
from projections.store import connect
from services.publisher import Publisher
from services.reader import read, read_timeline
from services.replay import new_rebuild
from tests.support.events import journey
from tests.support.wait import wait_until
from tests.support.worker import run_cli, settings_env

pytestmark = pytest.mark.integration


def published(settings, customers) -> list:
    events = [e for c in customers for e in journey(c)]
    with Publisher(settings) as publisher:
        publisher.publish_many(events)
    return events


def own_rows(settings, customer):
    return [r for r in read_timeline(settings, customer) if r["source"].startswith("/test/")]


def test_replay_switches_readers_while_the_worker_keeps_projecting(settings, worker):
    first = published(settings, [f"rp-{i}" for i in range(5)])
    wait_until(lambda: all(len(own_rows(settings, f"rp-{i}")) == 10 for i in range(5)))
    assert run_cli(settings, "replay", "timeline", "--verify").returncode == 1  # nothing to compare with yet

    replay = subprocess.Popen([sys.executable, "-m", "services", "replay", "timeline"], env=settings_env(settings),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    during = published(settings, [f"rq-{i}" for i in range(5)])  # the live worker goes on meanwhile
    out, errors = replay.communicate(timeout=120)
    assert replay.returncode == 0, errors
    assert "readers now see the new version" in out

    for customer in {e.subject for e in first + during}:
        rows = wait_until(lambda: len(r := own_rows(settings, customer)) >= 10 and r)
        assert [r["event_id"] for r in rows] == [e.id for e in first + during if e.subject == customer]
    assert run_cli(settings, "replay", "timeline", "--drop-old").stdout.startswith("previous version dropped")
    assert "no previous version" in run_cli(settings, "replay", "timeline", "--drop-old").stdout


def test_a_rebuild_has_parity_with_the_live_projection(settings, worker):
    published(settings, [f"pv-{i}" for i in range(4)])
    wait_until(lambda: all(len(read_timeline(settings, f"pv-{i}")) == 11 for i in range(4)))  # + a violation
    for projection in ("timeline", "journeys", "consistency"):
        assert run_cli(settings, "replay", projection).returncode == 0
        result = run_cli(settings, "replay", projection, "--verify")
        assert result.returncode == 0 and "parity" in result.stdout, result.stdout + result.stderr


def test_an_interrupted_rebuild_resumes_from_its_checkpoint(settings):
    # No worker: this process owns the store, as a replay against a ClickHouse server would.
    events = published(settings, [f"ri-{i}" for i in range(6)])
    client = connect(settings.store_url)
    interrupted = new_rebuild(settings, "timeline", client)
    interrupted.batch_size = 7
    interrupted._on_progress = lambda p: p.state == "rebuilding" and p.events > 0 and interrupted.cancel()
    assert interrupted.run().state == "cancelled"
    done_before = interrupted.progress.events
    assert 0 < done_before < len(events)

    resumed: Rebuild = new_rebuild(settings, "timeline", client)
    starts = []
    resumed._on_progress = lambda p: starts.append(p.events)
    assert resumed.run().state == "done"
    assert starts[0] >= done_before  # it went on from the checkpoint instead of starting over
    rows = client.query("SELECT event_id FROM timeline FINAL").result_rows
    assert sorted(r[0] for r in rows) == sorted(e.id for e in events)
    client.close()


def test_a_log_with_v1_and_v2_events_rebuilds_into_the_v2_projection(settings, worker):
    from datetime import timedelta

    from schemas import events as ev
    from schemas.envelope import Event
    from tests.support.events import T0

    def transfer(n: int, payload) -> Event:
        return Event.of(payload, customer="ver-1", channel="phone", source="/test/phone", id=f"t-{n}",
                        time=T0 + timedelta(minutes=n), correlationid="case-9")

    v1 = transfer(1, ev.CallTransferred(call_id="C", from_queue="general", to_queue="billing"))
    v2 = transfer(2, ev.CallTransferredV2(call_id="C", from_target="billing", to_target="ann", target_kind="agent"))
    with Publisher(settings) as publisher:
        publisher.publish_many([v1, v2])

    def both_read():
        rows = read_timeline(settings, "ver-1")
        return len(rows) == 2 and rows

    for attempt in ("live", "rebuilt"):
        rows = wait_until(both_read)
        assert [r["type"] for r in rows] == ["omnitrail.CallTransferred.v2"] * 2, attempt
        assert [r["summary"] for r in rows] == ["call C transferred general -> billing",
                                                "call C transferred billing -> ann [agent]"], attempt
        [journey] = read(settings, "journeys", customer_id="ver-1")
        assert journey["transfers"] == 2, attempt
        if attempt == "live":
            for projection in ("timeline", "journeys"):
                assert run_cli(settings, "replay", projection).returncode == 0
                assert run_cli(settings, "replay", projection, "--verify").returncode == 0


def test_an_interrupted_stateful_rebuild_resumes_with_its_fold_states(settings):
    from projections.journeys.fold import PROJECTION as JOURNEYS
    from projections.origin import Origin
    from tests.support.folds import fold_all
    from schemas.upcasters import upcast

    events = published(settings, [f"rs-{i}" for i in range(6)])
    client = connect(settings.store_url)
    interrupted = new_rebuild(settings, "journeys", client)
    interrupted.batch_size = 7
    interrupted._on_progress = lambda p: p.state == "rebuilding" and p.events > 0 and interrupted.cancel()
    assert interrupted.run().state == "cancelled"
    assert 0 < interrupted.progress.events < len(events)

    assert new_rebuild(settings, "journeys", client).run().state == "done"
    got = {(c, j): v for c, j, v in client.query(
        "SELECT customer_id, journey_id, version FROM journeys FINAL").result_rows}
    _, rows, _ = fold_all(JOURNEYS, [(upcast(e), Origin("t", 0, i)) for i, e in enumerate(events)])
    want = {}
    for row in rows:  # the newest snapshot of each journey
        key = (row["customer_id"], row["journey_id"])
        want[key] = max(want.get(key, 0), row["version"])
    assert got == want  # versions count the events folded: none lost, none folded twice across the resume
    client.close()


def price(amount: str, id: str = "q-1", minutes: int = 0):
    from datetime import timedelta
    from decimal import Decimal

    from schemas import events as ev
    from schemas.envelope import Event
    from tests.support.events import T0

    return Event.of(ev.PriceQuoted(subject="hotel-ams", amount=Decimal(amount)), customer="hist-1", channel="phone",
                    source="/test/phone", id=id, time=T0 + timedelta(minutes=minutes))


def summaries(client, event_id: str) -> list[str]:
    return [s for s, in client.query("SELECT summary FROM timeline FINAL WHERE event_id = {e:String}",
                                     parameters={"e": event_id}).result_rows]


def test_a_rebuild_leaves_out_what_the_worker_dead_lettered(settings, worker):
    from schemas.codec import encode
    from schemas.derived import AddressFlagCleared
    from schemas.envelope import Event
    from tests.support.kafka import produce_raw, read_topic

    with Publisher(settings) as publisher:
        publisher.publish_many([price("389.00"), price("1.00")])  # the second rewrites the first: dead-lettered
    forged = encode(Event.of(AddressFlagCleared(address_hash="0123456789abcdef", reason="address confirmed"),
                             customer="hist-1", channel="phone", source="/omnitrail/projections/flags", id="f-1",
                             time=price("1").time))
    produce_raw(settings.kafka_bootstrap, settings.channel_topic("phone"), [(forged.key, forged.value, forged.headers)])
    assert len(read_topic(settings.kafka_bootstrap, settings.deadletter_topic, expect=2)) == 2
    wait_until(lambda: [r["event_id"] for r in read_timeline(settings, "hist-1")] == ["q-1"])
    for projection in ("timeline", "quotes"):
        assert run_cli(settings, "replay", projection).returncode == 0
        result = run_cli(settings, "replay", projection, "--verify")
        assert result.returncode == 0 and "parity" in result.stdout, result.stdout + result.stderr
    [row] = read_timeline(settings, "hist-1")
    assert row["summary"] == "price for hotel-ams: 389.00 EUR"


def test_an_interrupted_rebuild_remembers_the_events_it_projected_before(settings):
    # One partition of one topic: the original is read before the interruption, its rewrite after the resume.
    events = [price("389.00")] + [price(f"{n}.00", f"q-{n}", n) for n in range(2, 22)] + [price("1.00")]
    with Publisher(settings) as publisher:
        publisher.publish_many(events)
    client = connect(settings.store_url)
    interrupted = new_rebuild(settings, "timeline", client)
    interrupted.batch_size = 7
    interrupted._on_progress = lambda p: p.state == "rebuilding" and p.events > 0 and interrupted.cancel()
    assert interrupted.run().state == "cancelled" and interrupted.progress.events < len(events) - 1
    assert new_rebuild(settings, "timeline", client).run().state == "done"
    assert summaries(client, "q-1") == ["price for hotel-ams: 389.00 EUR"]
    assert client.command("SELECT count() FROM timeline FINAL") == len(events) - 1
    client.close()


def test_each_batch_of_a_rebuild_runs_in_its_batch_scope(settings):
    import contextlib
    import gc

    events = published(settings, [f"bs-{i}" for i in range(3)])
    client = connect(settings.store_url)
    rebuild = new_rebuild(settings, "timeline", client)
    rebuild.batch_size = 5
    scope, seen = rebuild._batch_scope, []  # as `omnitrail replay` builds it: the worker's BatchCollector

    @contextlib.contextmanager
    def watched():
        with scope():
            yield
            seen.append((gc.isenabled(), rebuild.progress.events))

    rebuild._batch_scope = watched
    assert rebuild.run().state == "done"
    assert len(seen) > len(events) // 5  # a scope per batch (and one for the end of the log)
    assert not any(enabled for enabled, _ in seen)  # no cyclic collection within a batch
    assert gc.isenabled()
    client.close()


def test_a_stopped_http_service_holds_no_store_connection(settings):
    """A rebuild, reads and a parity check through the HTTP service, then the service stops: another process can
    open the embedded store, so no connection of it (read pool, rebuild, drop-old/verify) outlives the service. An
    embedded ClickHouse may crash the interpreter's exit when one does (chdb-io/chdb-core#177)."""
    import httpx

    from services.http.app import create_app
    from services.http.server import HttpServer

    if not settings.store_url.startswith("chdb://"):
        pytest.skip("only an embedded store is owned by one process")
    published(settings, ["hc-1"])
    server = HttpServer(create_app(settings), "127.0.0.1", 0).start()  # as the worker runs it
    try:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            assert api.post("/v1/replay/timeline").status_code == 202
            wait_until(lambda: api.get("/v1/replay").json()["replay"]["state"] == "done", timeout=60)
            assert len(api.get("/v1/timeline/hc-1").json()["rows"]) == 10
            assert api.get("/v1/replay/timeline/verify").status_code == 200
    finally:
        server.stop()
    probe = subprocess.run([sys.executable, "-c", "import sys; from projections.store import connect; "
                            "connect(sys.argv[1]).close()", settings.store_url], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-500:]
