"""Store URLs as they may be shown: a ClickHouse URL carries its password (``http://user:password@host/db``), and
whatever prints a URL (CLI output, errors, ``repr(settings)``) must show it through ``redact_url``.

Here, in ``projections``, so that the store's own errors and every ``services`` edge can import it (imports point
one way, ``projections <- services``); it imports nothing, so ``Settings`` can use it without loading a client.
"""

from __future__ import annotations

import re

MASK = "***"

# The password of ``scheme://user:password@``. It runs to the last ``@`` before the query, so a password with an
# unencoded ``@`` or ``/`` is masked whole (at worst the host is masked too): masking too much is the safe mistake.
_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:)[^?#]+@")
# Query parameters that carry credentials: ``?password=``, ``?token=``, ``?access_token=``, ``?api_key=``, ...
_SECRET_PARAM = re.compile(r"(?P<name>[?&;][^=&#;]*(?:pass|token|secret|key|auth|credential)[^=&#;]*=)[^&#;]*",
                           re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password and credential query parameters replaced by ``***``; the rest (scheme, user,
    host, port, database) stays, so the output still says where it points.

    >>> redact_url("http://omnitrail:s3cret@clickhouse:8123/omnitrail?password=x&compress=lz4")
    'http://omnitrail:***@clickhouse:8123/omnitrail?password=***&compress=lz4'
    """
    url = _PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", url, count=1)
    return _SECRET_PARAM.sub(lambda m: f"{m['name']}{MASK}", url)
