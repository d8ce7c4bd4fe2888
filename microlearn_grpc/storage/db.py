"""PostgreSQL connection pool and versioned SQL migrations (asyncpg).

Migrations are the numbered `migrations/NNNN_name.sql` files, applied in order, each in its own
transaction, under an advisory lock so several processes starting at once apply them once.
An applied file whose text changed afterwards is an error: add a new migration instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from typing import Any

import asyncpg

_MIGRATION_LOCK = 0x6D6C6D67  # arbitrary constant: "mlmg"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database schema does not match the migrations shipped with this code."""


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("microlearn_grpc.storage").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections decode json/jsonb to Python objects."""
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=_init_connection,
                                     command_timeout=60)


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")}
            known = _migrations()
            newest_known = known[-1][0] if known else 0
            if done and max(done) > newest_known:
                raise MigrationError(
                    f"the database is at schema version {max(done)}, newer than this code ({newest_known}): upgrade MicroLearn"
                )
            for version, name, sql in known:
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if version in done:
                    if done[version]["checksum"] != checksum:
                        raise MigrationError(f"migration {version:04d}_{name}.sql changed after it was applied")
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                                       version, name, checksum)
                applied_now.append(f"{version:04d}_{name}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


class Where:
    """SQL conditions and their arguments, one filter at a time: `add("state = ANY({}::text[])", states)`
    puts the value's `$n` placeholder where `{}` is."""

    def __init__(self) -> None:
        self.conditions: list[str] = ["true"]
        self.args: list[Any] = []

    def add(self, condition: str, *values: Any) -> None:
        marks = []
        for value in values:
            self.args.append(value)
            marks.append(f"${len(self.args)}")
        self.conditions.append(condition.format(*marks))

    @property
    def sql(self) -> str:
        return " AND ".join(self.conditions)


async def newest_first(pool: asyncpg.Pool, table: str, where: Where, *, after: tuple | None,
                       page_size: int) -> tuple[list[asyncpg.Record], int]:
    """One page of `table`'s rows matching `where`, newest first by (created_at, id), starting after the
    keyset `after`; and how many rows match in all."""
    total = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {where.sql}", *where.args)
    if after is not None:
        where.add("(created_at, id) < ({}, {})", *after)
    args = [*where.args, page_size]
    rows = await pool.fetch(f"SELECT * FROM {table} WHERE {where.sql} ORDER BY created_at DESC, id DESC "
                            f"LIMIT ${len(args)}", *args)
    return rows, int(total)

