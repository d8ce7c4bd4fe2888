"""Running a training job on a worker: lease, child process, events, heartbeats, model, tracking.

    arq delivers job id ──► start_attempt (PENDING → RUNNING, the lease) ──► fit in a child process
        │                         ▲ heartbeat every `heartbeat_seconds`: renews the lease, records
        │                         │ progress, and learns about cancellation
        ▼                         │
    events (Redis Stream) ◄── messages from the child: metrics per iteration, logs, progress
        ▼
    result ──► pack + SHA-256 + HMAC ──► artifact store ──► ONE transaction: model row + job SUCCEEDED

The fit runs in its own process (forkserver: the libraries are imported once, each fit is a fork),
so this event loop stays free to heartbeat and stream, a cancel can terminate it, and a crash in
native code fails the job instead of the worker. Postgres decides: every transition is a
compare-and-set, so a worker that lost its lease (the reconciler gave the job to another) stops
and writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any

import asyncpg

from microlearn_grpc.config import Settings
from microlearn_grpc.devices import DevicePool
from microlearn_grpc.services import job_events
from microlearn_grpc.services.datasets import DatasetService
from microlearn_grpc.storage.artifacts import ArtifactStore
from microlearn_grpc.storage.events import EventBus
from microlearn_grpc.storage.jobs_repo import InvalidTransition, JobRecord, JobRepository
from microlearn_grpc.storage.models_repo import ModelRecord, ModelRepository, new_model_id
from microlearn_grpc.tracking import Tracker

log = logging.getLogger(__name__)

CANCEL_GRACE_SECONDS = 3.0  # after this, a fit that ignores the cancel is terminated
_PRELOAD = ["microlearn_grpc.core.training", "numpy", "pandas", "pyarrow.parquet", "sklearn.pipeline",
            "sklearn.compose", "sklearn.preprocessing", "sklearn.impute", "sklearn.metrics"]
_MLFLOW_STATUS = {"SUCCEEDED": "FINISHED", "FAILED": "FAILED", "CANCELLED": "KILLED"}


def fit_context() -> multiprocessing.context.BaseContext:
    """forkserver with the common libraries preloaded: each fit is a cheap fork of a clean process
    (never of this one, whose threads and sockets must not be forked)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def start_fit_server() -> None:
    """Start the forkserver (and its library imports, seconds) now rather than at the first job."""
    from multiprocessing import forkserver

    forkserver.ensure_running()


class _Outcome:
    def __init__(self, state: str, error: str = "", result: dict[str, Any] | None = None) -> None:
        self.state, self.error, self.result = state, error, result


class LeaseLost(Exception):
    """Another worker (or the reconciler) owns the job now; stop without writing anything."""


