"""The pipeline coordinator: one job (kind `pipeline`) that runs a YAML pipeline's steps in order.

Each step calls the platform's own use cases in this process: DatasetService (dataset, prepare),
SelectionService (select), StudyService (optimize: an HPO study, whose trials run on any worker),
the serving model cache (evaluate) and DeployService (deploy). Every step's state and outputs are
written to Postgres as soon as they exist, so a coordinator whose worker dies is re-queued by the
reconciler (it is a job with a lease) and resumes at the first step not SUCCEEDED: finished steps are
not redone, and a running optimize step re-attaches to the study it had started (the study is also
started with an idempotency key, so a crash between starting it and recording it cannot start two).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from pathlib import Path
from typing import Any

from microlearn_grpc import errors
from microlearn_grpc.core.pipeline_spec import PipelineSpec, StepSpec, recipe_text
from microlearn_grpc.services import pipeline_events
from microlearn_grpc.services.enums import TASK_NAMES
from microlearn_grpc.storage.jobs_repo import InvalidTransition, JobRepository
from microlearn_grpc.storage.pipelines_repo import PipelineRecord
from workers.training import Lease, LeaseLost

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5


class _Cancelled(Exception):
    pass


class PipelineRunner:
    """Runs pipeline coordinator jobs for one worker process."""

    def __init__(self, *, settings: Any, pool: Any, pipelines: Any, datasets: Any, selection: Any, studies: Any,
                 deploy: Any, models: Any, worker_id: str) -> None:
        self._settings = settings
        self._jobs = JobRepository(pool)
        self.pipelines = pipelines  # services.pipelines.PipelineService (its repo and event bus)
        self.datasets = datasets
        self.selection = selection
        self.studies = studies
        self.deploy = deploy
        self.models = models  # serving.models.ModelCache: the evaluate step loads models as a server does
        self.worker_id = worker_id

    async def run(self, job_id: str) -> str:
        started, not_run = await self._jobs.take(job_id, self.worker_id, "cpu")
        if started is None:
            return not_run
        lease = Lease(self._jobs, job_id, self.worker_id, self._settings.heartbeat_seconds)
        beating = asyncio.create_task(lease.run(), name=f"heartbeat-{job_id}")
        try:
            pipeline = await self.pipelines.repo.start(started.spec["pipeline_id"])
            if pipeline is None:
                state, error = "CANCELLED", "the pipeline had already ended"
            else:
                state, error = await _Coordinator(self, pipeline, lease, started.attempt).run()
            with contextlib.suppress(InvalidTransition):
                await self._jobs.finish(job_id, self.worker_id, state, error=error)
            return f"{state.lower()}: {error or 'every step succeeded'}"
        except LeaseLost as exc:
            log.warning("pipeline job %s: %s", job_id, exc)
            return f"abandoned: {exc}"
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def publish(self, pipeline_id: str, *events: Any) -> None:
        await self.pipelines.bus.publish_or_warn(pipeline_events.stream(pipeline_id), events)


class _Coordinator:
    """One attempt at running one pipeline."""

    def __init__(self, runner: PipelineRunner, pipeline: PipelineRecord, lease: Lease, attempt: int) -> None:
        self.r = runner
        self.pipeline = pipeline
        self.spec = PipelineSpec.from_dict(pipeline.spec)
        self.lease = lease
        self.attempt = attempt
        self.repo = runner.pipelines.repo
        self.outputs: dict[str, dict[str, str]] = {}  # step kind -> its outputs, for the steps after it
        self.done = sum(s.state == "SUCCEEDED" for s in pipeline.steps)

    async def run(self) -> tuple[str, str | None]:
        steps = self.pipeline.steps
        todo = next((s for s in steps if s.state != "SUCCEEDED"), None)
        if self.attempt == 1 and all(s.state == "PENDING" for s in steps):
            await self.publish(pipeline_events.state_event(
                self.pipeline.id, "RUNNING", f"running {' → '.join(s.kind for s in steps)} on worker "
                                             f"{self.r.worker_id}"))
        elif todo is not None:
            await self.log("WARNING", f"coordinator resumed on worker {self.r.worker_id} (attempt {self.attempt}) at "
                                      f"step {todo.step_index} ({todo.kind}); finished steps are kept")
        for record in steps:
            if record.state == "SUCCEEDED":
                self.outputs[record.kind] = dict(record.outputs)
                continue
            step = self.spec.steps[record.step_index]
            try:
                self.check()
                record = await self.repo.start_step(self.pipeline.id, step.index)
                await self.publish(pipeline_events.step_event("step_started", record, self.progress()))
                outputs, metrics, message = await getattr(self, f"_{step.kind}")(step, dict(record.outputs))
            except _Cancelled as exc:
                await self._end_step(step, "CANCELLED", str(exc))
                return await self._end("CANCELLED", str(exc))
            except (LeaseLost, asyncio.CancelledError):
                raise
            except errors.DomainError as exc:
                return await self._fail(step, str(exc))
            except Exception as exc:  # noqa: BLE001 - a step's bug fails the pipeline, not the worker
                log.exception("pipeline %s: step %d (%s) failed", self.pipeline.id, step.index, step.kind)
                return await self._fail(step, f"{type(exc).__name__}: {exc}")
            self.outputs[step.kind] = outputs
            done = await self.repo.finish_step(self.pipeline.id, step.index, "SUCCEEDED", outputs=outputs,
                                               metrics=metrics, message=message)
            self.done += 1
            await self.publish(pipeline_events.step_event("step_finished", done, self.progress()))
        return await self._end("SUCCEEDED", None)

    async def _fail(self, step: StepSpec, error: str) -> tuple[str, str | None]:
        await self._end_step(step, "FAILED", error)
        return await self._end("FAILED", f"step {step.index} ({step.kind}, {self.spec.source} line {step.line}) "
                                         f"failed: {error}")

    async def _end_step(self, step: StepSpec, state: str, error: str) -> None:
        ended = await self.repo.finish_step(self.pipeline.id, step.index, state, error=error[:2000])
        await self.publish(pipeline_events.step_event("step_failed", ended, self.progress()))

    async def _end(self, state: str, error: str | None) -> tuple[str, str | None]:
        ended = await self.repo.finish(self.pipeline.id, state, error)
        if ended is not None:
            results = [f"{key} {self.outputs[kind][key]}" for kind, key in (("optimize", "model"),
                                                                          ("deploy", "deployment"))
                       if key in self.outputs.get(kind, {})]
            summary = error or "; ".join(results) or "every step succeeded"
            await self.publish(pipeline_events.state_event(self.pipeline.id, state, summary,
                                                           pipeline_events.progress(ended.steps)))
        return state, error

    # -- plumbing ----------------------------------------------------------------------------------------

    def progress(self) -> float:
        return min(1.0, self.done / len(self.spec.steps))

    def check(self) -> None:
        if self.lease.lost:
            raise LeaseLost(self.lease.lost)
        if self.lease.cancel_reason:
            raise _Cancelled(self.lease.cancel_reason)

    async def publish(self, *events: Any) -> None:
        await self.r.publish(self.pipeline.id, *events)

    async def log(self, level: str, message: str) -> None:
        await self.publish(pipeline_events.log_event(self.pipeline.id, level, message, self.progress()))

    def current_dataset(self) -> str:
        return (self.outputs.get("prepare") or self.outputs["dataset"])["dataset"]

    def learned(self, key: str) -> str:
        """What select or optimize established (target, task, metric, model)."""
        for kind in ("optimize", "select"):
            value = self.outputs.get(kind, {}).get(key)
            if value:
                return value
        return ""

    # -- the steps: each returns (outputs, metrics, message) ---------------------------------------------

    async def _dataset(self, step: StepSpec, partial: dict[str, str]):
        record = await self.r.datasets.resolve(step.params["dataset"], field=f"{step.field}.name")
        shown = f"{record.display_name}@{record.version}"
        return ({"dataset": record.resource_name, "dataset_display": shown}, {"rows": float(record.row_count)},
                f"{shown} ({record.row_count:,} rows × {record.column_count} columns)")

    async def _prepare(self, step: StepSpec, partial: dict[str, str]):
        source = await self.r.datasets.resolve(self.current_dataset(), with_profile=False)
        output = step.params.get("output_name") or source.display_name
        stored = await self.r.datasets.prepare(source.resource_name, recipe_text(step), output_display_name=output)
        by_name = {r.display_name: r for r in stored}
        train, test = by_name.get(f"{output}-train"), by_name.get(f"{output}-test")
        main = train or stored[0]
        outputs = {"dataset": main.resource_name, "dataset_display": f"{main.display_name}@{main.version}"}
        message = f"{outputs['dataset_display']} ({main.row_count:,} rows)"
        if test is not None:
            outputs["test_dataset"] = test.resource_name
            message += f"; test split {test.display_name}@{test.version} ({test.row_count:,} rows)"
        return outputs, {"rows": float(main.row_count)}, message

    async def _select(self, step: StepSpec, partial: dict[str, str]):
        from microlearn.v1 import common_pb2

        params = step.params
        answer = await self.r.selection.select({
            "dataset": self.current_dataset(), "target": params.get("target", ""), "task": params.get("task", ""),
            "max_candidates": params.get("max_candidates", 0),
            "time_budget_seconds": math.ceil(params.get("time_budget", 0)),
            "ignore_columns": params.get("ignore_columns", [])})
        task = TASK_NAMES[common_pb2.TaskType.Value(answer["task"])]
        candidates = [c["estimator"] for c in answer["candidates"]]
        outputs = {"target": answer.get("target") or "", "task": task, "metric": answer["recommendedMetric"],
                   "candidates": ",".join(candidates)}
        return outputs, {}, f"{answer['explanation']['summary']}; candidates: {', '.join(candidates)}"

    async def _optimize(self, step: StepSpec, partial: dict[str, str]):
        studies = self.r.studies
        if partial.get("study"):
            study = await studies.get(partial["study"])
            await self.log("INFO", f"re-attaching to {study.resource_name} ({study.state.lower()})")
        else:
            study, _ = await studies.start(self._study_spec(step), request_id=f"{self.pipeline.id}-optimize")
            await self.repo.record_outputs(self.pipeline.id, step.index, {"study": study.resource_name})
            await self.log("INFO", f"{study.resource_name}: {study.spec['metric']} over "
                                   f"{', '.join(study.spec['candidates'])}")
        seen = -1
        while not study.is_terminal:
            try:
                self.check()
            except _Cancelled as exc:
                await studies.stop(study.id, cancel_running=True, reason=f"pipeline cancelled: {exc}")
                raise
            await asyncio.sleep(POLL_SECONDS)
            study = await studies.get(study.id)
            counts, best, _ = await studies.details(study, 1)
            if counts.get("COMPLETE", 0) != seen and best is not None:
                seen = counts.get("COMPLETE", 0)
                await self.log("INFO", f"{seen} trial(s) complete; best {study.spec['metric']} = {best.score:.5g} "
                                       f"({best.estimator}, trial {best.number})")
        if study.state != "SUCCEEDED":
            raise errors.FailedPrecondition(f"{study.resource_name} ended {study.state}: {study.error or ''}".rstrip())
        counts, best, _ = await studies.details(study, 1)
        metric = study.spec["metric"]
        use_ensemble = study.ensemble_model_id and study.best_model_id == study.ensemble_model_id
        score = study.ensemble_score if use_ensemble else (best.score if best else None)
        outputs = {"study": study.resource_name, "model": f"models/{study.best_model_id}", "metric": metric,
                   "task": study.spec["task"], "target": study.spec["target"]}
        message = (f"best model models/{study.best_model_id} ({'ensemble' if use_ensemble else best.estimator}) "
                   f"{metric} = {score:.5g} after {sum(counts.values())} trial(s)")
        return outputs, ({metric: float(score)} if score is not None else {}), message

    def _study_spec(self, step: StepSpec) -> dict[str, Any]:
        params, chosen = step.params, self.outputs.get("select", {})
        select = self.spec.step("select")
        candidates = params.get("candidates") or [c for c in chosen.get("candidates", "").split(",") if c]
        labels = {**self.spec.labels, "pipeline": self.pipeline.id}
        return {
            "display_name": f"{self.pipeline.display_name}-optimize", "dataset": self.current_dataset(),
            "target": params.get("target") or chosen.get("target") or (select.params.get("target", "") if select
                                                                       else ""),
            "task": chosen.get("task", ""), "candidates": candidates, "metric": params.get("metric") or
            chosen.get("metric", ""), "max_candidates": params.get("max_candidates", 0),
            "budget": {"time_budget_seconds": math.ceil(params.get("time_budget", 0)),
                       "max_trials": params.get("max_trials", 0)},
            "parallelism": params.get("parallelism", 0), "seed": params.get("seed"),
            "ensemble": params.get("ensemble", True), "labels": labels,
        }

    async def _evaluate(self, step: StepSpec, partial: dict[str, str]):
        from workers.pipeline_evaluate import score_on

        model = self.learned("model")
        reference = step.params.get("dataset") or self.outputs.get("prepare", {}).get("test_dataset")
        if reference is None:
            record = await self.r.deploy.registry.model_by_id(model.removeprefix("models/"))
            metrics = {k: float(v) for k, v in (record.metrics if record else {}).items()}
            return ({"model": model}, metrics, "no held-out data (no evaluate dataset and no train_test_split in "
                                               "the prepare step): the model's validation metrics")
        source = await self.r.datasets.resolve(reference, with_profile=False, field=f"{step.field}.name")
        loaded = await self.r.models.get(model.removeprefix("models/"))
        path = await self.r.datasets.local_parquet(source)
        target = self.learned("target")
        metrics, rows = await asyncio.to_thread(score_on, path, loaded, target)
        shown = f"{source.display_name}@{source.version}"
        metric = self.learned("metric")
        headline = f"{metric} = {metrics[metric]:.5g}" if metric in metrics else \
            ", ".join(f"{k} = {v:.4g}" for k, v in list(metrics.items())[:3])
        return ({"model": model, "dataset": source.resource_name, "dataset_display": shown}, metrics,
                f"{headline} on {rows:,} held-out rows of {shown}")

    async def _deploy(self, step: StepSpec, partial: dict[str, str]):
        params = step.params
        name, alias = params["name"], params.get("alias", "production")
        registered = params.get("registered_model") or name
        model, follows = self.learned("model"), f"{registered}@{alias}"
        deployment = None
        with contextlib.suppress(errors.NotFound):
            deployment = await self.r.deploy.get(name)
        if deployment is not None and not any(t.registered_model == registered and t.alias == alias
                                              for t in deployment.targets):
            raise errors.FailedPrecondition(f"deployments/{name} exists and does not follow {follows}: deploy under "
                                            "another name, or set registered_model and alias to what it follows")
        version_ref = partial.get("model_version")
        if not version_ref:  # a resumed step does not register the model twice
            version, _, _ = await self.r.deploy.registry.register(
                registered, model, description=f"from pipeline {self.pipeline.resource_name}",
                labels={"pipeline": self.pipeline.id}, aliases=[alias])
            version_ref = version.resource_name
            await self.repo.record_outputs(self.pipeline.id, step.index, {"model_version": version_ref})
        if deployment is None:
            deployment = await self.r.deploy.create(name, {"traffic": [(follows, 100)],
                                                           "description": f"pipeline {self.pipeline.resource_name}",
                                                           "labels": {"pipeline": self.pipeline.id}})
            note = f"created deployments/{deployment.name} serving {follows} ({version_ref})"
        else:
            note = f"deployments/{deployment.name} follows {follows}, which now points at {version_ref}"
        return ({"deployment": f"deployments/{deployment.name}", "model_version": version_ref, "model": model,
                 "alias": follows}, {}, note)


def build_runner(ctx: dict[str, Any], settings: Any, studies: Any) -> PipelineRunner:
    """The worker's pipeline runner over the use cases this worker already has (see workers/settings.py)."""
    from microlearn_grpc.bootstrap import build_deploy, build_pipelines
    from microlearn_grpc.serving.models import ModelCache
    from microlearn_grpc.services.selection import SelectionService
    from microlearn_grpc.storage.models_repo import ModelRepository

    work_dir = Path(settings.data_dir).resolve() / "work"
    return PipelineRunner(
        settings=settings, pool=ctx["pool"],
        pipelines=build_pipelines(settings, ctx["pool"], ctx["redis"], ctx["datasets"], ctx["redis"]),
        datasets=ctx["datasets"], selection=SelectionService(ctx["datasets"], ctx["redis"]), studies=studies,
        deploy=build_deploy(settings, ctx["pool"], ctx["artifacts"], work_dir),
        models=ModelCache(ModelRepository(ctx["pool"]), ctx["artifacts"], key=settings.signing_key(),
                          work_dir=work_dir),
        worker_id=ctx["worker_id"])
