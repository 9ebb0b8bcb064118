"""``redact_url``: a store URL as it may be shown, without its password or credential query parameters."""

from __future__ import annotations

import pytest

from projections.redact import redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("http://omnitrail:s3cret@host:8123/db", "http://omnitrail:***@host:8123/db"),
    ("https://omnitrail:s3cret@ch.example:8443/omnitrail?compress=lz4",
     "https://omnitrail:***@ch.example:8443/omnitrail?compress=lz4"),
    ("http://host:8123/db?password=s3cret&compress=lz4", "http://host:8123/db?password=***&compress=lz4"),
    ("http://host/db?user=u&access_token=s3cret#x", "http://host/db?user=u&access_token=***#x"),
    ("http://host/db?API_KEY=s3cret;Secret=s3cret", "http://host/db?API_KEY=***;Secret=***"),
    # Unencoded '@' or '/' in a password: all of it goes, even if that hides the host.
    ("http://u:s3c@ret@host:8123/db", "http://u:***@host:8123/db"),
    ("http://u:s3c/ret@host:8123/db", "http://u:***@host:8123/db"),
    ("postgres://u:s3cret@host/x", "postgres://u:***@host/x"),
    # Nothing to hide: unchanged.
    ("http://default:@host:8123/db", "http://default:@host:8123/db"),
    ("http://host:8123/db", "http://host:8123/db"),
    ("chdb:///srv/omnitrail/clickhouse", "chdb:///srv/omnitrail/clickhouse"),
    ("", ""),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown
