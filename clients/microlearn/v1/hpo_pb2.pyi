import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from microlearn.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StudyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STUDY_STATE_UNSPECIFIED: _ClassVar[StudyState]
    STUDY_STATE_PENDING: _ClassVar[StudyState]
    STUDY_STATE_RUNNING: _ClassVar[StudyState]
    STUDY_STATE_STOPPING: _ClassVar[StudyState]
    STUDY_STATE_SUCCEEDED: _ClassVar[StudyState]
    STUDY_STATE_FAILED: _ClassVar[StudyState]
    STUDY_STATE_CANCELLED: _ClassVar[StudyState]

class TrialState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_STATE_UNSPECIFIED: _ClassVar[TrialState]
    TRIAL_STATE_PENDING: _ClassVar[TrialState]
    TRIAL_STATE_RUNNING: _ClassVar[TrialState]
    TRIAL_STATE_COMPLETE: _ClassVar[TrialState]
    TRIAL_STATE_PRUNED: _ClassVar[TrialState]
    TRIAL_STATE_FAILED: _ClassVar[TrialState]
    TRIAL_STATE_CANCELLED: _ClassVar[TrialState]

class SamplerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLER_KIND_UNSPECIFIED: _ClassVar[SamplerKind]
    SAMPLER_KIND_TPE: _ClassVar[SamplerKind]
    SAMPLER_KIND_RANDOM: _ClassVar[SamplerKind]

class PrunerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRUNER_KIND_UNSPECIFIED: _ClassVar[PrunerKind]
    PRUNER_KIND_NONE: _ClassVar[PrunerKind]
    PRUNER_KIND_MEDIAN: _ClassVar[PrunerKind]
    PRUNER_KIND_HYPERBAND: _ClassVar[PrunerKind]
STUDY_STATE_UNSPECIFIED: StudyState
STUDY_STATE_PENDING: StudyState
STUDY_STATE_RUNNING: StudyState
STUDY_STATE_STOPPING: StudyState
STUDY_STATE_SUCCEEDED: StudyState
STUDY_STATE_FAILED: StudyState
STUDY_STATE_CANCELLED: StudyState
TRIAL_STATE_UNSPECIFIED: TrialState
TRIAL_STATE_PENDING: TrialState
TRIAL_STATE_RUNNING: TrialState
TRIAL_STATE_COMPLETE: TrialState
TRIAL_STATE_PRUNED: TrialState
TRIAL_STATE_FAILED: TrialState
TRIAL_STATE_CANCELLED: TrialState
SAMPLER_KIND_UNSPECIFIED: SamplerKind
SAMPLER_KIND_TPE: SamplerKind
SAMPLER_KIND_RANDOM: SamplerKind
PRUNER_KIND_UNSPECIFIED: PrunerKind
PRUNER_KIND_NONE: PrunerKind
PRUNER_KIND_MEDIAN: PrunerKind
PRUNER_KIND_HYPERBAND: PrunerKind

class StudyBudget(_message.Message):
    __slots__ = ("time_budget_seconds", "max_trials", "trial_timeout_seconds", "max_trials_without_improvement")
    TIME_BUDGET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TRIALS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TRIALS_WITHOUT_IMPROVEMENT_FIELD_NUMBER: _ClassVar[int]
    time_budget_seconds: int
    max_trials: int
    trial_timeout_seconds: int
    max_trials_without_improvement: int
    def __init__(self, time_budget_seconds: _Optional[int] = ..., max_trials: _Optional[int] = ..., trial_timeout_seconds: _Optional[int] = ..., max_trials_without_improvement: _Optional[int] = ...) -> None: ...

