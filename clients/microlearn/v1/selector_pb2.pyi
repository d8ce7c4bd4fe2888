from microlearn.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EstimatorFamily(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESTIMATOR_FAMILY_UNSPECIFIED: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_GRADIENT_BOOSTING: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_TREE_ENSEMBLE: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_DECISION_TREE: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_LINEAR: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_NEAREST_NEIGHBORS: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_SVM: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_NAIVE_BAYES: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_NEURAL_NETWORK: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_CLUSTERING: _ClassVar[EstimatorFamily]
    ESTIMATOR_FAMILY_BASELINE: _ClassVar[EstimatorFamily]

class SelectionWarningCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTION_WARNING_CODE_UNSPECIFIED: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_CLASS_IMBALANCE: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_RARE_CLASSES: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_TARGET_MISSING_VALUES: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_FEW_ROWS: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_POSSIBLE_TARGET_LEAKAGE: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_ID_COLUMNS_IGNORED: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_CONSTANT_COLUMNS_IGNORED: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_HIGH_MISSING_FRACTION: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_HIGH_CARDINALITY_CATEGORICAL: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_DUPLICATE_ROWS: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_TEXT_COLUMNS: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_LARGE_DATASET: _ClassVar[SelectionWarningCode]
    SELECTION_WARNING_CODE_GPU_UNAVAILABLE: _ClassVar[SelectionWarningCode]
ESTIMATOR_FAMILY_UNSPECIFIED: EstimatorFamily
ESTIMATOR_FAMILY_GRADIENT_BOOSTING: EstimatorFamily
ESTIMATOR_FAMILY_TREE_ENSEMBLE: EstimatorFamily
ESTIMATOR_FAMILY_DECISION_TREE: EstimatorFamily
ESTIMATOR_FAMILY_LINEAR: EstimatorFamily
ESTIMATOR_FAMILY_NEAREST_NEIGHBORS: EstimatorFamily
ESTIMATOR_FAMILY_SVM: EstimatorFamily
ESTIMATOR_FAMILY_NAIVE_BAYES: EstimatorFamily
ESTIMATOR_FAMILY_NEURAL_NETWORK: EstimatorFamily
ESTIMATOR_FAMILY_CLUSTERING: EstimatorFamily
ESTIMATOR_FAMILY_BASELINE: EstimatorFamily
SELECTION_WARNING_CODE_UNSPECIFIED: SelectionWarningCode
SELECTION_WARNING_CODE_CLASS_IMBALANCE: SelectionWarningCode
SELECTION_WARNING_CODE_RARE_CLASSES: SelectionWarningCode
SELECTION_WARNING_CODE_TARGET_MISSING_VALUES: SelectionWarningCode
SELECTION_WARNING_CODE_FEW_ROWS: SelectionWarningCode
SELECTION_WARNING_CODE_POSSIBLE_TARGET_LEAKAGE: SelectionWarningCode
SELECTION_WARNING_CODE_ID_COLUMNS_IGNORED: SelectionWarningCode
SELECTION_WARNING_CODE_CONSTANT_COLUMNS_IGNORED: SelectionWarningCode
SELECTION_WARNING_CODE_HIGH_MISSING_FRACTION: SelectionWarningCode
SELECTION_WARNING_CODE_HIGH_CARDINALITY_CATEGORICAL: SelectionWarningCode
SELECTION_WARNING_CODE_DUPLICATE_ROWS: SelectionWarningCode
SELECTION_WARNING_CODE_TEXT_COLUMNS: SelectionWarningCode
SELECTION_WARNING_CODE_LARGE_DATASET: SelectionWarningCode
SELECTION_WARNING_CODE_GPU_UNAVAILABLE: SelectionWarningCode

class Estimator(_message.Message):
    __slots__ = ("name", "estimator_id", "display_name", "description", "family", "supported_tasks", "default_hyperparameters", "search_space", "relative_cost", "supports_iteration_progress", "supports_early_stopping", "supports_gpu", "supports_class_weights", "handles_missing_values", "handles_categorical", "model_format", "library", "available", "unavailable_reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_TASKS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SPACE_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_COST_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_ITERATION_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_GPU_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_CLASS_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    HANDLES_MISSING_VALUES_FIELD_NUMBER: _ClassVar[int]
    HANDLES_CATEGORICAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FORMAT_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    estimator_id: str
    display_name: str
    description: str
    family: EstimatorFamily
    supported_tasks: _containers.RepeatedScalarFieldContainer[_common_pb2.TaskType]
    default_hyperparameters: _common_pb2.Hyperparameters
    search_space: _common_pb2.SearchSpace
    relative_cost: float
    supports_iteration_progress: bool
    supports_early_stopping: bool
    supports_gpu: bool
    supports_class_weights: bool
    handles_missing_values: bool
    handles_categorical: bool
    model_format: _common_pb2.ModelFormat
    library: str
    available: bool
    unavailable_reason: str
    def __init__(self, name: _Optional[str] = ..., estimator_id: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., family: _Optional[_Union[EstimatorFamily, str]] = ..., supported_tasks: _Optional[_Iterable[_Union[_common_pb2.TaskType, str]]] = ..., default_hyperparameters: _Optional[_Union[_common_pb2.Hyperparameters, _Mapping]] = ..., search_space: _Optional[_Union[_common_pb2.SearchSpace, _Mapping]] = ..., relative_cost: _Optional[float] = ..., supports_iteration_progress: _Optional[bool] = ..., supports_early_stopping: _Optional[bool] = ..., supports_gpu: _Optional[bool] = ..., supports_class_weights: _Optional[bool] = ..., handles_missing_values: _Optional[bool] = ..., handles_categorical: _Optional[bool] = ..., model_format: _Optional[_Union[_common_pb2.ModelFormat, str]] = ..., library: _Optional[str] = ..., available: _Optional[bool] = ..., unavailable_reason: _Optional[str] = ...) -> None: ...

class SelectModelsRequest(_message.Message):
    __slots__ = ("dataset", "target", "task", "max_candidates", "time_budget_seconds", "use_gpu", "include_estimators", "exclude_estimators", "ignore_columns")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TIME_BUDGET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    USE_GPU_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ESTIMATORS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ESTIMATORS_FIELD_NUMBER: _ClassVar[int]
    IGNORE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    target: str
    task: _common_pb2.TaskType
    max_candidates: int
    time_budget_seconds: int
    use_gpu: bool
    include_estimators: _containers.RepeatedScalarFieldContainer[str]
    exclude_estimators: _containers.RepeatedScalarFieldContainer[str]
    ignore_columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., target: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., max_candidates: _Optional[int] = ..., time_budget_seconds: _Optional[int] = ..., use_gpu: _Optional[bool] = ..., include_estimators: _Optional[_Iterable[str]] = ..., exclude_estimators: _Optional[_Iterable[str]] = ..., ignore_columns: _Optional[_Iterable[str]] = ...) -> None: ...

class SelectModelsResponse(_message.Message):
    __slots__ = ("dataset", "target", "task", "explanation", "recommended_metric", "metric_direction", "recommended_validation", "candidates", "excluded", "feature_columns", "warnings")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_METRIC_FIELD_NUMBER: _ClassVar[int]
    METRIC_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_VALIDATION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    FEATURE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    target: str
    task: _common_pb2.TaskType
    explanation: TaskExplanation
    recommended_metric: str
    metric_direction: _common_pb2.OptimizationDirection
    recommended_validation: _common_pb2.ValidationStrategy
    candidates: _containers.RepeatedCompositeFieldContainer[EstimatorCandidate]
    excluded: _containers.RepeatedCompositeFieldContainer[ExcludedEstimator]
    feature_columns: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedCompositeFieldContainer[SelectionWarning]
    def __init__(self, dataset: _Optional[str] = ..., target: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., explanation: _Optional[_Union[TaskExplanation, _Mapping]] = ..., recommended_metric: _Optional[str] = ..., metric_direction: _Optional[_Union[_common_pb2.OptimizationDirection, str]] = ..., recommended_validation: _Optional[_Union[_common_pb2.ValidationStrategy, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[EstimatorCandidate, _Mapping]]] = ..., excluded: _Optional[_Iterable[_Union[ExcludedEstimator, _Mapping]]] = ..., feature_columns: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[_Union[SelectionWarning, _Mapping]]] = ...) -> None: ...

