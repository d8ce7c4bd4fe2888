import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from microlearn.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeploymentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOYMENT_STATE_UNSPECIFIED: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_CREATING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_READY: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_UPDATING: _ClassVar[DeploymentState]
    DEPLOYMENT_STATE_FAILED: _ClassVar[DeploymentState]
DEPLOYMENT_STATE_UNSPECIFIED: DeploymentState
DEPLOYMENT_STATE_CREATING: DeploymentState
DEPLOYMENT_STATE_READY: DeploymentState
DEPLOYMENT_STATE_UPDATING: DeploymentState
DEPLOYMENT_STATE_FAILED: DeploymentState

class Deployment(_message.Message):
    __slots__ = ("name", "description", "traffic", "replicas", "prediction_log_fraction", "labels", "state", "state_message", "task", "input_schema", "create_time", "update_time", "etag")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_LOG_FRACTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    traffic: _containers.RepeatedCompositeFieldContainer[TrafficTarget]
    replicas: int
    prediction_log_fraction: float
    labels: _containers.ScalarMap[str, str]
    state: DeploymentState
    state_message: str
    task: _common_pb2.TaskType
    input_schema: _common_pb2.FeatureSchema
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., traffic: _Optional[_Iterable[_Union[TrafficTarget, _Mapping]]] = ..., replicas: _Optional[int] = ..., prediction_log_fraction: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., state: _Optional[_Union[DeploymentState, str]] = ..., state_message: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., input_schema: _Optional[_Union[_common_pb2.FeatureSchema, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class TrafficTarget(_message.Message):
    __slots__ = ("model_version", "percent", "resolved_version", "resolved_model")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_MODEL_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    percent: int
    resolved_version: str
    resolved_model: str
    def __init__(self, model_version: _Optional[str] = ..., percent: _Optional[int] = ..., resolved_version: _Optional[str] = ..., resolved_model: _Optional[str] = ...) -> None: ...

class RegisteredModel(_message.Message):
    __slots__ = ("name", "description", "task", "latest_version", "version_count", "aliases", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    task: _common_pb2.TaskType
    latest_version: int
    version_count: int
    aliases: _containers.RepeatedCompositeFieldContainer[ModelAlias]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., latest_version: _Optional[int] = ..., version_count: _Optional[int] = ..., aliases: _Optional[_Iterable[_Union[ModelAlias, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("name", "registered_model", "version", "model", "aliases", "description", "labels", "task", "estimator", "dataset", "target", "metrics", "feature_schema", "class_labels", "format", "create_time")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ESTIMATOR_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CLASS_LABELS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    registered_model: str
    version: int
    model: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    description: str
    labels: _containers.ScalarMap[str, str]
    task: _common_pb2.TaskType
    estimator: str
    dataset: str
    target: str
    metrics: _containers.ScalarMap[str, float]
    feature_schema: _common_pb2.FeatureSchema
    class_labels: _containers.RepeatedScalarFieldContainer[str]
    format: _common_pb2.ModelFormat
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., registered_model: _Optional[str] = ..., version: _Optional[int] = ..., model: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., estimator: _Optional[str] = ..., dataset: _Optional[str] = ..., target: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., feature_schema: _Optional[_Union[_common_pb2.FeatureSchema, _Mapping]] = ..., class_labels: _Optional[_Iterable[str]] = ..., format: _Optional[_Union[_common_pb2.ModelFormat, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelAlias(_message.Message):
    __slots__ = ("name", "alias", "version", "update_time", "history")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    name: str
    alias: str
    version: str
    update_time: _timestamp_pb2.Timestamp
    history: _containers.RepeatedCompositeFieldContainer[AliasHistoryEntry]
    def __init__(self, name: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history: _Optional[_Iterable[_Union[AliasHistoryEntry, _Mapping]]] = ...) -> None: ...

class AliasHistoryEntry(_message.Message):
    __slots__ = ("version", "set_time", "unset_time")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SET_TIME_FIELD_NUMBER: _ClassVar[int]
    UNSET_TIME_FIELD_NUMBER: _ClassVar[int]
    version: str
    set_time: _timestamp_pb2.Timestamp
    unset_time: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[str] = ..., set_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., unset_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id", "deployment", "validate_only")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    deployment: Deployment
    validate_only: bool
    def __init__(self, deployment_id: _Optional[str] = ..., deployment: _Optional[_Union[Deployment, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class CreateDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class GetDeploymentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "registered_model", "states", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_MODEL_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    registered_model: str
    states: _containers.RepeatedScalarFieldContainer[DeploymentState]
    labels: _containers.ScalarMap[str, str]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., registered_model: _Optional[str] = ..., states: _Optional[_Iterable[_Union[DeploymentState, str]]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments", "next_page_token", "total_size")
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    next_page_token: str
    total_size: int
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class UpdateDeploymentRequest(_message.Message):
    __slots__ = ("deployment", "update_mask", "validate_only")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    update_mask: _field_mask_pb2.FieldMask
    validate_only: bool
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class UpdateDeploymentResponse(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ...) -> None: ...

class DeleteDeploymentRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class DeleteDeploymentResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RegisterModelVersionRequest(_message.Message):
    __slots__ = ("registered_model", "model", "description", "labels", "aliases")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REGISTERED_MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    registered_model: str
    model: str
    description: str
    labels: _containers.ScalarMap[str, str]
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, registered_model: _Optional[str] = ..., model: _Optional[str] = ..., description: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterModelVersionResponse(_message.Message):
    __slots__ = ("model_version", "already_registered")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALREADY_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    model_version: ModelVersion
    already_registered: bool
    def __init__(self, model_version: _Optional[_Union[ModelVersion, _Mapping]] = ..., already_registered: _Optional[bool] = ...) -> None: ...

class GetModelVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelVersionResponse(_message.Message):
    __slots__ = ("model_version",)
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_version: ModelVersion
    def __init__(self, model_version: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class ListModelVersionsRequest(_message.Message):
    __slots__ = ("registered_model", "page_size", "page_token")
    REGISTERED_MODEL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    registered_model: str
    page_size: int
    page_token: str
    def __init__(self, registered_model: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelVersionsResponse(_message.Message):
    __slots__ = ("model_versions", "next_page_token", "total_size")
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    model_versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    next_page_token: str
    total_size: int
    def __init__(self, model_versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class DeleteModelVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteModelVersionResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListRegisteredModelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name_prefix")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name_prefix: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name_prefix: _Optional[str] = ...) -> None: ...

class ListRegisteredModelsResponse(_message.Message):
    __slots__ = ("registered_models", "next_page_token", "total_size")
    REGISTERED_MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    registered_models: _containers.RepeatedCompositeFieldContainer[RegisteredModel]
    next_page_token: str
    total_size: int
    def __init__(self, registered_models: _Optional[_Iterable[_Union[RegisteredModel, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("model_version", "alias")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    alias: str
    def __init__(self, model_version: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class SetAliasResponse(_message.Message):
    __slots__ = ("alias", "previous_version")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    alias: ModelAlias
    previous_version: str
    def __init__(self, alias: _Optional[_Union[ModelAlias, _Mapping]] = ..., previous_version: _Optional[str] = ...) -> None: ...

class RollbackAliasRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RollbackAliasResponse(_message.Message):
    __slots__ = ("alias", "rolled_back_version")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_VERSION_FIELD_NUMBER: _ClassVar[int]
    alias: ModelAlias
    rolled_back_version: str
    def __init__(self, alias: _Optional[_Union[ModelAlias, _Mapping]] = ..., rolled_back_version: _Optional[str] = ...) -> None: ...

class DeleteAliasRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteAliasResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("deployment", "request_id", "rows", "arrow_ipc", "model_version", "routing_key", "exclude_probabilities")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTING_KEY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    request_id: str
    rows: _common_pb2.ColumnarRows
    arrow_ipc: bytes
    model_version: str
    routing_key: str
    exclude_probabilities: bool
    def __init__(self, deployment: _Optional[str] = ..., request_id: _Optional[str] = ..., rows: _Optional[_Union[_common_pb2.ColumnarRows, _Mapping]] = ..., arrow_ipc: _Optional[bytes] = ..., model_version: _Optional[str] = ..., routing_key: _Optional[str] = ..., exclude_probabilities: _Optional[bool] = ...) -> None: ...

class ClassProbabilities(_message.Message):
    __slots__ = ("label", "probabilities")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    label: str
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, label: _Optional[str] = ..., probabilities: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("request_id", "model_version", "model", "task", "values", "labels", "cluster_ids", "class_probabilities", "row_count", "latency_ms", "logged", "warnings")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_IDS_FIELD_NUMBER: _ClassVar[int]
    CLASS_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    LOGGED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_version: str
    model: str
    task: _common_pb2.TaskType
    values: _common_pb2.DoubleList
    labels: _common_pb2.StringList
    cluster_ids: _common_pb2.Int64List
    class_probabilities: _containers.RepeatedCompositeFieldContainer[ClassProbabilities]
    row_count: int
    latency_ms: float
    logged: bool
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., model_version: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., values: _Optional[_Union[_common_pb2.DoubleList, _Mapping]] = ..., labels: _Optional[_Union[_common_pb2.StringList, _Mapping]] = ..., cluster_ids: _Optional[_Union[_common_pb2.Int64List, _Mapping]] = ..., class_probabilities: _Optional[_Iterable[_Union[ClassProbabilities, _Mapping]]] = ..., row_count: _Optional[int] = ..., latency_ms: _Optional[float] = ..., logged: _Optional[bool] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class PredictError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class PredictStreamRequest(_message.Message):
    __slots__ = ("deployment", "request_id", "rows", "arrow_ipc", "model_version", "routing_key", "exclude_probabilities")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROUTING_KEY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    request_id: str
    rows: _common_pb2.ColumnarRows
    arrow_ipc: bytes
    model_version: str
    routing_key: str
    exclude_probabilities: bool
    def __init__(self, deployment: _Optional[str] = ..., request_id: _Optional[str] = ..., rows: _Optional[_Union[_common_pb2.ColumnarRows, _Mapping]] = ..., arrow_ipc: _Optional[bytes] = ..., model_version: _Optional[str] = ..., routing_key: _Optional[str] = ..., exclude_probabilities: _Optional[bool] = ...) -> None: ...

class PredictStreamResponse(_message.Message):
    __slots__ = ("request_id", "model_version", "model", "task", "values", "labels", "cluster_ids", "class_probabilities", "row_count", "latency_ms", "logged", "warnings", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_IDS_FIELD_NUMBER: _ClassVar[int]
    CLASS_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    LOGGED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_version: str
    model: str
    task: _common_pb2.TaskType
    values: _common_pb2.DoubleList
    labels: _common_pb2.StringList
    cluster_ids: _common_pb2.Int64List
    class_probabilities: _containers.RepeatedCompositeFieldContainer[ClassProbabilities]
    row_count: int
    latency_ms: float
    logged: bool
    warnings: _containers.RepeatedScalarFieldContainer[str]
    error: PredictError
    def __init__(self, request_id: _Optional[str] = ..., model_version: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., values: _Optional[_Union[_common_pb2.DoubleList, _Mapping]] = ..., labels: _Optional[_Union[_common_pb2.StringList, _Mapping]] = ..., cluster_ids: _Optional[_Union[_common_pb2.Int64List, _Mapping]] = ..., class_probabilities: _Optional[_Iterable[_Union[ClassProbabilities, _Mapping]]] = ..., row_count: _Optional[int] = ..., latency_ms: _Optional[float] = ..., logged: _Optional[bool] = ..., warnings: _Optional[_Iterable[str]] = ..., error: _Optional[_Union[PredictError, _Mapping]] = ...) -> None: ...

class StartBatchPredictionRequest(_message.Message):
    __slots__ = ("deployment", "input_dataset", "output_display_name", "passthrough_columns", "model_version", "exclude_probabilities", "labels", "request_id")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    INPUT_DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PASSTHROUGH_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    input_dataset: str
    output_display_name: str
    passthrough_columns: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    exclude_probabilities: bool
    labels: _containers.ScalarMap[str, str]
    request_id: str
    def __init__(self, deployment: _Optional[str] = ..., input_dataset: _Optional[str] = ..., output_display_name: _Optional[str] = ..., passthrough_columns: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ..., exclude_probabilities: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartBatchPredictionResponse(_message.Message):
    __slots__ = ("job", "output_display_name", "model_version")
    JOB_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    job: _common_pb2.Job
    output_display_name: str
    model_version: str
    def __init__(self, job: _Optional[_Union[_common_pb2.Job, _Mapping]] = ..., output_display_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class FeedbackEntry(_message.Message):
    __slots__ = ("request_id", "row_index", "value", "label", "observe_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROW_INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    OBSERVE_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    row_index: int
    value: float
    label: str
    observe_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., row_index: _Optional[int] = ..., value: _Optional[float] = ..., label: _Optional[str] = ..., observe_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("deployment", "entries")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    entries: _containers.RepeatedCompositeFieldContainer[FeedbackEntry]
    def __init__(self, deployment: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[FeedbackEntry, _Mapping]]] = ...) -> None: ...

class FeedbackRejection(_message.Message):
    __slots__ = ("index", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: str
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("accepted_count", "rejected")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    rejected: _containers.RepeatedCompositeFieldContainer[FeedbackRejection]
    def __init__(self, accepted_count: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[FeedbackRejection, _Mapping]]] = ...) -> None: ...
