"""Dataset metadata in PostgreSQL: versions, lineage and references."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from typing import Any

import asyncpg

_COLUMNS = ("id, display_name, version, source_format, source_size_bytes, source_sha256, artifact_key, size_bytes,"
            " sha256, row_count, column_count, column_hints, parent_id, recipe, description, labels, created_at")


@dataclasses.dataclass(frozen=True)
class DatasetRecord:
    id: str
    display_name: str
    version: int
    source_format: str
    source_size_bytes: int
    source_sha256: str
    artifact_key: str
    size_bytes: int
    sha256: str
    row_count: int
    column_count: int
    column_hints: dict[str, str]
    parent_id: str | None
    recipe: str
    description: str
    labels: dict[str, str]
    created_at: dt.datetime
    profile: dict[str, Any] | None = None  # loaded only when asked for (it can be large)

    @property
    def resource_name(self) -> str:
        return f"datasets/{self.id}"


@dataclasses.dataclass(frozen=True)
class NewDataset:
    id: str
    display_name: str
    source_format: str
    source_size_bytes: int
    source_sha256: str
    artifact_key: str
    size_bytes: int
    sha256: str
    row_count: int
    column_count: int
    profile: dict[str, Any]
    column_hints: dict[str, str]
    parent_id: str | None = None
    recipe: str = ""
    description: str = ""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


def _record(row: asyncpg.Record) -> DatasetRecord:
    data = dict(row)
    return DatasetRecord(**data)


def encode_page_token(created_at: dt.datetime, id_: str) -> str:
    raw = json.dumps([created_at.isoformat(), id_]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[dt.datetime, str]:
    """Raises ValueError for a token this server did not make."""
    padded = token + "=" * (-len(token) % 4)
    created, id_ = json.loads(base64.urlsafe_b64decode(padded.encode()))
    return dt.datetime.fromisoformat(created), str(id_)


class DatasetRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, new: NewDataset, *, conn: asyncpg.Connection | None = None,
                     referrers_of_parent: bool = True) -> DatasetRecord:
        """Insert a new version (the next number for its name) in one transaction."""
        async with self._maybe_acquire(conn) as c, c.transaction():
            version = await c.fetchval(
                "INSERT INTO dataset_names (display_name, last_version) VALUES ($1, 1)"
                " ON CONFLICT (display_name) DO UPDATE SET last_version = dataset_names.last_version + 1"
                " RETURNING last_version",
                new.display_name,
            )
            row = await c.fetchrow(
                f"INSERT INTO datasets (id, display_name, version, source_format, source_size_bytes, source_sha256,"
                f" artifact_key, size_bytes, sha256, row_count, column_count, profile, column_hints, parent_id, recipe,"
                f" description, labels) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"
                f" RETURNING {_COLUMNS}, profile",
                new.id, new.display_name, version, new.source_format, new.source_size_bytes, new.source_sha256,
                new.artifact_key, new.size_bytes, new.sha256, new.row_count, new.column_count, new.profile,
                new.column_hints, new.parent_id, new.recipe, new.description, new.labels,
            )
            if new.parent_id and referrers_of_parent:
                await c.execute("INSERT INTO dataset_references (dataset_id, referrer) VALUES ($1, $2)"
                                " ON CONFLICT DO NOTHING", new.parent_id, f"datasets/{new.id}")
        return _record(row)

    def _maybe_acquire(self, conn: asyncpg.Connection | None):
        if conn is not None:
            return _Borrowed(conn)
        return self._pool.acquire()

    async def get(self, id_: str, *, with_profile: bool = True) -> DatasetRecord | None:
        extra = ", profile" if with_profile else ""
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS}{extra} FROM datasets WHERE id = $1", id_)
        return _record(row) if row else None

    async def get_version(self, display_name: str, version: int | None, *, with_profile: bool = True) -> DatasetRecord | None:
        extra = ", profile" if with_profile else ""
        if version is None:
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS}{extra} FROM datasets WHERE display_name = $1 ORDER BY version DESC LIMIT 1",
                display_name)
        else:
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS}{extra} FROM datasets WHERE display_name = $1 AND version = $2",
                display_name, version)
        return _record(row) if row else None

    async def list(self, *, page_size: int, after: tuple[dt.datetime, str] | None, prefix: str = "",
                   display_name: str | None = None, latest_only: bool = False) -> tuple[list[DatasetRecord], int]:
        """A page ordered newest first (keyset on created_at, id) and the total number of matches."""
        where = ["1=1"]
        args: list[Any] = []
        if prefix:
            args.append(prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            where.append(f"display_name LIKE ${len(args)}")
        if display_name is not None:
            args.append(display_name)
            where.append(f"display_name = ${len(args)}")
        if latest_only:
            where.append("version = (SELECT max(version) FROM datasets d2 WHERE d2.display_name = datasets.display_name)")
        count_sql = f"SELECT count(*) FROM datasets WHERE {' AND '.join(where)}"
        total = await self._pool.fetchval(count_sql, *args)
        if after is not None:
            args.extend(after)
            where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(page_size)
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM datasets WHERE {' AND '.join(where)}"
            f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}", *args)
        return [_record(r) for r in rows], int(total)

    async def references(self, dataset_id: str, limit: int = 5) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT referrer FROM dataset_references WHERE dataset_id = $1 ORDER BY created_at LIMIT $2",
            dataset_id, limit)
        return [r["referrer"] for r in rows]

    async def count_references(self, dataset_id: str) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM dataset_references WHERE dataset_id = $1", dataset_id))

    async def add_reference(self, dataset_id: str, referrer: str) -> None:
        await self._pool.execute("INSERT INTO dataset_references (dataset_id, referrer) VALUES ($1, $2)"
                                 " ON CONFLICT DO NOTHING", dataset_id, referrer)

    async def remove_references_by(self, referrer: str) -> None:
        await self._pool.execute("DELETE FROM dataset_references WHERE referrer = $1", referrer)

    async def delete(self, dataset_id: str, *, conn: asyncpg.Connection) -> tuple[DatasetRecord | None, int]:
        """Delete a version; returns it and how many other versions still use its artifact."""
        async with conn.transaction():
            row = await conn.fetchrow(f"DELETE FROM datasets WHERE id = $1 RETURNING {_COLUMNS}", dataset_id)
            if row is None:
                return None, 0
            # This version no longer references its parent; what referenced it now dangles (forced delete).
            await conn.execute("DELETE FROM dataset_references WHERE referrer = $1", f"datasets/{dataset_id}")
            await conn.execute("DELETE FROM dataset_references WHERE dataset_id = $1", dataset_id)
            others = await conn.fetchval("SELECT count(*) FROM datasets WHERE artifact_key = $1", row["artifact_key"])
        return _record(row), int(others)


class _Borrowed:
    """Async context manager yielding a connection the caller already holds."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def __aenter__(self) -> asyncpg.Connection:
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        return None
