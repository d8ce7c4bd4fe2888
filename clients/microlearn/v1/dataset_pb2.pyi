import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from microlearn.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_FORMAT_UNSPECIFIED: _ClassVar[DataFormat]
    DATA_FORMAT_CSV: _ClassVar[DataFormat]
    DATA_FORMAT_PARQUET: _ClassVar[DataFormat]
    DATA_FORMAT_JSONL: _ClassVar[DataFormat]

class SampleMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLE_MODE_UNSPECIFIED: _ClassVar[SampleMode]
    SAMPLE_MODE_HEAD: _ClassVar[SampleMode]
    SAMPLE_MODE_RANDOM: _ClassVar[SampleMode]
DATA_FORMAT_UNSPECIFIED: DataFormat
DATA_FORMAT_CSV: DataFormat
DATA_FORMAT_PARQUET: DataFormat
DATA_FORMAT_JSONL: DataFormat
SAMPLE_MODE_UNSPECIFIED: SampleMode
SAMPLE_MODE_HEAD: SampleMode
SAMPLE_MODE_RANDOM: SampleMode

class ColumnHint(_message.Message):
    __slots__ = ("column", "type")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    column: str
    type: _common_pb2.ColumnType
    def __init__(self, column: _Optional[str] = ..., type: _Optional[_Union[_common_pb2.ColumnType, str]] = ...) -> None: ...

class UploadDatasetMetadata(_message.Message):
    __slots__ = ("display_name", "format", "column_hints", "description", "labels", "expected_size_bytes", "expected_sha256")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    COLUMN_HINTS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    format: DataFormat
    column_hints: _containers.RepeatedCompositeFieldContainer[ColumnHint]
    description: str
    labels: _containers.ScalarMap[str, str]
    expected_size_bytes: int
    expected_sha256: str
    def __init__(self, display_name: _Optional[str] = ..., format: _Optional[_Union[DataFormat, str]] = ..., column_hints: _Optional[_Iterable[_Union[ColumnHint, _Mapping]]] = ..., description: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., expected_size_bytes: _Optional[int] = ..., expected_sha256: _Optional[str] = ...) -> None: ...

class UploadDatasetRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadDatasetMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[UploadDatasetMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadDatasetResponse(_message.Message):
    __slots__ = ("dataset", "deduplicated")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    deduplicated: bool
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., deduplicated: _Optional[bool] = ...) -> None: ...

class NumericSummary(_message.Message):
    __slots__ = ("min", "max", "mean", "std", "p25", "p50", "p75", "zero_count")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    P25_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P75_FIELD_NUMBER: _ClassVar[int]
    ZERO_COUNT_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    mean: float
    std: float
    p25: float
    p50: float
    p75: float
    zero_count: int
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ..., p25: _Optional[float] = ..., p50: _Optional[float] = ..., p75: _Optional[float] = ..., zero_count: _Optional[int] = ...) -> None: ...

class ValueCount(_message.Message):
    __slots__ = ("value", "count")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    value: str
    count: int
    def __init__(self, value: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ColumnProfile(_message.Message):
    __slots__ = ("name", "type", "physical_type", "missing_count", "distinct_count", "distinct_count_exact", "numeric", "top_values", "min_datetime", "max_datetime", "hinted")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    MISSING_COUNT_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_COUNT_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_COUNT_EXACT_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_FIELD_NUMBER: _ClassVar[int]
    TOP_VALUES_FIELD_NUMBER: _ClassVar[int]
    MIN_DATETIME_FIELD_NUMBER: _ClassVar[int]
    MAX_DATETIME_FIELD_NUMBER: _ClassVar[int]
    HINTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: _common_pb2.ColumnType
    physical_type: str
    missing_count: int
    distinct_count: int
    distinct_count_exact: bool
    numeric: NumericSummary
    top_values: _containers.RepeatedCompositeFieldContainer[ValueCount]
    min_datetime: str
    max_datetime: str
    hinted: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[_common_pb2.ColumnType, str]] = ..., physical_type: _Optional[str] = ..., missing_count: _Optional[int] = ..., distinct_count: _Optional[int] = ..., distinct_count_exact: _Optional[bool] = ..., numeric: _Optional[_Union[NumericSummary, _Mapping]] = ..., top_values: _Optional[_Iterable[_Union[ValueCount, _Mapping]]] = ..., min_datetime: _Optional[str] = ..., max_datetime: _Optional[str] = ..., hinted: _Optional[bool] = ...) -> None: ...

