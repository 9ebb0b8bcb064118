"""Published JSON Schemas: one file per event type in ``schemas/json/``, generated from the pydantic models.

A published file is never edited. ``publish()`` writes the files of new types and refuses to touch a published one
whose model has drifted: such a change needs a new version of the event type plus an upcaster.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.envelope import typed_event
from schemas.registry import BY_TYPE

PUBLISHED_DIR = Path(__file__).parent / "json"


def schema_of(type_name: str) -> dict:
    """The JSON Schema of a whole event (envelope and payload) of this type."""
    schema = typed_event(type_name).model_json_schema()
    schema["$id"] = f"urn:omnitrail:schema:{type_name}"
    schema["title"] = type_name
    return schema


def render(type_name: str) -> bytes:
    return orjson.dumps(schema_of(type_name), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def drifted(directory: Path = PUBLISHED_DIR) -> dict[str, str]:
    """Types whose published schema is missing or differs from the model: type -> 'missing' | 'changed'."""
    out = {}
    for type_name in BY_TYPE:
        path = directory / f"{type_name}.json"
        if not path.exists():
            out[type_name] = "missing"
        elif path.read_bytes() != render(type_name):
            out[type_name] = "changed"
    return out


def publish(directory: Path = PUBLISHED_DIR) -> list[Path]:
    """Write the schemas of unpublished types; raise if a published one drifted. Returns the files written."""
    drift = drifted(directory)
    changed = sorted(t for t, why in drift.items() if why == "changed")
    if changed:
        raise RuntimeError(f"published schemas must never change, but the models of {', '.join(changed)} differ "
                           "from them: add a new version of the event type with an upcaster instead")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for type_name in sorted(drift):
        path = directory / f"{type_name}.json"
        path.write_bytes(render(type_name))
        written.append(path)
    return written
