"""The producer side refuses the inputs the worker would dead-letter, before anything reaches Kafka.

The same generated bad inputs as the worker's fuzz test (``tests.support.fuzz``), as decoded JSON: ``parse_event``
raises ``InvalidEvent`` naming the bad field, the SDK's models cannot even be built from them, ``events_from_jsonl``
names the line and the field, and ``omnitrail emit --file`` fails with those messages while its broker address is
a closed port: it must fail on validation, without trying to connect.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import orjson
import pytest
from pydantic import ValidationError

from schemas.envelope import InvalidEvent, parse_event, typed_event
from schemas.registry import BY_TYPE
from services.emit import events_from_jsonl
from services.publisher import Publisher
from services.settings import Settings
from services.stack import free_port
from tests.support.events import journey
from tests.support.fuzz import OBJECT_KINDS, OVERSIZED, BadObject, bad_objects
from tests.support.worker import run_cli

SEED = 4242
SOURCE = "/omnitrail/test"


@pytest.fixture(scope="module")
def cases() -> list[BadObject]:
    return bad_objects(SEED, 400) + bad_objects(SEED + 1, 3, kinds=(OVERSIZED,))


def names(problems: list[str], field: str) -> bool:
    """Whether one of the problems is about ``field`` (``data.letter_id: ...``) or something inside it."""
    return any((path := p.partition(": ")[0]) == field or path.startswith(field + ".") for p in problems)


def test_the_cases_cover_every_kind(cases):
    assert set(Counter(c.kind for c in cases)) == {*OBJECT_KINDS, OVERSIZED}
    assert len(cases) >= 400


# --- parse_event and the SDK's models ----------------------------------------------------------------------------
def test_parse_event_rejects_every_case_naming_the_field(cases):
    for case in cases:
        with pytest.raises(InvalidEvent) as info:
            parse_event(case.obj)
        assert info.value.problems and all(info.value.problems)
        assert names(info.value.problems, case.field), (case.kind, case.field, info.value.problems)


def test_the_sdk_models_cannot_be_built_from_them(cases):
    """``Publisher`` takes ``Event`` models: an event with a known type is its typed model, which refuses the input."""
    checked = 0
    for case in cases:
        if isinstance(case.obj, dict) and case.obj.get("type") in BY_TYPE:
            with pytest.raises(ValidationError) as info:
                typed_event(case.obj["type"]).model_validate(case.obj)
            locs = {".".join(map(str, e["loc"])) for e in info.value.errors()}
            assert any(loc == case.field or loc.startswith(case.field + ".") for loc in locs), (case, locs)
            checked += 1
    assert checked > len(cases) // 2


def test_publisher_never_gets_to_send_an_invalid_event(cases, monkeypatch):
    """Building the events fails first, so a publisher whose broker is a closed port encodes (and so produces)
    nothing and does not wait for a delivery timeout."""
    import services.publisher

    encoded = []
    monkeypatch.setattr(services.publisher, "encode", lambda event, mode: encoded.append(event))
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    with Publisher(settings, timeout=20, log_level=0) as publisher:
        for case in cases[:50]:
            started = time.monotonic()
            with pytest.raises(InvalidEvent):
                publisher.publish_many(parse_event(obj) for obj in [case.obj])
            assert time.monotonic() - started < 2
    assert encoded == []


# --- services.emit.events_from_jsonl -------------------------------------------------------------------------------
def mixed_jsonl(cases: list[BadObject]) -> tuple[list[bytes], dict[int, BadObject], int]:
    """Valid event lines with the emit-invalid cases among them; returns lines, {line number: case}, valid count."""
    valid = [e.model_dump_json().encode() for c in ("ok-1", "ok-2", "ok-3") for e in journey(c)]
    lines, bad_at, v = [], {}, 0
    for i, case in enumerate(c for c in cases if c.emit_rejects):
        if i % 10 == 0 and v < len(valid):
            lines.append(valid[v])
            v += 1
        lines.append(case.line)
        bad_at[len(lines)] = case
    lines += valid[v:]
    return lines, bad_at, len(valid)


def by_line(errors: list[str]) -> dict[int, list[str]]:
    out = defaultdict(list)
    for error in errors:
        head, _, problem = error.partition(": ")
        assert head.startswith("line "), error
        out[int(head[5:])].append(problem)
    return out


def check_errors(errors: list[str], bad_at: dict[int, BadObject]) -> None:
    problems = by_line(errors)
    assert problems.keys() == bad_at.keys()  # every bad line, and only those
    for number, case in bad_at.items():
        if case.kind == "non_object":
            assert problems[number] == [f"expected a JSON object, got {type(case.obj).__name__}"]
        else:
            assert names(problems[number], case.field), (number, case, problems[number])


def test_events_from_jsonl_names_line_and_field_of_every_bad_line(cases):
    lines, bad_at, valid = mixed_jsonl(cases)
    assert len(bad_at) > 350
    events, errors = events_from_jsonl(lines, SOURCE)
    check_errors(errors, bad_at)
    assert len(events) == valid


def test_events_from_jsonl_rejects_broken_lines():
    good = journey("ok-9")[0].model_dump_json().encode()
    lines = [good, good[:-1], good[: len(good) // 2], b"\xff" + good, good.replace(b"{", b"{\xc3\x28", 1), b"[1,]",
             b"nope", good]
    events, errors = events_from_jsonl(lines, SOURCE)
    assert len(events) == 2
    assert {n: len(p) for n, p in by_line(errors).items()} == {2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1}
    assert all("not valid JSON" in e for e in errors)


def test_short_names_and_defaults_are_what_emit_accepts_beyond_parse_event(cases):
    """The cases ``emit`` accepts (a short type name, a dropped attribute it defaults) are exactly those marked."""
    for case in (c for c in cases if not c.emit_rejects):
        events, errors = events_from_jsonl([case.line], SOURCE)
        assert (len(events), errors) == (1, []), case


# --- omnitrail emit --file -----------------------------------------------------------------------------------------
@pytest.fixture
def offline(tmp_path) -> Settings:
    """Settings whose broker address is a closed port: any attempt to publish would end in a delivery error."""
    return Settings(state_dir=tmp_path / "state", kafka_bootstrap=f"127.0.0.1:{free_port()}")


def assert_refused_before_kafka(result, started: float) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr[-2000:])
    assert "nothing was published" in result.stderr
    assert "published" not in result.stdout
    for symptom in ("Traceback", "not delivered", "undelivered", "Connection refused", "cannot reach", "Broker"):
        assert symptom not in result.stderr, result.stderr[-2000:]
    assert time.monotonic() - started < 15  # no waiting for a delivery timeout


def cli_errors(stderr: str) -> list[str]:
    return [line.removeprefix("invalid: ") for line in stderr.splitlines() if line.startswith("invalid: ")]


def test_emit_file_refuses_every_bad_line_without_contacting_kafka(cases, offline, tmp_path):
    lines, bad_at, _ = mixed_jsonl(cases[:120])
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    started = time.monotonic()
    result = run_cli(offline, "emit", "--file", str(path))
    assert_refused_before_kafka(result, started)
    errors = cli_errors(result.stderr)
    check_errors(errors, bad_at)
    assert f"{len(errors)} problem(s)" in result.stderr


def test_emit_from_stdin_refuses_a_truncated_line(offline):
    good = journey("ok-7")[0].model_dump_json()
    started = time.monotonic()
    result = run_cli(offline, "emit", "--file", "-", input=f"{good}\n{good[:40]}\n{good}\n")
    assert_refused_before_kafka(result, started)
    assert [e.split(": ")[0] for e in cli_errors(result.stderr)] == ["line 2"]
    assert "not valid JSON" in result.stderr


def test_emit_file_with_invalid_utf8_is_refused_with_a_clear_error(offline, tmp_path):
    good = journey("ok-8")[0].model_dump_json().encode()
    path = tmp_path / "events.jsonl"
    path.write_bytes(good + b"\n" + good.replace(b"ok-8", b"ok-\xff8", 1) + b"\n")
    started = time.monotonic()
    result = run_cli(offline, "emit", "--file", str(path))
    assert_refused_before_kafka(result, started)
    assert [e.split(": ")[0] for e in cli_errors(result.stderr)] == ["line 2"]


@pytest.mark.parametrize("bad_type", ["[/x]", "[bold]Nope", "omnitrail.[red]Mail[/red]Sent.v1"])
def test_emit_shows_bad_values_literally(offline, tmp_path, bad_type):
    """Error messages quote the input: square brackets in it are text, not console markup."""
    obj = orjson.loads(journey("ok-6")[0].model_dump_json()) | {"type": bad_type}
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(obj) + b"\n")
    started = time.monotonic()
    result = run_cli(offline, "emit", "--file", str(path))
    assert_refused_before_kafka(result, started)
    assert f"line 1: type: unknown event type {bad_type!r}" in result.stderr
