"""Training use cases: start, follow and cancel jobs; list, read, download and delete models.

StartTraining validates everything a worker would trip on (dataset, target, task, estimator,
hyperparameters, metric, validation, limits) before anything is written, so an invalid request
costs nothing and a written job only fails for reasons the data shows at fit time. The job row is
written first (with the dataset reference, in one transaction), then queued; if queueing fails
the reconciler queues it later, so an accepted job is never lost.
"""

from __future__ import annotations

import base64
import logging
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from microlearn.v1 import common_pb2
from microlearn_grpc import errors
from microlearn_grpc.services import job_events
from microlearn_grpc.services.datasets import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, DatasetService
from microlearn_grpc.storage.artifacts import ArtifactStore
from microlearn_grpc.storage.datasets_repo import decode_page_token, encode_page_token
from microlearn_grpc.storage.events import EventBus, is_terminal_state_change
from microlearn_grpc.storage.jobs_repo import STATES, JobRecord, JobRepository
from microlearn_grpc.storage.models_repo import ModelRecord, ModelRepository

if TYPE_CHECKING:
    from microlearn_grpc.services.evaluation import EvaluationService

log = logging.getLogger(__name__)

MAX_ITERATIONS = 1_000_000
MAX_COMPARED = 50
MAX_LABELS = 64
MAX_LABEL_CHARS = 63
MAX_REQUEST_ID = 128
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_.-]*")
_EXPERIMENT = re.compile(r"[^\x00-\x1f]{1,250}")
_ORDER_BY = re.compile(r"(create_time|metrics\.([A-Za-z0-9_]+))( (asc|desc))?")
DEFAULT_FOLDS, DEFAULT_FRACTION = 5, 0.2


@dataclass
class Page:
    items: list
    next_page_token: str
    total_size: int


def _bad(field: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"{field}: {message}")


def job_id_of(name: str, field: str = "name") -> str:
    job_id = (name or "").strip().removeprefix("jobs/")
    if not job_id or "/" in job_id:
        raise _bad(field, "give a job as jobs/ID or its id")
    return job_id


def model_id_of(name: str, field: str = "name") -> str:
    model_id = (name or "").strip().removeprefix("models/")
    if not model_id or "/" in model_id:
        raise _bad(field, "give a model as models/ID or its id")
    return model_id


