"""Turning what people and files say into events: short names, the ``customer`` alias, defaults, named errors."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas import events as ev
from schemas.derived import DERIVED
from schemas.envelope import InvalidEvent
from services.emit import event_from_input, events_from_jsonl
from services.settings import Settings
from services.stack import free_port
from tests.support.worker import run_cli

SOURCE = "/omnitrail/test"
ADDRESS = {"street": "Damrak", "house_number": "1", "postcode": "1012 LG", "city": "Amsterdam"}


def returned(**kw) -> dict:
    obj = {"type": "MailReturned", "customer": "cust-1", "channel": "mail",
           "data": {"letter_id": "L-1", "address": ADDRESS, "reason": "moved"}}
    obj.update(kw)
    return obj


def problems(obj: object) -> list[str]:
    with pytest.raises(InvalidEvent) as info:
        event_from_input(obj, SOURCE)
    return info.value.problems


# --- event_from_input ---------------------------------------------------------------------------------------------
def test_short_type_name_becomes_the_full_type():
    event = event_from_input(returned(), SOURCE)
    assert event.type == "omnitrail.MailReturned.v1"
    assert isinstance(event.data, ev.MailReturned)
    assert event.data.reason is ev.ReturnReason.MOVED


@pytest.mark.parametrize("payload_type", ev.PAYLOADS, ids=lambda p: p.name)
def test_every_short_name_resolves(payload_type):
    with pytest.raises(InvalidEvent) as info:  # the data is wrong, but the type is understood
        event_from_input({"type": payload_type.name, "customer": "c", "channel": "web", "data": {"x": 1}}, SOURCE)
    assert not any(p.startswith("type:") for p in info.value.problems)
    assert "data.x: Extra inputs are not permitted" in info.value.problems


def test_full_type_name_is_accepted():
    assert event_from_input(returned(type="omnitrail.MailReturned.v1"), SOURCE).type == "omnitrail.MailReturned.v1"


def test_customer_is_an_alias_for_subject():
    event = event_from_input(returned(customer="cust-9"), SOURCE)
    assert event.subject == "cust-9"


def test_subject_is_accepted_too():
    obj = returned()
    del obj["customer"]
    obj["subject"] = "cust-3"
    assert event_from_input(obj, SOURCE).subject == "cust-3"


def test_defaults_are_filled():
    before = datetime.now(UTC)
    event = event_from_input(returned(), SOURCE)
    after = datetime.now(UTC)
    assert event.source == SOURCE
    assert event.specversion == "1.0"
    assert event.datacontenttype == "application/json"
    assert event.dataschema == "urn:omnitrail:schema:omnitrail.MailReturned.v1"
    assert uuid.UUID(event.id).version == 4
    assert before - timedelta(seconds=1) <= event.time <= after + timedelta(seconds=1)
    assert event.time.utcoffset() == timedelta(0)
    assert event.correlationid is None and event.causationid is None


def test_each_input_gets_its_own_id():
    assert event_from_input(returned(), SOURCE).id != event_from_input(returned(), SOURCE).id


def test_given_attributes_are_kept():
    event = event_from_input(returned(id="evt-7", time="2024-05-01T09:30:00+02:00", source="/elsewhere",
                                      dataschema="urn:x", correlationid="j-1", causationid="evt-6"), SOURCE)
    assert event.id == "evt-7"
    assert event.time == datetime(2024, 5, 1, 7, 30, tzinfo=UTC)
    assert event.source == "/elsewhere"
    assert event.dataschema == "urn:x"
    assert (event.correlationid, event.causationid) == ("j-1", "evt-6")


def test_input_is_not_changed():
    obj = returned()
    before = copy.deepcopy(obj)
    event_from_input(obj, SOURCE)
    assert obj == before


def test_unknown_short_name():
    [problem] = problems(returned(type="MailEaten"))
    assert problem.startswith("type: unknown event type 'MailEaten'")
    assert "omnitrail.MailReturned.v1" in problem  # lists what is known


def test_unknown_version():
    [problem] = problems(returned(type="omnitrail.MailReturned.v9"))
    assert problem.startswith("type: unknown event type 'omnitrail.MailReturned.v9'")


def test_missing_type():
    obj = returned()
    del obj["type"]
    assert problems(obj) == ["type: missing or not a string"]


def test_missing_customer():
    obj = returned()
    del obj["customer"]
    assert problems(obj) == ["subject: Field required"]


@pytest.mark.parametrize("not_an_object", [[], "MailReturned", 1, None])
def test_non_object(not_an_object):
    [problem] = problems(not_an_object)
    assert "expected a JSON object" in problem


@pytest.mark.parametrize("derived", DERIVED, ids=lambda p: p.name)
@pytest.mark.parametrize("spelled", ["short", "full"])
def test_derived_event_types_are_refused(derived, spelled):
    # The data is left empty: the type alone is reason enough, and the only problem named.
    name = derived.name if spelled == "short" else derived.type_name()
    assert problems({"type": name, "customer": "c", "channel": "mail", "data": {}}) == [
        f"type: {derived.name} is a derived event: only the projection worker publishes it, from what the "
        "projections conclude"]


def test_emit_of_a_derived_event_fails_before_contacting_kafka(tmp_path):
    offline = Settings(state_dir=tmp_path / "state", kafka_bootstrap=f"127.0.0.1:{free_port()}")
    result = run_cli(offline, "emit", "-t", "AddressFlagCleared", "-c", "cust-1", "--channel", "twitter",
                     "--data", '{"address_hash": "0123456789abcdef", "reason": "address confirmed"}')
    assert result.returncode == 1, result.stderr
    assert ("invalid: type: AddressFlagCleared is a derived event: only the projection worker publishes it"
            in result.stderr)
    assert "nothing was published" in result.stderr and "Traceback" not in result.stderr


def test_bad_fields_are_named():
    obj = returned(channel="fax", time="2024-05-01T09:30:00")
    obj["data"] = {"letter_id": "", "address": {**ADDRESS, "city": ""}, "reason": "lost", "extra": 1}
    fields = sorted(p.split(":")[0] for p in problems(obj))
    assert fields == ["channel", "data.address.city", "data.extra", "data.letter_id", "data.reason", "time"]


def test_feedback_off_scale():
    obj = {"type": "FeedbackGiven", "customer": "c", "channel": "survey",
           "data": {"survey_id": "s", "metric": "nps", "score": 11}}
    [problem] = problems(obj)
    assert problem.startswith("data") and "score 11" in problem and "0..10" in problem


# --- events_from_jsonl --------------------------------------------------------------------------------------------
def jsonl(*objs) -> list[str]:
    return [o if isinstance(o, str) else orjson.dumps(o).decode() for o in objs]


def test_jsonl_good_lines():
    events, errors = events_from_jsonl(jsonl(returned(id="a"), returned(id="b", type="CallEnded", channel="phone",
                                                                         data={"call_id": "C",
                                                                               "duration_seconds": 5})), SOURCE)
    assert errors == []
    assert [e.id for e in events] == ["a", "b"]
    assert [e.name for e in events] == ["MailReturned", "CallEnded"]
    assert all(e.source == SOURCE for e in events)


def test_jsonl_blank_lines_are_skipped_but_counted():
    lines = ["", "   ", *jsonl(returned(id="a")), "\t", "\n", *jsonl(returned(id="b", channel="fax"))]
    events, errors = events_from_jsonl(lines, SOURCE)
    assert [e.id for e in events] == ["a"]
    assert len(errors) == 1 and errors[0].startswith("line 6: channel: ")


def test_jsonl_errors_carry_line_numbers_and_fields():
    bad_reason = returned()
    bad_reason["data"] = {**bad_reason["data"], "reason": "lost"}
    lines = jsonl(returned(id="ok-1"), "{not json", bad_reason, returned(type="Nope"), [1, 2],
                  returned(id="ok-2"), returned(customer="", channel="fax"))
    events, errors = events_from_jsonl(lines, SOURCE)
    assert [e.id for e in events] == ["ok-1", "ok-2"]
    assert errors[0].startswith("line 2: not valid JSON")
    assert errors[1].startswith("line 3: data.reason: ")
    assert errors[2].startswith("line 4: type: unknown event type 'Nope'")
    assert errors[3].startswith("line 5: ") and "expected a JSON object" in errors[3]
    assert all(e.startswith("line 7: ") for e in errors[4:])
    assert {e.split(": ")[1] for e in errors[4:]} == {"subject", "channel"}
    assert len(errors) == 6


def test_jsonl_names_the_line_of_a_derived_event():
    flagged = {"type": "omnitrail.AddressFlagged.v1", "customer": "c", "channel": "mail", "data": {}}
    events, errors = events_from_jsonl(jsonl(returned(id="a"), flagged), SOURCE)
    assert [e.id for e in events] == ["a"]
    assert errors == ["line 2: type: AddressFlagged is a derived event: only the projection worker publishes it, "
                      "from what the projections conclude"]


def test_jsonl_accepts_bytes_lines():
    lines = [b"\n", orjson.dumps(returned(id="a")) + b"\n", b"{\xff}\n"]
    events, errors = events_from_jsonl(lines, SOURCE)
    assert [e.id for e in events] == ["a"]
    assert len(errors) == 1 and errors[0].startswith("line 3: not valid JSON")


def test_jsonl_reads_an_open_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(jsonl(returned(id="a"), returned(id="b"))) + "\n\n")
    with path.open() as lines:
        events, errors = events_from_jsonl(lines, SOURCE)
    assert errors == [] and [e.id for e in events] == ["a", "b"]


def test_jsonl_empty_input():
    assert events_from_jsonl([], SOURCE) == ([], [])