class StudySpec(_message.Message):
    __slots__ = ("display_name", "dataset", "target", "task", "candidates", "max_candidates", "metric", "direction", "budget", "parallelism", "validation", "seed", "ensemble", "ensemble_max_members", "refit", "sampler", "pruner", "search_spaces", "max_iterations", "early_stopping", "use_gpu", "balance_classes", "feature_columns", "ignore_columns", "experiment_name", "labels", "skip_evaluation")
    class SearchSpacesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.SearchSpace
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.SearchSpace, _Mapping]] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_MAX_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    REFIT_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_FIELD_NUMBER: _ClassVar[int]
    PRUNER_FIELD_NUMBER: _ClassVar[int]
    SEARCH_SPACES_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    USE_GPU_FIELD_NUMBER: _ClassVar[int]
    BALANCE_CLASSES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    IGNORE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SKIP_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    dataset: str
    target: str
    task: _common_pb2.TaskType
    candidates: _containers.RepeatedScalarFieldContainer[str]
    max_candidates: int
    metric: str
    direction: _common_pb2.OptimizationDirection
    budget: StudyBudget
    parallelism: int
    validation: _common_pb2.ValidationStrategy
    seed: int
    ensemble: bool
    ensemble_max_members: int
    refit: bool
    sampler: SamplerKind
    pruner: PrunerKind
    search_spaces: _containers.MessageMap[str, _common_pb2.SearchSpace]
    max_iterations: int
    early_stopping: _common_pb2.EarlyStopping
    use_gpu: bool
    balance_classes: bool
    feature_columns: _containers.RepeatedScalarFieldContainer[str]
    ignore_columns: _containers.RepeatedScalarFieldContainer[str]
    experiment_name: str
    labels: _containers.ScalarMap[str, str]
    skip_evaluation: bool
    def __init__(self, display_name: _Optional[str] = ..., dataset: _Optional[str] = ..., target: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., candidates: _Optional[_Iterable[str]] = ..., max_candidates: _Optional[int] = ..., metric: _Optional[str] = ..., direction: _Optional[_Union[_common_pb2.OptimizationDirection, str]] = ..., budget: _Optional[_Union[StudyBudget, _Mapping]] = ..., parallelism: _Optional[int] = ..., validation: _Optional[_Union[_common_pb2.ValidationStrategy, _Mapping]] = ..., seed: _Optional[int] = ..., ensemble: _Optional[bool] = ..., ensemble_max_members: _Optional[int] = ..., refit: _Optional[bool] = ..., sampler: _Optional[_Union[SamplerKind, str]] = ..., pruner: _Optional[_Union[PrunerKind, str]] = ..., search_spaces: _Optional[_Mapping[str, _common_pb2.SearchSpace]] = ..., max_iterations: _Optional[int] = ..., early_stopping: _Optional[_Union[_common_pb2.EarlyStopping, _Mapping]] = ..., use_gpu: _Optional[bool] = ..., balance_classes: _Optional[bool] = ..., feature_columns: _Optional[_Iterable[str]] = ..., ignore_columns: _Optional[_Iterable[str]] = ..., experiment_name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., skip_evaluation: _Optional[bool] = ...) -> None: ...

class Study(_message.Message):
    __slots__ = ("name", "id", "spec", "state", "error", "progress", "create_time", "start_time", "end_time", "trial_counts", "best_trial", "best_model", "ensemble_model", "ensemble_score", "leaderboard", "optuna_study_name", "mlflow_run_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TRIAL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    BEST_TRIAL_FIELD_NUMBER: _ClassVar[int]
    BEST_MODEL_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_MODEL_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_SCORE_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_FIELD_NUMBER: _ClassVar[int]
    OPTUNA_STUDY_NAME_FIELD_NUMBER: _ClassVar[int]
    MLFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    spec: StudySpec
    state: StudyState
    error: str
    progress: float
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    trial_counts: TrialCounts
    best_trial: Trial
    best_model: str
    ensemble_model: str
    ensemble_score: float
    leaderboard: _containers.RepeatedCompositeFieldContainer[Trial]
    optuna_study_name: str
    mlflow_run_id: str
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., spec: _Optional[_Union[StudySpec, _Mapping]] = ..., state: _Optional[_Union[StudyState, str]] = ..., error: _Optional[str] = ..., progress: _Optional[float] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trial_counts: _Optional[_Union[TrialCounts, _Mapping]] = ..., best_trial: _Optional[_Union[Trial, _Mapping]] = ..., best_model: _Optional[str] = ..., ensemble_model: _Optional[str] = ..., ensemble_score: _Optional[float] = ..., leaderboard: _Optional[_Iterable[_Union[Trial, _Mapping]]] = ..., optuna_study_name: _Optional[str] = ..., mlflow_run_id: _Optional[str] = ...) -> None: ...

