"""Payload models and the CloudEvents envelope: JSON round trips, validation problems named by field, type names."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from tests.schemas.payload_samples import CHANNEL_OF, HOME, SAMPLES
from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event, InvalidEvent, parse_event, schema_urn, typed_event
from schemas.derived import DERIVED
from schemas.registry import BY_TYPE, payload_for

WHEN = datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
ALL = pytest.mark.parametrize("payload_type", ev.PAYLOADS, ids=lambda p: p.type_name())


def sample_event(payload_type: type[ev.Payload], **kw) -> Event:
    args = dict(customer="cust-42", channel=CHANNEL_OF[payload_type], source="/channels/test", id="evt-1",
                time=WHEN, correlationid="journey-7", causationid="evt-0")
    args.update(kw)
    return Event.of(SAMPLES[payload_type], **args)


def valid_obj(payload_type: type[ev.Payload] = ev.FeedbackGiven) -> dict:
    """A valid event as decoded JSON, to be broken one field at a time."""
    return orjson.loads(sample_event(payload_type).model_dump_json())


def problems_of(obj: object) -> list[str]:
    with pytest.raises(InvalidEvent) as info:
        parse_event(obj)
    assert info.value.problems, "InvalidEvent without problems"
    assert str(info.value) == "; ".join(info.value.problems)
    return info.value.problems


# --- the samples themselves ---------------------------------------------------------------------------------------
def test_every_payload_type_has_a_sample():
    assert set(SAMPLES) == set(ev.PAYLOADS), "add a sample to tests/schemas/payload_samples.py for new payloads"
    assert set(CHANNEL_OF) == set(ev.PAYLOADS)


# --- round trips --------------------------------------------------------------------------------------------------
@ALL
def test_payload_round_trips_through_json(payload_type):
    payload = SAMPLES[payload_type]
    assert payload_type.model_validate_json(payload.model_dump_json()) == payload


@ALL
def test_event_round_trips_through_json(payload_type):
    event = sample_event(payload_type)
    text = event.model_dump_json()
    back = parse_event(orjson.loads(text))
    assert back == event
    assert type(back) is type(event) is typed_event(payload_type.type_name())
    assert type(back.data) is payload_type
    assert back.time == WHEN and back.time.utcoffset() == timedelta(0)  # normalised to UTC
    # and through the typed model directly, from the raw JSON text
    assert typed_event(payload_type.type_name()).model_validate_json(text) == event


@ALL
def test_event_of_fills_the_envelope(payload_type):
    event = Event.of(SAMPLES[payload_type], customer="cust-1", channel=Channel.WEB, source="/x")
    assert event.type == payload_type.type_name()
    assert event.dataschema == schema_urn(event.type) == f"urn:omnitrail:schema:{event.type}"
    assert event.specversion == "1.0" and event.datacontenttype == "application/json"
    assert event.subject == "cust-1"
    assert event.name == payload_type.name
    assert event.id and event.time.tzinfo is not None
    assert abs(datetime.now(UTC) - event.time) < timedelta(minutes=1)


def test_event_of_gives_fresh_ids():
    a = Event.of(SAMPLES[ev.CallEnded], customer="c", channel="phone", source="/x")
    b = Event.of(SAMPLES[ev.CallEnded], customer="c", channel="phone", source="/x")
    assert a.id != b.id


def test_events_and_payloads_are_immutable():
    event = sample_event(ev.CallEnded)
    with pytest.raises(ValidationError):
        event.subject = "someone else"
    with pytest.raises(ValidationError):
        event.data.duration_seconds = 1


def test_optional_fields_may_be_absent():
    obj = valid_obj(ev.EmailSent)
    for name in ("dataschema", "correlationid", "causationid"):
        del obj[name]
    del obj["data"]["in_reply_to"]
    event = parse_event(obj)
    assert event.dataschema is event.correlationid is event.causationid is event.data.in_reply_to is None


# --- validation: every problem names its field --------------------------------------------------------------------
@pytest.mark.parametrize(("metric", "score"), [("nps", 11), ("nps", -1), ("ces", 0), ("ces", 8), ("csat", 0),
                                               ("csat", 6)])
def test_feedback_score_off_its_scale_is_rejected(metric, score):
    obj = valid_obj()
    obj["data"].update(metric=metric, score=score)
    [problem] = problems_of(obj)
    assert problem.startswith("data")
    assert f"score {score}" in problem and metric in problem
    low, high = ev.FEEDBACK_SCALE[ev.FeedbackMetric(metric)]
    assert f"{low}..{high}" in problem


@pytest.mark.parametrize(("metric", "score"), [("nps", 0), ("nps", 10), ("ces", 1), ("ces", 7), ("csat", 1),
                                               ("csat", 5)])
def test_feedback_score_on_the_edge_of_its_scale_is_accepted(metric, score):
    obj = valid_obj()
    obj["data"].update(metric=metric, score=score)
    assert parse_event(obj).data.score == score


def test_feedback_score_scale_is_checked_by_the_model_too():
    with pytest.raises(ValidationError, match="outside the nps scale 0..10"):
        ev.FeedbackGiven(survey_id="s", metric="nps", score=11)


def test_unknown_enum_value_is_named():
    obj = valid_obj(ev.MailReturned)
    obj["data"]["reason"] = "eaten_by_dog"
    [problem] = problems_of(obj)
    assert problem.startswith("data.reason: ")
    assert "addressee_unknown" in problem  # tells what is allowed


def test_unknown_feedback_metric_is_named():
    obj = valid_obj()
    obj["data"]["metric"] = "stars"
    [problem] = problems_of(obj)
    assert problem.startswith("data.metric: ")


def test_unknown_literal_is_named():
    obj = valid_obj(ev.IdentityLinked)
    obj["data"]["kind"] = "fax"
    [problem] = problems_of(obj)
    assert problem.startswith("data.kind: ")


def test_extra_payload_field_is_rejected():
    obj = valid_obj()
    obj["data"]["colour"] = "red"
    assert problems_of(obj) == ["data.colour: Extra inputs are not permitted"]


def test_extra_envelope_field_is_rejected():
    obj = valid_obj()
    obj["colour"] = "red"
    assert problems_of(obj) == ["colour: Extra inputs are not permitted"]


def test_extra_nested_field_is_rejected():
    obj = valid_obj(ev.MailSent)
    obj["data"]["address"]["floor"] = "2"
    assert problems_of(obj) == ["data.address.floor: Extra inputs are not permitted"]


def test_missing_nested_field_is_named():
    obj = valid_obj(ev.MailReturned)
    del obj["data"]["address"]["city"]
    assert problems_of(obj) == ["data.address.city: Field required"]


@pytest.mark.parametrize("naive", ["2024-05-01T09:30:00", "2024-05-01 09:30:00"])
def test_naive_time_is_rejected(naive):
    obj = valid_obj()
    obj["time"] = naive
    [problem] = problems_of(obj)
    assert problem.startswith("time: ") and "timezone" in problem


def test_naive_datetime_object_is_rejected_by_event_of():
    with pytest.raises(ValidationError, match="timezone"):
        Event.of(SAMPLES[ev.CallEnded], customer="c", channel="phone", source="/x", time=datetime(2024, 5, 1))


@pytest.mark.parametrize("field", ["subject", "id", "source", "correlationid", "causationid"])
def test_empty_string_attributes_are_rejected(field):
    obj = valid_obj()
    obj[field] = ""
    [problem] = problems_of(obj)
    assert problem.startswith(f"{field}: ")


@pytest.mark.parametrize("field", ["subject", "id", "source", "time", "channel", "data"])
def test_missing_required_attribute_is_named(field):
    obj = valid_obj()
    del obj[field]
    assert problems_of(obj) == [f"{field}: Field required"]


def test_unknown_channel_is_named():
    obj = valid_obj()
    obj["channel"] = "fax"
    [problem] = problems_of(obj)
    assert problem.startswith("channel: ") and "'mail'" in problem


@pytest.mark.parametrize(("field", "value"), [("specversion", "0.3"), ("datacontenttype", "text/plain")])
def test_fixed_attributes_are_checked(field, value):
    obj = valid_obj()
    obj[field] = value
    [problem] = problems_of(obj)
    assert problem.startswith(f"{field}: ")


def test_all_problems_are_reported_at_once():
    obj = valid_obj(ev.MailReturned)
    obj["subject"] = ""
    obj["time"] = "yesterday"
    obj["data"]["reason"] = "lost"
    obj["data"]["letter_id"] = ""
    fields = sorted(p.split(":")[0] for p in problems_of(obj))
    assert fields == ["data.letter_id", "data.reason", "subject", "time"]


def test_data_of_another_type_is_rejected():
    obj = valid_obj(ev.CallEnded)
    obj["data"] = orjson.loads(SAMPLES[ev.MailSent].model_dump_json())
    fields = {p.split(":")[0] for p in problems_of(obj)}
    assert {"data.call_id", "data.duration_seconds", "data.letter_id", "data.address"} <= fields


def test_wrong_payload_value_types_are_named():
    obj = valid_obj(ev.CallEnded)
    obj["data"]["duration_seconds"] = -1
    assert [p.split(":")[0] for p in problems_of(obj)] == ["data.duration_seconds"]
    obj["data"]["duration_seconds"] = "long"
    assert [p.split(":")[0] for p in problems_of(obj)] == ["data.duration_seconds"]


def test_amount_precision_is_checked():
    obj = valid_obj(ev.BookingMade)
    obj["data"]["amount"] = "1.005"
    [problem] = problems_of(obj)
    assert problem.startswith("data.amount: ")


@pytest.mark.parametrize("not_an_object", [[], "event", 3, None])
def test_non_object_is_rejected(not_an_object):
    [problem] = problems_of(not_an_object)
    assert problem.startswith("event: expected a JSON object")


@pytest.mark.parametrize("bad_type", [None, 7])
def test_missing_or_non_string_type_is_rejected(bad_type):
    obj = valid_obj()
    obj["type"] = bad_type
    assert problems_of(obj) == ["type: missing or not a string"]


def test_unknown_type_is_rejected():
    obj = valid_obj()
    obj["type"] = "omnitrail.FeedbackLost.v1"
    [problem] = problems_of(obj)
    assert problem.startswith("type: unknown event type 'omnitrail.FeedbackLost.v1'")


def test_unknown_version_is_rejected():
    obj = valid_obj()
    obj["type"] = "omnitrail.FeedbackGiven.v9"
    [problem] = problems_of(obj)
    assert problem.startswith("type: unknown event type 'omnitrail.FeedbackGiven.v9'")


def test_short_type_name_is_not_a_wire_type():
    obj = valid_obj()
    obj["type"] = "FeedbackGiven"
    [problem] = problems_of(obj)
    assert problem.startswith("type: ") and "omnitrail.FeedbackGiven.v1" in problem


def test_parse_event_does_not_change_its_input():
    obj = valid_obj(ev.MailReturned)
    before = copy.deepcopy(obj)
    parse_event(obj)
    assert obj == before


# --- type names ---------------------------------------------------------------------------------------------------
TYPE_NAME = re.compile(r"^omnitrail\.([A-Z][a-z]+(?:[A-Z][a-z]+)+)\.v([1-9][0-9]*)$")
PAST_TENSE = re.compile(r"(ed|Sent|Made|Given)$")


@ALL
def test_type_name_format(payload_type):
    match = TYPE_NAME.match(payload_type.type_name())
    assert match, payload_type.type_name()
    assert match.group(1) == payload_type.name
    # the first version is the class of that name; a later one adds its version
    assert payload_type.__name__ == payload_type.name + (f"V{payload_type.version}" if payload_type.version > 1 else "")
    assert int(match.group(2)) == payload_type.version


@ALL
def test_names_are_past_tense(payload_type):
    assert PAST_TENSE.search(payload_type.name), f"{payload_type.name} does not read as something that happened"


def test_type_names_and_names_are_unique():
    payloads = ev.PAYLOADS + DERIVED
    type_names = [p.type_name() for p in payloads]
    assert len(set(type_names)) == len(type_names)
    assert len({(p.name, p.version) for p in payloads}) == len(payloads)
    for name in {p.name for p in payloads}:  # versions of a type are numbered 1, 2, ... without gaps
        versions = {p.version for p in payloads if p.name == name}
        assert versions == set(range(1, max(versions) + 1)), name
    assert set(BY_TYPE) == set(type_names)
    assert all(BY_TYPE[p.type_name()] is p for p in payloads)


@ALL
def test_payload_for_accepts_full_and_short_names(payload_type):
    assert payload_for(payload_type.type_name()) is payload_type
    newest = max((p for p in ev.PAYLOADS if p.name == payload_type.name), key=lambda p: p.version)
    assert payload_for(payload_type.name) is newest  # a short name means the latest version


@pytest.mark.parametrize("name", ["Nothing", "omnitrail.Nothing.v1", "omnitrail.CallEnded.v2", "callended", ""])
def test_payload_for_rejects_unknown_names(name):
    with pytest.raises(KeyError, match="unknown event type"):
        payload_for(name)


def test_payload_for_short_name_picks_the_latest_version(monkeypatch):
    class CallEnded(ev.CallEnded):  # a hypothetical v2 of the same event
        version = 2

    monkeypatch.setattr(ev, "PAYLOADS", (*ev.PAYLOADS, CallEnded))
    import schemas.registry as registry
    monkeypatch.setattr(registry, "PAYLOADS", ev.PAYLOADS)
    monkeypatch.setitem(registry.BY_TYPE, CallEnded.type_name(), CallEnded)
    assert CallEnded.type_name() == "omnitrail.CallEnded.v2"
    assert payload_for("CallEnded") is CallEnded
    assert payload_for("omnitrail.CallEnded.v1") is ev.CallEnded


def test_typed_event_is_cached_per_type():
    assert typed_event("omnitrail.CallEnded.v1") is typed_event("omnitrail.CallEnded.v1")
    assert typed_event("omnitrail.CallEnded.v1") is not typed_event("omnitrail.CallStarted.v1")


def test_address_one_line():
    assert HOME.one_line() == "Damrak 1a, 1012 LG Amsterdam, NL"


def test_every_channel_is_lowercase_alphanumeric():
    assert all(re.fullmatch(r"[a-z0-9]+", c.value) for c in Channel)
    assert len({c.value for c in Channel}) == len(Channel)
