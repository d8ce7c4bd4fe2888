"""TrainerService over gRPC: protobuf ↔ domain translation only (the use cases are in `training.py`)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from microlearn.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc
from microlearn_grpc import errors
from microlearn_grpc.services.enums import JOB_STATE_NAMES, JOB_STATES, TASK_NAMES, TASK_TYPES
from microlearn_grpc.services.grpc_errors import translate_errors
from microlearn_grpc.services.training import TrainingService
from microlearn_grpc.storage.jobs_repo import KINDS, JobRecord
from microlearn_grpc.storage.models_repo import ModelRecord

_KINDS = {"training": common_pb2.JOB_KIND_TRAINING, "trial": common_pb2.JOB_KIND_TRIAL,
          "batch_prediction": common_pb2.JOB_KIND_BATCH_PREDICTION, "evaluation": common_pb2.JOB_KIND_EVALUATION, "study": common_pb2.JOB_KIND_STUDY,
          "pipeline": common_pb2.JOB_KIND_PIPELINE}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_COLUMN_TYPES = {"numeric": common_pb2.COLUMN_TYPE_NUMERIC, "categorical": common_pb2.COLUMN_TYPE_CATEGORICAL,
                 "boolean": common_pb2.COLUMN_TYPE_BOOLEAN, "datetime": common_pb2.COLUMN_TYPE_DATETIME,
                 "text": common_pb2.COLUMN_TYPE_TEXT, "id": common_pb2.COLUMN_TYPE_ID}
_FORMATS = {"xgboost": common_pb2.MODEL_FORMAT_XGBOOST, "lightgbm": common_pb2.MODEL_FORMAT_LIGHTGBM,
            "torch_state_dict": common_pb2.MODEL_FORMAT_TORCH_STATE_DICT,
            "sklearn_pipeline": common_pb2.MODEL_FORMAT_SKLEARN_PIPELINE, "ensemble": common_pb2.MODEL_FORMAT_ENSEMBLE}
_CONTENT_TYPE = "application/x-tar"
assert set(_KINDS) == set(KINDS)


def timestamp(value) -> timestamp_pb2.Timestamp | None:
    """A datetime as a protobuf Timestamp (None stays None: the field is left unset)."""
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def _value(value: Any) -> struct_pb2.Value:
    return json_format.ParseDict(value, struct_pb2.Value())


def validation_from_proto(v: common_pb2.ValidationStrategy) -> dict[str, Any]:
    validation: dict[str, Any] = {}
    method = v.WhichOneof("method")
    if method == "holdout":
        validation = {"method": "holdout", "fraction": v.holdout.fraction}
    elif method == "k_fold":
        validation = {"method": "kfold", "folds": v.k_fold.folds}
    elif method == "validation_dataset":
        validation = {"method": "validation_dataset", "validation_dataset": v.validation_dataset}
    validation.update(group_column=v.group_column, time_column=v.time_column,
                      stratify=v.stratify if v.HasField("stratify") else None)
    return validation


def validation_to_proto(validation: dict[str, Any], message: common_pb2.ValidationStrategy) -> None:
    if validation.get("validation_dataset"):
        message.validation_dataset = validation["validation_dataset"]
    elif validation.get("method") == "kfold":
        message.k_fold.folds = validation.get("folds", 5)
    else:
        message.holdout.fraction = validation.get("fraction", 0.2)
    if validation.get("stratify") is not None:
        message.stratify = validation["stratify"]
    message.group_column = validation.get("group_column", "")
    message.time_column = validation.get("time_column", "")


def spec_from_proto(spec: trainer_pb2.TrainingSpec) -> dict[str, Any]:
    """A TrainingSpec as the plain dict `TrainingService.start` takes (unset fields as None/empty)."""
    if spec.task and spec.task not in TASK_NAMES:
        raise errors.InvalidArgument(f"spec.task: {spec.task} is not a known TaskType")
    validation = validation_from_proto(spec.validation) if spec.HasField("validation") else {}
    return {
        "dataset": spec.dataset, "target": spec.target, "task": TASK_NAMES.get(spec.task, ""),
        "estimator": spec.estimator,
        "hyperparameters": {k: json_format.MessageToDict(v) for k, v in spec.hyperparameters.values.items()},
        "validation": validation, "metric": spec.metric, "max_iterations": spec.max_iterations,
        "early_stopping": ({"enabled": spec.early_stopping.enabled, "patience": spec.early_stopping.patience,
                            "min_delta": spec.early_stopping.min_delta} if spec.HasField("early_stopping") else None),
        "seed": spec.seed if spec.HasField("seed") else None,
        "use_gpu": spec.use_gpu if spec.HasField("use_gpu") else None,
        "balance_classes": spec.balance_classes, "feature_columns": list(spec.feature_columns),
        "ignore_columns": list(spec.ignore_columns), "experiment_name": spec.experiment_name,
        "labels": dict(spec.labels), "timeout_seconds": spec.timeout_seconds,
        "permutation_importance": spec.permutation_importance,
    }


def spec_to_proto(spec: dict[str, Any]) -> trainer_pb2.TrainingSpec:
    message = trainer_pb2.TrainingSpec(
        dataset=spec["dataset"], target=spec.get("target", ""), task=TASK_TYPES.get(spec.get("task", ""), 0),
        estimator=spec["estimator"], metric=spec.get("metric", ""), max_iterations=spec.get("max_iterations", 0),
        seed=spec.get("seed", 0), balance_classes=spec.get("balance_classes", False),
        feature_columns=spec.get("feature_columns", []), ignore_columns=spec.get("ignore_columns", []),
        experiment_name=spec.get("experiment_name", ""), labels=spec.get("labels", {}),
        timeout_seconds=spec.get("timeout_seconds", 0),
        permutation_importance=bool(spec.get("permutation_importance", False)))
    for key, value in (spec.get("hyperparameters") or {}).items():
        message.hyperparameters.values[key].CopyFrom(_value(value))
    validation_to_proto(spec.get("validation") or {}, message.validation)
    early = spec.get("early_stopping")
    if early:
        message.early_stopping.enabled = True
        message.early_stopping.patience = early["patience"]
        message.early_stopping.min_delta = early["min_delta"]
    if spec.get("use_gpu") is not None:
        message.use_gpu = spec["use_gpu"]
    return message


def job_to_proto(job: JobRecord) -> common_pb2.Job:
    message = common_pb2.Job(
        name=job.resource_name, job_id=job.id, kind=_KINDS[job.kind], state=JOB_STATES[job.state],
        progress=job.progress, error=job.error or "", attempt=job.attempt, max_attempts=job.max_attempts,
        worker_id=job.worker_id or "", device=job.device or "", metrics=job.metrics, outputs=job.outputs,
        mlflow_run_id=job.mlflow_run_id or "", labels=job.labels)
    for field, value in (("create_time", job.created_at), ("start_time", job.started_at),
                         ("end_time", job.ended_at), ("heartbeat_time", job.heartbeat_at)):
        if value is not None:
            getattr(message, field).FromDatetime(value)
    return message


def model_to_proto(model: ModelRecord, *, with_schema: bool = True) -> trainer_pb2.Model:
    message = trainer_pb2.Model(
        name=model.resource_name, id=model.id, job=f"jobs/{model.job_id}" if model.job_id else "",
        dataset=f"datasets/{model.dataset_id}", target=model.target, estimator=model.estimator,
        task=TASK_TYPES[model.task], metric=model.metric, metrics=model.metrics, metrics_std=model.metrics_std,
        train_metrics=model.train_metrics, class_labels=model.class_labels,
        format=_FORMATS.get(model.format, common_pb2.MODEL_FORMAT_UNSPECIFIED), size_bytes=model.size_bytes,
        sha256=model.sha256, create_time=timestamp(model.created_at), mlflow_run_id=model.mlflow_run_id or "",
        iterations=model.iterations, best_iteration=model.best_iteration,
        training_row_count=model.training_row_count, fit_time_seconds=model.fit_time_seconds, device=model.device,
        study=f"studies/{model.study_id}" if model.study_id else "", trial_number=model.trial_number,
        labels=model.labels)
    for key, value in model.hyperparameters.items():
        message.hyperparameters.values[key].CopyFrom(_value(value))
    for member in model.lineage.get("members") or []:  # an ensemble's members
        message.ensemble_members.add(model=member["model"], weight=member["weight"])
    importance = model.diagnostics.get("permutation_importance") or {}
    message.importance_metric = importance.get("metric", "")
    message.feature_importance.extend(importance_to_proto(importance))
    evaluation = model.diagnostics.get("evaluation")
    if evaluation:
        message.evaluation.CopyFrom(trainer_pb2.ModelEvaluation(
            job=evaluation["job"], dataset=evaluation["dataset"], rows=evaluation["rows"],
            row_count=evaluation["row_count"], metrics=evaluation["metrics"]))
        message.evaluation.evaluate_time.FromJsonString(evaluation["evaluate_time"].replace("+00:00", "Z"))
    if with_schema:  # the heavy parts: GetModel only
        message.diagnostics.update(model.diagnostics)
        for column in model.feature_schema:
            message.feature_schema.columns.add(
                name=column["name"], type=_COLUMN_TYPES.get(column.get("type", ""), 0),
                physical_type=column.get("physical_type", ""), categories=column.get("categories", []))
    return message


def importance_to_proto(importance: dict[str, Any], limit: int | None = None) -> list[trainer_pb2.FeatureImportance]:
    return [trainer_pb2.FeatureImportance(feature=f["name"], importance=f["mean"], importance_std=f["std"],
                                          repeats=f["repeats"]) for f in (importance.get("features") or [])[:limit]]


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, service: TrainingService) -> None:
        self._service = service

    @translate_errors
    async def StartTraining(self, request, context):
        if not request.HasField("spec"):
            raise errors.InvalidArgument("spec is required: what to train (dataset, target, estimator, …)")
        job, _ = await self._service.start(spec_from_proto(request.spec), request.request_id)
        return trainer_pb2.StartTrainingResponse(job=job_to_proto(job), spec=spec_to_proto(job.spec))

    @translate_errors
    async def GetJob(self, request, context):
        job = await self._service.get_job(request.name)
        response = trainer_pb2.GetJobResponse(job=job_to_proto(job))
        if job.kind in ("training", "trial"):
            response.training_spec.CopyFrom(spec_to_proto(job.spec))
        return response

    @translate_errors
    async def ListJobs(self, request, context):
        states = []
        for state in request.states:
            if state not in JOB_STATE_NAMES:
                raise errors.InvalidArgument(f"states: {state} is not a known JobState")
            states.append(JOB_STATE_NAMES[state])
        if request.kind and request.kind not in _KIND_NAMES:
            raise errors.InvalidArgument(f"kind: {request.kind} is not a known JobKind")
        page = await self._service.list_jobs(
            page_size=request.page_size, page_token=request.page_token, states=states,
            kind=_KIND_NAMES.get(request.kind), dataset=request.dataset, estimator=request.estimator,
            study=request.study, labels=dict(request.labels))
        response = trainer_pb2.ListJobsResponse(jobs=[job_to_proto(j) for j in page.items],
                                                next_page_token=page.next_page_token, total_size=page.total_size)
        for job in page.items:
            if job.kind in ("training", "trial"):
                response.training_specs[job.resource_name].CopyFrom(spec_to_proto(job.spec))
        return response

    @translate_errors
    async def CancelJob(self, request, context):
        job = await self._service.cancel(request.name, request.reason)
        return trainer_pb2.CancelJobResponse(job=job_to_proto(job))

    @translate_errors
    async def StreamJobEvents(self, request, context):
        if request.min_log_level and request.min_log_level not in common_pb2.LogLevel.values():
            raise errors.InvalidArgument(f"min_log_level: {request.min_log_level} is not a known LogLevel")
        async for event in self._service.events(request.name, after=request.after_sequence,
                                                replay_only=request.replay_only,
                                                min_log_level=request.min_log_level):
            yield trainer_pb2.StreamJobEventsResponse(event=event)

    @translate_errors
    async def ListModels(self, request, context):
        if request.task and request.task not in TASK_NAMES:
            raise errors.InvalidArgument(f"task: {request.task} is not a known TaskType")
        page = await self._service.list_models(
            page_size=request.page_size, page_token=request.page_token, dataset=request.dataset,
            estimator=request.estimator, task=TASK_NAMES.get(request.task), study=request.study,
            labels=dict(request.labels), order_by=request.order_by)
        return trainer_pb2.ListModelsResponse(models=[model_to_proto(m, with_schema=False) for m in page.items],
                                              next_page_token=page.next_page_token, total_size=page.total_size)

    @translate_errors
    async def GetModel(self, request, context):
        return trainer_pb2.GetModelResponse(model=model_to_proto(await self._service.get_model(request.name)))

    @translate_errors
    async def DeleteModel(self, request, context):
        model = await self._service.delete_model(request.name)
        return trainer_pb2.DeleteModelResponse(name=model.resource_name)

    @translate_errors
    async def DownloadModel(self, request, context):
        model, chunks = await self._service.download(request.name, request.offset)
        yield trainer_pb2.DownloadModelResponse(metadata=trainer_pb2.DownloadModelMetadata(
            model=model_to_proto(model), filename=f"{model.id}.tar", content_type=_CONTENT_TYPE,
            size_bytes=model.size_bytes, sha256=model.sha256, offset=request.offset))
        async for block in chunks:
            yield trainer_pb2.DownloadModelResponse(chunk=block)

    @translate_errors
    async def CompareModels(self, request, context):
        table = await self._service.compare_models(list(request.models), list(request.metrics))
        columns = table["metrics"]
        return trainer_pb2.CompareModelsResponse(
            task=TASK_TYPES[table["task"]], metrics=columns, best=table["best"],
            rows=[trainer_pb2.ModelComparisonRow(
                model=m.resource_name, estimator=m.estimator, dataset=f"datasets/{m.dataset_id}",
                metrics={k: v for k, v in m.metrics.items() if k in columns},
                metrics_std={k: v for k, v in m.metrics_std.items() if k in columns},
                fit_time_seconds=m.fit_time_seconds, size_bytes=m.size_bytes,
                study=f"studies/{m.study_id}" if m.study_id else "", rank=table["ranks"].get(m.id, 0),
                top_features=importance_to_proto(m.diagnostics.get("permutation_importance") or {}, 5))
                for m in table["models"]])

    @translate_errors
    async def EvaluateModel(self, request, context):
        job = await self._service.evaluations.start(request.model, dataset=request.dataset, metric=request.metric,
                                                    request_id=request.request_id)
        return trainer_pb2.EvaluateModelResponse(job=job_to_proto(job))
