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
