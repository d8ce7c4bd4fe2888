"""Composition root of a server process: builds every adapter from `Settings`, once.

Nothing connects at import time; `build()` is the only place that wires adapters to services,
and `close()` releases them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from microlearn_grpc.config import ConfigError, Settings
from microlearn_grpc.core.ingest import IngestLimits
from microlearn_grpc.metrics import ServerMetrics
from microlearn_grpc.services.batch_prediction import BatchPredictionService
from microlearn_grpc.services.datasets import DatasetService
from microlearn_grpc.services.deploy import DeployService
from microlearn_grpc.services.inference import InferenceService
from microlearn_grpc.services.pipelines import PipelineService
from microlearn_grpc.services.selection import SelectionService
from microlearn_grpc.services.studies import StudyService
from microlearn_grpc.services.training import TrainingService
from microlearn_grpc.storage import db
from microlearn_grpc.storage.artifacts import ArtifactStore, open_artifact_store
from microlearn_grpc.storage.datasets_repo import DatasetRepository
from microlearn_grpc.storage.events import EventBus


def redact(url: str) -> str:
    """host:port/path of a URL, without credentials, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


@dataclasses.dataclass
class Container:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    artifacts: ArtifactStore
    datasets: DatasetService
    queue: ArqRedis
    training: TrainingService
    selection: SelectionService
    deploy: DeployService | None = None
    studies: StudyService | None = None
    inference: InferenceService | None = None
    metrics: ServerMetrics | None = None
    batch_predictions: BatchPredictionService | None = None
    pipelines: PipelineService | None = None

    async def close(self) -> None:
        if self.deploy is not None:
            with contextlib.suppress(Exception):
                await self.deploy.close()
        self.datasets.close()
        with contextlib.suppress(Exception):
            await self.queue.aclose()
        with contextlib.suppress(Exception):
            await self.artifacts.close()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        with contextlib.suppress(Exception):
            await self.pool.close()


async def connect_database(settings: Settings) -> asyncpg.Pool:
    assert settings.database_url
    try:
        pool = await db.create_pool(settings.database_url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to PostgreSQL at {redact(settings.database_url)}: {exc}") from None
    await db.migrate(pool)
    return pool


async def connect_redis(settings: Settings) -> aioredis.Redis:
    assert settings.redis_url
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here is a configuration problem
        await client.aclose()
        raise ConfigError(f"cannot reach Redis at {redact(settings.redis_url)}: {exc}") from None
    return client


async def build(settings: Settings) -> Container:
    settings.require_backends()
    pool = await connect_database(settings)
    try:
        redis_client = await connect_redis(settings)
    except BaseException:
        await pool.close()
        raise
    artifacts = open_artifact_store(settings.artifacts, endpoint_url=settings.s3_endpoint_url,
                                    region=settings.s3_region, access_key_id=settings.s3_access_key_id,
                                    secret_access_key=settings.s3_secret_access_key)
    work_dir = Path(settings.data_dir).resolve() / "work"
    limits = IngestLimits(max_upload_bytes=settings.max_upload_bytes,
                          max_decompressed_bytes=settings.max_decompressed_bytes,
                          max_columns=settings.max_columns, max_compression_ratio=settings.max_compression_ratio)
    datasets = DatasetService(DatasetRepository(pool), pool, artifacts, work_dir=work_dir, limits=limits,
                              max_concurrent_uploads=settings.max_concurrent_uploads)
    datasets.sweep_stale_work()
    queue = ArqRedis.from_url(settings.redis_url)
    training = TrainingService(pool, EventBus(redis_client), queue, datasets, artifacts,
                               max_attempts=settings.max_job_attempts, max_timeout_seconds=settings.job_timeout_seconds,
                               queue_name=settings.queue_name)
    metrics = ServerMetrics()
    from microlearn_grpc.services.evaluation import evaluate_when_registered

    deploy = build_deploy(settings, pool, artifacts, work_dir, metrics,
                          on_registered=evaluate_when_registered(lambda: training.evaluations))
    return Container(settings=settings, pool=pool, redis=redis_client, artifacts=artifacts, datasets=datasets,
                     queue=queue, training=training, selection=SelectionService(datasets, redis_client),
                     deploy=deploy, inference=InferenceService(deploy), metrics=metrics,
                     batch_predictions=BatchPredictionService(pool, EventBus(redis_client), queue, datasets, deploy,
                                                              queue_name=settings.queue_name,
                                                              max_attempts=settings.max_job_attempts),
                     studies=build_studies(settings, pool, redis_client, training, datasets, queue),
                     pipelines=build_pipelines(settings, pool, redis_client, datasets, queue))


def build_pipelines(settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, datasets: DatasetService,
                    queue: ArqRedis) -> PipelineService:
    """PipelineService's use cases; workers build the same service for the pipeline coordinator."""
    from microlearn.v1 import pipeline_pb2
    from microlearn_grpc.services import pipeline_events

    bus = EventBus(redis_client, prefix=pipeline_events.EVENT_PREFIX, event_type=pipeline_pb2.PipelineEvent)
    return PipelineService(pool, bus, datasets, queue, queue_name=settings.queue_name,
                           max_attempts=settings.max_job_attempts)


def build_studies(settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis, training: TrainingService,
                  datasets: DatasetService, queue: ArqRedis) -> StudyService:
    """HPOService's use cases; also built by workers, whose study coordinators start trials through it."""
    from microlearn.v1 import hpo_pb2
    from microlearn_grpc.services import study_events

    bus = EventBus(redis_client, prefix=study_events.EVENT_PREFIX, event_type=hpo_pb2.StudyEvent)
    return StudyService(pool, bus, training, datasets, queue, queue_name=settings.queue_name,
                        max_attempts=settings.max_job_attempts)


def build_deploy(settings: Settings, pool: asyncpg.Pool, artifacts: ArtifactStore, work_dir: Path,
                 metrics: ServerMetrics | None = None, on_registered: Any = None) -> DeployService:
    """The serving side: registry, deployments, a model cache and a router (started by the servicer).
    `on_registered(model_record)` is awaited after each new model version (evaluation jobs)."""
    from microlearn_grpc.serving.models import ModelCache
    from microlearn_grpc.serving.prediction_log import PredictionLogger
    from microlearn_grpc.serving.router import Router
    from microlearn_grpc.services.model_registry import ModelRegistry
    from microlearn_grpc.storage.deployments_repo import DeploymentRepository
    from microlearn_grpc.storage.models_repo import ModelRepository
    from microlearn_grpc.storage.registry_repo import RegistryRepository

    models, deployments = ModelRepository(pool), DeploymentRepository(pool)
    cache = ModelCache(models, artifacts, key=settings.signing_key(), work_dir=work_dir)
    router = Router(deployments, cache)
    registry = ModelRegistry(RegistryRepository(pool), models, on_change=router.kick, on_registered=on_registered)
    if metrics is not None:
        metrics.models_loaded.set_function(lambda: len(cache.loaded_ids))
    return DeployService(registry, deployments, router, PredictionLogger(deployments), metrics=metrics)