class TrainingRunner:
    """Runs training jobs for one worker process."""

    def __init__(self, *, settings: Settings, pool: asyncpg.Pool, bus: EventBus, artifacts: ArtifactStore,
                 datasets: DatasetService, devices: DevicePool, tracker: Tracker, worker_id: str,
                 work_dir: Path) -> None:
        self._settings = settings
        self._pool = pool
        self._jobs = JobRepository(pool)
        self._models = ModelRepository(pool)
        self._bus = bus
        self._artifacts = artifacts
        self._datasets = datasets
        self._devices = devices
        self._tracker = tracker
        self._worker_id = worker_id
        self._work_dir = work_dir
        self._mp = fit_context()
        self._key = settings.signing_key()

    async def run(self, job_id: str) -> str:
        """Run one delivery of a job; returns what happened (for arq's result and the logs)."""
        job = await self._jobs.get(job_id)
        if job is None:
            return "unknown job"
        if job.state != "PENDING":
            return f"not run: job is {job.state}"
        from microlearn_grpc.core.estimators import get_estimator

        spec = job.spec
        cls = get_estimator(spec["estimator"])
        gpu = self._devices.try_acquire() if spec.get("use_gpu") is not False and cls.supports_gpu else None
        device = f"cuda:{gpu.index}" if gpu else "cpu"
        try:
            started = await self._jobs.start_attempt(job_id, self._worker_id, device)
            if started is None:
                return "not run: cancelled or taken by another worker"
            events = _EventWriter(self._bus, job_id)
            lease = _Lease(self._jobs, job_id, self._worker_id, self._settings.heartbeat_seconds)
            beating = asyncio.create_task(lease.run(), name=f"heartbeat-{job_id}")
            try:
                await events.state("RUNNING", f"running on {device} (worker {self._worker_id}, attempt "
                                              f"{started.attempt} of {started.max_attempts})")
                if spec.get("use_gpu") and gpu is None:
                    reason = "this worker has no GPU" if not self._devices.gpus else "all GPUs of this worker are busy"
                    await events.log("WARNING", f"use_gpu was requested but {reason}: training on the CPU")
                return await self._attempt(started, device, gpu.index if gpu else None, events, lease)
            except LeaseLost as exc:
                log.warning("job %s: %s", job_id, exc)
                return f"abandoned: {exc}"
            finally:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
        finally:
            self._devices.release(gpu)

    # -- one attempt ---------------------------------------------------------------------------------

    async def _attempt(self, job: JobRecord, device: str, gpu_index: int | None, events: _EventWriter,
                       lease: _Lease) -> str:
        spec = job.spec
        run_id = await self._start_tracking(job)
        work = self._work_dir / "jobs" / f"{job.id}-{job.attempt}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            try:
                request = await self._request(job, device, gpu_index, work)
            except Exception as exc:  # noqa: BLE001 - a missing dataset fails the job, it does not crash the worker
                outcome = _Outcome("FAILED", f"cannot read the training data: {exc}")
            else:
                outcome = await self._supervise(job, request, events, run_id, lease)
            if outcome.state == "SUCCEEDED":
                try:
                    return await self._succeed(job, outcome.result or {}, work, events, run_id, device)
                except (LeaseLost, asyncio.CancelledError):
                    raise
                except Exception as exc:  # noqa: BLE001 - storing failed: the job fails, the worker lives on
                    log.exception("job %s: storing the model failed", job.id)
                    outcome = _Outcome("FAILED", f"storing the trained model failed: {type(exc).__name__}: {exc}")
            return await self._end(job, outcome.state, outcome.error, events, run_id)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _request(self, job: JobRecord, device: str, gpu_index: int | None, work: Path) -> dict[str, Any]:
        spec = job.spec
        record = await self._datasets.resolve(f"datasets/{job.dataset_id}", with_profile=True)
        request = {
            **spec, "job_id": job.id, "dataset_path": str(await self._datasets.local_parquet(record)),
            "profile": record.profile, "device": "cuda:0" if gpu_index is not None else "cpu",
            "cuda_visible_devices": str(gpu_index) if gpu_index is not None else "",
            "n_jobs": self._settings.job_threads(), "output_dir": str(work / "model"),
        }
        validation_dataset = (spec.get("validation") or {}).get("validation_dataset")
        if validation_dataset:
            other = await self._datasets.resolve(validation_dataset, with_profile=False)
            request["validation_dataset_path"] = str(await self._datasets.local_parquet(other))
        return request

    async def _supervise(self, job: JobRecord, request: dict[str, Any], events: _EventWriter,
                         run_id: str | None, lease: _Lease) -> _Outcome:
        """Start the fit process and relay it until it ends, is cancelled, times out or the lease is lost."""
        from microlearn_grpc.core.training import child_main

        loop = asyncio.get_running_loop()
        parent, child = self._mp.Pipe()
        inbox: asyncio.Queue[tuple] = asyncio.Queue()

        def readable() -> None:
            try:
                while parent.poll():
                    inbox.put_nowait(parent.recv())
            except (EOFError, OSError):
                loop.remove_reader(parent.fileno())
                inbox.put_nowait(("eof",))

        process = self._mp.Process(target=child_main, args=(request, child), daemon=True,
                                   name=f"microlearn-fit-{job.id}")
        await asyncio.to_thread(process.start)
        child.close()
        loop.add_reader(parent.fileno(), readable)
        timeout = int(job.spec.get("timeout_seconds") or 0) or self._settings.job_timeout_seconds
        deadline = time.monotonic() + timeout
        check_every = min(0.25, self._settings.heartbeat_seconds)
        next_flush = time.monotonic() + 1.0
        cancel_at: float | None = None
        cancel_reason = ""
        progress = 0.0
        metric_points: list[tuple[str, float, int]] = []
        try:
            while True:
                now = time.monotonic()
                wait = max(0.0, min(now + check_every, deadline, cancel_at or deadline) - now)
                batch: list[tuple] = []
                with contextlib.suppress(asyncio.TimeoutError):
                    batch.append(await asyncio.wait_for(inbox.get(), timeout=wait))
                while not inbox.empty():
                    batch.append(inbox.get_nowait())
                outgoing = []
                final: _Outcome | None = None
                for message in batch:
                    kind = message[0]
                    if kind == "progress":
                        progress = message[1]
                    elif kind == "metrics":
                        _, step, values, fraction = message
                        progress = fraction if fraction is not None else progress
                        outgoing.append(job_events.metrics_event(job.id, step, values, progress))
                        metric_points.extend((name, value, step) for name, value in values.items())
                    elif kind == "log":
                        outgoing.append(job_events.log_event(job.id, message[1], message[2], progress))
                    elif kind == "result":
                        final = _Outcome("SUCCEEDED", result=message[1])
                    elif kind == "cancelled":
                        final = _Outcome("CANCELLED", cancel_reason or "cancelled")
                    elif kind == "error":
                        if message[2]:
                            log.error("job %s failed in the fit process:\n%s", job.id, message[2])
                        final = _Outcome("FAILED", message[1])
                    elif kind == "eof" and final is None:
                        await asyncio.to_thread(process.join, 5)
                        final = (_Outcome("CANCELLED", cancel_reason or "cancelled") if cancel_at is not None
                                 else _Outcome("FAILED", _exit_reason(process.exitcode)))
                if outgoing:
                    await events.publish(outgoing)
                lease.progress = progress
                if metric_points and (final is not None or len(metric_points) >= 200 or time.monotonic() >= next_flush):
                    next_flush = time.monotonic() + 1.0
                    if run_id:
                        await self._tracker.call(self._tracker.log_metrics, run_id, list(metric_points))
                    metric_points.clear()
                if final is not None:
                    return final
                now = time.monotonic()
                if now >= deadline:
                    return _Outcome("FAILED", f"timed out after {timeout} s (spec.timeout_seconds or the "
                                              f"server's MICROLEARN_JOB_TIMEOUT_SECONDS)")
                if cancel_at is not None and now >= cancel_at:
                    return _Outcome("CANCELLED", cancel_reason or "cancelled")
                if lease.lost is not None:
                    raise LeaseLost(lease.lost)
                if lease.cancel_reason is not None and cancel_at is None:
                    cancel_reason = lease.cancel_reason
                    cancel_at = now + CANCEL_GRACE_SECONDS
                    with contextlib.suppress(OSError):
                        parent.send("cancel")
                    await events.log("INFO", "cancellation requested; stopping at the next iteration")
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(parent.fileno())
            if process.is_alive():
                process.terminate()
                await asyncio.to_thread(process.join, 5)
                if process.is_alive():
                    process.kill()
                    await asyncio.to_thread(process.join, 5)
            parent.close()

    # -- endings -------------------------------------------------------------------------------------

    async def _succeed(self, job: JobRecord, result: dict[str, Any], work: Path, events: _EventWriter,
                       run_id: str | None, device: str) -> str:
        from microlearn_grpc.core.model_artifact import pack, sign_file

        spec = job.spec
        model_id = new_model_id()
        tar = work / f"{model_id}.tar"
        await asyncio.to_thread(pack, work / "model", tar)
        sha256, signature = await asyncio.to_thread(sign_file, tar, self._key)
        key = f"models/{model_id}.tar"
        info = await self._artifacts.put_file(key, tar)
        record = ModelRecord(
            id=model_id, job_id=job.id, dataset_id=job.dataset_id or "", target=spec.get("target") or "",
            estimator=spec["estimator"], task=spec["task"], hyperparameters=result.get("hyperparameters", {}),
            metric=result.get("metric", ""), metrics=result.get("metrics", {}),
            metrics_std=result.get("metrics_std", {}), train_metrics=result.get("train_metrics", {}),
            feature_schema=result.get("feature_schema", []), class_labels=result.get("class_labels", []),
            format=result.get("format", "sklearn_pipeline"), artifact_key=key, size_bytes=info.size,
            sha256=sha256, hmac=signature, diagnostics=result.get("diagnostics", {}),
            lineage={"dataset": spec.get("dataset_display", ""), "dataset_id": job.dataset_id,
                     "feature_plan": result.get("feature_plan", {}), "seed": spec.get("seed"),
                     "library": result.get("library", ""), "stop_reason": result.get("stop_reason", ""),
                     "fold_metrics": result.get("fold_metrics", [])},
            mlflow_run_id=run_id, iterations=result.get("iterations", 0),
            best_iteration=result.get("best_iteration", 0), training_row_count=result.get("training_row_count", 0),
            fit_time_seconds=result.get("fit_time_seconds", 0.0), device=device, study_id=job.study_id,
            trial_number=int(spec.get("trial_number") or 0), labels=job.labels)
        if run_id:  # closed before the job ends, so the run is complete when a client sees SUCCEEDED
            await self._track_result(run_id, result, tar)
            await self._tracker.call(self._tracker.end_run, run_id, "FINISHED")
        metrics = {k: float(v) for k, v in result.get("metrics", {}).items()}
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._models.insert(record, conn=conn)
                await self._jobs.finish(job.id, self._worker_id, "SUCCEEDED", metrics=metrics,
                                        outputs=[f"models/{model_id}"], conn=conn)
        except InvalidTransition as exc:
            with contextlib.suppress(Exception):
                await self._artifacts.delete(key)
            raise LeaseLost(str(exc)) from None
        except BaseException:
            with contextlib.suppress(Exception):
                await self._artifacts.delete(key)
            raise
        score = metrics.get(result.get("metric", ""))
        summary = f"model models/{model_id}" + (f", {result['metric']} = {score:.4g}" if score is not None else "")
        await events.state("SUCCEEDED", summary, 1.0)  # right after the row: a stream opened now must see it
        return f"succeeded: models/{model_id}"

    async def _end(self, job: JobRecord, state: str, error: str, events: _EventWriter, run_id: str | None) -> str:
        if run_id:  # a later attempt (if this one lost its lease) reopens the run
            await self._tracker.call(self._tracker.end_run, run_id, _MLFLOW_STATUS[state])
        try:
            await self._jobs.finish(job.id, self._worker_id, state, error=error)
        except InvalidTransition as exc:
            raise LeaseLost(str(exc)) from None
        if state == "FAILED":
            await events.log("ERROR", error)
        await events.state(state, error)
        return f"{state.lower()}: {error}"

    # -- tracking ------------------------------------------------------------------------------------

    async def _start_tracking(self, job: JobRecord) -> str | None:
        if not self._tracker.enabled:
            return None
        spec = job.spec
        tags = {"microlearn.job_id": job.id, "microlearn.job": f"jobs/{job.id}",
                "microlearn.dataset_id": job.dataset_id or "", "microlearn.dataset": spec.get("dataset_display", ""),
                "microlearn.estimator": spec["estimator"], "microlearn.task": spec["task"],
                "microlearn.attempt": str(job.attempt), **{f"label.{k}": v for k, v in job.labels.items()}}
        params = {**{f"hp.{k}": v for k, v in (spec.get("hyperparameters") or {}).items()},
                  "estimator": spec["estimator"], "target": spec.get("target", ""), "task": spec["task"],
                  "metric": spec.get("metric", ""), "seed": spec.get("seed"),
                  "max_iterations": spec.get("max_iterations", 0),
                  "validation": spec.get("validation"), "early_stopping": spec.get("early_stopping")}
        run_id = await self._tracker.call(self._tracker.start_run, spec.get("experiment_name") or "",
                                          f"{spec['estimator']} {job.id}", tags, params, job.mlflow_run_id)
        if run_id and run_id != job.mlflow_run_id:
            await self._jobs.set_mlflow_run(job.id, run_id)
        return run_id

    async def _track_result(self, run_id: str, result: dict[str, Any], tar: Path) -> None:
        points = [(f"val_{k}", v, 0) for k, v in result.get("metrics", {}).items()]
        points += [(f"val_{k}_std", v, 0) for k, v in result.get("metrics_std", {}).items()]
        points += [(f"train_{k}", v, 0) for k, v in result.get("train_metrics", {}).items()]
        points.append(("fit_time_seconds", result.get("fit_time_seconds", 0.0), 0))
        await self._tracker.call(self._tracker.log_metrics, run_id, points)
        await self._tracker.call(self._tracker.log_artifact, run_id, tar, "model")
        if result.get("diagnostics"):
            await self._tracker.call(self._tracker.log_dict, run_id, result["diagnostics"], "diagnostics.json")


