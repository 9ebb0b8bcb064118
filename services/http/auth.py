"""Who may call what: write keys for ingest, read tokens for reads, ``admin`` tokens for rebuilds.

Reads (and rebuilds) are open only while the service listens on loopback and ``api_require_tokens`` is off: then every caller
is a local process, and the ``Host`` allow-list (see ``app``) keeps web pages out. Anywhere else a token is
required, and the service refuses to start without one.
"""

from __future__ import annotations

import ipaddress

from fastapi import HTTPException, Request

from services.credentials import Credentials, ReadToken, WriteKey

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


COOKIE = "omnitrail_token"


def _bearer(request: Request) -> str | None:
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return secret.strip()
    # The agent desk's login keeps a read token in a SameSite=Strict cookie. Only for reads: a request that changes
    # something must carry the header, which a cross-site page cannot add.
    if request.method in ("GET", "HEAD"):
        return request.cookies.get(COOKIE) or None
    return None


class Auth:
    def __init__(self, credentials: Credentials, tokens_required: bool):
        self.credentials, self.tokens_required = credentials, tokens_required

    async def write_key(self, request: Request) -> WriteKey:  # async: no thread-pool hop per request
        secret = _bearer(request)
        if secret is None:
            raise HTTPException(401, "ingest needs a write key: send 'Authorization: Bearer <key>' "
                                     "(create one with `omnitrail keys create --channel ... --source ...`)")
        key = self.credentials.write_key(secret)
        if key is None:
            raise HTTPException(401, "unknown or revoked write key")
        return key

    async def reader(self, request: Request) -> ReadToken | None:
        return self._token(request, "read")

    async def admin(self, request: Request) -> ReadToken | None:
        return self._token(request, "admin")

    def _token(self, request: Request, scope: str) -> ReadToken | None:
        secret = _bearer(request)
        if secret is None:
            if not self.tokens_required:
                return None
            raise HTTPException(401, f"this needs a{'n' if scope == 'admin' else ''} {scope} token: send "
                                     f"'Authorization: Bearer <token>' (create one with "
                                     f"`omnitrail tokens create{' --admin' if scope == 'admin' else ''}`)")
        token = self.credentials.read_token(secret)
        if token is None:
            raise HTTPException(401, "unknown or revoked token")
        if scope == "admin" and token.scope != "admin":
            raise HTTPException(403, f"token {token.id} may read; rebuilds need an admin token "
                                     "(`omnitrail tokens create --admin`)")
        return token
