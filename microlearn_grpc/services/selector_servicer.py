"""SelectorService over gRPC: the estimator registry (ListEstimators, GetEstimator) and SelectModels."""

from __future__ import annotations

import base64

from google.protobuf import json_format, struct_pb2

from microlearn.v1 import common_pb2, selector_pb2, selector_pb2_grpc
from microlearn_grpc import errors
from microlearn_grpc.services.enums import TASK_NAMES, TASK_TYPES
from microlearn_grpc.services.grpc_errors import translate_errors

MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 1000, 50


def estimator_to_proto(cls) -> selector_pb2.Estimator:
    info = cls.describe()
    message = selector_pb2.Estimator(
        name=info["name"], estimator_id=info["estimator_id"], display_name=info["display_name"],
        description=info["description"],
        family=selector_pb2.EstimatorFamily.Value(f"ESTIMATOR_FAMILY_{info['family'].upper()}"),
        supported_tasks=[TASK_TYPES[t] for t in info["supported_tasks"]], relative_cost=info["relative_cost"],
        supports_iteration_progress=info["supports_iteration_progress"],
        supports_early_stopping=info["supports_early_stopping"], supports_gpu=info["supports_gpu"],
        supports_class_weights=info["supports_class_weights"], handles_missing_values=info["handles_missing_values"],
        handles_categorical=info["handles_categorical"],
        model_format=common_pb2.ModelFormat.Value(f"MODEL_FORMAT_{info['model_format'].upper()}"),
        library=info["library"], available=info["available"], unavailable_reason=info["unavailable_reason"] or "")
    for key, value in info["default_hyperparameters"].items():
        message.default_hyperparameters.values[key].CopyFrom(_value(value))
    json_format.ParseDict(info["search_space"], message.search_space)
    return message


def _value(value) -> struct_pb2.Value:
    wrapper = struct_pb2.Value()
    if value is None:
        wrapper.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        wrapper.bool_value = value
    elif isinstance(value, (int, float)):
        wrapper.number_value = value
    else:
        wrapper.string_value = str(value)
    return wrapper


class SelectorServicer(selector_pb2_grpc.SelectorServiceServicer):
    def __init__(self, selection=None) -> None:
        self._selection = selection  # services.selection.SelectionService

    @translate_errors
    async def ListEstimators(self, request, context):
        from microlearn_grpc.core.estimators import list_estimators

        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise errors.InvalidArgument(f"page_size must be between 0 and {MAX_PAGE_SIZE}, got {request.page_size}")
        task = None
        if request.task != common_pb2.TASK_TYPE_UNSPECIFIED:
            if request.task not in TASK_NAMES:
                raise errors.InvalidArgument(f"task {request.task} is not a known TaskType")
            task = TASK_NAMES[request.task]
        start = 0
        if request.page_token:
            try:
                start = int(base64.urlsafe_b64decode(request.page_token.encode()).decode().removeprefix("offset:"))
            except ValueError:
                raise errors.InvalidArgument("page_token is not valid: pass next_page_token from a previous "
                                             "response") from None
        found = list_estimators(task, available_only=not request.include_unavailable)
        size = request.page_size or DEFAULT_PAGE_SIZE
        page = found[start:start + size]
        token = base64.urlsafe_b64encode(f"offset:{start + size}".encode()).decode() if start + size < len(found) else ""
        return selector_pb2.ListEstimatorsResponse(estimators=[estimator_to_proto(e) for e in page],
                                                   next_page_token=token)

    @translate_errors
    async def GetEstimator(self, request, context):
        from microlearn_grpc.core.estimators import get_estimator

        if not request.name:
            raise errors.InvalidArgument("name is required: an estimator id such as random_forest_classifier, "
                                         "or estimators/{id}")
        try:
            cls = get_estimator(request.name)
        except KeyError as exc:
            raise errors.NotFound(str(exc.args[0]) if exc.args else f"no estimator {request.name!r}") from None
        return selector_pb2.GetEstimatorResponse(estimator=estimator_to_proto(cls))

    @translate_errors
    async def SelectModels(self, request, context):
        task = ""
        if request.task != common_pb2.TASK_TYPE_UNSPECIFIED:
            if request.task not in TASK_NAMES:
                raise errors.InvalidArgument(f"task {request.task} is not a known TaskType")
            task = TASK_NAMES[request.task]
        answer = await self._selection.select({
            "dataset": request.dataset, "target": request.target, "task": task,
            "max_candidates": request.max_candidates, "time_budget_seconds": request.time_budget_seconds,
            "use_gpu": request.use_gpu if request.HasField("use_gpu") else None,
            "include_estimators": list(request.include_estimators),
            "exclude_estimators": list(request.exclude_estimators), "ignore_columns": list(request.ignore_columns)})
        return json_format.ParseDict(answer, selector_pb2.SelectModelsResponse())
