"""Running a training job on a worker: lease, child process, events, heartbeats, model, tracking.

    arq delivers job id ──► start_attempt (PENDING → RUNNING, the lease) ──► fit in a child process
        │                         ▲ heartbeat every `heartbeat_seconds`: renews the lease, records
        │                         │ progress, and learns about cancellation
        ▼                         │
    events (Redis Stream) ◄── messages from the child: metrics per iteration, logs, progress
        ▼
    result ──► pack + SHA-256 + HMAC ──► artifact store ──► ONE transaction: model row + job SUCCEEDED

The fit runs in its own process (forked from a forkserver that imported the libraries and ran a
tiny fit once, then reused by the next jobs while it behaves), so this event loop stays free to
heartbeat and stream, a cancel can terminate it, and a crash in native code fails the job instead
of the worker. Postgres decides: every transition is a
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
from collections.abc import AsyncIterator
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
# Imported once by the forkserver (a module missing here is skipped); the last one runs a tiny fit so
# every fit process starts warm. The boosting libraries are only imported: no OpenMP pool before a fork.
_PRELOAD = ["microlearn_grpc.core.training", "numpy", "pandas", "pyarrow.parquet", "sklearn.pipeline",
            "sklearn.compose", "sklearn.preprocessing", "sklearn.impute", "sklearn.metrics", "sklearn.ensemble",
            "sklearn.model_selection", "lightgbm", "xgboost", "workers.fit_preload"]
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
        self._fits = _FitProcesses(fit_context(), keep=settings.worker_concurrency)
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
            events = EventWriter(self._bus, job_id)
            lease = Lease(self._jobs, job_id, self._worker_id, self._settings.heartbeat_seconds)
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

    async def fit_request(self, job: JobRecord, work: Path) -> dict[str, Any]:
        """What the fit process needs to run training job `job` again on the CPU (an evaluation re-running
        a k-fold model's cross-validation), with its output under `work`."""
        return await self._request(job, "cpu", None, work)

    async def run_in_fit_process(self, job: JobRecord, request: dict[str, Any], events: EventWriter,
                                 lease: Lease) -> tuple[str, str, dict[str, Any] | None]:
        """Run `request` for `job` (any kind) in a fit process, relaying its logs, progress and cancellation:
        (state, error, result). Nothing is tracked in MLflow on the way."""
        outcome = await self._supervise(job, request, events, _RunLog(self._tracker), lease)
        return outcome.state, outcome.error, outcome.result

    async def close(self) -> None:
        """Stop the idle fit processes (at worker shutdown)."""
        await self._fits.close()

    # -- one attempt ---------------------------------------------------------------------------------

    async def _attempt(self, job: JobRecord, device: str, gpu_index: int | None, events: EventWriter,
                       lease: Lease) -> str:
        run = _RunLog(self._tracker)
        run.start(self._start_tracking(job, run))  # written while the job goes on; awaited before it ends
        work = self._work_dir / "jobs" / f"{job.id}-{job.attempt}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            try:
                request = await self._request(job, device, gpu_index, work)
            except Exception as exc:  # noqa: BLE001 - a missing dataset fails the job, it does not crash the worker
                outcome = _Outcome("FAILED", f"cannot read the training data: {exc}")
            else:
                outcome = await self._supervise(job, request, events, run, lease)
            if outcome.state == "SUCCEEDED":
                try:
                    return await self._succeed(job, outcome.result or {}, work, events, run, device)
                except (LeaseLost, asyncio.CancelledError):
                    raise
                except Exception as exc:  # noqa: BLE001 - storing failed: the job fails, the worker lives on
                    log.exception("job %s: storing the model failed", job.id)
                    outcome = _Outcome("FAILED", f"storing the trained model failed: {type(exc).__name__}: {exc}")
            return await self._end(job, outcome.state, outcome.error, events, run)
        finally:
            with contextlib.suppress(Exception):
                await run.drain()  # the model tar may still be on its way to MLflow
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
        if job.kind == "trial":  # a study may build an ensemble from its trials' validation predictions
            request["predictions_path"] = str(work / "predictions.npz")
        # Only on request: otherwise a model's importance comes from an evaluation job (after its study,
        # when it is registered, or EvaluateModel), which does not add to the training job's time.
        request["importance"] = job.kind == "training" and bool(spec.get("permutation_importance"))
        validation_dataset = (spec.get("validation") or {}).get("validation_dataset")
        if validation_dataset:
            other = await self._datasets.resolve(validation_dataset, with_profile=False)
            request["validation_dataset_path"] = str(await self._datasets.local_parquet(other))
        return request

    async def _supervise(self, job: JobRecord, request: dict[str, Any], events: EventWriter,
                         run: _RunLog, lease: Lease) -> _Outcome:
        """Hand the fit to a fit process and relay it until it ends, is cancelled, times out or the lease
        is lost. A process that answered is kept for the next job; any other is terminated."""
        loop = asyncio.get_running_loop()
        fit = await self._fits.acquire(request.get("cuda_visible_devices") or "")
        parent = fit.conn
        inbox: asyncio.Queue[tuple] = asyncio.Queue()

        def readable() -> None:
            try:
                while parent.poll():
                    inbox.put_nowait(parent.recv())
            except (EOFError, OSError):
                loop.remove_reader(parent.fileno())
                inbox.put_nowait(("eof",))

        process = fit.process
        answered = False
        with contextlib.suppress(OSError):  # it died since it was checked: its end of file fails the job
            parent.send(("run", request))
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
                    elif kind == "retire":
                        fit.reusable = False
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
                    if final is not None and kind != "eof":
                        answered = True
                if outgoing:
                    await events.publish(outgoing)
                lease.progress = progress
                if final is not None:  # logged with the job's final metrics, in one batch
                    run.unlogged.extend(metric_points)
                elif metric_points and (len(metric_points) >= 200 or time.monotonic() >= next_flush):
                    next_flush = time.monotonic() + 1.0
                    run.submit(self._tracker.log_metrics, list(metric_points))  # not awaited: the relay goes on
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
            if answered:
                await self._fits.release(fit)
            else:
                await fit.stop()

    # -- endings -------------------------------------------------------------------------------------

    async def _succeed(self, job: JobRecord, result: dict[str, Any], work: Path, events: EventWriter,
                       run: _RunLog, device: str) -> str:
        from microlearn_grpc.core.model_artifact import pack, sign_file

        spec = job.spec
        if spec.get("refit_of"):  # a study's refit holds nothing out: it carries its trial's validation figures
            source = await self._models.get(spec["refit_of"])
            if source is not None:
                result = {**result, "metrics": source.metrics, "metrics_std": source.metrics_std,
                          "diagnostics": source.diagnostics, "fold_metrics": source.lineage.get("fold_metrics", [])}
        model_id = new_model_id()
        tar = work / f"{model_id}.tar"
        await asyncio.to_thread(pack, work / "model", tar)
        sha256, signature = await asyncio.to_thread(sign_file, tar, self._key)
        key = f"models/{model_id}.tar"
        # MLflow gets the results and the model on its thread while the artifact store gets the model.
        self._track_result(run, result, tar)
        run.submit(self._tracker.end_run, "FINISHED")
        info = await self._artifacts.put_file(key, tar)
        lineage_extra: dict[str, Any] = {}
        predictions = work / "predictions.npz"
        if predictions.exists():
            lineage_extra["validation_predictions"] = f"predictions/{model_id}.npz"
            await self._artifacts.put_file(lineage_extra["validation_predictions"], predictions)
        run_id = await run.drain()  # the run is complete (and named on the job) before the job ends
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
                     "fold_metrics": result.get("fold_metrics", []), **lineage_extra,
                     **({"refit_of": spec["refit_of"]} if spec.get("refit_of") else {})},
            mlflow_run_id=run_id, iterations=result.get("iterations", 0),
            best_iteration=result.get("best_iteration", 0), training_row_count=result.get("training_row_count", 0),
            fit_time_seconds=result.get("fit_time_seconds", 0.0), device=device, study_id=job.study_id,
            trial_number=int(spec.get("trial_number") or 0), labels=job.labels)
        metrics = {k: float(v) for k, v in result.get("metrics", {}).items()}
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._models.insert(record, conn=conn)
                await self._jobs.finish(job.id, self._worker_id, "SUCCEEDED", metrics=metrics,
                                        outputs=[f"models/{model_id}"], conn=conn)
        except InvalidTransition as exc:
            await self._discard(key, *lineage_extra.values())
            raise LeaseLost(str(exc)) from None
        except BaseException:
            await self._discard(key, *lineage_extra.values())
            raise
        score = metrics.get(result.get("metric", ""))
        summary = f"model models/{model_id}" + (f", {result['metric']} = {score:.4g}" if score is not None else "")
        await events.state("SUCCEEDED", summary, 1.0)  # right after the row: a stream opened now must see it
        return f"succeeded: models/{model_id}"

    async def _discard(self, *keys: str) -> None:
        for key in keys:
            with contextlib.suppress(Exception):
                await self._artifacts.delete(key)

    async def _end(self, job: JobRecord, state: str, error: str, events: EventWriter, run: _RunLog) -> str:
        if run.unlogged:
            run.submit(self._tracker.log_metrics, run.take_unlogged())
        # A later attempt (if this one lost its lease) reopens the run.
        run.submit(self._tracker.end_run, _MLFLOW_STATUS[state])
        await run.drain()
        try:
            await self._jobs.finish(job.id, self._worker_id, state, error=error)
        except InvalidTransition as exc:
            raise LeaseLost(str(exc)) from None
        if state == "FAILED":
            await events.log("ERROR", error)
        await events.state(state, error)
        return f"{state.lower()}: {error}"

    # -- tracking ------------------------------------------------------------------------------------

    async def _start_tracking(self, job: JobRecord, run: _RunLog) -> None:
        spec = job.spec
        tags = {"microlearn.job_id": job.id, "microlearn.job": f"jobs/{job.id}",
                "microlearn.dataset_id": job.dataset_id or "", "microlearn.dataset": spec.get("dataset_display", ""),
                "microlearn.estimator": spec["estimator"], "microlearn.task": spec["task"],
                "microlearn.attempt": str(job.attempt), **{f"label.{k}": v for k, v in job.labels.items()}}
        if spec.get("mlflow_parent_run_id"):  # a study's trial: a child of the study's run in the MLflow UI
            tags.update({"mlflow.parentRunId": spec["mlflow_parent_run_id"], "microlearn.study_id": job.study_id or "",
                         "microlearn.trial_number": str(spec.get("trial_number", ""))})
        params = {**{f"hp.{k}": v for k, v in (spec.get("hyperparameters") or {}).items()},
                  "estimator": spec["estimator"], "target": spec.get("target", ""), "task": spec["task"],
                  "metric": spec.get("metric", ""), "seed": spec.get("seed"),
                  "max_iterations": spec.get("max_iterations", 0),
                  "validation": spec.get("validation"), "early_stopping": spec.get("early_stopping")}
        run_id = await run.open(self._tracker.start_run, spec.get("experiment_name") or "",
                                f"{spec['estimator']} {job.id}", tags, params, job.mlflow_run_id)
        if run_id and run_id != job.mlflow_run_id:
            await self._jobs.set_mlflow_run(job.id, run_id)

    def _track_result(self, run: _RunLog, result: dict[str, Any], tar: Path) -> None:
        # At the last iteration's step, logged after the per-iteration points: the final val_<metric> (the
        # kept model's, which under early stopping is an earlier round's) is then the run's latest value.
        step = int(result.get("iterations") or 0)
        points = [(f"val_{k}", v, step) for k, v in result.get("metrics", {}).items()]
        points += [(f"val_{k}_std", v, step) for k, v in result.get("metrics_std", {}).items()]
        points += [(f"train_{k}", v, step) for k, v in result.get("train_metrics", {}).items()]
        points.append(("fit_time_seconds", result.get("fit_time_seconds", 0.0), step))
        run.submit(self._tracker.log_metrics, run.take_unlogged(), points)
        run.submit(self._tracker.log_artifact, tar, "model")
        if result.get("diagnostics"):
            run.submit(self._tracker.log_dict, result["diagnostics"], "diagnostics.json")


