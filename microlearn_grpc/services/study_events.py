"""A study's `StudyEvent`s (stream `studies/{id}` on the study event bus) and the `Trial` message,
shared by the service that answers RPCs and the coordinator that runs the search."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from microlearn.v1 import hpo_pb2
from microlearn_grpc.services.enums import LOG_LEVELS
from microlearn_grpc.storage.studies_repo import TrialRecord

STUDY_STATES = {name: hpo_pb2.StudyState.Value(f"STUDY_STATE_{name}")
                for name in ("PENDING", "RUNNING", "STOPPING", "SUCCEEDED", "FAILED", "CANCELLED")}
STUDY_STATE_NAMES = {v: k for k, v in STUDY_STATES.items()}
TRIAL_STATES = {name: hpo_pb2.TrialState.Value(f"TRIAL_STATE_{name}")
                for name in ("PENDING", "RUNNING", "COMPLETE", "PRUNED", "FAILED", "CANCELLED")}
TRIAL_STATE_NAMES = {v: k for k, v in TRIAL_STATES.items()}
EVENT_PREFIX = "microlearn:study-events:"
TERMINAL = frozenset({hpo_pb2.STUDY_STATE_SUCCEEDED, hpo_pb2.STUDY_STATE_FAILED, hpo_pb2.STUDY_STATE_CANCELLED})


def stream(study_id: str) -> str:
    return f"studies/{study_id}"


def is_terminal(event: hpo_pb2.StudyEvent) -> bool:
    return event.WhichOneof("payload") == "state_change" and event.state_change.state in TERMINAL


def state_event(study_id: str, state: str, message: str = "", progress: float = 0.0) -> hpo_pb2.StudyEvent:
    return hpo_pb2.StudyEvent(study=stream(study_id), progress=progress,
                              state_change=hpo_pb2.StudyStateChange(state=STUDY_STATES[state], message=message))


def log_event(study_id: str, level: str, message: str, progress: float = 0.0) -> hpo_pb2.StudyEvent:
    from microlearn.v1 import common_pb2

    return hpo_pb2.StudyEvent(study=stream(study_id), progress=progress,
                              log=common_pb2.LogLine(level=LOG_LEVELS.get(level, common_pb2.LOG_LEVEL_INFO),
                                                     message=message))


def trial_event(kind: str, trial: hpo_pb2.Trial, progress: float = 0.0) -> hpo_pb2.StudyEvent:
    """kind: trial_started, trial_pruned, trial_completed or trial_failed."""
    event = hpo_pb2.StudyEvent(study=trial.study, progress=progress)
    getattr(event, kind).CopyFrom(trial)
    return event


def report_event(study_id: str, number: int, estimator: str, step: int, score: float,
                 progress: float = 0.0) -> hpo_pb2.StudyEvent:
    return hpo_pb2.StudyEvent(study=stream(study_id), progress=progress, trial_reported=hpo_pb2.TrialReport(
        trial_number=number, estimator=estimator, step=step, score=score))


def new_best_event(trial: hpo_pb2.Trial, previous: TrialRecord | None, progress: float = 0.0) -> hpo_pb2.StudyEvent:
    return hpo_pb2.StudyEvent(study=trial.study, progress=progress, new_best_trial=hpo_pb2.NewBestTrial(
        trial=trial, previous_best_trial_number=previous.number if previous else -1,
        previous_best_score=(previous.score or 0.0) if previous else 0.0))


def trial_to_proto(trial: TrialRecord, rank: int = 0) -> hpo_pb2.Trial:
    message = hpo_pb2.Trial(
        study=stream(trial.study_id), number=trial.number, estimator=trial.estimator,
        state=TRIAL_STATES[trial.state], score=trial.score or 0.0, score_std=trial.score_std,
        metrics={k: float(v) for k, v in trial.metrics.items()}, fit_time_seconds=trial.fit_time_seconds,
        predict_time_seconds=trial.predict_time_seconds, iterations=trial.iterations, pruned_step=trial.pruned_step,
        rank=rank, error=trial.error or "", job=f"jobs/{trial.job_id}",
        model=f"models/{trial.model_id}" if trial.model_id else "", device=trial.device,
        mlflow_run_id=trial.mlflow_run_id or "")
    for key, value in trial.params.items():
        json_format.ParseDict(value, message.params.values[key])
    if trial.started_at:
        message.start_time.FromDatetime(trial.started_at)
    if trial.ended_at:
        message.end_time.FromDatetime(trial.ended_at)
    return message
