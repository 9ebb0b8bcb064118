"""`omnitrail deadletter list` / `replay` on real engines with a running worker.

Replay re-produces each pending dead letter once to its origin topic; what still fails is dead-lettered again as a
new record with its current reason; what a fixed worker can process reaches the projections once and is no longer
listed. The replay cursor is the committed offsets (and commit metadata) of ``<group>-deadletter-replay``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Producer

from schemas.codec import encode
from services.deadletter import decode_offsets, encode_offsets, replay_group
from tests.support.events import journey
from services.reader import read_timeline
from tests.support.kafka import end_offsets, produce_raw, read_topic
from tests.support.wait import wait_until
from tests.support.worker import run_cli

pytestmark = pytest.mark.integration


def cli_ok(settings, *args: str) -> str:
    result = run_cli(settings, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def listed(settings, *args: str) -> list[dict]:
    return orjson.loads(cli_ok(settings, "deadletter", "list", "--json", *args))


def short_type_name(event) -> bytes:
    """A structured event whose producer wrote the short type name: a producer bug a fix would correct."""
    obj = orjson.loads(encode(event, "structured").value)
    obj["type"] = obj["type"].split(".")[1]
    return orjson.dumps(obj)


def test_replay_reproduces_each_dead_letter_once_and_what_still_fails_is_dead_lettered_again(settings, worker):
    topic = settings.channel_topic("survey")  # nothing else is produced to this topic in this test
    structured = [("content-type", b"application/cloudevents+json")]
    bad = [(b"dl-1", short_type_name(journey("dl-1")[9]), structured + [("x-trace", b"t-1")]),
           (b"dl-2", short_type_name(journey("dl-2")[9]), structured),
           (b"dl-3", b'{"truncated": ', [])]
    produce_raw(settings.kafka_bootstrap, topic, bad)

    # (a) the bad records land in the dead-letter topic; `list` shows them with origin and reason
    first = wait_until(lambda: (rows := listed(settings)) and len(rows) >= 3 and rows)
    assert len(first) == 3
    assert {r["key"] for r in first} == {"dl-1", "dl-2", "dl-3"}
    assert {r["topic"] for r in first} == {topic}
    by_key = {r["key"]: r for r in first}
    assert "type must be a full versioned type" in by_key["dl-1"]["reason"]
    assert "not valid UTF-8 JSON" in by_key["dl-3"]["reason"]
    assert by_key["dl-3"]["value_size"] == len(bad[2][1]) and by_key["dl-3"]["preview"] == '{"truncated": '
    assert all(r["dead_lettered_at"] for r in first)
    assert [r["key"] for r in listed(settings, "--reason", "NOT VALID utf-8")] == ["dl-3"]
    assert listed(settings, "--since", "2999-01-01") == []
    table = cli_ok(settings, "deadletter", "list")
    assert "dl-1" in table and "Pending dead letters" in table

    # (b) replay: each record goes back to its origin topic once, original headers kept, dlq_* headers replaced
    out = cli_ok(settings, "deadletter", "replay")
    assert "replayed 3 dead letter(s)" in out and f"{topic}: 3" in out
    assert sum(end_offsets(settings.kafka_bootstrap, topic, settings.partitions)) == 6  # 3 originals + 3 replays
    records = read_topic(settings.kafka_bootstrap, topic, expect=6)
    replays = [m for m in records if any(k == "dlq_replayed_from" for k, _ in m.headers() or [])]
    assert sorted(m.value() for m in replays) == sorted(v for _, v, _ in bad)
    assert sorted(dict(m.headers())["dlq_replayed_from"].decode() for m in replays) == sorted(
        f"{r['dlq_partition']}:{r['dlq_offset']}" for r in first)
    for m in replays:
        names = [k for k, _ in m.headers()]
        assert names[-1] == "dlq_replayed_from" and [k for k in names if k.startswith("dlq_")] == names[-1:]
        original = next(h for k, _, h in bad if k == m.key())
        assert m.headers()[:-1] == original

    # the worker still cannot process them: dead-lettered again, as new records with their current reason,
    # pointing at the replayed copies; the earlier dead letters are no longer listed
    replay_offsets = {(m.partition(), m.offset()) for m in replays}
    again = wait_until(lambda: (rows := listed(settings)) and {(r["partition"], r["offset"]) for r in rows}
                       == replay_offsets and rows)
    assert len(again) == 3
    assert not {(r["dlq_partition"], r["dlq_offset"]) for r in again} & {
        (r["dlq_partition"], r["dlq_offset"]) for r in first}
    assert {r["key"]: r["reason"] for r in again} == {r["key"]: r["reason"] for r in first}
    assert worker.alive()


def test_a_fixed_record_is_replayed_once_reaches_the_timeline_and_since_leaves_older_ones_pending(settings, worker):
    old_event, new_event = journey("dl-old")[2], journey("dl-new")[2]  # CallStarted on the phone channel
    origin = settings.channel_topic("phone")

    def dead_letter(event, at: datetime):
        record = encode(event)  # valid now; dead-lettered by an older worker that lacked an upcaster
        return record.key, record.value, record.headers + [
            ("dlq_reason", b"invalid event: type: unknown event type 'omnitrail.CallStarted.v1'"),
            ("dlq_topic", origin.encode()), ("dlq_partition", b"0"), ("dlq_offset", b"41"),
            ("dlq_at", at.isoformat().encode())]

    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    for key, value, headers in (dead_letter(old_event, datetime(2020, 1, 1, tzinfo=UTC)),
                                dead_letter(new_event, datetime.now(UTC))):
        producer.produce(settings.deadletter_topic, value, key, partition=0, headers=headers)  # old one first
    assert producer.flush(30) == 0

    assert [r["key"] for r in listed(settings)] == ["dl-old", "dl-new"]
    assert [r["key"] for r in listed(settings, "--since", "2024-01-01")] == ["dl-new"]

    # --since: only the newer one is replayed; the older one, in front of it in the partition, stays pending
    out = cli_ok(settings, "deadletter", "replay", "--since", "2024-01-01")
    assert "replayed 1 dead letter(s)" in out and f"{origin}: 1" in out and "left pending: 1" in out
    rows = wait_until(lambda: read_timeline(settings, "dl-new"))
    assert [r["event_id"] for r in rows] == [new_event.id]
    assert [r["key"] for r in listed(settings)] == ["dl-old"]
    # the cursor stays at the pending record and remembers the replayed one after it: not replayed twice
    assert "replayed 0 dead letter(s)" in cli_ok(settings, "deadletter", "replay", "--since", "2024-01-01")

    # then everything: the older one is replayed, once
    assert "replayed 1 dead letter(s)" in cli_ok(settings, "deadletter", "replay")
    rows = wait_until(lambda: read_timeline(settings, "dl-old"))
    assert [r["event_id"] for r in rows] == [old_event.id]
    assert listed(settings) == []
    # (c) nothing pending: nothing replayed
    assert "replayed 0 dead letter(s)" in cli_ok(settings, "deadletter", "replay")

    assert sum(end_offsets(settings.kafka_bootstrap, origin, settings.partitions)) == 2  # one replay each
    replays = read_topic(settings.kafka_bootstrap, origin, expect=2)
    assert sorted(dict(m.headers())["dlq_replayed_from"] for m in replays) == [b"0:0", b"0:1"]
    assert [r["event_id"] for r in read_timeline(settings, "dl-new")] == [new_event.id]
    assert [r["event_id"] for r in orjson.loads(cli_ok(settings, "timeline", "dl-old", "--json"))] == [old_event.id]
    assert replay_group(settings) == f"{settings.consumer_group}-deadletter-replay"


def test_a_missing_deadletter_topic_is_an_error_and_is_not_created(settings):
    other = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "-none"})
    result = run_cli(other, "deadletter", "list")
    assert result.returncode == 1 and "does not exist" in result.stderr
    result = run_cli(other, "deadletter", "replay")
    assert result.returncode == 1 and "does not exist" in result.stderr
    from confluent_kafka.admin import AdminClient
    assert other.deadletter_topic not in AdminClient(
        {"bootstrap.servers": settings.kafka_bootstrap}).list_topics(timeout=10).topics


def test_cursor_metadata_ranges_round_trip():
    assert encode_offsets([9, 3, 4, 5, 5]) == "3-5,9"
    assert encode_offsets([]) == ""
    assert decode_offsets("3-5,9") == {3, 4, 5, 9}
    assert decode_offsets(None) == decode_offsets("") == decode_offsets("garbage") == set()
    offsets = {0, 2, 3, 4, 10, 11, 40}
    assert decode_offsets(encode_offsets(offsets)) == offsets


def test_a_dead_letter_that_can_never_be_fixed_is_discarded_into_the_audit_trail(settings, worker):
    topic = settings.channel_topic("webchat")
    produce_raw(settings.kafka_bootstrap, topic, [(b"dl-junk", b"not json at all", []), (b"dl-keep", b"{", [])])
    rows = wait_until(lambda: (r := listed(settings)) and len(r) >= 2 and r)
    junk = next(r for r in rows if r["key"] == "dl-junk")
    ref = f"{junk['dlq_partition']}:{junk['dlq_offset']}"

    refused = run_cli(settings, "deadletter", "discard", "0:99999", "--reason", "garbage")
    assert refused.returncode == 1 and "not pending dead letters: 0:99999" in refused.stderr
    assert run_cli(settings, "deadletter", "discard", ref, "--reason", " ").returncode == 1  # a reason is required
    out = cli_ok(settings, "deadletter", "discard", ref, "--reason", "test garbage from a load test")
    assert "discarded 1 dead letter(s)" in out

    assert [r["key"] for r in listed(settings)] == ["dl-keep"]  # no longer pending, the other one still is
    [kept] = read_topic(settings.kafka_bootstrap, settings.topics.discarded, expect=1)
    headers = dict(kept.headers())
    assert kept.value() == b"not json at all" and kept.key() == b"dl-junk"
    assert headers["discard_reason"] == b"test garbage from a load test" and headers["discarded_from"] == ref.encode()
    assert b"not valid UTF-8 JSON" in headers["dlq_reason"]  # why it was dead-lettered, kept too
    out = cli_ok(settings, "deadletter", "replay")  # a replay never sends a discarded record back
    assert "replayed 1 dead letter(s)" in out
