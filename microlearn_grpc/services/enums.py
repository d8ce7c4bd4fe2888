"""Domain names ↔ protobuf enum values, shared by the servicers."""

from __future__ import annotations

from microlearn.v1 import common_pb2

TASK_TYPES = {
    "binary": common_pb2.TASK_TYPE_BINARY_CLASSIFICATION,
    "multiclass": common_pb2.TASK_TYPE_MULTICLASS_CLASSIFICATION,
    "regression": common_pb2.TASK_TYPE_REGRESSION,
    "clustering": common_pb2.TASK_TYPE_CLUSTERING,
}
TASK_NAMES = {v: k for k, v in TASK_TYPES.items()}

JOB_STATES = {
    "PENDING": common_pb2.JOB_STATE_PENDING, "RUNNING": common_pb2.JOB_STATE_RUNNING,
    "SUCCEEDED": common_pb2.JOB_STATE_SUCCEEDED, "FAILED": common_pb2.JOB_STATE_FAILED,
    "CANCELLED": common_pb2.JOB_STATE_CANCELLED,
}
JOB_STATE_NAMES = {v: k for k, v in JOB_STATES.items()}
LOG_LEVELS = {
    "DEBUG": common_pb2.LOG_LEVEL_DEBUG, "INFO": common_pb2.LOG_LEVEL_INFO,
    "WARNING": common_pb2.LOG_LEVEL_WARNING, "ERROR": common_pb2.LOG_LEVEL_ERROR,
}


def check_log_level(value: int) -> int:
    """A request's `min_log_level`: UNSPECIFIED (all lines) or a known LogLevel."""
    from microlearn_grpc import errors

    if value and value not in common_pb2.LogLevel.values():
        raise errors.InvalidArgument(f"min_log_level: {value} is not a known LogLevel")
    return value
