"""The checked-in OpenAPI document: what integrators code against, so a change to it is a reviewed diff."""

from __future__ import annotations

from pathlib import Path

import orjson

from services.http.app import create_app
from services.settings import Settings

DOCUMENT = Path(__file__).with_name("openapi.json")


def current() -> str:
    """The document the code produces now (independent of local settings)."""
    doc = create_app(Settings(_env_file=None, state_dir="/nonexistent")).openapi()
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
