"""HPOService use cases: validate and start studies, read them with their leaderboards, stop them.

StartStudy resolves the whole spec up front (each candidate is checked as a training spec would be,
so every error names its `spec.` field), creates the Optuna study in shared storage, writes the study
and its coordinator job (kind `study`) in one transaction and queues the coordinator. The search
itself runs in `workers/study.py`.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from typing import Any

import asyncpg

from microlearn_grpc import errors
from microlearn_grpc.services import study_events
from microlearn_grpc.services.datasets import DatasetService
from microlearn_grpc.services.training import TrainingService, check_labels
from microlearn_grpc.storage.events import EventBus
from microlearn_grpc.storage.jobs_repo import JobRepository
from microlearn_grpc.storage.studies_repo import StudyRecord, StudyRepository, TrialRecord, new_study_id


MAX_BUDGET_SECONDS = 7 * 24 * 3600
MAX_TRIALS = 100_000
DEFAULT_PARALLELISM, MAX_PARALLELISM = 4, 256
DEFAULT_CANDIDATES, MAX_CANDIDATES = 5, 20
DEFAULT_MEMBERS, MAX_MEMBERS = 5, 50
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 1000, 50
MAX_LEADERBOARD, DEFAULT_LEADERBOARD = 10_000, 50
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none", "hyperband")


def _bad(field: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"{field}: {message}")


def study_id_of(name: str, field: str = "name") -> str:
    name = (name or "").strip()
    if not name:
        raise errors.InvalidArgument(f"{field} is required: studies/ID or the id")
    return name.removeprefix("studies/")


class StudyService:
    def __init__(self, pool: asyncpg.Pool, bus: EventBus, training: TrainingService, datasets: DatasetService,
                 queue: Any, *, queue_name: str, default_budget_seconds: int = 300,
                 max_attempts: int = 3) -> None:
        self._pool = pool
        self._bus = bus
        self._training = training
        self._datasets = datasets
        self._queue = queue
        self._queue_name = queue_name
        self._default_budget = default_budget_seconds
        self._max_attempts = max_attempts
        self.repo = StudyRepository(pool)
        self._jobs = JobRepository(pool)

    # -- StartStudy ----------------------------------------------------------------------------------

    async def start(self, spec: dict[str, Any], request_id: str = "") -> tuple[StudyRecord, bool]:
        if len(request_id) > 128:
            raise _bad("request_id", f"at most 128 characters, got {len(request_id)}")
        if request_id:
            existing = await self.repo.by_request_id(request_id)
            if existing is not None:
                return existing, False
        resolved = await self.resolve_spec(spec)
        study_id = new_study_id()
        # The coordinator creates the Optuna study (workers hold Optuna's storage anyway): the
        # server never imports Optuna and SQLAlchemy, ~45 MB of its resident memory.
        optuna_name = f"microlearn-{study_id}"
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                job, _ = await self._jobs.create(
                    kind="study", spec={"study_id": study_id, "queue": self._queue_name,
                                        "dataset_display": resolved["dataset_display"]},
                    dataset_id=resolved["dataset"].removeprefix("datasets/"), study_id=study_id,
                    labels=resolved["labels"], max_attempts=self._max_attempts, conn=conn)
                await conn.execute("INSERT INTO dataset_references (dataset_id, referrer) VALUES ($1, $2)"
                                   " ON CONFLICT DO NOTHING", job.dataset_id, job.resource_name)
                study = await self.repo.create(
                    conn, study_id=study_id, display_name=resolved["display_name"], spec=resolved,
                    dataset_id=job.dataset_id, labels=resolved["labels"], request_id=request_id or None,
                    coordinator_job_id=job.id, optuna_study_name=optuna_name)
        except asyncpg.UniqueViolationError:
            existing = await self.repo.by_request_id(request_id)
            if existing is None:
                raise
            return existing, False
        await self._bus.publish(study_events.stream(study.id), study_events.state_event(
            study.id, "PENDING", f"queued: {', '.join(resolved['candidates'])} on {resolved['dataset_display']}"))
        from workers.queue import enqueue_or_defer

        await enqueue_or_defer(self._queue, job.id, self._queue_name, f"the coordinator of {study.resource_name}")
        return study, True

    async def resolve_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The spec with dataset, task, candidates, metric and defaults resolved; InvalidArgument names the field."""
        from microlearn_grpc.core import metrics as metric_lib
        from microlearn_grpc.core import selection as selection_lib
        from microlearn_grpc.core.estimators import SearchSpace, get_estimator

        record = await self._datasets.resolve(spec.get("dataset", ""), field="spec.dataset")
        if not record.profile:
            raise errors.FailedPrecondition(f"spec.dataset: {record.resource_name} has no profile yet")
        profile = record.profile
        columns = [c["name"] for c in profile.get("columns") or []]
        target = (spec.get("target") or "").strip()
        if target and target not in columns:
            raise _bad("spec.target", f"column {target!r} is not in dataset {record.display_name}@{record.version}; "
                                      f"its columns are: {', '.join(columns)}")
        budget = dict(spec.get("budget") or {})
        seconds, max_trials = int(budget.get("time_budget_seconds") or 0), int(budget.get("max_trials") or 0)
        trial_timeout = int(budget.get("trial_timeout_seconds") or 0)
        patience = int(budget.get("max_trials_without_improvement") or 0)
        for field, value, top in (("time_budget_seconds", seconds, MAX_BUDGET_SECONDS),
                                  ("max_trials", max_trials, MAX_TRIALS),
                                  ("trial_timeout_seconds", trial_timeout, MAX_BUDGET_SECONDS),
                                  ("max_trials_without_improvement", patience, MAX_TRIALS)):
            if not 0 <= value <= top:
                raise _bad(f"spec.budget.{field}", f"must be 0 to {top:,}, got {value}")
        if not seconds and not max_trials:
            seconds = self._default_budget
        max_candidates = int(spec.get("max_candidates") or 0)
        if not 0 <= max_candidates <= MAX_CANDIDATES:
            raise _bad("spec.max_candidates", f"must be 1-{MAX_CANDIDATES} (0 means {DEFAULT_CANDIDATES})")
        use_gpu = spec.get("use_gpu")
        task = spec.get("task") or ""
        names = [str(n).strip() for n in spec.get("candidates") or []]
        try:
            selection = selection_lib.select_models(
                profile, target or None, task=task or None, max_candidates=max_candidates or DEFAULT_CANDIDATES,
                time_budget_seconds=seconds, use_gpu=bool(use_gpu),
                ignore_columns=tuple(c for c in spec.get("ignore_columns") or [] if c in columns))
        except ValueError as exc:
            raise _bad("spec.task" if task else "spec.target", str(exc)) from None
        task = selection.task
        if names:
            candidates = []
            for name in names:
                try:
                    cls = get_estimator(name)
                except KeyError as exc:
                    raise _bad("spec.candidates", exc.args[0]) from None
                if task not in cls.tasks:
                    raise _bad("spec.candidates", f"{cls.name} does not support the {task} task "
                                                  f"({selection.detection.reason})")
                if cls.name not in candidates:
                    candidates.append(cls.name)
        else:
            candidates = [c.estimator.name for c in selection.candidates]
            if use_gpu:
                candidates = [c for c in candidates if get_estimator(c).supports_gpu] or candidates
            if not candidates:
                raise errors.FailedPrecondition("spec.candidates: no estimator suits this data and budget: "
                                                + "; ".join(f"{n}: {r}" for n, r in selection.excluded[:5]))
        try:
            metric = metric_lib.check_metric(task, spec.get("metric") or "")
        except ValueError as exc:
            raise _bad("spec.metric", str(exc)) from None
        direction = spec.get("direction") or metric_lib.direction(metric)
        if direction not in ("minimize", "maximize"):
            raise _bad("spec.direction", f"must be minimize or maximize, got {direction!r}")
        parallelism = int(spec.get("parallelism") or 0)
        if not 0 <= parallelism <= MAX_PARALLELISM:
            raise _bad("spec.parallelism", f"must be 1-{MAX_PARALLELISM} (0 means {DEFAULT_PARALLELISM})")
        members = int(spec.get("ensemble_max_members") or 0)
        if members and not 2 <= members <= MAX_MEMBERS:
            raise _bad("spec.ensemble_max_members", f"must be 2-{MAX_MEMBERS} (0 means {DEFAULT_MEMBERS})")
        sampler, pruner = spec.get("sampler") or "tpe", spec.get("pruner") or "median"
        if sampler not in SAMPLERS:
            raise _bad("spec.sampler", f"must be one of {', '.join(SAMPLERS)}")
        if pruner not in PRUNERS:
            raise _bad("spec.pruner", f"must be one of {', '.join(PRUNERS)}")
        # Unset validation follows SelectModels: 5-fold below 5,000 rows (a steadier score to search on, and
        # models refit on every row), a 20% holdout above.
        validation = spec.get("validation") or (
            {"method": "kfold", "folds": selection.validation["folds"]}
            if selection.validation["method"] == "k_fold" else {"method": "holdout", "fraction": 0.2})
        early = spec.get("early_stopping")
        if early is None:
            early = {"enabled": True, "patience": 10}
        seed = spec.get("seed")
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        if not 0 <= int(seed) < 2**63:
            raise _bad("spec.seed", "must be a non-negative 63-bit integer")

        spaces: dict[str, dict[str, Any]] = {}
        for name, raw in (spec.get("search_spaces") or {}).items():
            try:
                cls = get_estimator(name)
            except KeyError as exc:
                raise _bad(f"spec.search_spaces.{name}", exc.args[0]) from None
            if cls.name not in candidates:
                raise _bad(f"spec.search_spaces.{name}", f"{cls.name} is not among the candidates "
                                                         f"({', '.join(candidates)})")
            try:
                space = SearchSpace.from_dict(raw)
                known = cls.search_space(task)
                for parameter in space:
                    if parameter.name not in known:
                        raise ValueError(f"{cls.name} has no hyperparameter {parameter.name!r}; it has "
                                         f"{', '.join(known.names())}")
                    for value in (parameter.default,):
                        known.validate({parameter.name: value})
            except (ValueError, TypeError, KeyError) as exc:
                raise _bad(f"spec.search_spaces.{name}", str(exc)) from None
            spaces[cls.name] = space.to_dict()

        # Every candidate must pass as a training spec: the same checks, the same field names.
        for name in candidates:
            cls = get_estimator(name)
            await self._training.resolve_spec(self.trial_spec({
                "dataset": record.resource_name, "target": target, "task": task, "metric": metric,
                "validation": validation, "max_iterations": int(spec.get("max_iterations") or 0),
                "early_stopping": early, "seed": int(seed), "use_gpu": use_gpu,
                "balance_classes": bool(spec.get("balance_classes")), "feature_columns": spec.get("feature_columns"),
                "ignore_columns": spec.get("ignore_columns"), "experiment_name": spec.get("experiment_name") or "",
                "labels": spec.get("labels") or {}}, cls.name, {}, 0))
        labels = check_labels(spec.get("labels") or {}, "spec.labels")
        display_name = (spec.get("display_name") or "").strip() or f"{record.display_name}-{target or 'clusters'}"
        return {
            "display_name": display_name[:200], "dataset": record.resource_name,
            "dataset_display": f"{record.display_name}@{record.version}", "target": target, "task": task,
            "task_reason": selection.detection.reason, "candidates": candidates,
            "max_candidates": max_candidates or DEFAULT_CANDIDATES, "metric": metric, "direction": direction,
            "budget": {"time_budget_seconds": seconds, "max_trials": max_trials,
                       "trial_timeout_seconds": trial_timeout, "max_trials_without_improvement": patience},
            "parallelism": parallelism or DEFAULT_PARALLELISM, "validation": validation,
            "seed": int(seed), "ensemble": bool(spec.get("ensemble")),
            "ensemble_max_members": members or DEFAULT_MEMBERS, "refit": bool(spec.get("refit")),
            "sampler": sampler, "pruner": pruner, "search_spaces": spaces,
            "max_iterations": int(spec.get("max_iterations") or 0), "early_stopping": early, "use_gpu": use_gpu,
            "balance_classes": bool(spec.get("balance_classes")),
            "feature_columns": list(spec.get("feature_columns") or []),
            "ignore_columns": list(spec.get("ignore_columns") or []),
            "experiment_name": spec.get("experiment_name") or "microlearn", "labels": labels,
            "skip_evaluation": bool(spec.get("skip_evaluation")),
        }

    @staticmethod
    def trial_spec(study: dict[str, Any], estimator: str, params: dict[str, Any], timeout: int) -> dict[str, Any]:
        """The training spec of one trial of a (resolved) study spec."""
        from microlearn_grpc.core.estimators import get_estimator

        cls = get_estimator(estimator)
        return {
            "dataset": study["dataset"], "target": study["target"], "task": study["task"], "estimator": estimator,
            "hyperparameters": params, "validation": study["validation"], "metric": study["metric"],
            "max_iterations": study["max_iterations"] if cls.iterations_param else 0,
            "early_stopping": study["early_stopping"] if cls.supports_early_stopping else None,
            "seed": study["seed"], "use_gpu": study["use_gpu"] if cls.supports_gpu else None,
            "balance_classes": study["balance_classes"] and cls.supports_class_weights,
            "feature_columns": study.get("feature_columns") or [], "ignore_columns": study.get("ignore_columns") or [],
            "experiment_name": study.get("experiment_name") or "", "labels": study.get("labels") or {},
            "timeout_seconds": timeout,
        }

    # -- reads -----------------------------------------------------------------------------------------

    async def get(self, name: str, field: str = "name") -> StudyRecord:
        study = await self.repo.get(study_id_of(name, field))
        if study is None:
            raise errors.NotFound(f"study {name} does not exist")
        return study

    async def details(self, study: StudyRecord, leaderboard_size: int = DEFAULT_LEADERBOARD
                      ) -> tuple[dict[str, int], TrialRecord | None, list[TrialRecord]]:
        if not 0 <= leaderboard_size <= MAX_LEADERBOARD:
            raise _bad("leaderboard_size", f"must be 1-{MAX_LEADERBOARD:,} (0 means {DEFAULT_LEADERBOARD})")
        board = await self.repo.trials(study.id, order="score", direction=study.spec["direction"],
                                       limit=leaderboard_size or DEFAULT_LEADERBOARD)
        best = board[0] if board and board[0].state == "COMPLETE" else None
        return await self.repo.trial_counts(study.id), best, board

    def progress(self, study: StudyRecord, counts: dict[str, int]) -> float:
        if study.is_terminal:
            return 1.0
        budget = study.spec["budget"]
        fractions = [0.0]
        if budget["time_budget_seconds"]:
            elapsed = (dt.datetime.now(dt.timezone.utc) - study.created_at).total_seconds()
            fractions.append(elapsed / budget["time_budget_seconds"])
        if budget["max_trials"]:
            fractions.append(sum(counts.values()) / budget["max_trials"])
        return max(0.0, min(1.0, max(fractions)))

    async def list(self, *, page_size: int, page_token: str, states: list[str], dataset: str,
                   labels: dict[str, str]) -> tuple[list[StudyRecord], str, int]:
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            raise _bad("page_size", f"must be 0-{MAX_PAGE_SIZE}")
        after = None
        if page_token:
            try:
                stamp, _, last = base64.urlsafe_b64decode(page_token.encode()).decode().partition("|")
                after = (dt.datetime.fromisoformat(stamp), last)
            except ValueError:
                raise _bad("page_token", "not valid: pass next_page_token from a previous response") from None
        dataset_ids = await self._training.dataset_ids(dataset, "dataset") if dataset else None
        size = page_size or DEFAULT_PAGE_SIZE
        studies, total = await self.repo.list(page_size=size + 1, after=after, states=states,
                                              dataset_ids=dataset_ids, labels=check_labels(labels, "labels"))
        token = ""
        if len(studies) > size:
            studies = studies[:size]
            last = studies[-1]
            token = base64.urlsafe_b64encode(f"{last.created_at.isoformat()}|{last.id}".encode()).decode()
        return studies, token, total

    async def list_trials(self, name: str, *, page_size: int, page_token: str, states: list[str], estimator: str,
                          order_by: str) -> tuple[StudyRecord, list[TrialRecord], str, int]:
        study = await self.get(name, "study")
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            raise _bad("page_size", f"must be 0-{MAX_PAGE_SIZE}")
        if order_by not in ("", "score", "number"):
            raise _bad("order_by", f"must be score or number, got {order_by!r}")
        offset = 0
        if page_token:
            try:
                offset = int(base64.urlsafe_b64decode(page_token.encode()).decode().removeprefix("offset:"))
            except ValueError:
                raise _bad("page_token", "not valid: pass next_page_token from a previous response") from None
        estimator = estimator.removeprefix("estimators/")
        size = page_size or DEFAULT_PAGE_SIZE
        trials = await self.repo.trials(study.id, states=states, estimator=estimator, order=order_by or "score",
                                        direction=study.spec["direction"], limit=size, offset=offset)
        total = await self.repo.count_trials(study.id, states=states, estimator=estimator)
        token = (base64.urlsafe_b64encode(f"offset:{offset + size}".encode()).decode()
                 if offset + size < total else "")
        return study, trials, token, total

    async def ranks(self, study: StudyRecord) -> dict[int, int]:
        """Trial number -> rank among completed trials (1 is best)."""
        done = await self.repo.trials(study.id, states=["COMPLETE"], order="score", direction=study.spec["direction"])
        return {t.number: i for i, t in enumerate(done, start=1)}

    def events(self, name: str, *, after: str = "", replay_only: bool = False):
        study_id = study_id_of(name)

        async def ended() -> bool:
            study = await self.repo.get(study_id)
            return study is None or study.is_terminal
        try:
            return self._bus.follow(study_events.stream(study_id), after=after, terminal=study_events.is_terminal,
                                    ended=ended, replay_only=replay_only)
        except ValueError as exc:
            raise _bad("after_sequence", str(exc)) from None

    # -- StopStudy -------------------------------------------------------------------------------------

    async def stop(self, name: str, *, cancel_running: bool, reason: str) -> StudyRecord:
        study = await self.get(name)
        if study.is_terminal:
            return study
        reason = (reason or "").strip()[:500] or "stopped by request"
        updated = await self.repo.request_stop(study.id, cancel_running=cancel_running, reason=reason)
        if updated is not None and updated.state in ("PENDING", "RUNNING"):
            await self.repo.set_stopping(study.id, reason)
            await self._bus.publish(study_events.stream(study.id), study_events.state_event(study.id, "STOPPING",
                                                                                            reason))
        job = await self._jobs.get(study.coordinator_job_id)
        if job is not None and job.state == "PENDING":
            # No coordinator has started: nothing ran, so the study ends here.
            cancelled = await self._jobs.request_cancel(job.id, reason)
            if cancelled.state == "CANCELLED":
                ended = await self.repo.finish(study.id, "CANCELLED", error=reason)
                if ended is not None:
                    await self._bus.publish(study_events.stream(study.id),
                                            study_events.state_event(study.id, "CANCELLED", reason, 1.0))
                    return ended
        return await self.repo.get(study.id) or updated
