"""HPOService over gRPC: protobuf <-> the plain dicts and records of `services.studies`."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from microlearn.v1 import common_pb2, hpo_pb2, hpo_pb2_grpc
from microlearn_grpc import errors
from microlearn_grpc.services import study_events
from microlearn_grpc.services.enums import TASK_NAMES, TASK_TYPES, check_log_level
from microlearn_grpc.services.grpc_errors import translate_errors
from microlearn_grpc.services.studies import StudyService
from microlearn_grpc.services.trainer_servicer import timestamp, validation_from_proto, validation_to_proto
from microlearn_grpc.storage.studies_repo import StudyRecord, TrialRecord

_DIRECTIONS = {common_pb2.OPTIMIZATION_DIRECTION_MINIMIZE: "minimize",
               common_pb2.OPTIMIZATION_DIRECTION_MAXIMIZE: "maximize"}
_SAMPLERS = {hpo_pb2.SAMPLER_KIND_TPE: "tpe", hpo_pb2.SAMPLER_KIND_RANDOM: "random"}
_PRUNERS = {hpo_pb2.PRUNER_KIND_NONE: "none", hpo_pb2.PRUNER_KIND_MEDIAN: "median",
            hpo_pb2.PRUNER_KIND_HYPERBAND: "hyperband"}


def _enum(value: int, table: dict[int, str], field: str) -> str:
    if not value:
        return ""
    if value not in table:
        raise errors.InvalidArgument(f"{field}: {value} is not a known value")
    return table[value]


def _states(values: Any, names: dict[int, str], enum: str) -> list[str]:
    unknown = [v for v in values if v not in names]
    if unknown:
        raise errors.InvalidArgument(f"states: {unknown[0]} is not a known {enum}")
    return [names[v] for v in values]


def spec_from_proto(spec: hpo_pb2.StudySpec) -> dict[str, Any]:
    if spec.task and spec.task not in TASK_NAMES:
        raise errors.InvalidArgument(f"spec.task: {spec.task} is not a known TaskType")
    return {
        "display_name": spec.display_name, "dataset": spec.dataset, "target": spec.target,
        "task": TASK_NAMES.get(spec.task, ""), "candidates": list(spec.candidates),
        "max_candidates": spec.max_candidates, "metric": spec.metric,
        "direction": _enum(spec.direction, _DIRECTIONS, "spec.direction"),
        "budget": {"time_budget_seconds": spec.budget.time_budget_seconds, "max_trials": spec.budget.max_trials,
                   "trial_timeout_seconds": spec.budget.trial_timeout_seconds,
                   "max_trials_without_improvement": spec.budget.max_trials_without_improvement},
        "parallelism": spec.parallelism,
        "validation": validation_from_proto(spec.validation) if spec.HasField("validation") else {},
        "seed": spec.seed if spec.HasField("seed") else None, "ensemble": spec.ensemble,
        "ensemble_max_members": spec.ensemble_max_members, "refit": spec.refit,
        "sampler": _enum(spec.sampler, _SAMPLERS, "spec.sampler"),
        "pruner": _enum(spec.pruner, _PRUNERS, "spec.pruner"),
        "search_spaces": {k: json_format.MessageToDict(v, preserving_proto_field_name=True)
                          for k, v in spec.search_spaces.items()},
        "max_iterations": spec.max_iterations,
        "early_stopping": ({"enabled": spec.early_stopping.enabled, "patience": spec.early_stopping.patience,
                            "min_delta": spec.early_stopping.min_delta} if spec.HasField("early_stopping") else None),
        "use_gpu": spec.use_gpu if spec.HasField("use_gpu") else None, "balance_classes": spec.balance_classes,
        "feature_columns": list(spec.feature_columns), "ignore_columns": list(spec.ignore_columns),
        "experiment_name": spec.experiment_name, "labels": dict(spec.labels), "skip_evaluation": spec.skip_evaluation,
    }


def spec_to_proto(spec: dict[str, Any]) -> hpo_pb2.StudySpec:
    budget = spec["budget"]
    message = hpo_pb2.StudySpec(
        display_name=spec["display_name"], dataset=spec["dataset"], target=spec["target"],
        task=TASK_TYPES[spec["task"]], candidates=spec["candidates"], max_candidates=spec["max_candidates"],
        metric=spec["metric"], direction={v: k for k, v in _DIRECTIONS.items()}[spec["direction"]],
        budget=hpo_pb2.StudyBudget(**budget), parallelism=spec["parallelism"], seed=spec["seed"],
        ensemble=spec["ensemble"], ensemble_max_members=spec["ensemble_max_members"], refit=spec["refit"],
        sampler={v: k for k, v in _SAMPLERS.items()}[spec["sampler"]],
        pruner={v: k for k, v in _PRUNERS.items()}[spec["pruner"]], max_iterations=spec["max_iterations"],
        balance_classes=spec["balance_classes"], feature_columns=spec["feature_columns"],
        ignore_columns=spec["ignore_columns"], experiment_name=spec["experiment_name"], labels=spec["labels"],
        skip_evaluation=spec.get("skip_evaluation", False))
    validation_to_proto(spec.get("validation") or {}, message.validation)
    for name, space in spec["search_spaces"].items():
        json_format.ParseDict(space, message.search_spaces[name])
    early = spec.get("early_stopping")
    if early:
        message.early_stopping.enabled = bool(early.get("enabled"))
        message.early_stopping.patience = int(early.get("patience") or 0)
        message.early_stopping.min_delta = float(early.get("min_delta") or 0.0)
    if spec.get("use_gpu") is not None:
        message.use_gpu = spec["use_gpu"]
    return message


def study_to_proto(study: StudyRecord, *, counts: dict[str, int] | None = None, progress: float = 0.0,
                   best: TrialRecord | None = None, board: list[TrialRecord] | None = None,
                   ranks: dict[int, int] | None = None) -> hpo_pb2.Study:
    ranks = ranks or {}
    counts = counts or {}
    message = hpo_pb2.Study(
        name=study.resource_name, id=study.id, spec=spec_to_proto(study.spec),
        state=study_events.STUDY_STATES[study.state], error=study.error or study.stop_reason or "",
        progress=progress, create_time=timestamp(study.created_at), start_time=timestamp(study.started_at),
        end_time=timestamp(study.ended_at), best_model=f"models/{study.best_model_id}" if study.best_model_id else "",
        ensemble_model=f"models/{study.ensemble_model_id}" if study.ensemble_model_id else "",
        ensemble_score=study.ensemble_score or 0.0, optuna_study_name=study.optuna_study_name,
        mlflow_run_id=study.mlflow_run_id or "",
        trial_counts=hpo_pb2.TrialCounts(**{k.lower(): v for k, v in counts.items()}))
    if best is not None:
        message.best_trial.CopyFrom(study_events.trial_to_proto(best, ranks.get(best.number, 1)))
    for trial in board or []:
        message.leaderboard.append(study_events.trial_to_proto(trial, ranks.get(trial.number, 0)))
    return message


class HPOServicer(hpo_pb2_grpc.HPOServiceServicer):
    def __init__(self, service: StudyService) -> None:
        self._service = service

    async def _full(self, study: StudyRecord, leaderboard_size: int = 0) -> hpo_pb2.Study:
        counts, best, board = await self._service.details(study, leaderboard_size)
        ranks = await self._service.ranks(study)
        return study_to_proto(study, counts=counts, progress=self._service.progress(study, counts), best=best,
                              board=board, ranks=ranks)

    @translate_errors
    async def StartStudy(self, request, context):
        if not request.HasField("spec"):
            raise errors.InvalidArgument("spec is required")
        study, _ = await self._service.start(spec_from_proto(request.spec), request.request_id)
        return hpo_pb2.StartStudyResponse(study=await self._full(study))

    @translate_errors
    async def GetStudy(self, request, context):
        study = await self._service.get(request.name)
        return hpo_pb2.GetStudyResponse(study=await self._full(study, request.leaderboard_size))

    @translate_errors
    async def ListStudies(self, request, context):
        states = _states(request.states, study_events.STUDY_STATE_NAMES, "StudyState")
        studies, token, total = await self._service.list(
            page_size=request.page_size, page_token=request.page_token, states=states, dataset=request.dataset,
            labels=dict(request.labels))
        out = []
        for study in studies:
            counts = await self._service.repo.trial_counts(study.id)
            out.append(study_to_proto(study, counts=counts, progress=self._service.progress(study, counts)))
        return hpo_pb2.ListStudiesResponse(studies=out, next_page_token=token, total_size=total)

    @translate_errors
    async def ListTrials(self, request, context):
        states = _states(request.states, study_events.TRIAL_STATE_NAMES, "TrialState")
        study, trials, token, total = await self._service.list_trials(
            request.study, page_size=request.page_size, page_token=request.page_token, states=states,
            estimator=request.estimator, order_by=request.order_by)
        ranks = await self._service.ranks(study)
        return hpo_pb2.ListTrialsResponse(trials=[study_events.trial_to_proto(t, ranks.get(t.number, 0))
                                                  for t in trials], next_page_token=token, total_size=total)

    @translate_errors
    async def StreamStudyEvents(self, request, context):
        check_log_level(request.min_log_level)
        await self._service.get(request.name)
        async for event in self._service.events(request.name, after=request.after_sequence,
                                                replay_only=request.replay_only):
            kind = event.WhichOneof("payload")
            if kind == "trial_reported" and request.exclude_trial_reports:
                continue
            if kind == "log" and event.log.level < request.min_log_level:
                continue
            yield hpo_pb2.StreamStudyEventsResponse(event=event)

    @translate_errors
    async def StopStudy(self, request, context):
        study = await self._service.stop(request.name, cancel_running=request.cancel_running_trials,
                                         reason=request.reason)
        return hpo_pb2.StopStudyResponse(study=await self._full(study))

    @translate_errors
    async def GetBestTrial(self, request, context):
        study = await self._service.get(request.name)
        counts, best, _ = await self._service.details(study, 1)
        if best is None:
            raise errors.FailedPrecondition(f"study {study.resource_name} has no completed trial yet "
                                            f"({study.state.lower()}); follow StreamStudyEvents")
        ranks = await self._service.ranks(study)
        return hpo_pb2.GetBestTrialResponse(trial=study_events.trial_to_proto(best, ranks.get(best.number, 1)),
                                            final=study.is_terminal)
