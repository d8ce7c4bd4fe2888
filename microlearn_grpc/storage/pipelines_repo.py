"""Pipelines and their steps in PostgreSQL (migration 0006): what a pipeline coordinator resumes from."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any

import asyncpg

from microlearn_grpc.storage.db import Where, newest_first

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclasses.dataclass
class StepRecord:
    pipeline_id: str
    step_index: int
    kind: str
    line: int
    state: str
    error: str | None
    outputs: dict[str, str]
    metrics: dict[str, float]
    message: str
    attempts: int
    started_at: dt.datetime | None
    ended_at: dt.datetime | None


@dataclasses.dataclass
class PipelineRecord:
    id: str
    display_name: str
    yaml: str
    source_name: str
    spec: dict[str, Any]
    state: str
    error: str | None
    labels: dict[str, str]
    request_id: str | None
    job_id: str
    cancel_requested: bool
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    steps: list[StepRecord] = dataclasses.field(default_factory=list)

    @property
    def resource_name(self) -> str:
        return f"pipelines/{self.id}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL


def new_pipeline_id() -> str:
    return "pipe-" + secrets.token_hex(8)


class PipelineRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, conn: asyncpg.Connection, *, pipeline_id: str, display_name: str, yaml: str,
                     source_name: str, spec: dict[str, Any], labels: dict[str, str], request_id: str | None,
                     job_id: str) -> PipelineRecord:
        row = await conn.fetchrow(
            "INSERT INTO pipelines (id, display_name, yaml, source_name, spec, labels, request_id, job_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
            pipeline_id, display_name, yaml, source_name, spec, labels, request_id, job_id)
        await conn.executemany("INSERT INTO pipeline_steps (pipeline_id, step_index, kind, line) VALUES ($1, $2, $3, $4)",
                               [(pipeline_id, s["index"], s["kind"], s["line"]) for s in spec["steps"]])
        return await self._with_steps(row, conn)

    async def _with_steps(self, row: asyncpg.Record, conn: Any = None) -> PipelineRecord:
        record = PipelineRecord(**dict(row))
        record.steps = await self.steps(record.id, conn=conn)
        return record

    async def get(self, pipeline_id: str) -> PipelineRecord | None:
        row = await self._pool.fetchrow("SELECT * FROM pipelines WHERE id = $1", pipeline_id)
        return await self._with_steps(row) if row else None

    async def by_request_id(self, request_id: str) -> PipelineRecord | None:
        row = await self._pool.fetchrow("SELECT * FROM pipelines WHERE request_id = $1", request_id)
        return await self._with_steps(row) if row else None

    async def steps(self, pipeline_id: str, *, conn: Any = None) -> list[StepRecord]:
        rows = await (conn or self._pool).fetch("SELECT * FROM pipeline_steps WHERE pipeline_id = $1 "
                                                "ORDER BY step_index", pipeline_id)
        return [StepRecord(**dict(row)) for row in rows]

    async def list(self, *, page_size: int, after: tuple[dt.datetime, str] | None, states: Iterable[str] = (),
                   labels: dict[str, str] | None = None) -> tuple[list[PipelineRecord], int]:
        where = Where()
        states = list(states)
        if states:
            where.add("state = ANY({}::text[])", states)
        if labels:
            where.add("labels @> {}::jsonb", labels)
        rows, total = await newest_first(self._pool, "pipelines", where, after=after, page_size=page_size)
        return [await self._with_steps(row) for row in rows], total

    async def start(self, pipeline_id: str) -> PipelineRecord | None:
        """PENDING -> RUNNING (first start) or keep RUNNING (a coordinator resuming); None once it ended."""
        row = await self._pool.fetchrow(
            "UPDATE pipelines SET state = 'RUNNING', started_at = coalesce(started_at, now())"
            " WHERE id = $1 AND state IN ('PENDING', 'RUNNING') RETURNING *", pipeline_id)
        return await self._with_steps(row) if row else None

    async def finish(self, pipeline_id: str, state: str, error: str | None = None) -> PipelineRecord | None:
        """End a pipeline unless it already ended (None then); steps not finished end CANCELLED."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE pipelines SET state = $2, error = $3, ended_at = now() WHERE id = $1 AND state NOT IN "
                "('SUCCEEDED', 'FAILED', 'CANCELLED') RETURNING *", pipeline_id, state, error)
            if row is None:
                return None
            await conn.execute(
                "UPDATE pipeline_steps SET state = 'CANCELLED', ended_at = now(),"
                " error = coalesce(error, CASE WHEN state = 'RUNNING' THEN $2 ELSE $3 END)"
                " WHERE pipeline_id = $1 AND state IN ('PENDING', 'RUNNING')", pipeline_id,
                f"stopped: {error or state.lower()}",
                "not run: the pipeline was cancelled" if state == "CANCELLED" else "not run: the pipeline failed")
            return await self._with_steps(row, conn)

    async def request_cancel(self, pipeline_id: str) -> None:
        await self._pool.execute("UPDATE pipelines SET cancel_requested = true WHERE id = $1", pipeline_id)

    # -- steps --------------------------------------------------------------------------------------------

    async def start_step(self, pipeline_id: str, index: int) -> StepRecord:
        row = await self._pool.fetchrow(
            "UPDATE pipeline_steps SET state = 'RUNNING', attempts = attempts + 1, started_at = now(), error = NULL"
            " WHERE pipeline_id = $1 AND step_index = $2 RETURNING *", pipeline_id, index)
        return StepRecord(**dict(row))

    async def record_outputs(self, pipeline_id: str, index: int, outputs: dict[str, str]) -> None:
        """Add outputs to a running step (what a resumed attempt must find, such as the optimize step's study)."""
        await self._pool.execute("UPDATE pipeline_steps SET outputs = outputs || $3::jsonb WHERE pipeline_id = $1"
                                 " AND step_index = $2", pipeline_id, index, outputs)

    async def finish_step(self, pipeline_id: str, index: int, state: str, *, outputs: dict[str, str] | None = None,
                          metrics: dict[str, float] | None = None, message: str = "",
                          error: str | None = None) -> StepRecord:
        row = await self._pool.fetchrow(
            "UPDATE pipeline_steps SET state = $3, outputs = outputs || $4::jsonb, metrics = $5, message = $6,"
            " error = $7, ended_at = now() WHERE pipeline_id = $1 AND step_index = $2 RETURNING *",
            pipeline_id, index, state, outputs or {}, metrics or {}, message, error)
        return StepRecord(**dict(row))