class _FitProcess:
    """A fit process (`core.training.child_main`) and the worker's end of its pipe."""

    def __init__(self, mp: multiprocessing.context.BaseContext, cuda_visible_devices: str) -> None:
        from microlearn_grpc.core.training import child_main

        self.conn, self._child = mp.Pipe()
        self.process = mp.Process(target=child_main, args=(self._child, cuda_visible_devices), daemon=True,
                                  name="microlearn-fit")
        # One that sees a GPU serves one job: the next job may need another device, set before CUDA loads.
        self.reusable = not cuda_visible_devices

    def start(self) -> None:
        self.process.start()
        self._child.close()

    @property
    def idle_and_alive(self) -> bool:
        """Alive with nothing to read (an exited process reads as end of file)."""
        try:
            return self.process.is_alive() and not self.conn.poll()
        except (OSError, ValueError):
            return False

    async def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            await asyncio.to_thread(self.process.join, 5)
            if self.process.is_alive():
                self.process.kill()
                await asyncio.to_thread(self.process.join, 5)
        self.conn.close()


class _FitProcesses:
    """The worker's fit processes: forked from the forkserver and then reused from job to job (a fork
    and a cold start per job cost a trivial job most of its CPU time). Only a process that answered its
    fit is kept; one that was cancelled past its grace, timed out, lost its lease or died is terminated,
    so every job can still be stopped by killing its process."""

    def __init__(self, mp: multiprocessing.context.BaseContext, keep: int) -> None:
        self._mp, self._keep = mp, keep
        self._idle: list[_FitProcess] = []

    async def acquire(self, cuda_visible_devices: str) -> _FitProcess:
        while self._idle and not cuda_visible_devices:
            fit = self._idle.pop()
            if fit.idle_and_alive:
                return fit
            await fit.stop()
        fit = _FitProcess(self._mp, cuda_visible_devices)
        await asyncio.to_thread(fit.start)
        return fit

    async def release(self, fit: _FitProcess) -> None:
        if fit.reusable and len(self._idle) < self._keep and fit.idle_and_alive:
            self._idle.append(fit)
        else:
            await fit.stop()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for fit in idle:
            await fit.stop()


