"""Numbered, never-edited migrations, kept beside the projection they belong to.

``projections/<projection>/migrations/NNNN_<name>.sql`` holds one or more statements separated by ``;``. Applied
migrations are recorded in ``omnitrail_migrations`` with a checksum; applying is idempotent, and a migration that
was edited after it was applied is refused (add a new numbered one instead).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

ROOT = Path(__file__).parent
FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    projection: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        # Comments go first: a ';' in a comment must not split a statement.
        code = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in code.split(";") if s.strip()]


def discover(root: Path = ROOT) -> list[Migration]:
    found = []
    for path in sorted(root.glob("*/migrations/*.sql")):
        m = FILE.match(path.name)
        if not m:
            raise ValueError(f"migration file {path} is not named NNNN_name.sql")
        found.append(Migration(path.parent.parent.name, int(m[1]), m[2], path.read_text()))
    return sorted(found, key=lambda m: (m.projection, m.version))


def migrate(client: Client, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply the migrations not applied yet, in order; return them."""
    client.command("""CREATE TABLE IF NOT EXISTS omnitrail_migrations (
        `projection` String, version UInt32, name String, checksum String,
        applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY (projection, version)""")
    done = {(p, v): c for p, v, c in client.query(
        "SELECT projection, version, checksum FROM omnitrail_migrations").result_rows}
    applied = []
    for mig in discover() if migrations is None else migrations:
        key = (mig.projection, mig.version)
        if key in done:
            if done[key] != mig.checksum:
                raise RuntimeError(f"migration {mig.projection}/{mig.version:04d}_{mig.name} was edited after it "
                                   "was applied; migrations are never edited: add a new one")
            continue
        for statement in mig.statements():
            client.command(statement)
        client.insert("omnitrail_migrations", [[mig.projection, mig.version, mig.name, mig.checksum]],
                      column_names=["projection", "version", "name", "checksum"])
        applied.append(mig)
    return applied