class _Lease:
    """Heartbeats a running job for the whole attempt (tracking setup, data download, fit, upload),
    recording progress; notes when cancellation was requested or the lease was lost."""

    def __init__(self, jobs: JobRepository, job_id: str, worker_id: str, interval: float) -> None:
        self._jobs, self._job_id, self._worker_id, self._interval = jobs, job_id, worker_id, interval
        self.progress: float | None = None
        self.cancel_reason: str | None = None
        self.lost: str | None = None

    async def run(self) -> None:
        while self.lost is None:
            await asyncio.sleep(self._interval)
            try:
                if await self._jobs.heartbeat(self._job_id, self._worker_id, progress=self.progress):
                    continue
                current = await self._jobs.get(self._job_id)
            except Exception:  # noqa: BLE001 - a database blip: the next beat tries again, the lease allows it
                log.warning("heartbeat of job %s failed", self._job_id, exc_info=True)
                continue
            if current is None or current.state != "RUNNING" or current.worker_id != self._worker_id:
                self.lost = f"lease lost (the job is {current.state if current else 'gone'}); stopping"
            elif current.cancel_requested and self.cancel_reason is None:
                self.cancel_reason = current.error or "cancelled"


class _EventWriter:
    """Publishes one job's events, remembering its progress for the ones that carry none."""

    def __init__(self, bus: EventBus, job_id: str) -> None:
        self._bus = bus
        self._job_id = job_id
        self.progress = 0.0

    async def publish(self, events: list) -> None:
        for event in events:
            self.progress = max(self.progress, event.progress)
        try:
            await self._bus.publish_many(job_events.stream(self._job_id), events)
        except Exception:  # noqa: BLE001 - events are transport; Postgres holds the truth
            log.warning("could not publish %d event(s) of job %s", len(events), self._job_id, exc_info=True)

    async def state(self, state: str, message: str, progress: float | None = None) -> None:
        progress = self.progress if progress is None else progress
        await self.publish([job_events.state_event(self._job_id, state, message, progress)])

    async def log(self, level: str, message: str) -> None:
        await self.publish([job_events.log_event(self._job_id, level, message, self.progress)])


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        import signal

        with contextlib.suppress(ValueError):
            name = signal.Signals(-code).name
            hint = " (the system may have run out of memory)" if name == "SIGKILL" else ""
            return f"the training process was killed by {name}{hint}"
    return f"the training process exited unexpectedly (exit code {code})"