class TaskExplanation(_message.Message):
    __slots__ = ("summary", "confidence", "alternative_tasks", "target_type", "target_physical_type", "target_distinct_count", "target_missing_count", "row_count", "class_distribution", "imbalance_ratio", "minority_class")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_TASKS_FIELD_NUMBER: _ClassVar[int]
    TARGET_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_PHYSICAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_DISTINCT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TARGET_MISSING_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLASS_DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    IMBALANCE_RATIO_FIELD_NUMBER: _ClassVar[int]
    MINORITY_CLASS_FIELD_NUMBER: _ClassVar[int]
    summary: str
    confidence: float
    alternative_tasks: _containers.RepeatedScalarFieldContainer[_common_pb2.TaskType]
    target_type: _common_pb2.ColumnType
    target_physical_type: str
    target_distinct_count: int
    target_missing_count: int
    row_count: int
    class_distribution: _containers.RepeatedCompositeFieldContainer[ClassCount]
    imbalance_ratio: float
    minority_class: str
    def __init__(self, summary: _Optional[str] = ..., confidence: _Optional[float] = ..., alternative_tasks: _Optional[_Iterable[_Union[_common_pb2.TaskType, str]]] = ..., target_type: _Optional[_Union[_common_pb2.ColumnType, str]] = ..., target_physical_type: _Optional[str] = ..., target_distinct_count: _Optional[int] = ..., target_missing_count: _Optional[int] = ..., row_count: _Optional[int] = ..., class_distribution: _Optional[_Iterable[_Union[ClassCount, _Mapping]]] = ..., imbalance_ratio: _Optional[float] = ..., minority_class: _Optional[str] = ...) -> None: ...