class TrialCounts(_message.Message):
    __slots__ = ("pending", "running", "complete", "pruned", "failed", "cancelled")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    pending: int
    running: int
    complete: int
    pruned: int
    failed: int
    cancelled: int
    def __init__(self, pending: _Optional[int] = ..., running: _Optional[int] = ..., complete: _Optional[int] = ..., pruned: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ...) -> None: ...

class Trial(_message.Message):
    __slots__ = ("study", "number", "estimator", "params", "state", "score", "score_std", "metrics", "fit_time_seconds", "predict_time_seconds", "iterations", "pruned_step", "rank", "error", "job", "model", "device", "start_time", "end_time", "mlflow_run_id")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STUDY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SCORE_STD_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    FIT_TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREDICT_TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    PRUNED_STEP_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    MLFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    study: str
    number: int
    estimator: str
    params: _common_pb2.Hyperparameters
    state: TrialState
    score: float
    score_std: float
    metrics: _containers.ScalarMap[str, float]
    fit_time_seconds: float
    predict_time_seconds: float
    iterations: int
    pruned_step: int
    rank: int
    error: str
    job: str
    model: str
    device: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    mlflow_run_id: str
    def __init__(self, study: _Optional[str] = ..., number: _Optional[int] = ..., estimator: _Optional[str] = ..., params: _Optional[_Union[_common_pb2.Hyperparameters, _Mapping]] = ..., state: _Optional[_Union[TrialState, str]] = ..., score: _Optional[float] = ..., score_std: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., fit_time_seconds: _Optional[float] = ..., predict_time_seconds: _Optional[float] = ..., iterations: _Optional[int] = ..., pruned_step: _Optional[int] = ..., rank: _Optional[int] = ..., error: _Optional[str] = ..., job: _Optional[str] = ..., model: _Optional[str] = ..., device: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mlflow_run_id: _Optional[str] = ...) -> None: ...

