"""Running an evaluation job on a worker: a stored model measured on held-out rows, the result stored
with the model.

    arq delivers job id ──► take the lease (heartbeats as any job) ──► the rows' Parquet file and the
        model's artifact (SHA-256 + HMAC checked before it is unpacked) ──► `core.evaluation` in a fit
        process (the training runner's: cancellation, timeouts and a crash behave as for a fit)
        ──► ONE transaction: the model's diagnostics (plot data, permutation importance, `evaluation`)
            + job SUCCEEDED ──► the same JSON in the model's MLflow run, when it has one
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any

import asyncpg

from microlearn_grpc.config import Settings
from microlearn_grpc.services.datasets import DatasetService
from microlearn_grpc.storage.artifacts import ArtifactStore
from microlearn_grpc.storage.events import EventBus
from microlearn_grpc.storage.jobs_repo import InvalidTransition, JobRecord, JobRepository
from microlearn_grpc.storage.models_repo import ModelRepository
from microlearn_grpc.tracking import Tracker
from workers.training import EventWriter, Lease, LeaseLost, TrainingRunner, held

log = logging.getLogger(__name__)


class _Failed(Exception):
    pass


@dataclasses.dataclass
class EvaluationRunner:
    """Runs evaluation jobs for one worker process, in the training runner's fit processes."""

    settings: Settings
    pool: asyncpg.Pool
    bus: EventBus
    artifacts: ArtifactStore
    datasets: DatasetService
    training: TrainingRunner
    tracker: Tracker
    worker_id: str
    work_dir: Path

    def __post_init__(self) -> None:
        self._jobs = JobRepository(self.pool)
        self._models = ModelRepository(self.pool)

    async def run(self, job_id: str) -> str:
        started, not_run = await self._jobs.take(job_id, self.worker_id, "cpu")
        if started is None:
            return not_run
        work = self.work_dir / "evaluations" / f"{job_id}-{started.attempt}"
        try:
            async with held(self._jobs, self.bus, started, self.worker_id, self.settings.heartbeat_seconds) as (
                    events, lease):
                spec = started.spec
                await events.state("RUNNING", f"evaluating {spec['model']} on {spec['dataset_display']} "
                                              f"({spec['rows']} rows) on worker {self.worker_id}")
                try:
                    state, error, result = await self._attempt(started, events, lease, work)
                except _Failed as exc:
                    state, error, result = "FAILED", str(exc), None
                if state == "SUCCEEDED" and result is not None:
                    return await self._succeed(started, result, events)
                with contextlib.suppress(InvalidTransition):
                    await self._jobs.finish(job_id, self.worker_id, state, error=error)
                if state == "FAILED":
                    await events.log("ERROR", error)
                await events.state(state, error)
                return f"{state.lower()}: {error}"
        except LeaseLost as exc:
            log.warning("job %s: %s", job_id, exc)
            return f"abandoned: {exc}"
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _attempt(self, job: JobRecord, events: EventWriter, lease: Lease, work: Path
                       ) -> tuple[str, str, dict[str, Any] | None]:
        spec = job.spec
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        request: dict[str, Any] = {**spec, "action": "evaluate", "output_dir": str(work / "scratch")}
        if spec["rows"] == "out_of_fold":
            training_job = await self._jobs.get(spec.get("training_job_id") or "")
            if training_job is None:
                raise _Failed("the training job of the model is gone")
            request["rows"] = "refold"
            request["training_request"] = {**await self.training.fit_request(training_job, work),
                                           "metric": spec["metric"], "stop_at": None, "timeout_seconds": 0}
            request["training_request"].pop("predictions_path", None)
        else:
            source = await self._models.get(spec["source_model_id"])
            if source is None:
                raise _Failed(f"models/{spec['source_model_id']} is gone")
            try:
                record = await self.datasets.resolve(spec["dataset"], with_profile=False)
                request["dataset_path"] = str(await self.datasets.local_parquet(record))
                request["model_dir"] = str(await self._unpack(source, work))
            except Exception as exc:  # noqa: BLE001 - a missing dataset or a bad artifact fails the job
                raise _Failed(f"cannot read the model or the rows: {type(exc).__name__}: {exc}") from None
            request["fit_seconds"] = source.fit_time_seconds
        return await self.training.run_in_fit_process(job, request, events, lease)

    async def _unpack(self, source: Any, work: Path) -> Path:
        from microlearn_grpc.core.model_artifact import unpack, verify_file

        tar = work / "model.tar"
        await self.artifacts.get_to_file(source.artifact_key, tar, expected_sha256=source.sha256)
        await asyncio.to_thread(verify_file, tar, self.settings.signing_key(), source.sha256, source.hmac)
        directory = work / "model"
        directory.mkdir()
        await asyncio.to_thread(unpack, tar, directory)
        return directory

    async def _succeed(self, job: JobRecord, result: dict[str, Any], events: EventWriter) -> str:
        spec = job.spec
        metrics = {k: float(v) for k, v in result["metrics"].items()}
        evaluation = {"job": job.resource_name, "dataset": spec["dataset"], "rows": spec["rows"],
                      "row_count": result["rows"], "metrics": metrics, "seconds": round(result["seconds"], 3),
                      "evaluate_time": dt.datetime.now(dt.timezone.utc).isoformat()}
        diagnostics = {**result["diagnostics"], "evaluation": evaluation}
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if not await self._models.set_diagnostics(spec["model_id"], diagnostics, conn=conn):
                    raise _Failed(f"{spec['model']} was deleted during its evaluation")
                await self._jobs.finish(job.id, self.worker_id, "SUCCEEDED", metrics=metrics,
                                        outputs=[spec["model"]], conn=conn)
        except InvalidTransition as exc:
            raise LeaseLost(str(exc)) from None
        except _Failed as exc:
            with contextlib.suppress(InvalidTransition):
                await self._jobs.finish(job.id, self.worker_id, "FAILED", error=str(exc))
            await events.state("FAILED", str(exc))
            return f"failed: {exc}"
        await self._track(spec["model_id"], diagnostics, metrics)
        top = (diagnostics.get("permutation_importance") or {}).get("features") or []
        summary = f"{spec['metric']} = {metrics[spec['metric']]:.4g}" if spec["metric"] in metrics else "measured"
        if top:
            summary += f"; most important: {', '.join(f['name'] for f in top[:3])}"
        await events.state("SUCCEEDED", f"{spec['model']} on {result['rows']:,} rows: {summary}", 1.0)
        return f"succeeded: {spec['model']}"

    async def _track(self, model_id: str, diagnostics: dict[str, Any], metrics: dict[str, float]) -> None:
        record = await self._models.get(model_id)
        run_id = record.mlflow_run_id if record else None
        if not run_id or not self.tracker.enabled:
            return
        try:
            await self.tracker.call(self.tracker.log_metrics, run_id, [(f"eval_{k}", v, 0) for k, v in metrics.items()])
            await self.tracker.call(self.tracker.log_dict, run_id, diagnostics, "evaluation.json")
        except Exception:  # noqa: BLE001 - tracking is a record; the model row holds the result
            log.warning("could not log the evaluation of models/%s to MLflow run %s", model_id, run_id, exc_info=True)
