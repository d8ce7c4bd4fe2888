"""The reconciler (an arq cron job on every worker): nothing lost, nothing stuck.

- A RUNNING job whose lease expired (its worker died or hangs) goes back to PENDING and is queued
  again while it has attempts left; otherwise it fails with the reason and the attempt count.
- A job PENDING for longer than a lease is queued again if Redis lost its delivery (or the worker
  that took the delivery died before it started the job).
Each change is a compare-and-set in Postgres, so several reconcilers (one per worker) can run at
once; arq's `unique` cron ids keep it to one per tick anyway.
"""

from __future__ import annotations

import logging
from typing import Any

from microlearn_grpc.services import job_events
from microlearn_grpc.storage.events import EventBus
from microlearn_grpc.storage.jobs_repo import InvalidTransition, JobRepository
from workers.queue import delivery_in_progress, enqueue, requeue

log = logging.getLogger(__name__)


async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    settings = ctx["settings"]
    jobs = JobRepository(ctx["pool"])
    bus: EventBus = ctx["bus"]
    redis = ctx["redis"]
    lease = settings.job_lease_seconds
    counts = {"requeued": 0, "failed": 0, "cancelled": 0, "redelivered": 0}
    for job in await jobs.expired_leases(lease):
        reason = f"worker {job.worker_id} stopped heartbeating (no heartbeat for over {lease:g} s)"
        try:
            updated = await jobs.requeue_or_fail(job.id, reason, heartbeat_at=job.heartbeat_at)
        except InvalidTransition:
            continue  # the worker came back, or another reconciler acted first
        stream = job_events.stream(job.id)
        if updated.state == "PENDING":
            await bus.publish_many(stream, [
                job_events.log_event(job.id, "WARNING", f"{reason}; retrying (attempt {job.attempt + 1} of "
                                                        f"{job.max_attempts})"),
                job_events.state_event(job.id, "PENDING", "re-queued after its worker was lost")])
            await requeue(redis, job.id, job.spec.get("queue") or settings.queue_name)
            counts["requeued"] += 1
        else:
            await bus.publish(stream, job_events.state_event(job.id, updated.state, updated.error or "",
                                                             updated.progress))
            counts["failed" if updated.state == "FAILED" else "cancelled"] += 1
        log.warning("reconciler: %s is now %s (%s)", job.resource_name, updated.state, reason)
    for job in await jobs.stale_pending(lease):
        queue = job.spec.get("queue") or settings.queue_name
        if await delivery_in_progress(redis, job.id):
            redelivered = await requeue(redis, job.id, queue)  # taken by a worker that never started it
        else:
            redelivered = await enqueue(redis, job.id, queue)  # a no-op unless Redis lost the delivery
        if redelivered:
            counts["redelivered"] += 1
            log.warning("reconciler: re-queued %s (pending for over %g s)", job.resource_name, lease)
    return counts
