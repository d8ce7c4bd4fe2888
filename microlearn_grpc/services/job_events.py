"""Building the `JobEvent`s of a job's stream (`jobs/{id}` on the event bus), shared by the
service that writes jobs and the workers that run them."""

from __future__ import annotations

from collections.abc import Mapping

from microlearn.v1 import common_pb2
from microlearn_grpc.services.enums import JOB_STATES, LOG_LEVELS


def stream(job_id: str) -> str:
    return f"jobs/{job_id}"


def state_event(job_id: str, state: str, message: str = "", progress: float = 0.0) -> common_pb2.JobEvent:
    return common_pb2.JobEvent(job=stream(job_id), progress=progress,
                               state_change=common_pb2.JobStateChange(state=JOB_STATES[state], message=message))


def log_event(job_id: str, level: str, message: str, progress: float = 0.0) -> common_pb2.JobEvent:
    return common_pb2.JobEvent(job=stream(job_id), progress=progress,
                               log=common_pb2.LogLine(level=LOG_LEVELS.get(level.upper(), common_pb2.LOG_LEVEL_INFO),
                                                      message=message))


def metrics_event(job_id: str, step: int, values: Mapping[str, float], progress: float = 0.0) -> common_pb2.JobEvent:
    points = [common_pb2.MetricPoint(name=name, value=float(value), step=step) for name, value in values.items()]
    return common_pb2.JobEvent(job=stream(job_id), progress=progress,
                               metrics=common_pb2.MetricUpdate(points=points))