class StartStudyRequest(_message.Message):
    __slots__ = ("spec", "request_id")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    spec: StudySpec
    request_id: str
    def __init__(self, spec: _Optional[_Union[StudySpec, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartStudyResponse(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: Study
    def __init__(self, study: _Optional[_Union[Study, _Mapping]] = ...) -> None: ...

class GetStudyRequest(_message.Message):
    __slots__ = ("name", "leaderboard_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    leaderboard_size: int
    def __init__(self, name: _Optional[str] = ..., leaderboard_size: _Optional[int] = ...) -> None: ...

class GetStudyResponse(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: Study
    def __init__(self, study: _Optional[_Union[Study, _Mapping]] = ...) -> None: ...

class ListStudiesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "states", "dataset", "labels")
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
    DATASET_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[StudyState]
    dataset: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[StudyState, str]]] = ..., dataset: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListStudiesResponse(_message.Message):
    __slots__ = ("studies", "next_page_token", "total_size")
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    studies: _containers.RepeatedCompositeFieldContainer[Study]
    next_page_token: str
    total_size: int
    def __init__(self, studies: _Optional[_Iterable[_Union[Study, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class ListTrialsRequest(_message.Message):
    __slots__ = ("study", "page_size", "page_token", "states", "estimator", "order_by")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    study: str
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[TrialState]
    estimator: str
    order_by: str
    def __init__(self, study: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[TrialState, str]]] = ..., estimator: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListTrialsResponse(_message.Message):
    __slots__ = ("trials", "next_page_token", "total_size")
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    trials: _containers.RepeatedCompositeFieldContainer[Trial]
    next_page_token: str
    total_size: int
    def __init__(self, trials: _Optional[_Iterable[_Union[Trial, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class StreamStudyEventsRequest(_message.Message):
    __slots__ = ("name", "after_sequence", "replay_only", "min_log_level", "exclude_trial_reports")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_ONLY_FIELD_NUMBER: _ClassVar[int]
    MIN_LOG_LEVEL_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_TRIAL_REPORTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_sequence: str
    replay_only: bool
    min_log_level: _common_pb2.LogLevel
    exclude_trial_reports: bool
    def __init__(self, name: _Optional[str] = ..., after_sequence: _Optional[str] = ..., replay_only: _Optional[bool] = ..., min_log_level: _Optional[_Union[_common_pb2.LogLevel, str]] = ..., exclude_trial_reports: _Optional[bool] = ...) -> None: ...

class StreamStudyEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: StudyEvent
    def __init__(self, event: _Optional[_Union[StudyEvent, _Mapping]] = ...) -> None: ...

class StudyEvent(_message.Message):
    __slots__ = ("sequence", "study", "time", "progress", "state_change", "trial_started", "trial_reported", "trial_pruned", "trial_completed", "trial_failed", "new_best_trial", "log")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_STARTED_FIELD_NUMBER: _ClassVar[int]
    TRIAL_REPORTED_FIELD_NUMBER: _ClassVar[int]
    TRIAL_PRUNED_FIELD_NUMBER: _ClassVar[int]
    TRIAL_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FAILED_FIELD_NUMBER: _ClassVar[int]
    NEW_BEST_TRIAL_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    sequence: str
    study: str
    time: _timestamp_pb2.Timestamp
    progress: float
    state_change: StudyStateChange
    trial_started: Trial
    trial_reported: TrialReport
    trial_pruned: Trial
    trial_completed: Trial
    trial_failed: Trial
    new_best_trial: NewBestTrial
    log: _common_pb2.LogLine
    def __init__(self, sequence: _Optional[str] = ..., study: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[float] = ..., state_change: _Optional[_Union[StudyStateChange, _Mapping]] = ..., trial_started: _Optional[_Union[Trial, _Mapping]] = ..., trial_reported: _Optional[_Union[TrialReport, _Mapping]] = ..., trial_pruned: _Optional[_Union[Trial, _Mapping]] = ..., trial_completed: _Optional[_Union[Trial, _Mapping]] = ..., trial_failed: _Optional[_Union[Trial, _Mapping]] = ..., new_best_trial: _Optional[_Union[NewBestTrial, _Mapping]] = ..., log: _Optional[_Union[_common_pb2.LogLine, _Mapping]] = ...) -> None: ...

class StudyStateChange(_message.Message):
    __slots__ = ("state", "message")
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: StudyState
    message: str
    def __init__(self, state: _Optional[_Union[StudyState, str]] = ..., message: _Optional[str] = ...) -> None: ...

class TrialReport(_message.Message):
    __slots__ = ("trial_number", "estimator", "step", "score")
    TRIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    trial_number: int
    estimator: str
    step: int
    score: float
    def __init__(self, trial_number: _Optional[int] = ..., estimator: _Optional[str] = ..., step: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class NewBestTrial(_message.Message):
    __slots__ = ("trial", "previous_best_trial_number", "previous_best_score")
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_BEST_TRIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_BEST_SCORE_FIELD_NUMBER: _ClassVar[int]
    trial: Trial
    previous_best_trial_number: int
    previous_best_score: float
    def __init__(self, trial: _Optional[_Union[Trial, _Mapping]] = ..., previous_best_trial_number: _Optional[int] = ..., previous_best_score: _Optional[float] = ...) -> None: ...

class StopStudyRequest(_message.Message):
    __slots__ = ("name", "cancel_running_trials", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CANCEL_RUNNING_TRIALS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    cancel_running_trials: bool
    reason: str
    def __init__(self, name: _Optional[str] = ..., cancel_running_trials: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class StopStudyResponse(_message.Message):
    __slots__ = ("study",)
    STUDY_FIELD_NUMBER: _ClassVar[int]
    study: Study
    def __init__(self, study: _Optional[_Union[Study, _Mapping]] = ...) -> None: ...

class GetBestTrialRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetBestTrialResponse(_message.Message):
    __slots__ = ("trial", "final")
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    trial: Trial
    final: bool
    def __init__(self, trial: _Optional[_Union[Trial, _Mapping]] = ..., final: _Optional[bool] = ...) -> None: ...
