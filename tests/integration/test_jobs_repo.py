"""JobRepository against the embedded PostgreSQL: the lifecycle, leases, cancellation and races."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from microlearn_grpc.storage import db
from microlearn_grpc.storage.jobs_repo import InvalidTransition, JobNotFound, JobRepository

pytestmark = pytest.mark.integration


def run(backends, body: Callable[[JobRepository, Any], Awaitable[None]]) -> None:
    """Run `body(repo, pool)` on a fresh pool (pytest-asyncio is not used in this project)."""
    async def _main():
        pool = await db.create_pool(backends.database_url, min_size=2, max_size=4)
        try:
            await db.migrate(pool)
            await body(JobRepository(pool), pool)
        finally:
            await pool.close()
    asyncio.run(_main())


def tag() -> str:
    """Unique per test: the database is shared by the whole session."""
    return uuid.uuid4().hex[:10]


async def backdate(pool, job_id: str, column: str, seconds: float) -> None:
    await pool.execute(f"UPDATE jobs SET {column} = {column} - make_interval(secs => $2) WHERE id = $1",
                       job_id, seconds)


def test_create_and_idempotent_request_id(backends):
    async def body(repo: JobRepository, pool):
        request_id = f"req-{tag()}"
        spec = {"dataset": "datasets/ds-1", "estimator": "xgboost", "params": {"max_depth": 4}}
        job, created = await repo.create(kind="training", spec=spec, dataset_id="ds-1", estimator="xgboost",
                                         labels={"team": "a"}, request_id=request_id)
        assert created and job.id.startswith("job-") and job.resource_name == f"jobs/{job.id}"
        assert (job.state, job.attempt, job.max_attempts, job.progress) == ("PENDING", 0, 3, 0.0)
        assert job.spec == spec and job.labels == {"team": "a"}
        assert (job.metrics, job.outputs, job.cancel_requested, job.is_terminal) == ({}, [], False, False)
        assert job.started_at is None and job.ended_at is None and job.worker_id is None

        again, created_again = await repo.create(kind="training", spec={"other": True}, request_id=request_id)
        assert not created_again and again == job

        # Concurrent submits with one request_id: one row, every caller gets it.
        concurrent = f"req-{tag()}"
        results = await asyncio.gather(*(repo.create(kind="training", spec={}, request_id=concurrent)
                                         for _ in range(4)))
        assert len({j.id for j, _ in results}) == 1 and sum(c for _, c in results) == 1

        # No request_id (or the proto default "") never deduplicates.
        a, _ = await repo.create(kind="evaluation", spec={}, request_id="")
        b, _ = await repo.create(kind="evaluation", spec={})
        assert a.id != b.id and a.request_id is None
        assert await repo.get(job.id) == job
        assert await repo.get("job-missing") is None
        with pytest.raises(ValueError):
            await repo.create(kind="bogus", spec={})
        with pytest.raises(ValueError):
            await repo.create(kind="training", spec={}, max_attempts=0)
    run(backends, body)


def test_list_filters_and_pagination(backends):
    async def body(repo: JobRepository, pool):
        t = tag()
        made = []
        for i in range(5):
            job, _ = await repo.create(kind="trial" if i % 2 else "training", spec={"i": i}, dataset_id=f"ds-{t}",
                                       estimator="lgbm" if i < 3 else "rf", study_id=f"st-{t}" if i % 2 else None)
            made.append(job)
        await repo.start_attempt(made[0].id, "w1", "cpu")

        seen, after = [], None
        while True:
            page, total = await repo.list(page_size=2, after=after, dataset_ids=[f"ds-{t}"])
            assert total == 5 and len(page) <= 2
            seen.extend(page)
            if len(page) < 2:
                break
            after = (page[-1].created_at, page[-1].id)
        assert [j.id for j in seen] == [j.id for j in sorted(made, key=lambda j: (j.created_at, j.id), reverse=True)]

        by_kind, total = await repo.list(page_size=10, after=None, kind="trial", dataset_ids=[f"ds-{t}"])
        assert total == 2 and {j.spec["i"] for j in by_kind} == {1, 3}
        by_study, total = await repo.list(page_size=10, after=None, study_id=f"st-{t}")
        assert total == 2
        by_est, total = await repo.list(page_size=10, after=None, estimator="lgbm", dataset_ids=[f"ds-{t}"])
        assert total == 3
        running, total = await repo.list(page_size=10, after=None, states=["RUNNING"], dataset_ids=[f"ds-{t}"])
        assert total == 1 and running[0].id == made[0].id
        _, total = await repo.list(page_size=10, after=None, states=("RUNNING", "PENDING"), dataset_ids=[f"ds-{t}"])
        assert total == 5
    run(backends, body)


def test_full_lifecycle(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="training", spec={})
        started = await repo.start_attempt(job.id, "worker-a", "cuda:0")
        assert started is not None
        assert (started.state, started.attempt) == ("RUNNING", 1)
        assert (started.worker_id, started.device) == ("worker-a", "cuda:0")
        assert started.started_at is not None and started.heartbeat_at is not None

        assert await repo.heartbeat(job.id, "worker-a", progress=0.5)
        assert await repo.heartbeat(job.id, "worker-a")  # no progress: keeps 0.5
        assert (await repo.get(job.id)).progress == 0.5
        assert await repo.heartbeat(job.id, "worker-a", progress=1.7)  # clamped
        assert (await repo.get(job.id)).progress == 1.0

        await repo.set_mlflow_run(job.id, "run-123")
        done = await repo.finish(job.id, "worker-a", "SUCCEEDED", metrics={"accuracy": 0.93},
                                 outputs=["models/m-1"])
        assert (done.state, done.metrics, done.outputs, done.mlflow_run_id) == (
            "SUCCEEDED", {"accuracy": 0.93}, ["models/m-1"], "run-123")
        assert done.is_terminal and done.ended_at >= done.started_at and done.progress == 1.0 and done.error is None
        assert not await repo.heartbeat(job.id, "worker-a")  # a finished job has no lease
        with pytest.raises(InvalidTransition):
            await repo.finish(job.id, "worker-a", "FAILED", error="again")
        assert await repo.request_cancel(job.id) == done  # terminal: unchanged
        with pytest.raises(JobNotFound):
            await repo.set_mlflow_run("job-missing", "run")
        with pytest.raises(JobNotFound):
            await repo.finish("job-missing", "worker-a", "SUCCEEDED")
        with pytest.raises(ValueError):
            await repo.finish(job.id, "worker-a", "RUNNING")
    run(backends, body)


def test_failed_always_has_a_reason(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="training", spec={})
        await repo.start_attempt(job.id, "w", "cpu")
        failed = await repo.finish(job.id, "w", "FAILED")
        assert failed.state == "FAILED" and failed.error
    run(backends, body)


def test_no_double_run(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="training", spec={})
        assert await repo.start_attempt(job.id, "worker-a", "cpu") is not None
        assert await repo.start_attempt(job.id, "worker-b", "cpu") is None  # duplicate delivery
        assert (await repo.get(job.id)).worker_id == "worker-a"
        assert await repo.start_attempt("job-missing", "worker-a", "cpu") is None

        raced, _ = await repo.create(kind="training", spec={})
        results = await asyncio.gather(*(repo.start_attempt(raced.id, f"w{i}", "cpu") for i in range(4)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1 and winners[0].attempt == 1
    run(backends, body)


def test_heartbeat_by_non_holder_fails(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="training", spec={})
        assert not await repo.heartbeat(job.id, "worker-a")  # PENDING: nobody holds it
        await repo.start_attempt(job.id, "worker-a", "cpu")
        assert not await repo.heartbeat(job.id, "worker-b", progress=0.9)
        assert (await repo.get(job.id)).progress == 0.0
        with pytest.raises(InvalidTransition):
            await repo.finish(job.id, "worker-b", "SUCCEEDED")
        assert await repo.heartbeat(job.id, "worker-a")
    run(backends, body)


def test_cancel_pending(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="batch_prediction", spec={})
        cancelled = await repo.request_cancel(job.id)
        assert cancelled.state == "CANCELLED" and cancelled.ended_at is not None
        assert cancelled.error == "cancelled before it started"
        assert await repo.start_attempt(job.id, "worker-a", "cpu") is None
        assert await repo.request_cancel(job.id) == cancelled  # idempotent
        with pytest.raises(JobNotFound):
            await repo.request_cancel("job-missing")

        # A PENDING row flagged for cancellation by other means is cancelled, not run, when picked up.
        flagged, _ = await repo.create(kind="training", spec={})
        await pool.execute("UPDATE jobs SET cancel_requested = true WHERE id = $1", flagged.id)
        assert await repo.start_attempt(flagged.id, "worker-a", "cpu") is None
        assert (await repo.get(flagged.id)).state == "CANCELLED"
    run(backends, body)


def test_cancel_running(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="training", spec={})
        await repo.start_attempt(job.id, "worker-a", "cpu")
        requested = await repo.request_cancel(job.id)
        assert requested.state == "RUNNING" and requested.cancel_requested
        assert not await repo.heartbeat(job.id, "worker-a")  # the worker stops at its next boundary
        done = await repo.finish(job.id, "worker-a", "CANCELLED")
        assert done.state == "CANCELLED" and done.error == "cancelled" and done.ended_at is not None
        with pytest.raises(InvalidTransition):
            await repo.finish(job.id, "worker-a", "CANCELLED")
    run(backends, body)


def test_expired_leases_requeue_then_fail(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="trial", spec={}, max_attempts=2)
        healthy, _ = await repo.create(kind="trial", spec={})
        await repo.start_attempt(healthy.id, "worker-h", "cpu")
        for attempt in (1, 2):
            await repo.start_attempt(job.id, f"worker-{attempt}", "cpu")
            await repo.heartbeat(job.id, f"worker-{attempt}", progress=0.4)
            await backdate(pool, job.id, "heartbeat_at", 120)
            expired = {j.id: j for j in await repo.expired_leases(60)}
            assert job.id in expired and healthy.id not in expired
            after = await repo.requeue_or_fail(job.id, "worker lost: lease expired",
                                               heartbeat_at=expired[job.id].heartbeat_at)
            if attempt == 1:
                assert (after.state, after.worker_id, after.progress, after.attempt) == ("PENDING", None, 0.0, 1)
                assert after.ended_at is None and after.error is None
                assert not await repo.heartbeat(job.id, "worker-1")  # the dead worker's lease is gone
            else:
                assert after.state == "FAILED" and after.ended_at is not None
                assert after.error == "worker lost: lease expired (gave up after 2 of 2 attempts)"
        assert job.id not in {j.id for j in await repo.expired_leases(60)}
        with pytest.raises(InvalidTransition):
            await repo.requeue_or_fail(job.id, "again")
        with pytest.raises(JobNotFound):
            await repo.requeue_or_fail("job-missing", "gone")
    run(backends, body)


def test_requeue_respects_the_heartbeat_seen(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="training", spec={})
        await repo.start_attempt(job.id, "worker-a", "cpu")
        await backdate(pool, job.id, "heartbeat_at", 120)
        seen = next(j for j in await repo.expired_leases(60) if j.id == job.id)
        assert await repo.heartbeat(job.id, "worker-a")  # the worker was only slow
        with pytest.raises(InvalidTransition):
            await repo.requeue_or_fail(job.id, "lease expired", heartbeat_at=seen.heartbeat_at)
        assert (await repo.get(job.id)).state == "RUNNING"
    run(backends, body)


def test_requeue_of_a_cancel_requested_job_cancels_it(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="training", spec={})
        await repo.start_attempt(job.id, "worker-a", "cpu")
        await repo.request_cancel(job.id)
        after = await repo.requeue_or_fail(job.id, "lease expired")
        assert after.state == "CANCELLED" and "lease expired" in after.error and after.ended_at is not None
    run(backends, body)


def test_concurrent_requeue_acts_once(backends):
    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="training", spec={}, max_attempts=5)
        running = await repo.start_attempt(job.id, "worker-a", "cpu")
        results = await asyncio.gather(
            *(repo.requeue_or_fail(job.id, "lease expired", heartbeat_at=running.heartbeat_at) for _ in range(2)),
            *(repo.requeue_or_fail(job.id, "lease expired") for _ in range(2)),
            return_exceptions=True)
        acted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, InvalidTransition)]
        assert len(acted) == 1 and len(refused) == 3 and acted[0].state == "PENDING"
        assert (await repo.get(job.id)).attempt == 1
    run(backends, body)


def test_stale_pending(backends):
    async def body(repo: JobRepository, pool):
        old, _ = await repo.create(kind="training", spec={})
        fresh, _ = await repo.create(kind="training", spec={})
        taken, _ = await repo.create(kind="training", spec={})
        await repo.start_attempt(taken.id, "worker-a", "cpu")
        for job in (old, taken):
            await backdate(pool, job.id, "state_changed_at", 600)
        stale = {j.id for j in await repo.stale_pending(300)}
        assert old.id in stale and fresh.id not in stale and taken.id not in stale

        # A requeued job counts as pending since the requeue, not since it was written.
        await backdate(pool, taken.id, "created_at", 3600)
        await repo.requeue_or_fail(taken.id, "lease expired")
        assert taken.id not in {j.id for j in await repo.stale_pending(300)}
    run(backends, body)


def test_schema_rejects_half_states(backends):
    """The table's own checks back the repository: a RUNNING row without a lease cannot exist."""
    import asyncpg

    async def body(repo: JobRepository, pool):
        job, _ = await repo.create(kind="training", spec={})
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute("UPDATE jobs SET state = 'RUNNING' WHERE id = $1", job.id)
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute("UPDATE jobs SET state = 'SUCCEEDED' WHERE id = $1", job.id)
        assert isinstance(job.created_at, dt.datetime) and job.created_at.tzinfo is not None
    run(backends, body)