class ClassCount(_message.Message):
    __slots__ = ("label", "count", "fraction")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    label: str
    count: int
    fraction: float
    def __init__(self, label: _Optional[str] = ..., count: _Optional[int] = ..., fraction: _Optional[float] = ...) -> None: ...

class EstimatorCandidate(_message.Message):
    __slots__ = ("estimator", "display_name", "family", "rank", "score", "reason", "default_hyperparameters", "search_space", "relative_cost", "estimated_fit_seconds", "uses_gpu", "supports_early_stopping", "supports_iteration_progress")
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SPACE_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_COST_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_FIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    USES_GPU_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_ITERATION_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    estimator: str
    display_name: str
    family: EstimatorFamily
    rank: int
    score: float
    reason: str
    default_hyperparameters: _common_pb2.Hyperparameters
    search_space: _common_pb2.SearchSpace
    relative_cost: float
    estimated_fit_seconds: float
    uses_gpu: bool
    supports_early_stopping: bool
    supports_iteration_progress: bool
    def __init__(self, estimator: _Optional[str] = ..., display_name: _Optional[str] = ..., family: _Optional[_Union[EstimatorFamily, str]] = ..., rank: _Optional[int] = ..., score: _Optional[float] = ..., reason: _Optional[str] = ..., default_hyperparameters: _Optional[_Union[_common_pb2.Hyperparameters, _Mapping]] = ..., search_space: _Optional[_Union[_common_pb2.SearchSpace, _Mapping]] = ..., relative_cost: _Optional[float] = ..., estimated_fit_seconds: _Optional[float] = ..., uses_gpu: _Optional[bool] = ..., supports_early_stopping: _Optional[bool] = ..., supports_iteration_progress: _Optional[bool] = ...) -> None: ...

class ExcludedEstimator(_message.Message):
    __slots__ = ("estimator", "reason")
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    estimator: str
    reason: str
    def __init__(self, estimator: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SelectionWarning(_message.Message):
    __slots__ = ("code", "level", "message", "columns", "suggestion")
    CODE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SUGGESTION_FIELD_NUMBER: _ClassVar[int]
    code: SelectionWarningCode
    level: _common_pb2.LogLevel
    message: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    suggestion: str
    def __init__(self, code: _Optional[_Union[SelectionWarningCode, str]] = ..., level: _Optional[_Union[_common_pb2.LogLevel, str]] = ..., message: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., suggestion: _Optional[str] = ...) -> None: ...

class ListEstimatorsRequest(_message.Message):
    __slots__ = ("task", "include_unavailable", "page_size", "page_token")
    TASK_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskType
    include_unavailable: bool
    page_size: int
    page_token: str
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., include_unavailable: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEstimatorsResponse(_message.Message):
    __slots__ = ("estimators", "next_page_token")
    ESTIMATORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    estimators: _containers.RepeatedCompositeFieldContainer[Estimator]
    next_page_token: str
    def __init__(self, estimators: _Optional[_Iterable[_Union[Estimator, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetEstimatorRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetEstimatorResponse(_message.Message):
    __slots__ = ("estimator",)
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    estimator: Estimator
    def __init__(self, estimator: _Optional[_Union[Estimator, _Mapping]] = ...) -> None: ...
