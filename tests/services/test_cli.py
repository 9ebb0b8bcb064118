"""End to end through the `omnitrail` command line: emit -> worker -> timeline, on real engines."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.support.events import journey
from tests.support.kafka import end_offsets
from tests.support.wait import wait_until
from tests.support.worker import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def jsonl(events) -> str:
    return "\n".join(e.model_dump_json() for e in events) + "\n"


def timeline_json(settings, customer: str) -> list[dict]:
    result = run_cli(settings, "timeline", customer, "--json")
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def test_emitted_events_show_in_the_timeline_complete_ordered_and_once(settings, worker, tmp_path):
    events = {c: journey(c) for c in ("cli-1", "cli-2", "cli-3")}
    shuffled = [e for trio in zip(*events.values()) for e in reversed(trio)]  # interleaved customers
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(shuffled))
    started = time.monotonic()
    assert run_cli(settings, "emit", "--file", str(path)).returncode == 0
    # The same event emitted twice, once more from options: it must still show once.
    again = events["cli-1"][3]
    result = run_cli(settings, "emit", "--type", "PriceQuoted", "--customer", "cli-1", "--channel", "phone",
                     "--id", again.id, "--time", again.time.isoformat(), "--data",
                     again.data.model_dump_json())
    assert result.returncode == 0, result.stderr
    # The CLI's default source differs from the test events' source, so use the file path for a true duplicate.
    assert run_cli(settings, "emit", "--file", str(path)).returncode == 0

    for customer, expected in events.items():
        def mine_if_complete():
            rows = timeline_json(settings, customer)
            mine = [r for r in rows if r["source"].startswith("/test/")]
            return len(mine) >= len(expected) and (rows, mine)

        rows, mine = wait_until(mine_if_complete, timeout=15)
        assert [r["event_id"] for r in mine] == [e.id for e in expected]
        assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
        assert len({r["channel"] for r in rows}) >= 4
    assert time.monotonic() - started < 30
    # the option-emitted event has the CLI's own source: a distinct event, shown once, at its time
    cli_rows = [r for r in timeline_json(settings, "cli-1") if r["source"] == settings.source]
    assert [r["event_id"] for r in cli_rows] == [again.id]


def test_invalid_input_names_every_bad_field_and_publishes_nothing(settings, tmp_path):
    good = journey("bad-1")[0].model_dump(mode="json")
    bad = {**good, "id": "x2", "data": {**good["data"], "letter_id": ""}, "channel": "pigeon"}
    unknown = {**good, "id": "x3", "type": "LetterEaten"}
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(orjson.dumps(o).decode() for o in (good, bad, unknown)) + "\n{not json\n")
    before = end_offsets(settings.kafka_bootstrap, settings.channel_topic("mail"), settings.partitions)

    result = run_cli(settings, "emit", "--file", str(path))
    assert result.returncode == 1
    for expected in ("line 2: channel", "line 2: data.letter_id", "line 3: type: unknown event type",
                     "line 4: not valid JSON", "nothing was published"):
        assert expected in result.stderr
    result = run_cli(settings, "emit", "-t", "FeedbackGiven", "-c", "bad-1", "--channel", "survey",
                     "--data", '{"survey_id": "s", "metric": "nps", "score": 11}')
    assert result.returncode == 1 and "outside the nps scale 0..10" in result.stderr
    assert end_offsets(settings.kafka_bootstrap, settings.channel_topic("mail"), settings.partitions) == before


def test_timeline_reads_the_store_directly_when_no_worker_runs(settings):
    result = run_cli(settings, "timeline", "nobody", "--json")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == []
    table = run_cli(settings, "timeline", "nobody")
    assert "Timeline of nobody (0 events)" in table.stdout


@pytest.mark.parametrize("command", ["timeline", "journeys"])
def test_customer_ids_that_look_like_markup_are_shown_as_they_are(settings, command):
    for customer in ("[/x]", "[blink red]cust"):
        result = run_cli(settings, command, customer)
        assert result.returncode == 0, result.stderr
        assert f"of {customer} (0" in result.stdout
    flags = run_cli(settings, "flags", "--customer", "[/x]")
    assert flags.returncode == 0 and "Address flags of [/x] (0)" in flags.stdout, flags.stderr


def test_sql_of_an_empty_result_is_an_empty_json_list(settings):
    result = run_cli(settings, "sql", "SELECT customer_id FROM timeline WHERE customer_id = 'nobody'", "--json")
    assert result.returncode == 0 and orjson.loads(result.stdout) == [], result.stdout + result.stderr


def test_timeline_since_takes_rfc3339_and_rejects_nonsense(settings):
    assert run_cli(settings, "timeline", "nobody", "--since", "2026-11-01T00:00:00Z").returncode == 0
    bad = run_cli(settings, "timeline", "nobody", "--since", "yesterday-ish")
    assert bad.returncode == 1 and "not an RFC 3339 time" in bad.stderr


# --- what a newcomer hits next (issue 10) -----------------------------------------------------------------------------
def test_emit_prints_the_ids_it_published(settings):
    result = run_cli(settings, "emit", "-t", "CallStarted", "-c", "ids-1", "--channel", "phone", "--id", "call-ids-1",
                     "--data", '{"call_id": "c-1"}', "--json")
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == [{"id": "call-ids-1", "source": settings.source, "type":
                                            "omnitrail.CallStarted.v1", "subject": "ids-1", "channel": "phone"}]
    table = run_cli(settings, "emit", "-t", "CallStarted", "-c", "ids-1", "--channel", "phone", "--data",
                    '{"call_id": "c-2"}')
    assert table.returncode == 0 and "published 1 event(s)" in table.stdout and "omnitrail.CallStarted.v1" in table.stdout


@pytest.mark.parametrize("args", [("emit", "-t", "CallStarted", "-c", "x", "--channel", "phone", "--data",
                                   '{"call_id": "1"}'), ("topics",), ("alerts",), ("deadletter", "list")])
def test_an_unreachable_broker_is_named_within_seconds(tmp_path, args):
    from services.settings import Settings
    from services.stack import free_port

    settings = Settings(state_dir=tmp_path / "state", kafka_bootstrap=f"127.0.0.1:{free_port()}",
                        api_port=free_port())
    started = time.monotonic()
    result = run_cli(settings, *args)
    assert result.returncode == 1
    assert time.monotonic() - started < 15  # librdkafka alone waits 30 s and more
    assert "cannot reach Kafka" in result.stderr and "omnitrail stack up" in result.stderr


def test_a_read_with_kafka_down_says_so_in_one_line(tmp_path):
    from services.settings import Settings
    from services.stack import free_port

    settings = Settings(state_dir=tmp_path / "state", kafka_bootstrap=f"127.0.0.1:{free_port()}",
                        api_port=free_port())
    result = run_cli(settings, "timeline", "nobody")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [  # librdkafka's own connection errors go to the log, not the terminal
        f"warning: cannot tell whether this is current: Kafka is unreachable at {settings.kafka_bootstrap}"]


def test_an_unknown_channel_is_named_with_the_known_ones(settings):
    result = run_cli(settings, "metrics", "--channel", "pigeon")
    assert result.returncode == 2 and "unknown channel 'pigeon'" in result.stderr and "twitter" in result.stderr


def test_reads_say_when_the_projections_are_behind_the_log(settings):
    from services.publisher import Publisher

    with Publisher(settings) as publisher:  # no worker runs: nothing gets projected
        publisher.publish_many(journey("behind-1"))
    result = run_cli(settings, "timeline", "behind-1")
    assert result.returncode == 0
    assert "the projections are 10 events behind the log" in result.stderr and "omnitrail worker" in result.stderr


def test_timeline_times_carry_their_zone(settings, worker):
    assert run_cli(settings, "emit", "-t", "CallStarted", "-c", "tz-1", "--channel", "phone", "--data",
                   '{"call_id": "c-1"}', "--time", "2026-11-01T10:00:00+01:00").returncode == 0
    rows = wait_until(lambda: timeline_json(settings, "tz-1"), timeout=15)
    assert rows[0]["time"] == "2026-11-01T09:00:00+00:00"
    assert "2026-11-01 09:00:00 UTC" in run_cli(settings, "timeline", "tz-1").stdout


def test_the_demo_names_the_setting_when_its_ports_are_taken(tmp_path):
    import socket

    from services.settings import Settings
    from services.stack import free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(state_dir=tmp_path / "state", kafka_bootstrap=f"127.0.0.1:{free_port()}", api_port=port)
        result = run_cli(settings, "demo", "--no-keep-running")
    assert result.returncode == 1 and "OMNITRAIL_API_PORT" in result.stderr and "Traceback" not in result.stderr
