"""arq worker definition: the functions workers run and the clients they share via `ctx`.

`microlearn worker` runs `WorkerSettings` with the options of `worker_options(settings)` (queue
polling, concurrency, the reconciler's cron). At start a worker connects to PostgreSQL, Redis and
the artifact store and detects its GPUs, so a misconfigured worker fails at once instead of at its
first job. Jobs: `run_job` (training jobs, HPO trials, study coordinators, batch predictions, evaluations),
`ping` (health check), and the reconciler (cron).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings
from arq.cron import cron

from workers import metrics as worker_metrics
from workers.queue import QUEUE_NAME, RUN_JOB
from workers.reconciler import reconcile

__all__ = ["QUEUE_NAME", "WorkerSettings", "redis_settings", "worker_options"]

log = logging.getLogger(__name__)
SLOT_WAIT_SECONDS = 0.5  # how long one delivered job waits for a busy worker's fit slot before requeueing
STUDY_SLOTS = 2
PIPELINE_SLOTS = 1  # pipeline coordinators, which (like study coordinators) take no fit slot


async def startup(ctx: dict[str, Any]) -> None:
    from microlearn_grpc.bootstrap import connect_database
    from microlearn_grpc.config import load_settings
    from microlearn_grpc.core.ingest import IngestLimits
    from microlearn_grpc.devices import DevicePool, detect_gpus, parse_gpu_list
    from microlearn_grpc.services.datasets import DatasetService
    from microlearn_grpc.storage.artifacts import open_artifact_store
    from microlearn_grpc.storage.datasets_repo import DatasetRepository
    from microlearn_grpc.storage.events import EventBus
    from microlearn_grpc.tracking import Tracker
    from workers.batch_prediction import BatchPredictionRunner
    from workers.training import TrainingRunner, start_fit_server

    settings = load_settings()
    settings.require_backends()
    ctx["settings"] = settings
    ctx["worker_id"] = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ctx["pool"] = await connect_database(settings)
    ctx["artifacts"] = open_artifact_store(settings.artifacts, endpoint_url=settings.s3_endpoint_url,
                                           region=settings.s3_region, access_key_id=settings.s3_access_key_id,
                                           secret_access_key=settings.s3_secret_access_key)
    ctx["bus"] = EventBus(ctx["redis"])
    work_dir = Path(settings.data_dir).resolve() / "work"
    ctx["datasets"] = DatasetService(DatasetRepository(ctx["pool"]), ctx["pool"], ctx["artifacts"],
                                     work_dir=work_dir, limits=IngestLimits(), max_concurrent_uploads=1)
    gpus = detect_gpus(parse_gpu_list(settings.gpus))
    ctx["devices"] = DevicePool(gpus)
    ctx["tracker"] = Tracker(settings.mlflow_uri, artifact_root=Path(settings.data_dir).resolve() / "mlflow" / "artifacts")
    ctx["training"] = TrainingRunner(settings=settings, pool=ctx["pool"], bus=ctx["bus"], artifacts=ctx["artifacts"],
                                     datasets=ctx["datasets"], devices=ctx["devices"], tracker=ctx["tracker"],
                                     worker_id=ctx["worker_id"], work_dir=work_dir)
    ctx["batch"] = BatchPredictionRunner(settings=settings, pool=ctx["pool"], bus=ctx["bus"], artifacts=ctx["artifacts"],
                                         datasets=ctx["datasets"], worker_id=ctx["worker_id"], work_dir=work_dir)
    ctx["evaluation"] = _evaluation_runner(ctx, settings, work_dir)
    ctx["slots"] = asyncio.Semaphore(settings.worker_concurrency)
    ctx["studies"] = _study_runner(ctx, settings)
    ctx["pipelines"] = _pipeline_runner(ctx, settings)
    # Optuna's import and its SQLAlchemy engine take seconds on first use: not on a study's clock.
    ctx["optuna_warmup"] = asyncio.create_task(asyncio.to_thread(_warm_optuna, settings.database_url))
    # MLflow's first use imports it and (on SQLite) creates its schema: seconds that should not delay the first job.
    ctx["tracker_warmup"] = asyncio.create_task(ctx["tracker"].call(ctx["tracker"].experiment_id, "microlearn"))
    ctx["fit_server_warmup"] = asyncio.create_task(asyncio.to_thread(start_fit_server))
    ctx["metrics"] = worker_metrics.start(settings)
    log.info("worker %s ready: %d job slot(s), %d thread(s) per job, GPUs: %s", ctx["worker_id"],
             settings.worker_concurrency, settings.job_threads(), ctx["devices"].describe())


def _evaluation_runner(ctx: dict[str, Any], settings: Any, work_dir: Path) -> Any:
    from workers.evaluation import EvaluationRunner

    return EvaluationRunner(settings=settings, pool=ctx["pool"], bus=ctx["bus"], artifacts=ctx["artifacts"],
                            datasets=ctx["datasets"], training=ctx["training"], tracker=ctx["tracker"],
                            worker_id=ctx["worker_id"], work_dir=work_dir)


def _warm_optuna(database_url: str) -> None:
    from microlearn_grpc.core import hpo
    from microlearn_grpc.storage.optuna_store import optuna_storage

    optuna_storage(database_url)
    hpo.make_sampler("tpe", 0, 1)


def _study_runner(ctx: dict[str, Any], settings: Any) -> Any:
    """Study coordinators start trials through the same use cases the server runs."""
    from microlearn.v1 import hpo_pb2
    from microlearn_grpc.bootstrap import build_studies
    from microlearn_grpc.services import study_events
    from microlearn_grpc.services.training import TrainingService
    from microlearn_grpc.storage.events import EventBus
    from workers.study import StudyRunner

    training = TrainingService(ctx["pool"], ctx["bus"], ctx["redis"], ctx["datasets"], ctx["artifacts"],
                               max_attempts=settings.max_job_attempts,
                               max_timeout_seconds=settings.job_timeout_seconds, queue_name=settings.queue_name)
    studies = build_studies(settings, ctx["pool"], ctx["redis"], training, ctx["datasets"], ctx["redis"])
    study_bus = EventBus(ctx["redis"], prefix=study_events.EVENT_PREFIX, event_type=hpo_pb2.StudyEvent)
    return StudyRunner(settings=settings, pool=ctx["pool"], job_bus=ctx["bus"], study_bus=study_bus,
                       studies=studies, worker_id=ctx["worker_id"], artifacts=ctx["artifacts"],
                       work_dir=Path(settings.data_dir).resolve() / "work", tracker=ctx["tracker"])


def _pipeline_runner(ctx: dict[str, Any], settings: Any) -> Any:
    """Pipeline coordinators run their steps through the same use cases (the study coordinator's StudyService)."""
    from workers.pipeline import build_runner

    return build_runner(ctx, settings, ctx["studies"].studies)


async def shutdown(ctx: dict[str, Any]) -> None:
    worker_metrics.stop(ctx.get("metrics"))
    if "training" in ctx:
        await ctx["training"].close()
    if "tracker" in ctx:
        ctx["tracker"].close()
    if "datasets" in ctx:
        ctx["datasets"].close()
    if "artifacts" in ctx:
        await ctx["artifacts"].close()
    if "pool" in ctx:
        await ctx["pool"].close()


async def ping(ctx: dict[str, Any]) -> dict[str, Any]:
    """Round-trip check used by `microlearn up` and tests: proves a worker consumes the queue and
    reaches the database; reports the worker's devices."""
    database_ok = await ctx["pool"].fetchval("SELECT 1") == 1
    return {"worker_id": ctx["worker_id"], "host": socket.gethostname(), "pid": os.getpid(), "database": database_ok,
            "gpus": [gpu.describe() for gpu in ctx["devices"].gpus],
            "slots": ctx["settings"].worker_concurrency}


async def run_job(ctx: dict[str, Any], job_id: str) -> str:
    """Run one delivery of a MicroLearn job (its id is also this arq job's id).

    arq runs one more job at a time than the worker has fit slots, so the reconciler and pings
    never wait behind fits; a job delivered while every fit slot is busy goes back to the queue
    (arq Retry), where another worker can take it, unless it can wait briefly for a slot here."""
    from arq.worker import Retry

    kind = await ctx["pool"].fetchval("SELECT kind FROM jobs WHERE id = $1", job_id)
    if kind == "study":  # a coordinator mostly waits: it takes no fit slot
        async with ctx["metrics"].job(kind) as outcome:
            outcome["result"] = await ctx["studies"].run(job_id)
        return outcome["result"]
    if kind == "pipeline":  # like a study's, a pipeline's coordinator mostly waits: no fit slot
        async with ctx["metrics"].job(kind) as outcome:
            outcome["result"] = await ctx["pipelines"].run(job_id)
        return outcome["result"]
    slots: asyncio.Semaphore = ctx["slots"]
    if slots.locked():
        # One delivered job at a time waits briefly for a fit slot instead of going straight back to
        # the queue: short jobs free theirs sooner, and each redelivery costs Redis round trips and
        # polls (about 10 per job in a burst). It still requeues after SLOT_WAIT_SECONDS.
        if ctx.get("slot_waiter") or not await _wait_for_slot(ctx, slots):
            raise Retry(defer=0.2)
    else:
        await slots.acquire()
    try:
        runner = {"batch_prediction": ctx["batch"], "evaluation": ctx["evaluation"]}.get(kind, ctx["training"])
        async with ctx["metrics"].job(kind) as outcome:
            outcome["result"] = await runner.run(job_id)
        return outcome["result"]
    finally:
        slots.release()


async def _wait_for_slot(ctx: dict[str, Any], slots: asyncio.Semaphore) -> bool:
    ctx["slot_waiter"] = True
    try:
        await asyncio.wait_for(slots.acquire(), SLOT_WAIT_SECONDS)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        ctx["slot_waiter"] = False


run_job.__name__ = RUN_JOB


class WorkerSettings:
    """Read by `arq` (see `microlearn worker`); redis_settings and the options of `worker_options`
    are supplied at run time from config."""

    functions = [ping, run_job]
    on_startup = startup
    on_shutdown = shutdown
    queue_name = QUEUE_NAME
    max_jobs = 2
    job_timeout = 7 * 24 * 3600  # the job's own timeout is enforced by the runner
    max_tries = 1000  # redeliveries are the reconciler's business; attempts are counted in Postgres
    health_check_interval = 5
    keep_result = 60
    poll_delay = 0.01


def worker_options(settings: Any, *, burst: bool = False) -> dict[str, Any]:
    """arq Worker keyword arguments that depend on the settings. A burst worker (exits once the
    queue is empty) runs no reconciler: its cron would keep the queue from ever being empty."""
    seconds = set(range(0, 60, settings.reconcile_interval_seconds))
    return {
        # + 1: the reconciler and pings never wait for a fit; + STUDY_SLOTS, PIPELINE_SLOTS: coordinators (no fit slot).
        "max_jobs": settings.worker_concurrency + 1 + STUDY_SLOTS + PIPELINE_SLOTS,
        "poll_delay": settings.worker_poll_seconds,
        "queue_name": settings.queue_name,
        "burst": burst,
        "cron_jobs": [] if burst else [cron(reconcile, second=seconds, run_at_startup=True, unique=True, timeout=60)],
    }


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)
