"""arq worker definition: the functions workers run and the clients they share via `ctx`.

Training, trials, evaluation and batch prediction jobs are added here by their issues; the
worker already connects to PostgreSQL and the artifact store at start, so a misconfigured worker
fails at once instead of at its first job.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from arq.connections import RedisSettings

QUEUE_NAME = "microlearn:jobs"


async def startup(ctx: dict[str, Any]) -> None:
    from microlearn_grpc.bootstrap import connect_database
    from microlearn_grpc.config import load_settings
    from microlearn_grpc.storage.artifacts import open_artifact_store

    settings = load_settings()
    settings.require_backends()
    ctx["settings"] = settings
    ctx["worker_id"] = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ctx["pool"] = await connect_database(settings)
    ctx["artifacts"] = open_artifact_store(settings.artifacts, endpoint_url=settings.s3_endpoint_url,
                                           region=settings.s3_region, access_key_id=settings.s3_access_key_id,
                                           secret_access_key=settings.s3_secret_access_key)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "artifacts" in ctx:
        await ctx["artifacts"].close()
    if "pool" in ctx:
        await ctx["pool"].close()


async def ping(ctx: dict[str, Any]) -> dict[str, Any]:
    """Round-trip check used by `microlearn up` and tests: proves a worker consumes the queue and
    reaches the database."""
    database_ok = await ctx["pool"].fetchval("SELECT 1") == 1
    return {"worker_id": ctx["worker_id"], "host": socket.gethostname(), "pid": os.getpid(), "database": database_ok}


class WorkerSettings:
    """Read by `arq` (see `microlearn worker`); redis_settings is supplied at run time from config."""

    functions = [ping]
    on_startup = startup
    on_shutdown = shutdown
    queue_name = QUEUE_NAME
    max_jobs = 2
    job_timeout = 24 * 3600
    health_check_interval = 5
    keep_result = 3600


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)
