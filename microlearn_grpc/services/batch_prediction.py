"""StartBatchPrediction: predict over a stored dataset with a deployment, on the workers.

The request is checked and resolved here (the deployment's target pinned to the version it
resolves to now, the dataset pinned to a version), written as a PENDING job of kind
`batch_prediction` and queued; a worker runs it (workers/batch_prediction.py) with the job
machinery every job has: lease, heartbeats, cancel, events, reconciler.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import asyncpg

from microlearn_grpc import errors
from microlearn_grpc.services import job_events
from microlearn_grpc.services.datasets import DatasetService, validate_display_name
from microlearn_grpc.services.deploy import MAX_REQUEST_ID, DeployService, deployment_id_of
from microlearn_grpc.services.training import check_labels
from microlearn_grpc.storage.deployments_repo import TargetRecord
from microlearn_grpc.storage.events import EventBus
from microlearn_grpc.storage.jobs_repo import JobRecord, JobRepository
from microlearn_grpc.storage.registry_repo import version_name

log = logging.getLogger(__name__)

MAX_PASSTHROUGH = 100


@dataclasses.dataclass(frozen=True)
class BatchRequest:
    deployment: str
    input_dataset: str
    output_display_name: str = ""
    passthrough_columns: tuple[str, ...] = ()
    model_version: str = ""
    exclude_probabilities: bool = False
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    request_id: str = ""


@dataclasses.dataclass(frozen=True)
class BatchStarted:
    job: JobRecord
    output_display_name: str
    model_version: str       # registeredModels/{name}/versions/{n}


def _pick(targets: list[TargetRecord], wanted: str, deployment: str) -> TargetRecord:
    if not wanted:
        return max(targets, key=lambda t: t.percent)
    for target in targets:
        long_name = version_name(target.registered_model, target.resolved_version or 0)
        short = f"{target.registered_model}@{target.resolved_version}"
        if wanted.strip() in (target.reference, long_name, short, str(target.resolved_version)):
            return target
    raise errors.InvalidArgument(f"model_version: {wanted!r} is not a traffic target of deployments/{deployment}; "
                                 f"its targets are {', '.join(t.reference for t in targets)}")


class BatchPredictionService:
    def __init__(self, pool: asyncpg.Pool, bus: EventBus, queue: Any, datasets: DatasetService, deploy: DeployService,
                 *, queue_name: str, max_attempts: int = 3) -> None:
        self._pool = pool
        self._jobs = JobRepository(pool)
        self._bus = bus
        self._queue = queue  # an arq ArqRedis
        self._datasets = datasets
        self._deploy = deploy
        self._queue_name = queue_name
        self._max_attempts = max_attempts

    async def start(self, request: BatchRequest) -> BatchStarted:
        if len(request.request_id) > MAX_REQUEST_ID:
            raise errors.InvalidArgument(f"request_id: at most {MAX_REQUEST_ID} characters")
        if not request.input_dataset:
            raise errors.InvalidArgument("input_dataset is required: NAME, NAME@VERSION or datasets/ID")
        labels = check_labels(request.labels, "labels")
        if request.output_display_name:
            validate_display_name(request.output_display_name, "output_display_name")
        passthrough = list(request.passthrough_columns)
        if len(passthrough) > MAX_PASSTHROUGH or len(set(passthrough)) != len(passthrough):
            raise errors.InvalidArgument(f"passthrough_columns: at most {MAX_PASSTHROUGH}, each once")
        clash = [c for c in passthrough if c == "prediction" or c.startswith("probability_")]
        if clash:
            raise errors.InvalidArgument(f"passthrough_columns: {clash[0]!r} would clash with the output's "
                                         "prediction/probability_* columns")
        deployment = await self._deploy.get(deployment_id_of(request.deployment, "deployment"))
        target = _pick(deployment.targets, request.model_version, deployment.name)
        if target.model_id is None or target.resolved_version is None:
            raise errors.FailedPrecondition(f"deployments/{deployment.name}: {target.reference} resolves to no model")
        dataset = await self._datasets.resolve(request.input_dataset, field="input_dataset")
        columns = [c["name"] for c in dataset.profile.get("columns", [])]
        missing = [c for c in passthrough if c not in columns]
        if missing:
            raise errors.InvalidArgument(f"passthrough_columns: {', '.join(map(repr, missing))} not in "
                                         f"{dataset.display_name}@{dataset.version} (it has {', '.join(columns)})")
        output = request.output_display_name or f"{dataset.display_name}-predictions"
        validate_display_name(output, "output_display_name")
        version = version_name(target.registered_model, target.resolved_version)
        spec = {"deployment": deployment.name, "model_version": version, "model_id": target.model_id,
                "dataset": f"datasets/{dataset.id}", "dataset_display": f"{dataset.display_name}@{dataset.version}",
                "output_display_name": output, "passthrough_columns": passthrough,
                "exclude_probabilities": request.exclude_probabilities, "labels": labels, "queue": self._queue_name}
        job = await self._write(spec, dataset.id, labels, request.request_id)
        return BatchStarted(job, job.spec.get("output_display_name", output), job.spec.get("model_version", version))

    async def _write(self, spec: dict[str, Any], dataset_id: str, labels: dict[str, str], request_id: str) -> JobRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            job, created = await self._jobs.create(kind="batch_prediction", spec=spec, dataset_id=dataset_id,
                                                   labels=labels, request_id=request_id or None,
                                                   max_attempts=self._max_attempts, conn=conn)
            if created:  # the input dataset cannot be deleted while the job may read it
                await conn.execute("INSERT INTO dataset_references (dataset_id, referrer) VALUES ($1, $2)"
                                   " ON CONFLICT DO NOTHING", dataset_id, job.resource_name)
        if not created:
            return job
        try:
            await self._bus.publish(job_events.stream(job.id), job_events.state_event(
                job.id, "PENDING", f"queued: predict {spec['dataset_display']} with {spec['model_version']}"))
        except Exception:  # noqa: BLE001 - events are transport; Postgres holds the truth
            log.warning("could not publish the PENDING event of %s", job.resource_name, exc_info=True)
        try:
            from workers.queue import enqueue

            await enqueue(self._queue, job.id, self._queue_name)
        except Exception:  # noqa: BLE001 - the reconciler queues jobs Redis never got
            log.warning("could not queue %s now; the reconciler will", job.resource_name, exc_info=True)
        return job