class TrainingService:
    def __init__(self, pool: asyncpg.Pool, bus: EventBus, queue: Any, datasets: DatasetService,
                 artifacts: ArtifactStore, *, max_attempts: int = 3, max_timeout_seconds: int = 24 * 3600,
                 queue_name: str = "microlearn:jobs") -> None:
        self._pool = pool
        self._jobs = JobRepository(pool)
        self._models = ModelRepository(pool)
        self._bus = bus
        self._queue = queue  # an arq ArqRedis
        self._datasets = datasets
        self._artifacts = artifacts
        self._max_attempts = max_attempts
        self._max_timeout = max_timeout_seconds
        self._queue_name = queue_name
        self._evaluations: EvaluationService | None = None

    @property
    def max_timeout_seconds(self) -> int:
        return self._max_timeout

    @property
    def jobs(self) -> JobRepository:
        return self._jobs

    @property
    def models(self) -> ModelRepository:
        return self._models

    @property
    def evaluations(self) -> EvaluationService:
        """EvaluateModel's use case, on this service's job machinery."""
        from microlearn_grpc.services.evaluation import EvaluationService

        if self._evaluations is None:
            self._evaluations = EvaluationService(self, self._datasets, self._pool)
        return self._evaluations

    # -- StartTraining ---------------------------------------------------------------------------

    async def start(self, spec: dict[str, Any], request_id: str = "", *, kind: str = "training",
                    study_id: str | None = None, extra: dict[str, Any] | None = None) -> tuple[JobRecord, bool]:
        """Validate and resolve `spec`, write the job and queue it. Returns (job, created): a known
        `request_id` returns its first job without starting anything. `extra` is merged into the
        resolved spec (a study's trial number, for example)."""
        if len(request_id) > MAX_REQUEST_ID:
            raise _bad("request_id", f"at most {MAX_REQUEST_ID} characters, got {len(request_id)}")
        if request_id:
            existing = await self._pool.fetchval("SELECT id FROM jobs WHERE request_id = $1", request_id)
            if existing:
                return await self.get_job(existing), False
        resolved = {**await self.resolve_spec(spec), **(extra or {})}
        return await self.submit(kind, resolved, estimator=resolved["estimator"], study_id=study_id,
                                 request_id=request_id,
                                 message=f"queued: {resolved['estimator']} on {resolved['dataset_display']}")

    async def submit(self, kind: str, spec: dict[str, Any], *, estimator: str | None, request_id: str = "",
                     study_id: str | None = None, message: str) -> tuple[JobRecord, bool]:
        """Write a resolved job (holding its dataset, `spec["dataset"]`, while it is active) and queue it;
        (job, created) as `start` returns it."""
        spec = {**spec, "queue": self._queue_name}
        async with self._pool.acquire() as conn, conn.transaction():
            job, created = await self._jobs.create(
                kind=kind, spec=spec, dataset_id=spec["dataset"].removeprefix("datasets/"),
                estimator=estimator, study_id=study_id, labels=spec["labels"],
                request_id=request_id or None, max_attempts=self._max_attempts, conn=conn)
            if created:
                await conn.execute("INSERT INTO dataset_references (dataset_id, referrer) VALUES ($1, $2)"
                                   " ON CONFLICT DO NOTHING", job.dataset_id, job.resource_name)
        if not created:
            return job, False
        await self._publish(job.id, [job_events.state_event(job.id, "PENDING", message)])
        try:
            from workers.queue import enqueue

            await enqueue(self._queue, job.id, self._queue_name)
        except Exception:  # noqa: BLE001 - the reconciler queues jobs Redis never got
            log.warning("could not queue %s now; the reconciler will", job.resource_name, exc_info=True)
        return job, True

    async def resolve_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The spec with the dataset pinned to a version, the task detected, defaults filled in, and
        everything checked; InvalidArgument names the first bad field."""
        from microlearn_grpc.core import metrics as metric_lib
        from microlearn_grpc.core import task_detection
        from microlearn_grpc.core.estimators import HyperparameterError, get_estimator

        record = await self._datasets.resolve(spec.get("dataset", ""), field="spec.dataset")
        profile = record.profile or {"columns": [], "row_count": record.row_count}
        columns = [c["name"] for c in profile["columns"]]
        target = (spec.get("target") or "").strip()
        task = spec.get("task") or ""
        if target and target not in columns:
            raise _bad("spec.target", f"column {target!r} is not in dataset {record.display_name}@{record.version}; "
                                      f"its columns are: {', '.join(columns)}")
        try:
            if task:
                detection = task_detection.check_task(profile, target or None, task)
            else:
                detection = task_detection.detect_task(profile, target or None)
        except ValueError as exc:
            raise _bad("spec.task" if task else "spec.target", str(exc)) from None
        task = detection.task
        if task != "clustering" and not target:
            raise _bad("spec.target", f"a target column is required for {task}")

        name = (spec.get("estimator") or "").strip()
        if not name:
            raise _bad("spec.estimator", "required: an estimator id such as lightgbm_classifier "
                                         "(SelectorService.ListEstimators lists them)")
        try:
            cls = get_estimator(name)
        except KeyError as exc:
            raise _bad("spec.estimator", exc.args[0]) from None
        if task not in cls.tasks:
            supported = ", ".join(sorted(cls.tasks))
            raise _bad("spec.estimator", f"{cls.name} does not support the {task} task of target {target!r} "
                                         f"({detection.reason}); it supports {supported}")
        if not cls.is_available():
            raise errors.FailedPrecondition(f"spec.estimator: {cls.name} cannot run here: {cls.unavailable_reason()}")

        params = dict(spec.get("hyperparameters") or {})
        max_iterations = int(spec.get("max_iterations") or 0)
        if not 0 <= max_iterations <= MAX_ITERATIONS:
            raise _bad("spec.max_iterations", f"must be 0 (the estimator's default) to {MAX_ITERATIONS:,}")
        use_gpu = spec.get("use_gpu")
        if use_gpu and not cls.supports_gpu:
            raise _bad("spec.use_gpu", f"{cls.name} cannot use a GPU; leave use_gpu unset or pick an estimator "
                                       "with GPU support (xgboost_*, lightning_mlp_*)")
        balance = bool(spec.get("balance_classes"))
        if balance and task not in ("binary", "multiclass"):
            raise _bad("spec.balance_classes", f"only for classification, not {task}")
        if balance and not cls.supports_class_weights:
            raise _bad("spec.balance_classes", f"{cls.name} cannot reweight classes")
        try:
            cls(task, params, balance_classes=balance)
        except HyperparameterError as exc:
            raise _bad(f"spec.hyperparameters.{exc.parameter}", str(exc)) from None
        except ValueError as exc:
            raise _bad("spec.hyperparameters", str(exc)) from None

        try:
            metric = metric_lib.check_metric(task, spec.get("metric") or "")
        except ValueError as exc:
            raise _bad("spec.metric", str(exc)) from None

        validation = self._validation(spec.get("validation") or {}, task, columns, target)
        if validation.get("validation_dataset"):
            other = await self._datasets.resolve(validation["validation_dataset"],
                                                 field="spec.validation.validation_dataset")
            other_columns = {c["name"] for c in (other.profile or {}).get("columns", [])}
            missing = [c for c in columns if c not in other_columns]
            if missing:
                raise _bad("spec.validation.validation_dataset",
                           f"{other.display_name}@{other.version} lacks columns {', '.join(missing[:10])}")
            validation["validation_dataset"] = other.resource_name

        early = spec.get("early_stopping")
        if early and early.get("enabled"):
            patience = int(early.get("patience") or 10)
            min_delta = float(early.get("min_delta") or 0.0)
            if not 1 <= patience <= 10_000:
                raise _bad("spec.early_stopping.patience", f"must be 1-10000 (0 means 10), got {patience}")
            if min_delta < 0:
                raise _bad("spec.early_stopping.min_delta", f"must be >= 0, got {min_delta}")
            early_stopping: dict[str, Any] | None = {"patience": patience, "min_delta": min_delta}
        else:
            early_stopping = None

        feature_columns = [str(c) for c in spec.get("feature_columns") or []]
        ignore_columns = [str(c) for c in spec.get("ignore_columns") or []]
        for field, names in (("spec.feature_columns", feature_columns), ("spec.ignore_columns", ignore_columns)):
            unknown = [c for c in names if c not in columns]
            if unknown:
                raise _bad(field, f"{', '.join(map(repr, unknown))} not in the dataset; its columns are: "
                                  f"{', '.join(columns)}")
        if target and target in feature_columns:
            raise _bad("spec.feature_columns", f"the target {target!r} cannot be a feature")

        timeout = int(spec.get("timeout_seconds") or 0)
        if not 0 <= timeout <= self._max_timeout:
            raise _bad("spec.timeout_seconds", f"must be 0 (the server's limit) to {self._max_timeout}")
        experiment = (spec.get("experiment_name") or "").strip()
        if experiment and not _EXPERIMENT.fullmatch(experiment):
            raise _bad("spec.experiment_name", "1-250 printable characters")
        labels = check_labels(spec.get("labels") or {}, "spec.labels")
        seed = spec.get("seed")
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        if not 0 <= int(seed) < 2**63:
            raise _bad("spec.seed", "must be a non-negative 63-bit integer")
        return {
            "dataset": record.resource_name, "dataset_display": f"{record.display_name}@{record.version}",
            "target": target, "task": task, "task_reason": detection.reason, "estimator": cls.name,
            "hyperparameters": params, "validation": validation, "metric": metric,
            "max_iterations": max_iterations, "early_stopping": early_stopping, "seed": int(seed),
            "use_gpu": use_gpu, "balance_classes": balance, "feature_columns": feature_columns,
            "ignore_columns": ignore_columns, "experiment_name": experiment or "microlearn", "labels": labels,
            "timeout_seconds": timeout, "permutation_importance": bool(spec.get("permutation_importance")),
        }

    @staticmethod
    def _validation(raw: dict[str, Any], task: str, columns: list[str], target: str) -> dict[str, Any]:
        method = raw.get("method") or "holdout"
        out: dict[str, Any] = {"method": method if method != "validation_dataset" else "holdout"}
        if method == "holdout":
            fraction = float(raw.get("fraction") or DEFAULT_FRACTION)
            if not 0 < fraction <= 0.5:
                raise _bad("spec.validation.holdout.fraction", f"must be above 0 and at most 0.5, got {fraction}")
            out["fraction"] = fraction
        elif method == "kfold":
            folds = int(raw.get("folds") or DEFAULT_FOLDS)
            if not 2 <= folds <= 20:
                raise _bad("spec.validation.k_fold.folds", f"must be 2-20 (0 means 5), got {folds}")
            out["folds"] = folds
        elif method == "validation_dataset":
            out["validation_dataset"] = raw.get("validation_dataset") or ""
        else:
            raise _bad("spec.validation", f"unknown method {method!r}")
        if raw.get("stratify") is not None:
            out["stratify"] = bool(raw["stratify"])
        for key in ("group_column", "time_column"):
            column = (raw.get(key) or "").strip()
            if column:
                if column not in columns:
                    raise _bad(f"spec.validation.{key}", f"column {column!r} is not in the dataset")
                if column == target:
                    raise _bad(f"spec.validation.{key}", "cannot be the target column")
            out[key] = column
        if out["group_column"] and out["time_column"]:
            raise _bad("spec.validation", "give group_column or time_column, not both")
        return out

    # -- jobs ------------------------------------------------------------------------------------

    async def get_job(self, name: str) -> JobRecord:
        job = await self._jobs.get(job_id_of(name))
        if job is None:
            raise errors.NotFound(f"job {name} does not exist")
        return job

    async def list_jobs(self, *, page_size: int, page_token: str, states: list[str], kind: str | None,
                        dataset: str, estimator: str, study: str, labels: dict[str, str]) -> Page:
        size = page_size_of(page_size)
        after = keyset_of(page_token)
        dataset_ids = await self.dataset_ids(dataset, "dataset") if dataset else None
        if labels:
            check_labels(labels, "labels")
        bad = [s for s in states if s not in STATES]
        if bad:
            raise _bad("states", f"unknown state(s) {bad}")
        items, total = await self._jobs.list(
            page_size=size + 1, after=after, states=states, kind=kind, dataset_ids=dataset_ids,
            estimator=estimator.removeprefix("estimators/") or None, study_id=study.removeprefix("studies/") or None,
            labels=labels or None)
        token = encode_page_token(items[size - 1].created_at, items[size - 1].id) if len(items) > size else ""
        return Page(items[:size], token, total)

    async def dataset_ids(self, ref: str, field: str) -> list[str]:
        """`NAME` means every version; anything else one version."""
        ref = ref.strip()
        if not ref.startswith("datasets/") and "@" not in ref:
            ids = [r["id"] for r in await self._pool.fetch("SELECT id FROM datasets WHERE display_name = $1", ref)]
            if ids:
                return ids
        return [(await self._datasets.resolve(ref, with_profile=False, field=field)).id]

    async def cancel(self, name: str, reason: str = "") -> JobRecord:
        job_id = job_id_of(name)
        reason = (reason or "").strip()[:500]
        before = await self._jobs.get(job_id)
        if before is None:
            raise errors.NotFound(f"job {name} does not exist")
        if before.is_terminal:
            return before
        message = f"cancelled: {reason}" if reason else "cancelled by request"
        job = await self._jobs.request_cancel(job_id, message)
        if before.state == "PENDING" and job.state == "CANCELLED":
            await self._publish(job_id, [job_events.state_event(job_id, "CANCELLED", job.error or message,
                                                                job.progress)])
        return job

    def events(self, name: str, *, after: str = "", replay_only: bool = False,
               min_log_level: int = 0) -> AsyncIterator[common_pb2.JobEvent]:
        job_id = job_id_of(name)
        try:
            reader = self._bus.read(job_events.stream(job_id), after=after, terminal=is_terminal_state_change,
                                    idle_check=self._terminal_check(job_id), block_ms=1000)
        except ValueError as exc:
            raise _bad("after_sequence", str(exc)) from None
        return self._filtered(job_id, reader, replay_only, min_log_level)

    def _terminal_check(self, job_id: str):
        async def check() -> bool:
            job = await self._jobs.get(job_id)
            return job is None or job.is_terminal
        return check

    async def _filtered(self, job_id: str, reader: AsyncIterator[common_pb2.JobEvent], replay_only: bool,
                        min_log_level: int) -> AsyncIterator[common_pb2.JobEvent]:
        if await self._jobs.get(job_id) is None:
            raise errors.NotFound(f"job jobs/{job_id} does not exist")
        end = None
        if replay_only:
            end = await self._bus.last_id(job_events.stream(job_id))
            if end is None:
                return
        try:
            async for event in reader:
                if event.WhichOneof("payload") != "log" or event.log.level >= min_log_level:
                    yield event
                if end is not None and _seq(event.sequence) >= _seq(end):
                    return
        finally:
            await reader.aclose()

    async def _publish(self, job_id: str, events: list) -> None:
        try:
            await self._bus.publish_many(job_events.stream(job_id), events)
        except Exception:  # noqa: BLE001 - Postgres is the truth; a missed event is not a failed call
            log.warning("could not publish events of jobs/%s", job_id, exc_info=True)

    # -- models ----------------------------------------------------------------------------------

    async def get_model(self, name: str) -> ModelRecord:
        model = await self._models.get(model_id_of(name))
        if model is None:
            raise errors.NotFound(f"model {name} does not exist")
        return model

    async def compare_models(self, names: list[str], metrics: list[str]) -> dict[str, Any]:
        """CompareModels: the models' metric table (rows in request order), the metric columns, the best
        model per metric and each row's rank on the first column."""
        from microlearn_grpc.core import metrics as metric_lib

        if not 2 <= len(names) <= MAX_COMPARED:
            raise _bad("models", f"give 2-{MAX_COMPARED} models, got {len(names)}")
        ids = [model_id_of(name, "models") for name in names]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise _bad("models", f"models/{repeated[0]} is listed twice")
        models = [await self.get_model(f"models/{i}") for i in ids]
        tasks = sorted({m.task for m in models})
        if len(tasks) > 1:
            raise _bad("models", f"models of different tasks cannot be compared ({', '.join(tasks)})")
        recorded = list(dict.fromkeys(name for m in models for name in m.metrics))
        if metrics:
            unknown = [m for m in metrics if m not in recorded]
            if unknown:
                raise _bad("metrics", f"no compared model recorded {unknown[0]!r}; they recorded: "
                                      f"{', '.join(recorded) or 'nothing'}")
            columns = list(dict.fromkeys(metrics))
        else:
            shared = {m.metric for m in models}
            first = [shared.pop()] if len(shared) == 1 and next(iter(shared)) in recorded else []
            columns = first + [name for name in recorded if name not in first]
        best: dict[str, str] = {}
        for column in columns:
            have = [m for m in models if column in m.metrics]
            if have:
                pick = max if metric_lib.direction(column) == "maximize" else min
                best[column] = pick(have, key=lambda m: m.metrics[column]).resource_name
        ranks: dict[str, int] = {}
        if columns:
            first = columns[0]
            ordered = sorted((m for m in models if first in m.metrics), key=lambda m: m.metrics[first],
                             reverse=metric_lib.direction(first) == "maximize")
            ranks = {m.id: i for i, m in enumerate(ordered, start=1)}
        return {"task": tasks[0], "metrics": columns, "models": models, "best": best, "ranks": ranks}

    async def list_models(self, *, page_size: int, page_token: str, dataset: str, estimator: str, task: str | None,
                          study: str, labels: dict[str, str], order_by: str) -> Page:
        size = page_size_of(page_size)
        offset = offset_of(page_token)
        dataset_ids = await self.dataset_ids(dataset, "dataset") if dataset else None
        order = (order_by or "create_time desc").strip()
        match = _ORDER_BY.fullmatch(order)
        if match is None:
            raise _bad("order_by", "use 'create_time', 'create_time desc', 'metrics.NAME' or 'metrics.NAME desc'")
        descending = match.group(4) == "desc"
        items, total = await self._models.list(
            page_size=size + 1, offset=offset, dataset_ids=dataset_ids,
            estimator=estimator.removeprefix("estimators/") or None, task=task,
            study_id=study.removeprefix("studies/") or None, labels=labels or None,
            order_metric=match.group(2), descending=descending)
        token = encode_offset(offset + size) if len(items) > size else ""
        return Page(items[:size], token, total)

    async def delete_model(self, name: str) -> ModelRecord:
        model = await self.get_model(name)
        users = await self._models.referenced_by_deployments(model.id)
        if users:
            raise errors.FailedPrecondition(f"model {model.resource_name} is registered as {', '.join(users)}; "
                                            "delete those model versions first")
        deleted = await self._models.delete(model.id)
        if deleted is None:
            raise errors.NotFound(f"model {name} does not exist")
        if not await self._models.artifact_in_use(deleted.artifact_key):
            await self._artifacts.delete(deleted.artifact_key)
        if deleted.lineage.get("validation_predictions"):
            await self._artifacts.delete(deleted.lineage["validation_predictions"])
        return deleted

    async def download(self, name: str, offset: int, chunk_size: int = 1 << 20,
                       ) -> tuple[ModelRecord, AsyncIterator[bytes]]:
        """The model and its bytes from `offset`, after checking the whole artifact's SHA-256."""
        import hashlib

        model = await self.get_model(name)
        if not 0 <= offset <= model.size_bytes:
            raise _bad("offset", f"must be 0 to {model.size_bytes} (the artifact's size)")
        digest = hashlib.sha256()
        try:
            async for block in self._artifacts.iter_chunks(model.artifact_key, chunk_size):
                digest.update(block)
        except Exception as exc:  # noqa: BLE001
            raise errors.DataLoss(f"the artifact of {model.resource_name} cannot be read: {exc}") from None
        if digest.hexdigest() != model.sha256:
            raise errors.DataLoss(f"the artifact of {model.resource_name} failed its SHA-256 check; "
                                  "it will not be sent")

        async def chunks() -> AsyncIterator[bytes]:
            skip = offset
            async for block in self._artifacts.iter_chunks(model.artifact_key, chunk_size):
                if skip >= len(block):
                    skip -= len(block)
                    continue
                yield block[skip:]
                skip = 0
        return model, chunks()