class _RunLog:
    """One job's MLflow run, written on the tracker's thread in the order the calls are made, without
    the job waiting for each: the relay of a fit's events never blocks on MLflow, and starting the run
    overlaps the data read and the fit. `drain()` waits for everything so far (the job does before it
    ends) and gives the run id, None when tracking is off or the run could not be started."""

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._pending: list[asyncio.Future] = []
        self.run_id: str | None = None
        self.unlogged: list[tuple[str, float, int]] = []  # the last per-step metrics, for the final batch

    def take_unlogged(self) -> list[tuple[str, float, int]]:
        points, self.unlogged = self.unlogged, []
        return points

    def start(self, opening: Any) -> None:
        """Schedule `opening`, a coroutine that calls `open` (and records the run on the job)."""
        if self._tracker.enabled:
            self._pending.append(asyncio.ensure_future(opening))
        else:
            opening.close()

    async def open(self, start_run: Any, *args: Any) -> str | None:
        def opened() -> str:
            self.run_id = start_run(*args)  # on the tracker's thread, before any call submitted after it
            return self.run_id

        return await self._tracker.call(opened)

    def submit(self, fn: Any, *args: Any) -> None:
        """Schedule `fn(run_id, *args)` on the tracker's thread, after the calls submitted before it."""
        if not self._tracker.enabled:
            return

        def call() -> Any:
            return fn(self.run_id, *args) if self.run_id else None

        self._pending.append(asyncio.ensure_future(self._tracker.call(call)))

    async def drain(self) -> str | None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
        return self.run_id


class Lease:
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


@contextlib.asynccontextmanager
async def held(jobs: JobRepository, bus: EventBus, job: JobRecord, worker_id: str,
               heartbeat_seconds: float) -> AsyncIterator[tuple[EventWriter, Lease]]:
    """The events and the heartbeating lease of a job this worker has started, for the `async with` body."""
    lease = Lease(jobs, job.id, worker_id, heartbeat_seconds)
    beating = asyncio.create_task(lease.run(), name=f"heartbeat-{job.id}")
    try:
        yield EventWriter(bus, job.id), lease
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


class EventWriter:
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
