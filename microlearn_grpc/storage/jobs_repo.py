"""Job rows in PostgreSQL: the lifecycle every worker and the reconciler go through.

Each state change is one conditional UPDATE (compare-and-set on the state, the lease holder or the
heartbeat seen), so concurrent workers, duplicate queue deliveries and several reconcilers cannot
run a job twice or move it backwards. Times come from the database clock.

    PENDING --start_attempt--> RUNNING --finish--> SUCCEEDED | FAILED | CANCELLED
       |  ^                       |
       |  +----requeue_or_fail----+ (lease expired, attempts left; else FAILED)
       +--request_cancel--> CANCELLED     RUNNING --request_cancel--> cancel_requested
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg

KINDS = ("training", "trial", "batch_prediction", "evaluation", "study", "pipeline")
STATES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})

CANCELLED_BEFORE_START = "cancelled before it started"

_COLUMNS = ("id, kind, state, spec, dataset_id, estimator, study_id, labels, request_id, attempt, max_attempts,"
            " worker_id, device, progress, error, cancel_requested, metrics, outputs, mlflow_run_id, created_at,"
            " started_at, ended_at, heartbeat_at, state_changed_at")


@dataclasses.dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    state: str
    spec: dict[str, Any]
    dataset_id: str | None
    estimator: str | None
    study_id: str | None
    labels: dict[str, str]
    request_id: str | None
    attempt: int
    max_attempts: int
    worker_id: str | None
    device: str | None
    progress: float
    error: str | None
    cancel_requested: bool
    metrics: dict[str, float]
    outputs: list[str]
    mlflow_run_id: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    state_changed_at: dt.datetime

    @property
    def resource_name(self) -> str:
        return f"jobs/{self.id}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class JobNotFound(Exception):
    """No job has this id."""


class InvalidTransition(Exception):
    """The job is not in the state (or not held by the worker) the change requires."""


def new_job_id() -> str:
    return f"job-{uuid.uuid4().hex[:16]}"


def _record(row: asyncpg.Record) -> JobRecord:
    return JobRecord(**dict(row))


class JobRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, *, kind: str, spec: dict[str, Any], dataset_id: str | None = None,
                     estimator: str | None = None, study_id: str | None = None,
                     labels: dict[str, str] | None = None, request_id: str | None = None,
                     max_attempts: int = 3, conn: asyncpg.Connection | None = None) -> tuple[JobRecord, bool]:
        """Write a PENDING job; returns (job, created). A known `request_id` returns its first job
        unchanged (created False) whatever the new spec says: the caller decides whether that is a conflict.
        An empty `request_id` means none (proto strings default to "")."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}; expected one of {', '.join(KINDS)}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        request_id = request_id or None
        row = await (conn or self._pool).fetchrow(
            f"INSERT INTO jobs (id, kind, spec, dataset_id, estimator, study_id, labels, request_id, max_attempts)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            f" ON CONFLICT (request_id) DO NOTHING RETURNING {_COLUMNS}",
            new_job_id(), kind, spec, dataset_id, estimator, study_id, labels or {}, request_id, max_attempts)
        if row is not None:
            return _record(row), True
        # ON CONFLICT waited for the other insert to commit, so its row is visible now.
        existing = await (conn or self._pool).fetchrow(f"SELECT {_COLUMNS} FROM jobs WHERE request_id = $1",
                                                       request_id)
        if existing is None:  # pragma: no cover - rows are never deleted
            raise RuntimeError(f"request_id {request_id!r} conflicted but no job holds it")
        return _record(existing), False

    async def get(self, job_id: str, *, conn: asyncpg.Connection | None = None) -> JobRecord | None:
        row = await (conn or self._pool).fetchrow(f"SELECT {_COLUMNS} FROM jobs WHERE id = $1", job_id)
        return _record(row) if row else None

    async def get_many(self, job_ids: list[str]) -> dict[str, JobRecord]:
        """The jobs that exist among `job_ids`, by id, in one query."""
        if not job_ids:
            return {}
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM jobs WHERE id = ANY($1)", job_ids)
        return {row["id"]: _record(row) for row in rows}

    async def _require(self, job_id: str, *, conn: asyncpg.Connection | None = None) -> JobRecord:
        job = await self.get(job_id, conn=conn)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def list(self, *, page_size: int, after: tuple[dt.datetime, str] | None, states: Iterable[str] = (),
                   kind: str | None = None, dataset_ids: Iterable[str] | None = None, estimator: str | None = None,
                   study_id: str | None = None, labels: dict[str, str] | None = None) -> tuple[list[JobRecord], int]:
        """A page ordered newest first (keyset on created_at, id) and the total number of matches.
        `dataset_ids` None means any dataset; an empty list matches nothing."""
        where = ["TRUE"]
        args: list[Any] = []
        states = list(states)
        if states:
            args.append(states)
            where.append(f"state = ANY(${len(args)}::text[])")
        if dataset_ids is not None:
            args.append(list(dataset_ids))
            where.append(f"dataset_id = ANY(${len(args)}::text[])")
        for column, value in (("kind", kind), ("estimator", estimator), ("study_id", study_id)):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        if labels:
            args.append(labels)
            where.append(f"labels @> ${len(args)}::jsonb")
        total = await self._pool.fetchval(f"SELECT count(*) FROM jobs WHERE {' AND '.join(where)}", *args)
        if after is not None:
            args.extend(after)
            where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(page_size)
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM jobs WHERE {' AND '.join(where)}"
            f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}", *args)
        return [_record(r) for r in rows], int(total)

    async def take(self, job_id: str, worker_id: str, device: str) -> tuple[JobRecord | None, str]:
        """One delivery of a job to a worker: (the job, now RUNNING under this worker's lease, "") or
        (None, why it must not run: unknown, no longer PENDING, cancelled or taken by another worker)."""
        job = await self.get(job_id)
        if job is None or job.state != "PENDING":
            return None, f"not run: job is {job.state}" if job else "unknown job"
        started = await self.start_attempt(job_id, worker_id, device)
        return started, "" if started else "not run: cancelled or taken by another worker"

    async def start_attempt(self, job_id: str, worker_id: str, device: str) -> JobRecord | None:
        """Take the lease: PENDING -> RUNNING. None when the job is not PENDING (another delivery
        already took it, it finished, or it does not exist) or cancellation was requested (then it
        becomes CANCELLED here): the caller must not run it."""
        row = await self._pool.fetchrow(
            f"UPDATE jobs SET state = 'RUNNING', attempt = attempt + 1, worker_id = $2, device = $3,"
            f" progress = 0, error = NULL, started_at = now(), heartbeat_at = now(), state_changed_at = now()"
            f" WHERE id = $1 AND state = 'PENDING' AND NOT cancel_requested RETURNING {_COLUMNS}",
            job_id, worker_id, device)
        if row is not None:
            return _record(row)
        await self._pool.execute(
            "UPDATE jobs SET state = 'CANCELLED', ended_at = now(), state_changed_at = now(),"
            " error = coalesce(error, $2) WHERE id = $1 AND state = 'PENDING' AND cancel_requested",
            job_id, CANCELLED_BEFORE_START)
        return None

    async def heartbeat(self, job_id: str, worker_id: str, *, progress: float | None = None) -> bool:
        """Renew the lease (and record progress, clamped to [0, 1]). False when this worker no longer
        holds it or cancellation was requested: either way the worker should stop."""
        # GREATEST skips NULLs, hence the CASE: a beat without progress keeps the old value.
        cancel_requested = await self._pool.fetchval(
            "UPDATE jobs SET heartbeat_at = now(),"
            " progress = CASE WHEN $3::float8 IS NULL THEN progress ELSE least(greatest($3::float8, 0), 1) END"
            " WHERE id = $1 AND worker_id = $2 AND state = 'RUNNING' RETURNING cancel_requested",
            job_id, worker_id, progress)
        return cancel_requested is False

    async def finish(self, job_id: str, worker_id: str, state: str, *, error: str | None = None,
                     metrics: dict[str, float] | None = None, outputs: list[str] | None = None,
                     conn: asyncpg.Connection | None = None) -> JobRecord:
        """RUNNING -> a terminal state, by the lease holder only. A FAILED or CANCELLED job always
        carries a reason. Raises InvalidTransition when the worker lost the lease or the job already
        ended, JobNotFound when there is no such job."""
        if state not in TERMINAL_STATES:
            raise ValueError(f"finish needs a terminal state, not {state!r}")
        if state == "FAILED":
            error = error or "failed (no reason given)"
        elif state == "CANCELLED":
            error = error or "cancelled"
        row = await (conn or self._pool).fetchrow(
            f"UPDATE jobs SET state = $3, error = $4, metrics = coalesce($5, metrics),"
            f" outputs = coalesce($6, outputs), ended_at = now(), state_changed_at = now(),"
            f" progress = CASE WHEN $3 = 'SUCCEEDED' THEN 1 ELSE progress END"
            f" WHERE id = $1 AND worker_id = $2 AND state = 'RUNNING' RETURNING {_COLUMNS}",
            job_id, worker_id, state, error, metrics, outputs)
        if row is not None:
            return _record(row)
        job = await self._require(job_id, conn=conn)
        raise InvalidTransition(f"{job.resource_name} is {job.state} (worker {job.worker_id}); "
                                f"{worker_id} cannot finish it as {state}")

    async def request_cancel(self, job_id: str, reason: str | None = None) -> JobRecord:
        """PENDING -> CANCELLED at once; RUNNING -> cancel_requested (the worker sees it at its next
        heartbeat and finishes CANCELLED); a terminal job is returned unchanged. `reason` is recorded
        as the error of a job cancelled here and kept for the worker to use."""
        row = await self._pool.fetchrow(
            f"UPDATE jobs SET cancel_requested = true,"
            f" state = CASE WHEN state = 'PENDING' THEN 'CANCELLED' ELSE state END,"
            f" ended_at = CASE WHEN state = 'PENDING' THEN now() ELSE ended_at END,"
            f" error = CASE WHEN state = 'PENDING' THEN $2 ELSE coalesce($3, error) END,"
            f" state_changed_at = CASE WHEN state = 'PENDING' THEN now() ELSE state_changed_at END"
            f" WHERE id = $1 AND state IN ('PENDING', 'RUNNING') RETURNING {_COLUMNS}",
            job_id, reason or CANCELLED_BEFORE_START, reason)
        if row is not None:
            return _record(row)
        return await self._require(job_id)  # terminal states are absorbing: nothing can have changed it since

    async def expired_leases(self, lease_seconds: float, *, limit: int = 1000) -> list[JobRecord]:
        """RUNNING jobs whose last heartbeat is older than the lease, oldest first."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM jobs WHERE state = 'RUNNING'"
            f" AND heartbeat_at < now() - make_interval(secs => $1::float8) ORDER BY heartbeat_at LIMIT $2",
            lease_seconds, limit)
        return [_record(r) for r in rows]

    async def requeue_or_fail(self, job_id: str, reason: str, *,
                              heartbeat_at: dt.datetime | None = None) -> JobRecord:
        """For the reconciler, about a RUNNING job whose worker is gone: back to PENDING (lease cleared)
        while attempts remain, else FAILED with `reason` and the attempt count; CANCELLED instead when
        cancellation had been requested. The caller re-enqueues a PENDING result.

        Pass the `heartbeat_at` seen in expired_leases(): the update then acts only if the job still
        has that heartbeat, so a job that was requeued and started again meanwhile is left alone.
        Raises InvalidTransition when the job is no longer that RUNNING attempt (another reconciler
        acted first, or the worker beat or finished), JobNotFound when there is no such job."""
        gone = "(cancel_requested OR attempt >= max_attempts)"
        row = await self._pool.fetchrow(
            f"UPDATE jobs SET"
            f" state = CASE WHEN cancel_requested THEN 'CANCELLED'"
            f"  WHEN attempt < max_attempts THEN 'PENDING' ELSE 'FAILED' END,"
            f" error = CASE WHEN cancel_requested THEN format('cancelled (the worker was lost: %s)', $2::text)"
            f"  WHEN attempt < max_attempts THEN NULL"
            f"  ELSE format('%s (gave up after %s of %s attempts)', $2::text, attempt, max_attempts) END,"
            f" worker_id = CASE WHEN {gone} THEN worker_id END,"
            f" progress = CASE WHEN {gone} THEN progress ELSE 0 END,"
            f" ended_at = CASE WHEN {gone} THEN now() END,"
            f" state_changed_at = now()"
            f" WHERE id = $1 AND state = 'RUNNING' AND ($3::timestamptz IS NULL OR heartbeat_at = $3)"
            f" RETURNING {_COLUMNS}",
            job_id, reason, heartbeat_at)
        if row is not None:
            return _record(row)
        job = await self._require(job_id)
        raise InvalidTransition(f"{job.resource_name} is {job.state} with heartbeat {job.heartbeat_at}; "
                                f"not requeued")

    async def stale_pending(self, older_than_seconds: float, *, limit: int = 1000) -> list[JobRecord]:
        """Jobs PENDING for longer than this (since written or requeued), oldest first: Redis may have
        lost their queue entry. Re-enqueueing is safe since the arq job id is the job id."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM jobs WHERE state = 'PENDING'"
            f" AND state_changed_at < now() - make_interval(secs => $1::float8) ORDER BY state_changed_at LIMIT $2",
            older_than_seconds, limit)
        return [_record(r) for r in rows]

    async def set_mlflow_run(self, job_id: str, run_id: str) -> None:
        status = await self._pool.execute("UPDATE jobs SET mlflow_run_id = $2 WHERE id = $1", job_id, run_id)
        if status == "UPDATE 0":
            raise JobNotFound(job_id)
