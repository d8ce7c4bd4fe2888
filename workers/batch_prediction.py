"""Running a batch prediction job on a worker: a stored dataset in, a new dataset of predictions out.

    arq delivers job id ──► start_attempt (PENDING → RUNNING, the lease; heartbeats as any job)
        ──► the model, loaded and verified by the serving model cache (SHA-256 + HMAC, as a server does)
        ──► the input Parquet, chunk by chunk: the same input checks as Predict, predict, write
        ──► the output Parquet stored as a dataset (passthrough columns, `prediction`,
            `probability_{label}` per class) ──► job SUCCEEDED with the dataset in `outputs`

Chunks run on a thread, so heartbeats, cancellation and progress events keep flowing; a cancel
or a lost lease is noticed between chunks.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import asyncpg

from microlearn_grpc import errors
from microlearn_grpc.config import Settings
from microlearn_grpc.services import job_events
from microlearn_grpc.services.datasets import DatasetService
from microlearn_grpc.serving import inputs
from microlearn_grpc.serving._tasks import stop_task
from microlearn_grpc.serving.models import LoadedModel, ModelCache
from microlearn_grpc.storage.artifacts import ArtifactStore
from microlearn_grpc.storage.events import EventBus
from microlearn_grpc.storage.jobs_repo import InvalidTransition, JobRecord, JobRepository
from microlearn_grpc.storage.models_repo import ModelRepository
from workers.training import LeaseLost, EventWriter, Lease

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000


class _Cancelled(Exception):
    pass


class BatchPredictionRunner:
    def __init__(self, *, settings: Settings, pool: asyncpg.Pool, bus: EventBus, artifacts: ArtifactStore,
                 datasets: DatasetService, worker_id: str, work_dir: Path) -> None:
        self._settings = settings
        self._jobs = JobRepository(pool)
        self._bus = bus
        self._datasets = datasets
        self._worker_id = worker_id
        self._work_dir = work_dir
        self._cache = ModelCache(ModelRepository(pool), artifacts, key=settings.signing_key(), work_dir=work_dir)

    async def run(self, job_id: str) -> str:
        """Run one delivery of a job; returns what happened (for arq's result, the logs and metrics)."""
        started, not_run = await self._jobs.take(job_id, self._worker_id, "cpu")
        if started is None:
            return not_run
        events = EventWriter(self._bus, job_id)
        lease = Lease(self._jobs, job_id, self._worker_id, self._settings.heartbeat_seconds)
        beating = asyncio.create_task(lease.run(), name=f"heartbeat-{job_id}")
        work = self._work_dir / "batch" / job_id
        try:
            await events.state("RUNNING", f"predicting with {started.spec['model_version']} on worker {self._worker_id} "
                                          f"(attempt {started.attempt} of {started.max_attempts})")
            state, error, outputs, metrics = "SUCCEEDED", None, None, None
            try:
                outputs, metrics = await self._attempt(started, events, lease, work)
            except _Cancelled as exc:
                state, error = "CANCELLED", str(exc)
            except errors.DomainError as exc:
                state, error = "FAILED", str(exc)
            except LeaseLost:
                raise
            except Exception as exc:  # noqa: BLE001 - the job fails with the reason; the worker goes on
                log.exception("batch prediction %s failed", job_id)
                state, error = "FAILED", f"{type(exc).__name__}: {exc}"
            return await self._finish(job_id, state, error, outputs, metrics, events)
        except LeaseLost as exc:
            log.warning("job %s: %s", job_id, exc)
            return f"abandoned: {exc}"
        finally:
            await stop_task(beating)
            shutil.rmtree(work, ignore_errors=True)

    async def _finish(self, job_id: str, state: str, error: str | None, outputs: list[str] | None,
                      metrics: dict[str, float] | None, events: EventWriter) -> str:
        try:
            await self._jobs.finish(job_id, self._worker_id, state, error=error, outputs=outputs, metrics=metrics)
        except InvalidTransition as exc:
            return f"abandoned: {exc}"
        await events.state(state, error or f"stored {outputs[0] if outputs else ''}", 1.0 if state == "SUCCEEDED" else None)
        return f"{state.lower()}: {error or (outputs or [''])[0]}"

    async def _attempt(self, job: JobRecord, events: EventWriter, lease: Lease, work: Path,
                       ) -> tuple[list[str], dict[str, float]]:
        import pyarrow.parquet as pq

        spec = job.spec
        begun = time.perf_counter()
        model = await self._cache.get(spec["model_id"])
        self._cache.retain({spec["model_id"]})  # a worker keeps only the model of its latest batch
        source = await self._datasets.resolve(spec["dataset"], with_profile=False, field="input_dataset")
        path = await self._datasets.local_parquet(source)
        work.mkdir(parents=True, exist_ok=True)
        out = work / "predictions.parquet"
        parquet = await asyncio.to_thread(pq.ParquetFile, path)
        total = parquet.metadata.num_rows
        if total == 0:
            raise errors.FailedPrecondition(f"{spec['dataset_display']} has no rows to predict for")
        batches = parquet.iter_batches(batch_size=CHUNK_ROWS)
        writer, done, step = None, 0, 0
        try:
            while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                self._check(lease)
                table, warnings = await asyncio.to_thread(_predict_chunk, batch, model, spec)
                if writer is None:
                    writer = pq.ParquetWriter(out, table.schema, compression="zstd")
                    for warning in warnings:
                        await events.log("WARNING", warning)
                await asyncio.to_thread(writer.write_table, table)
                done, step = done + table.num_rows, step + 1
                lease.progress = 0.95 * done / total
                await events.publish([job_events.metrics_event(job.id, step, {"rows_predicted": done},
                                                               lease.progress)])
        finally:
            if writer is not None:
                await asyncio.to_thread(writer.close)
        self._check(lease)
        record = await self._datasets.store_derived(
            out, display_name=spec["output_display_name"], parent=source,
            description=f"predictions of {spec['model_version']} (deployments/{spec['deployment']}) "
                        f"for {spec['dataset_display']}")
        seconds = time.perf_counter() - begun
        await events.log("INFO", f"{done} rows predicted in {seconds:.2f} s; stored {record.display_name}@"
                                 f"{record.version} (datasets/{record.id})")
        return [f"datasets/{record.id}"], {"rows": float(done), "rows_per_second": done / max(seconds, 1e-9)}

    @staticmethod
    def _check(lease: Lease) -> None:
        if lease.lost:
            raise LeaseLost(lease.lost)
        if lease.cancel_reason:
            raise _Cancelled(lease.cancel_reason)


def _predict_chunk(batch: Any, model: LoadedModel, spec: dict[str, Any]) -> tuple[Any, list[str]]:
    """One record batch → the output table's rows (passthrough, prediction, probabilities), warnings."""
    import pyarrow as pa

    table = pa.Table.from_batches([batch])
    values, rows, warnings = inputs.decode_table(table, model.schema, max_rows=table.num_rows,
                                                 field="input_dataset")
    want_proba = model.is_classifier and not spec.get("exclude_probabilities")
    prediction = model.predict(values, rows, probabilities=want_proba)
    columns = {name: table.column(name) for name in spec.get("passthrough_columns", [])}
    columns["prediction"] = pa.array(prediction.values.tolist())
    if prediction.probabilities is not None:
        for i, label in enumerate(model.class_labels):
            columns[f"probability_{label}"] = pa.array(prediction.probabilities[:, i])
    return pa.table(columns), warnings
