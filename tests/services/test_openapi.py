"""The checked-in OpenAPI document is what the code serves (like the published JSON Schemas)."""

from services.http.openapi import DOCUMENT, current


def test_the_checked_in_openapi_document_is_current():
    assert DOCUMENT.read_text() == current(), "the HTTP API changed: run `omnitrail openapi` and commit the document"
