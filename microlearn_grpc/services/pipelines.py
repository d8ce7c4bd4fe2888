"""PipelineService use cases: validate and start YAML pipelines, read them, follow and cancel them.

RunPipeline parses the YAML (`core.pipeline_spec`: syntax, fields, types, step order), then checks what
only the platform knows (the datasets exist, the target is a column, the recipe fits the data, metric,
estimators and deployment names are valid), so every error names its line and field. It writes the
pipeline, its steps and its coordinator job (kind `pipeline`) in one transaction and queues the
coordinator; the steps run in `workers/pipeline.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import asyncpg

from microlearn_grpc import errors
from microlearn_grpc.core import pipeline_spec as spec_lib
from microlearn_grpc.services import pipeline_events
from microlearn_grpc.services.datasets import DatasetService
from microlearn_grpc.services.training import check_labels, keyset_of, page_size_of
from microlearn_grpc.storage.datasets_repo import encode_page_token
from microlearn_grpc.storage.events import EventBus
from microlearn_grpc.storage.jobs_repo import JobRepository
from microlearn_grpc.storage.pipelines_repo import PipelineRecord, PipelineRepository, new_pipeline_id

def pipeline_id_of(name: str, field: str = "name") -> str:
    name = (name or "").strip()
    if not name:
        raise errors.InvalidArgument(f"{field} is required: pipelines/ID or the id")
    return name.removeprefix("pipelines/")


@contextlib.contextmanager
def _located(spec: spec_lib.PipelineSpec, field: str) -> Iterator[None]:
    """Domain errors of a check on `field` become INVALID_ARGUMENT naming the YAML line and field."""
    try:
        yield
    except (errors.InvalidArgument, errors.NotFound, errors.FailedPrecondition) as exc:
        text = str(exc)
        if text.startswith(field):
            text = text[len(field):].lstrip(": ")
        raise errors.InvalidArgument(str(spec.error(field, text))) from None


class PipelineService:
    def __init__(self, pool: asyncpg.Pool, bus: EventBus, datasets: DatasetService, queue: Any, *,
                 queue_name: str, max_attempts: int = 3) -> None:
        self._pool = pool
        self._datasets = datasets
        self._queue = queue
        self._queue_name = queue_name
        self._max_attempts = max_attempts
        self.repo = PipelineRepository(pool)
        self.bus = bus  # the coordinator publishes a pipeline's events on it too
        self._jobs = JobRepository(pool)

    # -- RunPipeline ---------------------------------------------------------------------------------

    async def validate(self, text: str, *, source_name: str = "",
                       uploaded: Mapping[str, str] | None = None) -> spec_lib.PipelineSpec:
        try:
            spec = spec_lib.parse_pipeline(text, source_name or "pipeline.yaml")
            spec_lib.attach_uploads(spec, dict(uploaded or {}))
        except spec_lib.PipelineSpecError as exc:
            raise errors.InvalidArgument(str(exc)) from None
        with _located(spec, "labels"):
            check_labels(spec.labels, "labels")
        await self._check_platform(spec)
        return spec

    async def _check_platform(self, spec: spec_lib.PipelineSpec) -> None:
        from microlearn_grpc.core import metrics as metric_lib
        from microlearn_grpc.core.estimators import get_estimator
        from microlearn_grpc.services.deploy import deployment_id_of
        from microlearn_grpc.services.model_registry import alias_of, registered_name_of

        dataset = spec.steps[0]
        field = f"{dataset.field}.{'path' if 'path' in dataset.params else 'name'}"
        with _located(spec, field):
            record = await self._datasets.resolve(dataset.params["dataset"], field=field)
        prepare, select, optimize = spec.step("prepare"), spec.step("select"), spec.step("optimize")
        columns = [c["name"] for c in (record.profile or {}).get("columns") or []]
        where = f"dataset {record.display_name}@{record.version}"
        if prepare is not None:
            with _located(spec, f"{prepare.field}.steps"):
                await self._datasets.prepare(record.resource_name, spec_lib.recipe_text(prepare), validate_only=True)
            columns, where = await self._prepared_columns(record, prepare), f"the prepared {where}"
        for step in (select, optimize):
            target = step.params.get("target") if step is not None else None
            if target and columns and target not in columns:
                raise errors.InvalidArgument(str(spec.error(
                    f"{step.field}.target", f"column {target!r} is not in {where}; its columns are: "
                                            f"{', '.join(columns)}")))
        evaluate = spec.step("evaluate")
        if evaluate is not None and "dataset" in evaluate.params:
            field = f"{evaluate.field}.{'path' if 'path' in evaluate.params else 'name'}"
            with _located(spec, field):
                await self._datasets.resolve(evaluate.params["dataset"], field=field, with_profile=False)
        if optimize is not None:
            metric = optimize.params.get("metric")
            known = sorted({m for names in metric_lib.METRICS.values() for m in names})
            if metric and metric not in known:
                raise errors.InvalidArgument(str(spec.error(f"{optimize.field}.metric",
                                                            f"unknown metric {metric!r}; use one of {', '.join(known)}")))
            for i, name in enumerate(optimize.params.get("candidates") or []):
                try:
                    get_estimator(name)
                except KeyError as exc:
                    raise errors.InvalidArgument(str(spec.error(f"{optimize.field}.candidates", exc.args[0]))) from None
        deploy = spec.step("deploy")
        if deploy is not None:
            for key, check in (("name", deployment_id_of), ("alias", alias_of),
                               ("registered_model", registered_name_of)):
                value = deploy.params.get(key) or (deploy.params["name"] if key == "registered_model" else None)
                if value is not None:
                    with _located(spec, f"{deploy.field}.{key}"):
                        check(value, f"{deploy.field}.{key}")

    async def _prepared_columns(self, record: Any, prepare: spec_lib.StepSpec) -> list[str]:
        """The columns the prepare step's recipe leaves (it was checked against the data already)."""
        import pyarrow.parquet as pq

        from microlearn_grpc.core import recipes

        schema = await asyncio.to_thread(pq.read_schema, await self._datasets.local_parquet(record))
        out = recipes.validate_recipe(recipes.parse_recipe(spec_lib.recipe_text(prepare)), schema)
        return list((out[0] if isinstance(out, tuple) else out).names)

    async def run(self, text: str, *, source_name: str = "", uploaded: Mapping[str, str] | None = None,
                  validate_only: bool = False, request_id: str = ""
                  ) -> tuple[PipelineRecord | None, spec_lib.PipelineSpec | None]:
        """(the stored pipeline, None), or (None, the checked spec) for `validate_only`."""
        if len(request_id) > 128:
            raise errors.InvalidArgument(f"request_id: at most 128 characters, got {len(request_id)}")
        if request_id and not validate_only:
            existing = await self.repo.by_request_id(request_id)
            if existing is not None:
                return existing, None
        spec = await self.validate(text, source_name=source_name, uploaded=uploaded)
        if validate_only:
            return None, spec
        pipeline_id = new_pipeline_id()
        display_name = spec.name or spec.source.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")
        dataset_id = None
        with contextlib.suppress(errors.DomainError):
            dataset_id = (await self._datasets.resolve(spec.steps[0].params["dataset"], with_profile=False)).id
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                job, _ = await self._jobs.create(kind="pipeline", spec={"pipeline_id": pipeline_id,
                                                                        "queue": self._queue_name},
                                                 dataset_id=dataset_id, labels=spec.labels,
                                                 max_attempts=self._max_attempts, conn=conn)
                pipeline = await self.repo.create(
                    conn, pipeline_id=pipeline_id, display_name=display_name[:200] or "pipeline", yaml=text,
                    source_name=spec.source, spec=spec.to_dict(), labels=spec.labels,
                    request_id=request_id or None, job_id=job.id)
        except asyncpg.UniqueViolationError:
            existing = await self.repo.by_request_id(request_id)
            if existing is None:
                raise
            return existing, None
        await self.bus.publish(pipeline_events.stream(pipeline.id), pipeline_events.state_event(
            pipeline.id, "PENDING", f"queued: {' → '.join(s.kind for s in spec.steps)}"))
        from workers.queue import enqueue_or_defer

        await enqueue_or_defer(self._queue, job.id, self._queue_name, f"the coordinator of {pipeline.resource_name}")
        return pipeline, None

    # -- reads -----------------------------------------------------------------------------------------

    async def get(self, name: str, field: str = "name") -> PipelineRecord:
        pipeline = await self.repo.get(pipeline_id_of(name, field))
        if pipeline is None:
            raise errors.NotFound(f"pipeline {name} does not exist")
        return await self._settled(pipeline)

    async def _settled(self, pipeline: PipelineRecord) -> PipelineRecord:
        """A pipeline whose coordinator job ended without ending it (the reconciler failed the job after its
        last attempt's worker was lost, or cancelled it) ends here as its job did: never stuck RUNNING."""
        if pipeline.is_terminal:
            return pipeline
        job = await self._jobs.get(pipeline.job_id)
        if job is None or job.state in ("PENDING", "RUNNING"):
            return pipeline
        state = job.state if job.state != "SUCCEEDED" else "FAILED"
        error = job.error or "its coordinator job ended before the pipeline did"
        ended = await self.repo.finish(pipeline.id, state, error)
        if ended is None:
            return await self.repo.get(pipeline.id) or pipeline
        await self.bus.publish(pipeline_events.stream(pipeline.id), pipeline_events.state_event(
            pipeline.id, state, error, pipeline_events.progress(ended.steps)))
        return ended

    async def list(self, *, page_size: int, page_token: str, states: list[str],
                   labels: dict[str, str]) -> tuple[list[PipelineRecord], str, int]:
        size, after = page_size_of(page_size), keyset_of(page_token)  # as ListJobs pages
        pipelines, total = await self.repo.list(page_size=size + 1, after=after, states=states,
                                                labels=check_labels(labels, "labels"))
        token = encode_page_token(pipelines[size - 1].created_at, pipelines[size - 1].id) if len(pipelines) > size \
            else ""
        return pipelines[:size], token, total

    def events(self, name: str, *, after: str = "", replay_only: bool = False):
        pipeline_id = pipeline_id_of(name)

        async def ended() -> bool:
            pipeline = await self.repo.get(pipeline_id)
            return pipeline is None or (await self._settled(pipeline)).is_terminal
        try:
            return self.bus.follow(pipeline_events.stream(pipeline_id), after=after,
                                    terminal=pipeline_events.is_terminal, ended=ended, replay_only=replay_only)
        except ValueError as exc:
            raise errors.InvalidArgument(f"after_sequence: {exc}") from None

    # -- CancelPipeline --------------------------------------------------------------------------------

    async def cancel(self, name: str, reason: str = "") -> PipelineRecord:
        pipeline = await self.get(name)
        if pipeline.is_terminal:
            return pipeline
        reason = (reason or "").strip()[:500] or "cancelled by request"
        await self.repo.request_cancel(pipeline.id)
        await self._jobs.request_cancel(pipeline.job_id, reason)
        # A coordinator that had not started (the job is CANCELLED now) never will: the pipeline ends here.
        return await self.get(pipeline.id)
