import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from microlearn.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingSpec(_message.Message):
    __slots__ = ("dataset", "target", "task", "estimator", "hyperparameters", "validation", "metric", "max_iterations", "early_stopping", "seed", "use_gpu", "balance_classes", "feature_columns", "ignore_columns", "experiment_name", "labels", "timeout_seconds", "permutation_importance")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    USE_GPU_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CLASSES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    IGNORE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PERMUTATION_IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    target: str
    task: _common_pb2.TaskType
    estimator: str
    hyperparameters: _common_pb2.Hyperparameters
    validation: _common_pb2.ValidationStrategy
    metric: str
    max_iterations: int
    early_stopping: _common_pb2.EarlyStopping
    seed: int
    use_gpu: bool
    balance_classes: bool
    feature_columns: _containers.RepeatedScalarFieldContainer[str]
    ignore_columns: _containers.RepeatedScalarFieldContainer[str]
    experiment_name: str
    labels: _containers.ScalarMap[str, str]
    timeout_seconds: int
    permutation_importance: bool
    def __init__(self, dataset: _Optional[str] = ..., target: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., estimator: _Optional[str] = ..., hyperparameters: _Optional[_Union[_common_pb2.Hyperparameters, _Mapping]] = ..., validation: _Optional[_Union[_common_pb2.ValidationStrategy, _Mapping]] = ..., metric: _Optional[str] = ..., max_iterations: _Optional[int] = ..., early_stopping: _Optional[_Union[_common_pb2.EarlyStopping, _Mapping]] = ..., seed: _Optional[int] = ..., use_gpu: _Optional[bool] = ..., balance_classes: _Optional[bool] = ..., feature_columns: _Optional[_Iterable[str]] = ..., ignore_columns: _Optional[_Iterable[str]] = ..., experiment_name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., timeout_seconds: _Optional[int] = ..., permutation_importance: _Optional[bool] = ...) -> None: ...

