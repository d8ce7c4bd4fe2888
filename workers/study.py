"""The study coordinator: one job (kind `study`) that drives an Optuna search through training jobs.

It asks Optuna for configurations (ask/tell on the shared RDB storage), starts each as a `trial` job on
the worker pool (any worker, any host), follows the trials' event streams to report their per-iteration
validation scores (`val_<metric>`) to the pruner and cancels the ones it prunes, and tells Optuna how
each ended. It stops at the time or trial budget (cancelling what still runs, so the study ends on time),
on StopStudy, or after too many trials without a new best, and names the best trial's model the result.

Everything it knows is in Postgres (`studies`, `study_trials`, `jobs`) and Optuna's tables, so a
coordinator whose worker dies is re-queued by the reconciler (it is a job with a lease) and resumes:
trials keep running meanwhile, and Optuna trials it asked for but never recorded are adopted (their job
exists, found by its request id) or failed (they never started).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import statistics
import time
from typing import Any

from pathlib import Path

import asyncpg

from microlearn_grpc.services import study_events
from microlearn_grpc.services.studies import StudyService
from microlearn_grpc.storage.events import EventBus
from microlearn_grpc.storage.jobs_repo import InvalidTransition, JobRecord, JobRepository
from microlearn_grpc.storage.studies_repo import StudyRecord, StudyRepository, TrialRecord
from workers.training import LeaseLost, Lease

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
_CANCEL_GRACE = 5.0  # how long a cancelled trial may take to end before the study stops waiting for it


def _now() -> float:
    return time.time()


class StudyRunner:
    """Runs study coordinator jobs for one worker process."""

    def __init__(self, *, settings: Any, pool: asyncpg.Pool, job_bus: EventBus, study_bus: EventBus,
                 studies: StudyService, worker_id: str, artifacts: Any, work_dir: Path, tracker: Any = None) -> None:
        self._settings = settings
        self._pool = pool
        self._jobs = JobRepository(pool)
        self._repo = StudyRepository(pool)
        self._job_bus = job_bus
        self._bus = study_bus
        self._studies = studies
        self._worker_id = worker_id
        self._artifacts = artifacts
        self._key = settings.signing_key()
        self._work_dir = work_dir
        self._tracker = tracker  # microlearn_grpc.tracking.Tracker: the study's parent MLflow run

    @property
    def studies(self) -> StudyService:
        """The HPOService use cases this runner starts trials through (pipeline coordinators start studies with it)."""
        return self._studies

    async def run(self, job_id: str) -> str:
        job = await self._jobs.get(job_id)
        if job is None:
            return "unknown job"
        if job.state != "PENDING":
            return f"not run: job is {job.state}"
        started = await self._jobs.start_attempt(job_id, self._worker_id, "cpu")
        if started is None:
            return "not run: cancelled or taken by another worker"
        lease = Lease(self._jobs, job_id, self._worker_id, self._settings.heartbeat_seconds)
        beating = asyncio.create_task(lease.run(), name=f"heartbeat-{job_id}")
        try:
            study = await self._repo.get(started.study_id or "")
            if study is None:
                await self._jobs.finish(job_id, self._worker_id, "FAILED", error="its study no longer exists")
                return "failed: study missing"
            try:
                outcome = await _Coordinator(self, study, lease).run()
            except (LeaseLost, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - a coordinator bug fails the study, not the worker
                log.exception("study %s: coordinator failed", study.id)
                error = f"the study coordinator failed: {type(exc).__name__}: {exc}"
                ended = await self._repo.finish(study.id, "FAILED", error=error)
                if ended is not None:
                    await self._publish(study.id, [study_events.state_event(study.id, "FAILED", error, 1.0)])
                outcome = f"failed: {error}"
            with contextlib.suppress(InvalidTransition):
                await self._jobs.finish(job_id, self._worker_id, "SUCCEEDED")
            return outcome
        except LeaseLost as exc:
            log.warning("study job %s: %s", job_id, exc)
            return f"abandoned: {exc}"
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _publish(self, study_id: str, events: list) -> None:
        await self._bus.publish_or_warn(study_events.stream(study_id), events)


class _Coordinator:
    """One attempt at running one study."""

    def __init__(self, runner: StudyRunner, study: StudyRecord, lease: Lease) -> None:
        self.r = runner
        self.study = study
        self.spec = study.spec
        self.lease = lease
        self.optuna: Any = None
        self.spaces: dict[str, Any] = {}
        self.maximize = self.spec["direction"] == "maximize"
        self.metric_point = f"val_{self.spec['metric']}"
        self.deadline: float | None = None
        self.durations: list[float] = []
        self.best: TrialRecord | None = None
        self.since_best = 0
        self.stop_reason: str | None = None
        self.cancelled_at: dict[int, float] = {}
        self.user_stop = False  # StopStudy asked for the stop
        self.start_failures = 0  # trials the trainer refused to start
        self.cancel_running = False

    # -- setup -------------------------------------------------------------------------------------------

    async def run(self) -> str:
        first = self.study.state == "PENDING"
        self.study = await self.r._repo.start(self.study.id)
        budget = self.spec["budget"]
        if budget["time_budget_seconds"]:
            # The user's clock starts when StartStudy accepts the study, not when a worker picks it up.
            self.deadline = self.study.created_at.timestamp() + budget["time_budget_seconds"]
        if first:
            await self.publish(study_events.state_event(
                self.study.id, "RUNNING", f"searching {', '.join(self.spec['candidates'])} for the best "
                                          f"{self.spec['metric']} ({self.spec['direction']})"))
        else:
            await self.publish(study_events.log_event(self.study.id, "WARNING", "coordinator resumed on worker "
                                                                                f"{self.r._worker_id}"))
        await self._load_optuna()
        await self._adopt_orphans()
        await self._open_run()
        done = await self.r._repo.trials(self.study.id, states=["COMPLETE"], order="score",
                                         direction=self.spec["direction"])
        self.best = done[0] if done else None
        self.durations = [(t.ended_at - t.started_at).total_seconds() for t in done if t.started_at and t.ended_at]
        return await self._loop()

    async def _load_optuna(self) -> None:
        from microlearn_grpc.core import hpo
        from microlearn_grpc.core.estimators import SearchSpace, get_estimator

        record = await self.r._studies._datasets.resolve(self.spec["dataset"], field="spec.dataset")
        profile = record.profile or {}
        n_rows = int(profile.get("row_count") or 0)
        n_features = max(1, len(profile.get("columns") or []) - 1)
        for name in self.spec["candidates"]:
            override = self.spec["search_spaces"].get(name)
            self.spaces[name] = (SearchSpace.from_dict(override) if override
                                 else get_estimator(name).search_space(self.spec["task"], n_rows, n_features))

        def load() -> Any:
            import optuna

            from microlearn_grpc.storage.optuna_store import optuna_storage

            # Created here by the first coordinator, loaded by a resumed one (StartStudy only names it).
            study = optuna.create_study(
                study_name=self.study.optuna_study_name, storage=optuna_storage(self.r._settings.database_url),
                sampler=hpo.make_sampler(self.spec["sampler"], self.spec["seed"], len(self.spec["candidates"])),
                pruner=hpo.make_pruner(self.spec["pruner"], self.spec["max_iterations"]),
                direction=self.spec["direction"], load_if_exists=True)
            if not study.trials:
                # Warm start (as FLAML does): every candidate's defaults first, best-ranked first.
                for name in self.spec["candidates"]:
                    defaults = {}
                    for spec in self.spaces[name]:
                        if spec.condition is None or spec.condition.holds(defaults):
                            defaults[spec.name] = spec.default
                    study.enqueue_trial(hpo.prefixed(name, defaults), skip_if_exists=True)
            return study
        self.optuna = await asyncio.to_thread(load)

    async def _adopt_orphans(self) -> None:
        """Optuna trials asked for by a coordinator that died before recording them."""
        import optuna

        from microlearn_grpc.core import hpo

        known = {t.optuna_trial_id for t in await self.r._repo.trials(self.study.id)}
        running = await asyncio.to_thread(self.optuna.get_trials, False, (optuna.trial.TrialState.RUNNING,))
        for frozen in running:
            if frozen._trial_id in known:
                continue
            job_id = await self.r._pool.fetchval("SELECT id FROM jobs WHERE request_id = $1",
                                                 self._request_id(frozen.number))
            if job_id:
                estimator, params = hpo.unprefixed(frozen.params)
                await self.r._repo.add_trial(study_id=self.study.id, number=frozen.number,
                                             optuna_trial_id=frozen._trial_id, job_id=job_id, estimator=estimator,
                                             params=params)
            else:
                await asyncio.to_thread(self.optuna.tell, frozen.number, None, optuna.trial.TrialState.FAIL, True)

    async def _open_run(self) -> None:
        """The study's parent MLflow run (trials' runs are its children); reopened by a resumed coordinator."""
        tracker = self.r._tracker
        if tracker is None or not tracker.enabled:
            return
        tags = {"microlearn.study_id": self.study.id, "microlearn.study": self.study.resource_name,
                "microlearn.dataset": self.spec["dataset_display"], "microlearn.task": self.spec["task"],
                **{f"label.{k}": v for k, v in self.study.labels.items()}}
        params = {"candidates": ",".join(self.spec["candidates"]), "metric": self.spec["metric"],
                  "direction": self.spec["direction"], "seed": self.spec["seed"], "sampler": self.spec["sampler"],
                  "pruner": self.spec["pruner"], "parallelism": self.spec["parallelism"],
                  "time_budget_seconds": self.spec["budget"]["time_budget_seconds"],
                  "max_trials": self.spec["budget"]["max_trials"], "ensemble": self.spec["ensemble"]}
        run_id = await tracker.call(tracker.start_run, self.spec.get("experiment_name") or "",
                                    f"study {self.study.display_name}", tags, params, self.study.mlflow_run_id)
        if run_id and run_id != self.study.mlflow_run_id:
            await self.r._repo.set_mlflow_run(self.study.id, run_id)
            self.study.mlflow_run_id = run_id

    async def _close_run(self, state: str) -> None:
        tracker, run_id = self.r._tracker, self.study.mlflow_run_id
        if tracker is None or not tracker.enabled or not run_id:
            return
        counts = await self.r._repo.trial_counts(self.study.id)
        points = [(f"trials_{k.lower()}", float(v), 0) for k, v in counts.items()]
        if self.best is not None and self.best.score is not None:
            points.append((f"best_{self.spec['metric']}", float(self.best.score), 0))
        current = await self.r._repo.get(self.study.id)
        if current is not None and current.ensemble_score is not None:
            points.append((f"ensemble_{self.spec['metric']}", float(current.ensemble_score), 0))
        await tracker.call(tracker.log_metrics, run_id, points)
        await tracker.call(tracker.end_run, run_id, "FINISHED" if state == "SUCCEEDED" else "FAILED")

    def _holdout(self) -> bool:
        """Whether trials validate on a holdout (only those stop gracefully at `stop_at`; k-fold ones are cancelled)."""
        return (self.spec.get("validation") or {}).get("method", "holdout") != "kfold"

    def _request_id(self, number: int) -> str:
        return f"{self.study.id}-trial-{number}"

    # -- the loop ----------------------------------------------------------------------------------------

    async def _loop(self) -> str:
        while True:
            if self.lease.lost:
                raise LeaseLost(self.lease.lost)
            active = await self.r._repo.trials(self.study.id, states=["PENDING", "RUNNING"])
            await self._check_stop(active)
            if self.stop_reason is None:
                active += await self._launch(len(active))
            else:
                await self._cancel_if_due(active)
            jobs = await self.r._jobs.get_many([t.job_id for t in active])
            still = []
            for trial in active:
                job = jobs.get(trial.job_id)
                if job is None:
                    continue
                trial = await self._follow(trial, job)
                if not trial.is_terminal:
                    still.append(trial)
            if self.stop_reason is not None and (not still or self._gave_up_waiting(still)):
                for trial in still:
                    with contextlib.suppress(Exception):  # its job must not run on for nothing
                        await self.r._jobs.request_cancel(trial.job_id, f"study {self.study.id} ended")
                    await self._end_trial(trial, "CANCELLED", "the study ended before this trial finished")
                return await self._finish()
            self.lease.progress = self._progress()
            await asyncio.sleep(POLL_SECONDS)

    async def _check_stop(self, active: list[TrialRecord]) -> None:
        if self.stop_reason is not None:
            return
        current = await self.r._repo.get(self.study.id)
        budget = self.spec["budget"]
        total = sum((await self.r._repo.trial_counts(self.study.id)).values())
        reason = None
        if current is not None and current.stop_requested:
            reason = current.stop_reason or "stopped by request"
            self.user_stop, self.cancel_running = True, current.cancel_running
        elif self.deadline is not None and _now() >= self.deadline - self._margin():
            reason = "time budget spent"
        elif budget["max_trials"] and total >= budget["max_trials"] and not active:
            reason = f"all {budget['max_trials']} trials ran"
        elif budget["max_trials_without_improvement"] and self.since_best >= budget["max_trials_without_improvement"]:
            reason = f"{self.since_best} trials without a new best"
        if reason is None:
            return
        self.stop_reason = reason
        await self.r._repo.set_stopping(self.study.id, reason)
        if not (current is not None and current.stop_requested):  # StopStudy published its own event
            await self.publish(study_events.state_event(self.study.id, "STOPPING", reason))

    # The end of a time budget, backwards from the deadline D:
    #   D - 0.2 - ensemble reserve: give up on trials still running (cancelled), then build the ensemble;
    #   `finish` before that: the search stops starting trials and cancels those that cannot stop
    #   gracefully, while iterative trials stop themselves (their `stop_at`) and keep their model.
    def _ensemble_reserve(self) -> float:
        return min(4.0, 0.05 * self.spec["budget"]["time_budget_seconds"]) if self.spec["ensemble"] else 0.0

    def _give_up_at(self) -> float:
        from workers import study_refit

        return (self.deadline or 0.0) - 0.2 - self._ensemble_reserve() - study_refit.reserve(self.spec, self.durations)

    def _stop_at(self) -> float:
        """When the search stops, and iterative trials stop iterating: time left to score and store them."""
        return self._give_up_at() - min(3.0, 0.05 * self.spec["budget"]["time_budget_seconds"])

    def _margin(self) -> float:
        """How long before the deadline the search stops, so it (and its ensemble) ends by the deadline."""
        return (self.deadline or 0.0) - self._stop_at()

    async def _cancel_if_due(self, active: list[TrialRecord]) -> None:
        by_time = self.stop_reason == "time budget spent"
        if not (by_time or self.cancel_running):
            return
        from microlearn_grpc.core.estimators import get_estimator

        for trial in active:
            if by_time and not self.cancel_running and get_estimator(trial.estimator).supports_iteration_progress \
                    and self._holdout() and _now() < self._give_up_at():
                continue  # it stops at its `stop_at` with the rounds done so far
            if trial.number not in self.cancelled_at:
                self.cancelled_at[trial.number] = _now()
                with contextlib.suppress(Exception):
                    await self.r._jobs.request_cancel(trial.job_id, f"study {self.study.id}: {self.stop_reason}")

    def _gave_up_waiting(self, still: list[TrialRecord]) -> bool:
        if self.stop_reason == "time budget spent":
            return _now() >= self._give_up_at()  # what has not ended by now is left behind, cancelled
        if self.cancelled_at:
            return _now() >= max(self.cancelled_at.values()) + _CANCEL_GRACE
        return False

    async def _launch(self, running: int) -> list[TrialRecord]:
        from microlearn_grpc.core import hpo

        budget = self.spec["budget"]
        started: list[TrialRecord] = []
        total = sum((await self.r._repo.trial_counts(self.study.id)).values()) if budget["max_trials"] else 0
        while running + len(started) < self.spec["parallelism"]:
            if budget["max_trials"] and total + len(started) >= budget["max_trials"]:
                break
            timeout = budget["trial_timeout_seconds"] or 0
            if self.deadline is not None:
                left = self.deadline - _now()
                typical = statistics.median(self.durations) if self.durations else 0.0
                if left < max(1.0, 0.5 * typical):
                    break
                timeout = min(timeout or math.inf, math.ceil(left) + 2)
            timeout = int(min(timeout, self.r._studies._training.max_timeout_seconds)) if timeout else 0

            def ask() -> tuple[Any, str, dict[str, Any]]:
                trial = self.optuna.ask()
                estimator, params = hpo.suggest(trial, self.spec["candidates"], self.spaces)
                return trial, estimator, params
            trial, estimator, params = await asyncio.to_thread(ask)
            try:
                job, _ = await self.r._studies._training.start(
                    self.r._studies.trial_spec(self.spec, estimator, params, timeout),
                    self._request_id(trial.number), kind="trial", study_id=self.study.id,
                    extra={"trial_number": trial.number, "mlflow_parent_run_id": self.study.mlflow_run_id or "",
                           **({"stop_at": self._stop_at()} if self.deadline is not None else {})})
            except Exception as exc:  # noqa: BLE001 - a configuration the trainer refuses fails as a trial
                import optuna

                await asyncio.to_thread(self.optuna.tell, trial, None, optuna.trial.TrialState.FAIL, True)
                await self.publish(study_events.log_event(self.study.id, "WARNING",
                                                          f"trial {trial.number} ({estimator}) not started: {exc}"))
                self.start_failures += 1
                if self.start_failures > 10 * self.spec["parallelism"] and not self.best:
                    raise RuntimeError(f"trials cannot be started: {exc}") from None
                continue
            record = await self.r._repo.add_trial(study_id=self.study.id, number=trial.number,
                                                  optuna_trial_id=trial._trial_id, job_id=job.id,
                                                  estimator=estimator, params=params)
            started.append(record)
        return started

    # -- one trial -----------------------------------------------------------------------------------------

    async def _follow(self, trial: TrialRecord, job: JobRecord) -> TrialRecord:
        if trial.state == "PENDING" and job.state != "PENDING":
            trial = await self.r._repo.update_trial(
                self.study.id, trial.number, state="RUNNING",
                started_at=job.started_at or dt.datetime.now(dt.timezone.utc),
                worker_id=job.worker_id or "", device=job.device or "")
            await self.publish(study_events.trial_event("trial_started", study_events.trial_to_proto(trial),
                                                        self._progress()))
        if trial.state == "RUNNING" and self.spec["pruner"] != "none":
            trial = await self._report(trial)
        if trial.is_terminal:
            return trial
        if job.state == "SUCCEEDED":
            return await self._complete(trial, job)
        if job.state in ("FAILED", "CANCELLED"):
            return await self._end_trial(trial, job.state, job.error or job.state.lower())
        return trial

    async def _report(self, trial: TrialRecord) -> TrialRecord:
        from microlearn_grpc.services import job_events

        events = await self.r._job_bus.page(job_events.stream(trial.job_id), after=trial.events_after)
        if not events:
            return trial
        points = [(p.step, p.value) for e in events if e.WhichOneof("payload") == "metrics"
                  for p in e.metrics.points if p.name == self.metric_point and p.step > trial.last_step
                  and math.isfinite(p.value)]
        last = events[-1].sequence
        if not points:
            return await self.r._repo.update_trial(self.study.id, trial.number, events_after=last)

        def report() -> bool:
            import optuna

            handle = optuna.trial.Trial(self.optuna, trial.optuna_trial_id)
            for step, value in points:
                handle.report(value, step)
            return handle.should_prune()
        prune = await asyncio.to_thread(report)
        step, value = points[-1]
        await self.publish(study_events.report_event(self.study.id, trial.number, trial.estimator, step, value,
                                                     self._progress()))
        trial = await self.r._repo.update_trial(self.study.id, trial.number, events_after=last, last_step=step,
                                                score=value)
        if prune:
            import optuna

            with contextlib.suppress(Exception):
                await self.r._jobs.request_cancel(trial.job_id, f"pruned at iteration {step}: {self.spec['metric']} "
                                                                f"{value:.4g} is worse than other trials")
            await asyncio.to_thread(self.optuna.tell, trial.number,
                                    None, optuna.trial.TrialState.PRUNED, True)
            trial = await self.r._repo.update_trial(self.study.id, trial.number, state="PRUNED", pruned_step=step,
                                                    ended_at=dt.datetime.now(dt.timezone.utc))
            self.since_best += 1
            await self.publish(study_events.trial_event("trial_pruned", study_events.trial_to_proto(trial),
                                                        self._progress()))
        return trial

    async def _complete(self, trial: TrialRecord, job: JobRecord) -> TrialRecord:
        import optuna

        score = job.metrics.get(self.spec["metric"])
        if score is None or not math.isfinite(score):
            return await self._end_trial(trial, "FAILED", f"the trial reported no finite {self.spec['metric']}")
        model_id = job.outputs[0].removeprefix("models/") if job.outputs else None
        model = await self.r._pool.fetchrow(
            "SELECT metrics_std, fit_time_seconds, iterations, device, mlflow_run_id FROM models WHERE id = $1",
            model_id) if model_id else None
        await asyncio.to_thread(self.optuna.tell, trial.number, float(score), None, True)
        ended = job.ended_at or dt.datetime.now(dt.timezone.utc)
        metrics_std = model["metrics_std"] if model else {}
        if isinstance(metrics_std, str):
            import json

            metrics_std = json.loads(metrics_std)
        trial = await self.r._repo.update_trial(
            self.study.id, trial.number, state="COMPLETE", score=float(score),
            score_std=float((metrics_std or {}).get(self.spec["metric"], 0.0)),
            metrics={k: float(v) for k, v in job.metrics.items()}, model_id=model_id,
            fit_time_seconds=float(model["fit_time_seconds"]) if model else 0.0,
            iterations=int(model["iterations"]) if model else 0,
            device=(model["device"] if model else job.device) or "",
            mlflow_run_id=model["mlflow_run_id"] if model else None, ended_at=ended,
            started_at=trial.started_at or job.started_at or ended)
        if trial.started_at:
            self.durations.append((ended - trial.started_at).total_seconds())
        ranks = await self.r._studies.ranks(self.study)
        message = study_events.trial_to_proto(trial, ranks.get(trial.number, 0))
        events = [study_events.trial_event("trial_completed", message, self._progress())]
        if self.best is None or (score > self.best.score if self.maximize else score < self.best.score):
            events.append(study_events.new_best_event(message, self.best, self._progress()))
            self.best, self.since_best = trial, 0
        else:
            self.since_best += 1
        await self.publish(*events)
        return trial

    async def _end_trial(self, trial: TrialRecord, state: str, error: str) -> TrialRecord:
        import optuna

        await asyncio.to_thread(self.optuna.tell, trial.number, None, optuna.trial.TrialState.FAIL, True)
        trial = await self.r._repo.update_trial(self.study.id, trial.number, state=state, error=error[:2000],
                                                ended_at=dt.datetime.now(dt.timezone.utc))
        self.since_best += 1
        await self.publish(study_events.trial_event("trial_failed", study_events.trial_to_proto(trial),
                                                    self._progress()))
        return trial

    # -- the end -----------------------------------------------------------------------------------------

    async def _ensemble(self) -> str | None:
        """Build the greedy ensemble; its model id when it beats the best trial. Never fails the study."""
        from workers import study_ensemble

        done = await self.r._repo.trials(self.study.id, states=["COMPLETE"], order="score",
                                         direction=self.spec["direction"])
        try:
            outcome = await study_ensemble.build(
                pool=self.r._pool, artifacts=self.r._artifacts, key=self.r._key,
                work_dir=self.r._work_dir / "ensembles", study=self.study, trials=done,
                max_members=self.spec["ensemble_max_members"])
        except Exception as exc:  # noqa: BLE001 - the best single model still stands
            log.exception("study %s: ensemble failed", self.study.id)
            await self.publish(study_events.log_event(self.study.id, "WARNING", f"no ensemble: {exc}"))
            return None
        await self.r._repo.set_ensemble(self.study.id, outcome.model_id, outcome.score)
        await self.publish(study_events.log_event(self.study.id, "INFO", outcome.message))
        return outcome.model_id

    async def _finish(self) -> str:
        counts = await self.r._repo.trial_counts(self.study.id)
        ensemble_id = await self._ensemble() if self.best is not None and self.spec["ensemble"] else None
        refit_id = None
        if self.best is not None and self.spec.get("refit"):
            from workers import study_refit

            if ensemble_id:
                await self.publish(study_events.log_event(self.study.id, "INFO", "no refit: the ensemble is the "
                                                                                 "result (refit applies to one model)"))
            else:
                refit_id = await study_refit.refit(self)
        if self.best is not None:
            state, error = "SUCCEEDED", None
            message = (f"{self.stop_reason}; best: trial {self.best.number} ({self.best.estimator}) "
                       f"{self.spec['metric']} = {self.best.score:.4g}, model models/{self.best.model_id}")
            if ensemble_id:
                message += f"; result: the ensemble models/{ensemble_id}, which beats it"
            if refit_id:
                message += f"; result: its refit on every row, models/{refit_id}"
        elif self.user_stop:
            state = "CANCELLED"
            error = message = f"{self.stop_reason} before any trial completed"
        else:
            failed = await self.r._repo.trials(self.study.id, states=["FAILED"], limit=1)
            cause = f"; first failure: {failed[0].error}" if failed else ""
            state = "FAILED"
            error = message = (f"no trial completed ({self.stop_reason}; {counts.get('FAILED', 0)} failed, "
                               f"{counts.get('PRUNED', 0)} pruned, {counts.get('CANCELLED', 0)} cancelled){cause}")
        result_id = refit_id or ensemble_id or (self.best.model_id if self.best else None)
        ended = await self.r._repo.finish(self.study.id, state, error=error, best_model_id=result_id)
        if ended is not None:
            if state == "SUCCEEDED" and not self.spec.get("skip_evaluation"):
                await self._evaluate(result_id)  # the study has ended: outside its budget
            await self.publish(study_events.state_event(self.study.id, state, message, 1.0))
        try:
            await self._close_run(state)
        except Exception:  # noqa: BLE001 - tracking is a record, not the result
            log.warning("study %s: closing its MLflow run failed", self.study.id, exc_info=True)
        return f"{state.lower()}: {message}"

    async def _evaluate(self, model_id: str | None) -> None:
        """Start the evaluation job that gives the result model what trials skip (permutation importance)."""
        from microlearn_grpc import errors

        try:
            job = await self.r._studies._training.evaluations.start(f"models/{model_id}",
                                                                    request_id=f"{self.study.id}-evaluation")
        except errors.DomainError as exc:
            await self.publish(study_events.log_event(self.study.id, "INFO", f"models/{model_id} not evaluated: {exc}"))
            return
        except Exception:  # noqa: BLE001 - the study has its result; the evaluation is extra
            log.warning("study %s: could not start the evaluation of models/%s", self.study.id, model_id, exc_info=True)
            return
        await self.publish(study_events.log_event(self.study.id, "INFO", f"evaluating models/{model_id} (permutation "
                                                                         f"importance) in {job.resource_name}"))

    def _progress(self) -> float:
        fractions = [0.0]
        if self.deadline is not None:
            budget = self.spec["budget"]["time_budget_seconds"]
            fractions.append(1.0 - (self.deadline - _now()) / budget)
        return max(0.0, min(1.0, max(fractions)))

    async def publish(self, *events: Any) -> None:
        await self.r._publish(self.study.id, list(events))

