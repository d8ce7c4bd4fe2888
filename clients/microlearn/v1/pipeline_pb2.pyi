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

class PipelineState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIPELINE_STATE_UNSPECIFIED: _ClassVar[PipelineState]
    PIPELINE_STATE_PENDING: _ClassVar[PipelineState]
    PIPELINE_STATE_RUNNING: _ClassVar[PipelineState]
    PIPELINE_STATE_SUCCEEDED: _ClassVar[PipelineState]
    PIPELINE_STATE_FAILED: _ClassVar[PipelineState]
    PIPELINE_STATE_CANCELLED: _ClassVar[PipelineState]

class PipelineStepKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIPELINE_STEP_KIND_UNSPECIFIED: _ClassVar[PipelineStepKind]
    PIPELINE_STEP_KIND_DATASET: _ClassVar[PipelineStepKind]
    PIPELINE_STEP_KIND_PREPARE: _ClassVar[PipelineStepKind]
    PIPELINE_STEP_KIND_SELECT: _ClassVar[PipelineStepKind]
    PIPELINE_STEP_KIND_OPTIMIZE: _ClassVar[PipelineStepKind]
    PIPELINE_STEP_KIND_EVALUATE: _ClassVar[PipelineStepKind]
    PIPELINE_STEP_KIND_DEPLOY: _ClassVar[PipelineStepKind]

class PipelineStepState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIPELINE_STEP_STATE_UNSPECIFIED: _ClassVar[PipelineStepState]
    PIPELINE_STEP_STATE_PENDING: _ClassVar[PipelineStepState]
    PIPELINE_STEP_STATE_RUNNING: _ClassVar[PipelineStepState]
    PIPELINE_STEP_STATE_SUCCEEDED: _ClassVar[PipelineStepState]
    PIPELINE_STEP_STATE_FAILED: _ClassVar[PipelineStepState]
    PIPELINE_STEP_STATE_CANCELLED: _ClassVar[PipelineStepState]
PIPELINE_STATE_UNSPECIFIED: PipelineState
PIPELINE_STATE_PENDING: PipelineState
PIPELINE_STATE_RUNNING: PipelineState
PIPELINE_STATE_SUCCEEDED: PipelineState
PIPELINE_STATE_FAILED: PipelineState
PIPELINE_STATE_CANCELLED: PipelineState
PIPELINE_STEP_KIND_UNSPECIFIED: PipelineStepKind
PIPELINE_STEP_KIND_DATASET: PipelineStepKind
PIPELINE_STEP_KIND_PREPARE: PipelineStepKind
PIPELINE_STEP_KIND_SELECT: PipelineStepKind
PIPELINE_STEP_KIND_OPTIMIZE: PipelineStepKind
PIPELINE_STEP_KIND_EVALUATE: PipelineStepKind
PIPELINE_STEP_KIND_DEPLOY: PipelineStepKind
PIPELINE_STEP_STATE_UNSPECIFIED: PipelineStepState
PIPELINE_STEP_STATE_PENDING: PipelineStepState
PIPELINE_STEP_STATE_RUNNING: PipelineStepState
PIPELINE_STEP_STATE_SUCCEEDED: PipelineStepState
PIPELINE_STEP_STATE_FAILED: PipelineStepState
PIPELINE_STEP_STATE_CANCELLED: PipelineStepState

