"""Write keys (channel producers posting to ``/v1/events``) and read tokens (analysts, the CLI), stored hashed.

A write key is bound to the channels and the ``source`` prefix its producer may publish; a read token has the
scope ``read`` (queries, read-only SQL) or ``admin`` (also rebuilds). Only a SHA-256 digest of each secret is
kept: the secrets are 256-bit random strings, so a fast hash is enough (nothing to brute-force), and a lookup
by digest does not compare secrets byte by byte. The file is rewritten atomically with mode 0600 and re-read by a
running service when it changes, so ``omnitrail keys revoke`` takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson

from schemas.channels import Channel

Scope = Literal["read", "admin"]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class WriteKey:
    id: str
    channels: tuple[str, ...]
    source_prefix: str
    digest: str
    created: str
    revoked: str | None = None

    def refusal(self, channel: str, source: str) -> str | None:
        """Why this key may not publish an event on ``channel`` from ``source``; None if it may."""
        if channel not in self.channels:
            return f"write key {self.id} may publish to channels {', '.join(self.channels)}, not {channel!r}"
        if not source.startswith(self.source_prefix):
            return f"write key {self.id} may publish sources under {self.source_prefix!r}, not {source!r}"
        return None


@dataclass(frozen=True)
class ReadToken:
    id: str
    scope: Scope
    digest: str
    created: str
    revoked: str | None = None


@dataclass
class _Contents:
    keys: list[WriteKey] = field(default_factory=list)
    tokens: list[ReadToken] = field(default_factory=list)


class CredentialError(ValueError):
    pass


class Credentials:
    """The credentials file at ``path`` (created on the first write)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._contents = _Contents()
        self._keys: dict[str, WriteKey] = {}
        self._tokens: dict[str, ReadToken] = {}

    # --- reading ---------------------------------------------------------------------------------------------------
    def _load(self) -> _Contents:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                raw = orjson.loads(self.path.read_bytes()) if stamp else {}
                contents = _Contents([WriteKey(**{**k, "channels": tuple(k["channels"])}) for k in raw.get("keys", [])],
                                     [ReadToken(**t) for t in raw.get("tokens", [])])
                self._contents, self._stamp = contents, stamp
                self._keys = {k.digest: k for k in contents.keys if not k.revoked}
                self._tokens = {t.digest: t for t in contents.tokens if not t.revoked}
            return self._contents

    def write_key(self, secret: str) -> WriteKey | None:
        self._load()
        return self._keys.get(digest(secret))

    def read_token(self, secret: str) -> ReadToken | None:
        self._load()
        return self._tokens.get(digest(secret))

    def keys(self) -> list[WriteKey]:
        return list(self._load().keys)

    def tokens(self) -> list[ReadToken]:
        return list(self._load().tokens)

    # --- writing ---------------------------------------------------------------------------------------------------
    def _save(self, contents: _Contents) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(asdict(contents), option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.path)

    def create_key(self, channels: list[str], source_prefix: str) -> tuple[WriteKey, str]:
        """A new write key and its secret (shown once, never stored)."""
        known = {c.value for c in Channel}
        unknown = [c for c in channels if c not in known]
        if unknown or not channels:
            raise CredentialError(f"unknown channel(s) {', '.join(unknown) or '(none given)'}; "
                                  f"known: {', '.join(sorted(known))}")
        if not source_prefix.startswith("/"):
            raise CredentialError(f"the source prefix must be a path such as /telephony/, not {source_prefix!r}")
        key_id, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
        secret = f"otw_{key_id}_{secret}"
        key = WriteKey(key_id, tuple(dict.fromkeys(channels)), source_prefix, digest(secret), _now())
        contents = self._load()
        self._save(_Contents([*contents.keys, key], contents.tokens))
        return key, secret

    def create_token(self, scope: Scope = "read") -> tuple[ReadToken, str]:
        token_id = secrets.token_hex(4)
        secret = f"otr_{token_id}_{secrets.token_urlsafe(32)}"
        token = ReadToken(token_id, scope, digest(secret), _now())
        contents = self._load()
        self._save(_Contents(contents.keys, [*contents.tokens, token]))
        return token, secret

    def revoke(self, credential_id: str) -> WriteKey | ReadToken:
        """Revoke the key or token with this id (kept in the file, marked revoked, for the record)."""
        contents = self._load()
        found = [c for c in (*contents.keys, *contents.tokens) if c.id == credential_id and not c.revoked]
        if not found:
            raise CredentialError(f"no active write key or read token with id {credential_id!r} "
                                  "(see `omnitrail keys list` / `omnitrail tokens list`)")
        revoked = replace(found[0], revoked=_now())
        swap = lambda items: [revoked if c is found[0] else c for c in items]  # noqa: E731
        self._save(_Contents(swap(contents.keys), swap(contents.tokens)))
        return revoked


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
