"""Model rows in PostgreSQL: what a stored model artifact is, how it scored, and where it came from.

A row is inserted in the transaction that ends its job SUCCEEDED (`insert(..., conn=)`), so a
model exists exactly when its job succeeded. Deleting a row does not delete the artifact: the
service removes the artifact after the row is gone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg

_FIELDS = ("id", "job_id", "dataset_id", "target", "estimator", "task", "hyperparameters", "metric", "metrics",
           "metrics_std", "train_metrics", "feature_schema", "class_labels", "format", "artifact_key", "size_bytes",
           "sha256", "hmac", "diagnostics", "lineage", "mlflow_run_id", "iterations", "best_iteration",
           "training_row_count", "fit_time_seconds", "device", "study_id", "trial_number", "labels")
_COLUMNS = ", ".join(_FIELDS) + ", created_at"
_ORDERABLE_METRIC = "metrics"


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    id: str
    job_id: str | None
    dataset_id: str
    target: str
    estimator: str
    task: str
    hyperparameters: dict[str, Any]
    metric: str
    metrics: dict[str, float]
    metrics_std: dict[str, float]
    train_metrics: dict[str, float]
    feature_schema: list[dict[str, Any]]
    class_labels: list[str]
    format: str
    artifact_key: str
    size_bytes: int
    sha256: str
    hmac: str
    diagnostics: dict[str, Any]
    lineage: dict[str, Any]
    mlflow_run_id: str | None
    iterations: int
    best_iteration: int
    training_row_count: int
    fit_time_seconds: float
    device: str
    study_id: str | None
    trial_number: int
    labels: dict[str, str]
    created_at: dt.datetime | None = None

    @property
    def resource_name(self) -> str:
        return f"models/{self.id}"


def new_model_id() -> str:
    return f"mdl-{uuid.uuid4().hex[:16]}"


def _record(row: asyncpg.Record) -> ModelRecord:
    return ModelRecord(**dict(row))


class ModelRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, model: ModelRecord, *, conn: asyncpg.Connection | None = None) -> ModelRecord:
        values = [getattr(model, name) for name in _FIELDS]
        placeholders = ", ".join(f"${i}" for i in range(1, len(_FIELDS) + 1))
        row = await (conn or self._pool).fetchrow(
            f"INSERT INTO models ({', '.join(_FIELDS)}) VALUES ({placeholders}) RETURNING {_COLUMNS}", *values)
        return _record(row)

    async def get(self, model_id: str) -> ModelRecord | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM models WHERE id = $1", model_id)
        return _record(row) if row else None

    async def get_by_job(self, job_id: str) -> ModelRecord | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM models WHERE job_id = $1", job_id)
        return _record(row) if row else None

    async def set_diagnostics(self, model_id: str, diagnostics: dict[str, Any], *,
                              conn: asyncpg.Connection | None = None) -> bool:
        """Replace a model's plot data (an evaluation job's result); False when the model is gone."""
        return await (conn or self._pool).fetchval(
            "UPDATE models SET diagnostics = $2 WHERE id = $1 RETURNING true", model_id, diagnostics) is not None

    async def delete(self, model_id: str) -> ModelRecord | None:
        row = await self._pool.fetchrow(f"DELETE FROM models WHERE id = $1 RETURNING {_COLUMNS}", model_id)
        return _record(row) if row else None

    async def artifact_in_use(self, artifact_key: str) -> bool:
        return bool(await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM models WHERE artifact_key = $1)",
                                              artifact_key))

    async def list(self, *, page_size: int, offset: int, dataset_ids: list[str] | None = None,
                   estimator: str | None = None, task: str | None = None, study_id: str | None = None,
                   labels: dict[str, str] | None = None, order_metric: str | None = None,
                   descending: bool = True) -> tuple[list[ModelRecord], int]:
        """A page and the total number of matches. Ordered by creation time, or by a metric (models
        without it last) when `order_metric` is given; ties broken by id."""
        where = ["TRUE"]
        args: list[Any] = []
        if dataset_ids is not None:
            args.append(dataset_ids)
            where.append(f"dataset_id = ANY(${len(args)}::text[])")
        for column, value in (("estimator", estimator), ("task", task), ("study_id", study_id)):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        if labels:
            args.append(labels)
            where.append(f"labels @> ${len(args)}::jsonb")
        clause = " AND ".join(where)
        total = await self._pool.fetchval(f"SELECT count(*) FROM models WHERE {clause}", *args)
        direction = "DESC" if descending else "ASC"
        if order_metric is not None:
            args.append(order_metric)
            order = (f"({_ORDERABLE_METRIC} ->> ${len(args)})::float8 {direction} NULLS LAST,"
                     f" created_at DESC, id DESC")
        else:
            order = f"created_at {direction}, id {direction}"
        args.extend([page_size, offset])
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM models WHERE {clause} ORDER BY {order}"
            f" LIMIT ${len(args) - 1} OFFSET ${len(args)}", *args)
        return [_record(r) for r in rows], int(total)

    async def referenced_by_deployments(self, model_id: str) -> list[str]:
        """Registered model versions that use this model (the deploy issue adds that table)."""
        exists = await self._pool.fetchval("SELECT to_regclass('model_versions') IS NOT NULL")
        if not exists:
            return []
        rows = await self._pool.fetch("SELECT name FROM model_versions WHERE model_id = $1", model_id)
        return [r["name"] for r in rows]
