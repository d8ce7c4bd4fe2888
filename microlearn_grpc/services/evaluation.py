"""EvaluateModel: measure a stored model on held-out rows in an `evaluation` job on the workers.

The request is resolved here into the rows to score (see `core.evaluation`): another dataset, the
model's own validation rows (rebuilt from its training job's or its study's validation spec and seed),
or, for k-fold models, their cross-validation run again. A study's refit model saw every row, so by
default it is measured with the trial it refits (same configuration, its validation rows); the
figures are stored on the refit model. The job (workers/evaluation.py) writes what it measured into
the model's diagnostics.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from microlearn_grpc import errors
from microlearn_grpc.services.datasets import DatasetService
from microlearn_grpc.services.training import MAX_REQUEST_ID, TrainingService, model_id_of
from microlearn_grpc.storage.jobs_repo import JobRecord
from microlearn_grpc.storage.models_repo import ModelRecord
from microlearn_grpc.storage.studies_repo import StudyRepository


log = logging.getLogger(__name__)


def evaluate_when_registered(evaluations: Callable[[], EvaluationService]) -> Callable[[ModelRecord], Awaitable[None]]:
    """A `ModelRegistry` hook: a model registered as a version without permutation importance (plain
    training jobs and trials skip it to keep their time) gets an evaluation job on the workers. Best
    effort: registering never fails because of it (an ensemble of k-fold trials, say, has no
    held-out rows to be measured on without a dataset)."""

    async def hook(record: ModelRecord) -> None:
        if record.task == "clustering" or (record.diagnostics or {}).get("permutation_importance"):
            return
        try:
            await evaluations().start(record.resource_name, request_id=f"registered-{record.id}")
        except errors.DomainError as exc:
            log.info("%s registered without an evaluation job: %s", record.resource_name, exc)
        except Exception:  # noqa: BLE001 - the registration stands
            log.warning("could not start the evaluation of %s", record.resource_name, exc_info=True)

    return hook


class EvaluationService:
    def __init__(self, training: TrainingService, datasets: DatasetService, pool: asyncpg.Pool) -> None:
        self._training = training
        self._datasets = datasets
        self._studies = StudyRepository(pool)

    async def start(self, model: str, *, dataset: str = "", metric: str = "", request_id: str = "") -> JobRecord:
        from microlearn_grpc.core import metrics as metric_lib

        if len(request_id) > MAX_REQUEST_ID:
            raise errors.InvalidArgument(f"request_id: at most {MAX_REQUEST_ID} characters")
        record = await self._training.get_model(f"models/{model_id_of(model, 'model')}")
        if record.task == "clustering":
            raise errors.FailedPrecondition(f"model: {record.resource_name} is a clustering model; there is no "
                                            "target to evaluate it against")
        try:
            metric = metric_lib.check_metric(record.task, metric or record.metric)
        except ValueError as exc:
            raise errors.InvalidArgument(f"metric: {exc}") from None
        rows = await (self._on_dataset(record, dataset) if dataset.strip() else self._own_rows(record))
        spec = {"model_id": record.id, "model": record.resource_name, "task": record.task, "target": record.target,
                "metric": metric, "labels": record.labels, "timeout_seconds": 0, **rows}
        job, _ = await self._training.submit(
            "evaluation", spec, estimator=record.estimator, request_id=request_id,
            message=f"queued: evaluate {record.resource_name} on {rows['dataset_display']} ({rows['rows']} rows)")
        return job

    async def _on_dataset(self, record: ModelRecord, dataset: str) -> dict[str, Any]:
        found = await self._datasets.resolve(dataset, field="dataset")
        columns = {c["name"] for c in (found.profile or {}).get("columns", [])}
        missing = [c for c in [record.target, *(f["name"] for f in record.feature_schema)] if c not in columns]
        if missing:
            raise errors.InvalidArgument(f"dataset: {found.display_name}@{found.version} lacks the model's "
                                         f"column(s) {', '.join(map(repr, missing[:10]))}")
        return {"rows": "dataset", "source_model_id": record.id, "dataset": found.resource_name,
                "dataset_display": f"{found.display_name}@{found.version}"}

    async def _own_rows(self, record: ModelRecord) -> dict[str, Any]:
        source = record
        refit_of = record.lineage.get("refit_of")
        if refit_of:
            source = await self._training.models.get(refit_of)
            if source is None:
                raise errors.FailedPrecondition(f"model: {record.resource_name} refits models/{refit_of}, which is "
                                                "gone; give a held-out dataset")
        if source.job_id:
            job = await self._training.jobs.get(source.job_id)
            if job is None:
                raise errors.FailedPrecondition(f"model: the job that trained {source.resource_name} is gone; give "
                                                "a held-out dataset")
            validation, seed = job.spec.get("validation") or {}, job.spec.get("seed", 0)
            rows = "out_of_fold" if validation.get("method") == "kfold" else "validation"
        else:  # a study's ensemble: its members all split the study's rows the same way
            study = await self._studies.get(source.study_id or "")
            if study is None:
                raise errors.FailedPrecondition(f"model: {source.resource_name} has no training job or study to take "
                                                "validation rows from; give a held-out dataset")
            validation, seed = study.spec.get("validation") or {}, study.spec["seed"]
            if validation.get("method") == "kfold":
                raise errors.FailedPrecondition(
                    f"model: {source.resource_name} is an ensemble of k-fold trials, refit on every row: it has no "
                    "rows of its own left out; give a held-out dataset")
            rows, job = "validation", None
        dataset = validation.get("validation_dataset") or f"datasets/{source.dataset_id}"
        found = await self._datasets.resolve(dataset, field="model")
        return {"rows": rows, "source_model_id": source.id, "dataset": found.resource_name,
                "dataset_display": f"{found.display_name}@{found.version}", "validation": validation,
                "validation_dataset": bool(validation.get("validation_dataset")), "seed": seed,
                "training_job_id": job.id if job is not None else None}