class TargetSuggestion(_message.Message):
    __slots__ = ("column", "task", "reason", "score")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    column: str
    task: _common_pb2.TaskType
    reason: str
    score: float
    def __init__(self, column: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., reason: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class DatasetProfile(_message.Message):
    __slots__ = ("row_count", "column_count", "columns", "target_suggestions", "duplicate_row_count")
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    COLUMN_COUNT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TARGET_SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    row_count: int
    column_count: int
    columns: _containers.RepeatedCompositeFieldContainer[ColumnProfile]
    target_suggestions: _containers.RepeatedCompositeFieldContainer[TargetSuggestion]
    duplicate_row_count: int
    def __init__(self, row_count: _Optional[int] = ..., column_count: _Optional[int] = ..., columns: _Optional[_Iterable[_Union[ColumnProfile, _Mapping]]] = ..., target_suggestions: _Optional[_Iterable[_Union[TargetSuggestion, _Mapping]]] = ..., duplicate_row_count: _Optional[int] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "id", "display_name", "version", "source_format", "source_size_bytes", "source_sha256", "size_bytes", "sha256", "row_count", "column_count", "profile", "parent", "recipe", "description", "labels", "create_time", "column_hints")
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
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    COLUMN_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COLUMN_HINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    display_name: str
    version: int
    source_format: DataFormat
    source_size_bytes: int
    source_sha256: str
    size_bytes: int
    sha256: str
    row_count: int
    column_count: int
    profile: DatasetProfile
    parent: str
    recipe: str
    description: str
    labels: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    column_hints: _containers.RepeatedCompositeFieldContainer[ColumnHint]
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ..., display_name: _Optional[str] = ..., version: _Optional[int] = ..., source_format: _Optional[_Union[DataFormat, str]] = ..., source_size_bytes: _Optional[int] = ..., source_sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., row_count: _Optional[int] = ..., column_count: _Optional[int] = ..., profile: _Optional[_Union[DatasetProfile, _Mapping]] = ..., parent: _Optional[str] = ..., recipe: _Optional[str] = ..., description: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., column_hints: _Optional[_Iterable[_Union[ColumnHint, _Mapping]]] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "display_name_prefix", "latest_only")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    LATEST_ONLY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    display_name_prefix: str
    latest_only: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., display_name_prefix: _Optional[str] = ..., latest_only: _Optional[bool] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token", "total_size")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    total_size: int
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class ListDatasetVersionsRequest(_message.Message):
    __slots__ = ("display_name", "page_size", "page_token")
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    page_size: int
    page_token: str
    def __init__(self, display_name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetVersionsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token", "total_size")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    total_size: int
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class SampleDatasetRowsRequest(_message.Message):
    __slots__ = ("name", "row_count", "mode", "seed", "columns")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    name: str
    row_count: int
    mode: SampleMode
    seed: int
    columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., row_count: _Optional[int] = ..., mode: _Optional[_Union[SampleMode, str]] = ..., seed: _Optional[int] = ..., columns: _Optional[_Iterable[str]] = ...) -> None: ...

class SampleDatasetRowsResponse(_message.Message):
    __slots__ = ("columns", "rows")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, columns: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteDatasetResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PrepareDatasetRequest(_message.Message):
    __slots__ = ("name", "recipe", "output_display_name", "validate_only")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    name: str
    recipe: str
    output_display_name: str
    validate_only: bool
    def __init__(self, name: _Optional[str] = ..., recipe: _Optional[str] = ..., output_display_name: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class PrepareDatasetResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ...) -> None: ...
