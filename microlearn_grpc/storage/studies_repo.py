"""Studies and their trials in PostgreSQL (migration 0004): the coordinator's memory and the leaderboard."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
from collections.abc import Iterable
from typing import Any

import asyncpg

from microlearn_grpc.storage.db import Where, newest_first

TERMINAL_STUDY = ("SUCCEEDED", "FAILED", "CANCELLED")
TERMINAL_TRIAL = ("COMPLETE", "PRUNED", "FAILED", "CANCELLED")


@dataclasses.dataclass
class StudyRecord:
    id: str
    display_name: str
    spec: dict[str, Any]
    state: str
    error: str | None
    dataset_id: str
    labels: dict[str, str]
    request_id: str | None
    coordinator_job_id: str
    optuna_study_name: str
    stop_requested: bool
    cancel_running: bool
    stop_reason: str | None
    best_model_id: str | None
    ensemble_model_id: str | None
    ensemble_score: float | None
    mlflow_run_id: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None

    @property
    def resource_name(self) -> str:
        return f"studies/{self.id}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STUDY


@dataclasses.dataclass
class TrialRecord:
    study_id: str
    number: int
    optuna_trial_id: int
    job_id: str
    estimator: str
    params: dict[str, Any]
    state: str
    score: float | None
    score_std: float
    metrics: dict[str, float]
    fit_time_seconds: float
    predict_time_seconds: float
    iterations: int
    last_step: int
    pruned_step: int
    error: str | None
    model_id: str | None
    device: str
    worker_id: str
    events_after: str
    mlflow_run_id: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_TRIAL


_JSON = ("spec", "labels", "params", "metrics")


def _load(cls: type, row: asyncpg.Record) -> Any:
    values = dict(row)
    for key in _JSON:
        if key in values and isinstance(values[key], str):
            values[key] = json.loads(values[key])
    return cls(**values)


def _trial_filter(study_id: str, states: Iterable[str], estimator: str) -> tuple[list[str], list[Any]]:
    where, args = ["study_id = $1"], [study_id]
    states = list(states)
    if states:
        args.append(states)
        where.append(f"state = ANY(${len(args)})")
    if estimator:
        args.append(estimator)
        where.append(f"estimator = ${len(args)}")
    return where, args


def new_study_id() -> str:
    return "study-" + secrets.token_hex(8)


class StudyRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, conn: asyncpg.Connection, *, study_id: str, display_name: str, spec: dict[str, Any],
                     dataset_id: str, labels: dict[str, str], request_id: str | None, coordinator_job_id: str,
                     optuna_study_name: str) -> StudyRecord:
        row = await conn.fetchrow(
            "INSERT INTO studies (id, display_name, spec, dataset_id, labels, request_id, coordinator_job_id,"
            " optuna_study_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
            study_id, display_name, json.dumps(spec), dataset_id, json.dumps(labels), request_id,
            coordinator_job_id, optuna_study_name)
        return _load(StudyRecord, row)

    async def get(self, study_id: str) -> StudyRecord | None:
        row = await self._pool.fetchrow("SELECT * FROM studies WHERE id = $1", study_id)
        return _load(StudyRecord, row) if row else None

    async def by_request_id(self, request_id: str) -> StudyRecord | None:
        row = await self._pool.fetchrow("SELECT * FROM studies WHERE request_id = $1", request_id)
        return _load(StudyRecord, row) if row else None

    async def list(self, *, page_size: int, after: tuple[dt.datetime, str] | None, states: Iterable[str] = (),
                   dataset_ids: list[str] | None = None, labels: dict[str, str] | None = None,
                   ) -> tuple[list[StudyRecord], int]:
        where = Where()
        states = list(states)
        if states:
            where.add("state = ANY({})", states)
        if dataset_ids is not None:
            where.add("dataset_id = ANY({})", dataset_ids)
        if labels:
            where.add("labels @> {}::jsonb", json.dumps(labels))
        rows, total = await newest_first(self._pool, "studies", where, after=after, page_size=page_size)
        return [_load(StudyRecord, row) for row in rows], total

    async def start(self, study_id: str) -> StudyRecord:
        """PENDING -> RUNNING (first start) or keep RUNNING/STOPPING (a coordinator resuming)."""
        row = await self._pool.fetchrow(
            "UPDATE studies SET state = CASE WHEN state = 'PENDING' THEN 'RUNNING' ELSE state END,"
            " started_at = coalesce(started_at, now()) WHERE id = $1 RETURNING *", study_id)
        return _load(StudyRecord, row)

    async def set_stopping(self, study_id: str, reason: str) -> None:
        await self._pool.execute("UPDATE studies SET state = 'STOPPING', stop_reason = coalesce(stop_reason, $2)"
                                 " WHERE id = $1 AND state IN ('PENDING', 'RUNNING')", study_id, reason)

    async def request_stop(self, study_id: str, *, cancel_running: bool, reason: str) -> StudyRecord | None:
        row = await self._pool.fetchrow(
            "UPDATE studies SET stop_requested = true, cancel_running = cancel_running OR $2,"
            " stop_reason = coalesce(stop_reason, $3) WHERE id = $1 RETURNING *", study_id, cancel_running, reason)
        return _load(StudyRecord, row) if row else None

    async def finish(self, study_id: str, state: str, *, error: str | None = None, best_model_id: str | None = None,
                     conn: asyncpg.Connection | None = None) -> StudyRecord | None:
        """End a study unless it already ended; None when it had."""
        row = await (conn or self._pool).fetchrow(
            "UPDATE studies SET state = $2, error = $3, best_model_id = coalesce($4, best_model_id), ended_at = now()"
            " WHERE id = $1 AND state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED') RETURNING *",
            study_id, state, error, best_model_id)
        return _load(StudyRecord, row) if row else None

    async def set_ensemble(self, study_id: str, model_id: str | None, score: float | None) -> None:
        await self._pool.execute("UPDATE studies SET ensemble_model_id = $2, ensemble_score = $3 WHERE id = $1",
                                 study_id, model_id, score)

    async def set_mlflow_run(self, study_id: str, run_id: str) -> None:
        await self._pool.execute("UPDATE studies SET mlflow_run_id = $2 WHERE id = $1", study_id, run_id)

    # -- trials -----------------------------------------------------------------------------------------

    async def add_trial(self, *, study_id: str, number: int, optuna_trial_id: int, job_id: str, estimator: str,
                        params: dict[str, Any]) -> TrialRecord:
        row = await self._pool.fetchrow(
            "INSERT INTO study_trials (study_id, number, optuna_trial_id, job_id, estimator, params)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            study_id, number, optuna_trial_id, job_id, estimator, json.dumps(params))
        return _load(TrialRecord, row)

    async def update_trial(self, study_id: str, number: int, **fields: Any) -> TrialRecord:
        names = sorted(fields)
        sets = ", ".join(f"{name} = ${i + 3}" for i, name in enumerate(names))
        values = [json.dumps(fields[n]) if n in _JSON else fields[n] for n in names]
        row = await self._pool.fetchrow(f"UPDATE study_trials SET {sets} WHERE study_id = $1 AND number = $2 "
                                        "RETURNING *", study_id, number, *values)
        return _load(TrialRecord, row)

    async def trials(self, study_id: str, *, states: Iterable[str] = (), estimator: str = "",
                     order: str = "number", direction: str = "maximize", limit: int | None = None,
                     offset: int = 0) -> list[TrialRecord]:
        where, args = _trial_filter(study_id, states, estimator)
        if order == "score":
            # Completed trials best first, then running, pruned, failed and cancelled by number.
            rank = ("CASE state WHEN 'COMPLETE' THEN 0 WHEN 'RUNNING' THEN 1 WHEN 'PENDING' THEN 2 WHEN 'PRUNED' "
                    "THEN 3 WHEN 'FAILED' THEN 4 ELSE 5 END")
            by = (f"{rank}, CASE WHEN state = 'COMPLETE' THEN score END "
                  f"{'DESC' if direction == 'maximize' else 'ASC'} NULLS LAST, number")
        else:
            by = "number"
        sql = f"SELECT * FROM study_trials WHERE {' AND '.join(where)} ORDER BY {by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [_load(TrialRecord, row) for row in await self._pool.fetch(sql, *args)]

    async def count_trials(self, study_id: str, *, states: Iterable[str] = (), estimator: str = "") -> int:
        where, args = _trial_filter(study_id, states, estimator)
        return int(await self._pool.fetchval(f"SELECT count(*) FROM study_trials WHERE {' AND '.join(where)}", *args))

    async def trial_counts(self, study_id: str) -> dict[str, int]:
        rows = await self._pool.fetch("SELECT state, count(*) AS n FROM study_trials WHERE study_id = $1 "
                                      "GROUP BY state", study_id)
        return {row["state"]: int(row["n"]) for row in rows}

    async def trial_workers(self, study_id: str) -> list[str]:
        """The workers that ran the study's trials."""
        rows = await self._pool.fetch("SELECT DISTINCT worker_id FROM study_trials WHERE study_id = $1 AND "
                                      "worker_id <> ''", study_id)
        return [row["worker_id"] for row in rows]
