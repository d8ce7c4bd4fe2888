"""The arq worker definition is valid and a real worker consumes the queue."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys

import pytest

from workers.settings import QUEUE_NAME, WorkerSettings, redis_settings


def test_worker_settings_are_all_known_to_arq():
    """arq ignores unknown settings attributes silently; a typo would go unnoticed."""
    from arq.worker import Worker

    accepted = set(inspect.signature(Worker.__init__).parameters)
    ours = {k for k in vars(WorkerSettings) if not k.startswith("_")}
    assert ours <= accepted, f"not arq Worker parameters: {ours - accepted}"
    assert WorkerSettings.functions and WorkerSettings.queue_name == QUEUE_NAME


def test_worker_process_answers_ping(backends, worker_env):
    from arq import create_pool

    # A queue of its own: the shared queue never empties while other workers' reconciler crons run.
    queue = "microlearn:ping-test"
    env = {**os.environ, **worker_env, "MICROLEARN_QUEUE_NAME": queue}

    async def enqueue():
        pool = await create_pool(redis_settings(backends.redis_url), default_queue_name=queue)
        job = await pool.enqueue_job("ping")
        await pool.aclose()
        return job.job_id

    job_id = asyncio.run(enqueue())
    worker = subprocess.run([sys.executable, "-m", "microlearn_grpc", "worker", "--burst"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert worker.returncode == 0, worker.stderr[-2000:]

    async def result():
        from arq.jobs import Job

        pool = await create_pool(redis_settings(backends.redis_url), default_queue_name=QUEUE_NAME)
        try:
            return await Job(job_id, pool, _queue_name=queue).result(timeout=10)
        finally:
            await pool.aclose()

    answer = asyncio.run(result())
    assert answer["database"] is True and answer["pid"] != os.getpid()


@pytest.mark.parametrize("env, message", [
    ({}, "MICROLEARN_DATABASE_URL"),
    ({"MICROLEARN_DATABASE_URL": "mysql://x"}, "postgresql://"),
])
def test_worker_config_errors_are_clear(env, message, tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("MICROLEARN_")}
    result = subprocess.run([sys.executable, "-m", "microlearn_grpc", "worker", "--burst"], env={**base, **env},
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