class PipelineStep(_message.Message):
    __slots__ = ("index", "kind", "state", "error", "outputs", "metrics", "message", "start_time", "end_time", "line")
    class OutputsEntry(_message.Message):
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
    INDEX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    index: int
    kind: PipelineStepKind
    state: PipelineStepState
    error: str
    outputs: _containers.ScalarMap[str, str]
    metrics: _containers.ScalarMap[str, float]
    message: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    line: int
    def __init__(self, index: _Optional[int] = ..., kind: _Optional[_Union[PipelineStepKind, str]] = ..., state: _Optional[_Union[PipelineStepState, str]] = ..., error: _Optional[str] = ..., outputs: _Optional[_Mapping[str, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., message: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., line: _Optional[int] = ...) -> None: ...

class Pipeline(_message.Message):
    __slots__ = ("name", "id", "display_name", "state", "error", "steps", "yaml", "source_name", "job", "progress", "labels", "create_time", "start_time", "end_time")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    YAML_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    display_name: str
    state: PipelineState
    error: str
    steps: _containers.RepeatedCompositeFieldContainer[PipelineStep]
    yaml: str
    source_name: str
    job: str
    progress: float
    labels: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., display_name: _Optional[str] = ..., state: _Optional[_Union[PipelineState, str]] = ..., error: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[PipelineStep, _Mapping]]] = ..., yaml: _Optional[str] = ..., source_name: _Optional[str] = ..., job: _Optional[str] = ..., progress: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RunPipelineRequest(_message.Message):
    __slots__ = ("yaml", "source_name", "uploaded_files", "validate_only", "request_id")
    class UploadedFilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    YAML_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_FILES_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    source_name: str
    uploaded_files: _containers.ScalarMap[str, str]
    validate_only: bool
    request_id: str
    def __init__(self, yaml: _Optional[str] = ..., source_name: _Optional[str] = ..., uploaded_files: _Optional[_Mapping[str, str]] = ..., validate_only: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class RunPipelineResponse(_message.Message):
    __slots__ = ("pipeline",)
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    pipeline: Pipeline
    def __init__(self, pipeline: _Optional[_Union[Pipeline, _Mapping]] = ...) -> None: ...

class GetPipelineRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPipelineResponse(_message.Message):
    __slots__ = ("pipeline",)
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    pipeline: Pipeline
    def __init__(self, pipeline: _Optional[_Union[Pipeline, _Mapping]] = ...) -> None: ...

class ListPipelinesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "states", "labels")
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
    LABELS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[PipelineState]
    labels: _containers.ScalarMap[str, str]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[PipelineState, str]]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListPipelinesResponse(_message.Message):
    __slots__ = ("pipelines", "next_page_token", "total_size")
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    pipelines: _containers.RepeatedCompositeFieldContainer[Pipeline]
    next_page_token: str
    total_size: int
    def __init__(self, pipelines: _Optional[_Iterable[_Union[Pipeline, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class StreamPipelineEventsRequest(_message.Message):
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

class StreamPipelineEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: PipelineEvent
    def __init__(self, event: _Optional[_Union[PipelineEvent, _Mapping]] = ...) -> None: ...

class PipelineEvent(_message.Message):
    __slots__ = ("sequence", "pipeline", "time", "progress", "state_change", "step_started", "step_finished", "step_failed", "log")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    STEP_STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_FINISHED_FIELD_NUMBER: _ClassVar[int]
    STEP_FAILED_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    sequence: str
    pipeline: str
    time: _timestamp_pb2.Timestamp
    progress: float
    state_change: PipelineStateChange
    step_started: PipelineStep
    step_finished: PipelineStep
    step_failed: PipelineStep
    log: _common_pb2.LogLine
    def __init__(self, sequence: _Optional[str] = ..., pipeline: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[float] = ..., state_change: _Optional[_Union[PipelineStateChange, _Mapping]] = ..., step_started: _Optional[_Union[PipelineStep, _Mapping]] = ..., step_finished: _Optional[_Union[PipelineStep, _Mapping]] = ..., step_failed: _Optional[_Union[PipelineStep, _Mapping]] = ..., log: _Optional[_Union[_common_pb2.LogLine, _Mapping]] = ...) -> None: ...

class PipelineStateChange(_message.Message):
    __slots__ = ("state", "message")
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: PipelineState
    message: str
    def __init__(self, state: _Optional[_Union[PipelineState, str]] = ..., message: _Optional[str] = ...) -> None: ...

class CancelPipelineRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelPipelineResponse(_message.Message):
    __slots__ = ("pipeline",)
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    pipeline: Pipeline
    def __init__(self, pipeline: _Optional[_Union[Pipeline, _Mapping]] = ...) -> None: ...