def check_labels(labels: dict[str, str], field: str) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise _bad(field, f"at most {MAX_LABELS} labels, got {len(labels)}")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key) or len(key) > MAX_LABEL_CHARS:
            raise _bad(f"{field}.{key}", f"keys are 1-{MAX_LABEL_CHARS} characters: lower-case letters, digits, "
                                         "'_', '-', '.', starting with a letter")
        if len(value) > MAX_LABEL_CHARS:
            raise _bad(f"{field}.{key}", f"values are at most {MAX_LABEL_CHARS} characters")
    return dict(labels)


def page_size_of(page_size: int) -> int:
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        raise _bad("page_size", f"must be between 0 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size or DEFAULT_PAGE_SIZE


def keyset_of(token: str):
    if not token:
        return None
    try:
        return decode_page_token(token)
    except Exception:
        raise _bad("page_token", "not valid: pass next_page_token from a previous response") from None


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def offset_of(token: str) -> int:
    if not token:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
    except Exception:
        raise _bad("page_token", "not valid: pass next_page_token from a previous response") from None
    if value < 0:
        raise _bad("page_token", "not valid: pass next_page_token from a previous response")
    return value


def _seq(sequence: str) -> tuple[int, int]:
    ms, _, seq = sequence.partition("-")
    return int(ms), int(seq or 0)
