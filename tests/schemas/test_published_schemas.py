"""THE drift test: the JSON Schemas in schemas/json/ are published and must match the models byte for byte.

If ``test_checked_in_schemas_match_the_models`` fails, a published event type was changed. Do not regenerate the
file: add a new version of the event type (and an upcaster) instead. A new type is published with
``omnitrail schemas publish``.
"""

from __future__ import annotations

import shutil

import orjson
import pytest

from schemas import published
from schemas.events import PAYLOADS
from schemas.published import PUBLISHED_DIR, drifted, publish, render, schema_of
from schemas.derived import DERIVED
from schemas.registry import BY_TYPE

TYPES = sorted(BY_TYPE)
CHANGED_TYPE = "omnitrail.MailReturned.v1"


@pytest.fixture
def published_copy(tmp_path):
    """A copy of the checked-in schemas to tamper with."""
    directory = tmp_path / "json"
    shutil.copytree(PUBLISHED_DIR, directory)
    return directory


@pytest.fixture
def model_changed(monkeypatch):
    """Simulates a change to the MailReturned v1 model: its payload gains an optional field."""
    real = published.schema_of

    def changed(type_name: str) -> dict:
        schema = real(type_name)
        if type_name == CHANGED_TYPE:
            schema["$defs"]["MailReturned"]["properties"]["tracking_code"] = {"type": "string", "default": ""}
        return schema

    monkeypatch.setattr(published, "schema_of", changed)
    assert render(CHANGED_TYPE) != (PUBLISHED_DIR / f"{CHANGED_TYPE}.json").read_bytes()


def test_checked_in_schemas_match_the_models():
    assert drifted() == {}, ("published event schemas differ from the models: add a new event version with an "
                             "upcaster instead of changing a published one")


def test_every_type_is_published_and_nothing_else():
    files = {p.name for p in PUBLISHED_DIR.glob("*.json")}
    assert files == {f"{t}.json" for t in BY_TYPE}
    assert len(files) == len(PAYLOADS) + len(DERIVED)


@pytest.mark.parametrize("type_name", TYPES)
def test_published_schema_describes_its_type(type_name):
    schema = orjson.loads((PUBLISHED_DIR / f"{type_name}.json").read_bytes())
    assert schema["$id"] == f"urn:omnitrail:schema:{type_name}"
    assert schema["title"] == type_name
    assert schema["properties"]["type"]["const"] == type_name
    # ``type`` is not in ``required``: the typed model gives it a default (parse_event still insists on it)
    assert {"id", "source", "subject", "time", "channel", "data"} <= set(schema["required"])
    assert schema["additionalProperties"] is False


def test_render_is_deterministic_and_sorted():
    first = render(CHANGED_TYPE)
    assert first == render(CHANGED_TYPE)
    assert first.endswith(b"\n")
    assert orjson.loads(first) == schema_of(CHANGED_TYPE)
    keys = list(orjson.loads(first))
    assert keys == sorted(keys)


def test_changed_model_is_detected(published_copy, model_changed):
    assert drifted(published_copy) == {CHANGED_TYPE: "changed"}


def test_edited_published_file_is_detected(published_copy):
    path = published_copy / "omnitrail.CallEnded.v1.json"
    schema = orjson.loads(path.read_bytes())
    del schema["$defs"]["CallEnded"]["properties"]["resolved"]
    path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    assert drifted(published_copy) == {"omnitrail.CallEnded.v1": "changed"}


def test_reformatted_published_file_counts_as_changed(published_copy):
    path = published_copy / "omnitrail.CallEnded.v1.json"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert drifted(published_copy) == {"omnitrail.CallEnded.v1": "changed"}


def test_missing_published_file_is_detected(published_copy):
    (published_copy / "omnitrail.CallEnded.v1.json").unlink()
    assert drifted(published_copy) == {"omnitrail.CallEnded.v1": "missing"}


def test_everything_is_missing_in_an_empty_directory(tmp_path):
    assert drifted(tmp_path) == {t: "missing" for t in TYPES}


def test_publish_writes_one_file_per_type(tmp_path):
    target = tmp_path / "new" / "json"  # created by publish
    written = publish(target)
    assert sorted(p.name for p in written) == [f"{t}.json" for t in TYPES]
    assert sorted(p.name for p in target.iterdir()) == [f"{t}.json" for t in TYPES]
    for type_name in TYPES:
        assert (target / f"{type_name}.json").read_bytes() == (PUBLISHED_DIR / f"{type_name}.json").read_bytes()
    assert drifted(target) == {}
    assert publish(target) == []  # idempotent: nothing left to write


def test_publish_writes_only_what_is_missing(published_copy):
    gone = published_copy / "omnitrail.IdentityLinked.v1.json"
    other = published_copy / "omnitrail.CallEnded.v1.json"
    gone.unlink()
    before = other.stat().st_mtime_ns
    assert publish(published_copy) == [gone]
    assert gone.read_bytes() == render("omnitrail.IdentityLinked.v1")
    assert other.stat().st_mtime_ns == before


def test_publish_refuses_a_changed_model(published_copy, model_changed):
    (published_copy / "omnitrail.IdentityLinked.v1.json").unlink()  # something it could write
    snapshot = {p.name: p.read_bytes() for p in published_copy.iterdir()}
    with pytest.raises(RuntimeError, match="never change") as info:
        publish(published_copy)
    assert CHANGED_TYPE in str(info.value)
    assert {p.name: p.read_bytes() for p in published_copy.iterdir()} == snapshot  # nothing written or rewritten


def test_publish_refuses_an_edited_file(published_copy):
    path = published_copy / "omnitrail.CallEnded.v1.json"
    path.write_bytes(b"{}\n")
    with pytest.raises(RuntimeError, match="omnitrail.CallEnded.v1"):
        publish(published_copy)
    assert path.read_bytes() == b"{}\n"
