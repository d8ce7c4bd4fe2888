"""The arq queue as MicroLearn uses it: one arq job per MicroLearn job, with the same id.

Because the arq job id is the job id, enqueueing twice is a no-op while the first delivery is
queued or running. After a worker is lost, `requeue` clears the dead delivery's arq keys
(arq would otherwise consider the job in progress until its timeout) and enqueues again; the
job row's compare-and-set start makes any late duplicate delivery a no-op.
"""

from __future__ import annotations

import logging

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix

log = logging.getLogger(__name__)

QUEUE_NAME = "microlearn:jobs"  # the default; MICROLEARN_QUEUE_NAME picks another (a separate pool of workers)
RUN_JOB = "run_job"


async def enqueue(redis: ArqRedis, job_id: str, queue: str = QUEUE_NAME) -> bool:
    """Queue a job's delivery; False when one is already queued or running (nothing to do)."""
    return await redis.enqueue_job(RUN_JOB, job_id, _job_id=job_id, _queue_name=queue) is not None


async def enqueue_or_defer(redis: ArqRedis, job_id: str, queue: str, what: str) -> None:
    """Queue a job just written; when Redis fails now, only log it: the reconciler queues PENDING jobs
    Redis never got. `what` names the job in the log."""
    try:
        await enqueue(redis, job_id, queue)
    except Exception:  # noqa: BLE001
        log.warning("could not queue %s now; the reconciler will", what, exc_info=True)


async def requeue(redis: ArqRedis, job_id: str, queue: str = QUEUE_NAME) -> bool:
    """Drop whatever arq still holds for this job (a lost delivery) and queue it again."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(job_key_prefix + job_id, in_progress_key_prefix + job_id, result_key_prefix + job_id,
                    retry_key_prefix + job_id)
        pipe.zrem(queue, job_id)
        await pipe.execute()
    return await enqueue(redis, job_id, queue)


async def delivery_in_progress(redis: ArqRedis, job_id: str) -> bool:
    return bool(await redis.exists(in_progress_key_prefix + job_id))


async def queue_depth(redis: ArqRedis, queue: str = QUEUE_NAME) -> int:
    return int(await redis.zcard(queue))
