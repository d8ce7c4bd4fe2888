"""Deployments in PostgreSQL: settings, traffic targets (resolved through aliases), the serving
generation counter, and the sampled prediction log with its feedback.

Traffic targets are rows (`deployment_targets`), so the database itself refuses deleting a version
a deployment pins or an alias it follows. Every routing change bumps `serving_generation` by
trigger; serving processes poll that one row (`generation()`) and reload with `snapshot()`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg

from microlearn_grpc import errors

STATES = ("CREATING", "READY", "UPDATING", "FAILED")
_FIELDS = ("name", "description", "replicas", "prediction_log_fraction", "labels", "task", "state", "state_message",
           "etag", "created_at", "updated_at")
_COLUMNS = ", ".join(f"d.{f}" for f in _FIELDS)
_TARGETS = """
SELECT t.deployment, t.position, t.registered_model, t.version, t.alias, t.percent,
       COALESCE(t.version, a.version) AS resolved_version, v.model_id
FROM deployment_targets t
LEFT JOIN model_aliases a ON a.registered_model = t.registered_model AND a.alias = t.alias
LEFT JOIN model_versions v ON v.registered_model = t.registered_model AND v.version = COALESCE(t.version, a.version)
WHERE t.deployment = ANY($1::text[]) ORDER BY t.deployment, t.position"""


@dataclasses.dataclass(frozen=True)
class TargetRecord:
    """One traffic target: a pinned `version` or a followed `alias`, and what it resolves to now."""

    registered_model: str
    version: int | None
    alias: str | None
    percent: int
    resolved_version: int | None = None
    model_id: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.registered_model}@{self.alias if self.alias else self.version}"


@dataclasses.dataclass(frozen=True)
class DeploymentRecord:
    name: str
    description: str
    replicas: int
    prediction_log_fraction: float
    labels: dict[str, str]
    task: str
    state: str
    state_message: str
    etag: str
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    targets: list[TargetRecord]

    @property
    def resource_name(self) -> str:
        return f"deployments/{self.name}"


@dataclasses.dataclass(frozen=True)
class LoggedPrediction:
    deployment: str
    request_id: str
    model_version: str
    model_id: str
    row_count: int
    inputs: dict[str, list[Any]]
    outputs: dict[str, Any]
    latency_ms: float


def new_etag() -> str:
    return uuid.uuid4().hex[:16]


class DeploymentRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _with_targets(self, rows: list[asyncpg.Record], conn: Any = None) -> list[DeploymentRecord]:
        names = [r["name"] for r in rows]
        targets: dict[str, list[TargetRecord]] = {}
        for t in await (conn or self._pool).fetch(_TARGETS, names):
            targets.setdefault(t["deployment"], []).append(TargetRecord(
                registered_model=t["registered_model"], version=t["version"], alias=t["alias"], percent=t["percent"],
                resolved_version=t["resolved_version"], model_id=t["model_id"]))
        return [DeploymentRecord(**dict(r), targets=targets.get(r["name"], [])) for r in rows]

    async def get(self, name: str, conn: Any = None) -> DeploymentRecord | None:
        row = await (conn or self._pool).fetchrow(f"SELECT {_COLUMNS} FROM deployments d WHERE d.name = $1", name)
        return (await self._with_targets([row], conn))[0] if row else None

    async def create(self, record: DeploymentRecord) -> DeploymentRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO deployments (name, description, replicas, prediction_log_fraction, labels, task,"
                    " state, state_message, etag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    record.name, record.description, record.replicas, record.prediction_log_fraction, record.labels,
                    record.task, record.state, record.state_message, record.etag)
            except asyncpg.UniqueViolationError:
                raise errors.AlreadyExists(f"deployment deployments/{record.name} already exists") from None
            await self._write_targets(conn, record.name, record.targets)
            created = await self.get(record.name, conn)
        assert created is not None
        return created

    @staticmethod
    async def _write_targets(conn: Any, name: str, targets: list[TargetRecord]) -> None:
        await conn.execute("DELETE FROM deployment_targets WHERE deployment = $1", name)
        try:
            await conn.executemany(
                "INSERT INTO deployment_targets (deployment, position, registered_model, version, alias, percent)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                [(name, i, t.registered_model, t.version, t.alias, t.percent) for i, t in enumerate(targets)])
        except asyncpg.ForeignKeyViolationError:  # a version or alias vanished since it was checked
            raise errors.Aborted("a traffic target was deleted during the call; retry") from None

    async def update(self, name: str, changes: dict[str, Any], targets: list[TargetRecord] | None, *,
                     etag: str, state: str | None) -> DeploymentRecord:
        """Apply `changes` (column → value) and, when given, replace the targets; ABORTED when the
        etag no longer matches."""
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval("SELECT etag FROM deployments WHERE name = $1 FOR UPDATE", name)
            if current is None:
                raise errors.NotFound(f"deployment deployments/{name} does not exist")
            if etag and etag != current:
                raise errors.Aborted(f"deployments/{name} changed since etag {etag} was read; read it again")
            values = {**changes, "etag": new_etag()}
            if state is not None:
                values.update(state=state, state_message="loading new traffic targets")
            assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(values, start=2))
            await conn.execute(f"UPDATE deployments SET {assignments}, updated_at = now() WHERE name = $1",
                               name, *values.values())
            if targets is not None:
                await self._write_targets(conn, name, targets)
            updated = await self.get(name, conn)
        assert updated is not None
        return updated

    async def delete(self, name: str, etag: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval("SELECT etag FROM deployments WHERE name = $1 FOR UPDATE", name)
            if current is None:
                return False
            if etag and etag != current:
                raise errors.Aborted(f"deployments/{name} changed since etag {etag} was read; read it again")
            await conn.execute("DELETE FROM deployments WHERE name = $1", name)
            return True

    async def list(self, *, page_size: int, offset: int, registered_model: str | None, states: list[str],
                   labels: dict[str, str] | None) -> tuple[list[DeploymentRecord], int]:
        where, args = ["TRUE"], []
        if registered_model:
            args.append(registered_model)
            where.append(f"EXISTS (SELECT 1 FROM deployment_targets t WHERE t.deployment = d.name"
                         f" AND t.registered_model = ${len(args)})")
        if states:
            args.append(states)
            where.append(f"d.state = ANY(${len(args)}::text[])")
        if labels:
            args.append(labels)
            where.append(f"d.labels @> ${len(args)}::jsonb")
        clause = " AND ".join(where)
        total = await self._pool.fetchval(f"SELECT count(*) FROM deployments d WHERE {clause}", *args)
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM deployments d WHERE {clause} ORDER BY d.name"
                                      f" LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}", *args, page_size, offset)
        return await self._with_targets(rows), int(total)

    # -- what serving processes read and write ----------------------------------------------------

    async def generation(self) -> int:
        return int(await self._pool.fetchval("SELECT generation FROM serving_generation"))

    async def snapshot(self) -> tuple[int, list[DeploymentRecord]]:
        """The generation and every deployment, read in one repeatable-read transaction so they agree."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            generation = int(await conn.fetchval("SELECT generation FROM serving_generation"))
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM deployments d ORDER BY d.name")
            return generation, await self._with_targets(rows, conn)

    async def set_state(self, name: str, state: str, message: str) -> None:
        await self._pool.execute(
            "UPDATE deployments SET state = $2, state_message = $3 WHERE name = $1"
            " AND (state, state_message) IS DISTINCT FROM ($2, $3)", name, state, message[:2000])

    async def log_predictions(self, entries: list[LoggedPrediction]) -> None:
        if not entries:
            return
        await self._pool.executemany(
            "INSERT INTO prediction_log (deployment, request_id, model_version, model_id, row_count, inputs, outputs,"
            " latency_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            [(e.deployment, e.request_id, e.model_version, e.model_id, e.row_count, e.inputs, e.outputs, e.latency_ms)
             for e in entries])

    async def logged_row_counts(self, deployment: str, request_ids: list[str]) -> dict[str, int]:
        rows = await self._pool.fetch("SELECT request_id, row_count FROM prediction_log WHERE deployment = $1"
                                      " AND request_id = ANY($2::text[])", deployment, request_ids)
        return {r["request_id"]: r["row_count"] for r in rows}

    async def upsert_feedback(self, deployment: str, entries: list[tuple[str, int, float | None, str | None,
                                                                         dt.datetime | None]]) -> None:
        await self._pool.executemany(
            "INSERT INTO prediction_feedback (deployment, request_id, row_index, actual_value, actual_label,"
            " observed_at) VALUES ($1, $2, $3, $4, $5, COALESCE($6, now()))"
            " ON CONFLICT (deployment, request_id, row_index) DO UPDATE SET actual_value = EXCLUDED.actual_value,"
            " actual_label = EXCLUDED.actual_label, observed_at = EXCLUDED.observed_at, created_at = now()",
            [(deployment, *entry) for entry in entries])