class StartTrainingRequest(_message.Message):
    __slots__ = ("spec", "request_id")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    spec: TrainingSpec
    request_id: str
    def __init__(self, spec: _Optional[_Union[TrainingSpec, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartTrainingResponse(_message.Message):
    __slots__ = ("job", "spec")
    JOB_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    spec: TrainingSpec
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ..., spec: _Optional[_Union[TrainingSpec, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job", "training_spec")
    JOB_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SPEC_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    training_spec: TrainingSpec
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ..., training_spec: _Optional[_Union[TrainingSpec, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "states", "kind", "dataset", "estimator", "study", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[_common_pb2.JobState]
    kind: _common_pb2.JobKind
    dataset: str
    estimator: str
    study: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_common_pb2.JobState, str]]] = ..., kind: _Optional[_Union[_common_pb2.JobKind, str]] = ..., dataset: _Optional[str] = ..., estimator: _Optional[str] = ..., study: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token", "total_size", "training_specs")
    class TrainingSpecsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: TrainingSpec
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[TrainingSpec, _Mapping]] = ...) -> None: ...
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SPECS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Job]
    next_page_token: str
    total_size: int
    training_specs: _containers.MessageMap[str, TrainingSpec]
    def __init__(self, jobs: _Optional[_Iterable[_Union[_common_pb2.Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ..., training_specs: _Optional[_Mapping[str, TrainingSpec]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class StreamJobEventsRequest(_message.Message):
    __slots__ = ("name", "after_sequence", "replay_only", "min_log_level")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_ONLY_FIELD_NUMBER: _ClassVar[int]
    MIN_LOG_LEVEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_sequence: str
    replay_only: bool
    min_log_level: _common_pb2.LogLevel
    def __init__(self, name: _Optional[str] = ..., after_sequence: _Optional[str] = ..., replay_only: _Optional[bool] = ..., min_log_level: _Optional[_Union[_common_pb2.LogLevel, str]] = ...) -> None: ...

class StreamJobEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _common_pb2.JobEvent
    def __init__(self, event: _Optional[_Union[_common_pb2.JobEvent, _Mapping]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "id", "job", "dataset", "target", "estimator", "task", "hyperparameters", "metric", "metrics", "metrics_std", "train_metrics", "feature_schema", "class_labels", "format", "size_bytes", "sha256", "create_time", "mlflow_run_id", "iterations", "best_iteration", "training_row_count", "fit_time_seconds", "device", "study", "trial_number", "ensemble_members", "labels", "diagnostics", "feature_importance", "importance_metric", "evaluation")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetricsStdEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class TrainMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    METRICS_STD_FIELD_NUMBER: _ClassVar[int]
    TRAIN_METRICS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CLASS_LABELS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    MLFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    BEST_ITERATION_FIELD_NUMBER: _ClassVar[int]
    TRAINING_ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIT_TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    TRIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_METRIC_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    job: str
    dataset: str
    target: str
    estimator: str
    task: _common_pb2.TaskType
    hyperparameters: _common_pb2.Hyperparameters
    metric: str
    metrics: _containers.ScalarMap[str, float]
    metrics_std: _containers.ScalarMap[str, float]
    train_metrics: _containers.ScalarMap[str, float]
    feature_schema: _common_pb2.FeatureSchema
    class_labels: _containers.RepeatedScalarFieldContainer[str]
    format: _common_pb2.ModelFormat
    size_bytes: int
    sha256: str
    create_time: _timestamp_pb2.Timestamp
    mlflow_run_id: str
    iterations: int
    best_iteration: int
    training_row_count: int
    fit_time_seconds: float
    device: str
    study: str
    trial_number: int
    ensemble_members: _containers.RepeatedCompositeFieldContainer[EnsembleMember]
    labels: _containers.ScalarMap[str, str]
    diagnostics: _struct_pb2.Struct
    feature_importance: _containers.RepeatedCompositeFieldContainer[FeatureImportance]
    importance_metric: str
    evaluation: ModelEvaluation
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., job: _Optional[str] = ..., dataset: _Optional[str] = ..., target: _Optional[str] = ..., estimator: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., hyperparameters: _Optional[_Union[_common_pb2.Hyperparameters, _Mapping]] = ..., metric: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., metrics_std: _Optional[_Mapping[str, float]] = ..., train_metrics: _Optional[_Mapping[str, float]] = ..., feature_schema: _Optional[_Union[_common_pb2.FeatureSchema, _Mapping]] = ..., class_labels: _Optional[_Iterable[str]] = ..., format: _Optional[_Union[_common_pb2.ModelFormat, str]] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mlflow_run_id: _Optional[str] = ..., iterations: _Optional[int] = ..., best_iteration: _Optional[int] = ..., training_row_count: _Optional[int] = ..., fit_time_seconds: _Optional[float] = ..., device: _Optional[str] = ..., study: _Optional[str] = ..., trial_number: _Optional[int] = ..., ensemble_members: _Optional[_Iterable[_Union[EnsembleMember, _Mapping]]] = ..., labels: _Optional[_Mapping[str, str]] = ..., diagnostics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., feature_importance: _Optional[_Iterable[_Union[FeatureImportance, _Mapping]]] = ..., importance_metric: _Optional[str] = ..., evaluation: _Optional[_Union[ModelEvaluation, _Mapping]] = ...) -> None: ...

class FeatureImportance(_message.Message):
    __slots__ = ("feature", "importance", "importance_std", "repeats")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_STD_FIELD_NUMBER: _ClassVar[int]
    REPEATS_FIELD_NUMBER: _ClassVar[int]
    feature: str
    importance: float
    importance_std: float
    repeats: int
    def __init__(self, feature: _Optional[str] = ..., importance: _Optional[float] = ..., importance_std: _Optional[float] = ..., repeats: _Optional[int] = ...) -> None: ...

class ModelEvaluation(_message.Message):
    __slots__ = ("job", "dataset", "rows", "row_count", "metrics", "evaluate_time")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_TIME_FIELD_NUMBER: _ClassVar[int]
    job: str
    dataset: str
    rows: str
    row_count: int
    metrics: _containers.ScalarMap[str, float]
    evaluate_time: _timestamp_pb2.Timestamp
    def __init__(self, job: _Optional[str] = ..., dataset: _Optional[str] = ..., rows: _Optional[str] = ..., row_count: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., evaluate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EvaluateModelRequest(_message.Message):
    __slots__ = ("model", "dataset", "metric", "request_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: str
    metric: str
    request_id: str
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., metric: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class EvaluateModelResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ...) -> None: ...

class EnsembleMember(_message.Message):
    __slots__ = ("model", "weight")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    model: str
    weight: float
    def __init__(self, model: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "dataset", "estimator", "task", "study", "labels", "order_by")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    dataset: str
    estimator: str
    task: _common_pb2.TaskType
    study: str
    labels: _containers.ScalarMap[str, str]
    order_by: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., dataset: _Optional[str] = ..., estimator: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., study: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token", "total_size")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_page_token: str
    total_size: int
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DownloadModelRequest(_message.Message):
    __slots__ = ("name", "offset")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    name: str
    offset: int
    def __init__(self, name: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class DownloadModelMetadata(_message.Message):
    __slots__ = ("model", "filename", "content_type", "size_bytes", "sha256", "offset")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    model: Model
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    offset: int
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ..., filename: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class DownloadModelResponse(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: DownloadModelMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[DownloadModelMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class CompareModelsRequest(_message.Message):
    __slots__ = ("models", "metrics")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, models: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Iterable[str]] = ...) -> None: ...

class CompareModelsResponse(_message.Message):
    __slots__ = ("task", "metrics", "rows", "best")
    class BestEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskType
    metrics: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[ModelComparisonRow]
    best: _containers.ScalarMap[str, str]
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., metrics: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[ModelComparisonRow, _Mapping]]] = ..., best: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ModelComparisonRow(_message.Message):
    __slots__ = ("model", "estimator", "dataset", "metrics", "metrics_std", "fit_time_seconds", "size_bytes", "study", "rank", "top_features")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetricsStdEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    METRICS_STD_FIELD_NUMBER: _ClassVar[int]
    FIT_TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    TOP_FEATURES_FIELD_NUMBER: _ClassVar[int]
    model: str
    estimator: str
    dataset: str
    metrics: _containers.ScalarMap[str, float]
    metrics_std: _containers.ScalarMap[str, float]
    fit_time_seconds: float
    size_bytes: int
    study: str
    rank: int
    top_features: _containers.RepeatedCompositeFieldContainer[FeatureImportance]
    def __init__(self, model: _Optional[str] = ..., estimator: _Optional[str] = ..., dataset: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., metrics_std: _Optional[_Mapping[str, float]] = ..., fit_time_seconds: _Optional[float] = ..., size_bytes: _Optional[int] = ..., study: _Optional[str] = ..., rank: _Optional[int] = ..., top_features: _Optional[_Iterable[_Union[FeatureImportance, _Mapping]]] = ...) -> None: ...
