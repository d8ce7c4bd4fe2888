"""Protobuf <-> plain Python helpers shared by the sync and async clients and the CLI.

Turns user arguments (strings, dicts, paths, DataFrames) into request messages and
responses into dicts/DataFrames. pandas, pyarrow and tqdm are imported only inside the
functions that need them, so `import microlearn` stays light.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from google.protobuf.message import Message

from microlearn._config import MAX_MESSAGE_BYTES
from microlearn.v1 import common_pb2, dataset_pb2

if TYPE_CHECKING:
    import pandas

FORMATS: dict[str, int] = {
    "csv": dataset_pb2.DATA_FORMAT_CSV,
    "parquet": dataset_pb2.DATA_FORMAT_PARQUET,
    "jsonl": dataset_pb2.DATA_FORMAT_JSONL,
}

COLUMN_TYPES: dict[str, int] = {
    "numeric": common_pb2.COLUMN_TYPE_NUMERIC,
    "categorical": common_pb2.COLUMN_TYPE_CATEGORICAL,
    "boolean": common_pb2.COLUMN_TYPE_BOOLEAN,
    "datetime": common_pb2.COLUMN_TYPE_DATETIME,
    "text": common_pb2.COLUMN_TYPE_TEXT,
    "id": common_pb2.COLUMN_TYPE_ID,
}

# Stripped (in this order, last suffix first) to derive a default dataset name from a file name.
_COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zip")
_DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")

# A DataFrame upload is written here before streaming, so it is read back like any file.
_FRAME_FILE_NAME = "frame.parquet"


def to_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready data, the way the API spells it (snake_case field names)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def enum_label(value: int, enum: Any, prefix: str) -> str:
    """`COLUMN_TYPE_NUMERIC` -> `numeric`; unknown numbers come back as their digits."""
    try:
        name = enum.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(prefix).lower()


def column_type_label(value: int) -> str:
    return enum_label(value, common_pb2.ColumnType, "COLUMN_TYPE_")


def task_label(value: int) -> str:
    return enum_label(value, common_pb2.TaskType, "TASK_TYPE_")


def format_label(value: int) -> str:
    return enum_label(value, dataset_pb2.DataFormat, "DATA_FORMAT_")


def data_format(fmt: str | None) -> int:
    """`"csv"`/`"parquet"`/`"jsonl"` -> DataFormat; None detects the format from the content."""
    if not fmt:
        return dataset_pb2.DATA_FORMAT_UNSPECIFIED
    try:
        return FORMATS[fmt.lower()]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}") from None


def hint_messages(hints: Mapping[str, str] | None) -> list[dataset_pb2.ColumnHint]:
    """`{"zip": "categorical"}` -> ColumnHint messages."""
    result = []
    for column, type_name in (hints or {}).items():
        try:
            column_type = COLUMN_TYPES[str(type_name).lower()]
        except KeyError:
            raise ValueError(
                f"unknown column type {type_name!r} for column {column!r}; "
                f"expected one of {', '.join(COLUMN_TYPES)}"
            ) from None
        result.append(dataset_pb2.ColumnHint(column=column, type=column_type))
    return result


def default_name(path: Path) -> str:
    """`data/iris.csv.gz` -> `iris`: the file name without its data and compression suffixes."""
    name = path.name
    for suffixes in (_COMPRESSION_SUFFIXES, _DATA_SUFFIXES):
        for suffix in suffixes:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
    return name


def recipe_text(recipe: str | Mapping[str, Any] | os.PathLike[str]) -> str:
    """A recipe as the text the server parses: str as is, a dict as JSON, a path read as UTF-8."""
    if isinstance(recipe, str):
        return recipe
    if isinstance(recipe, os.PathLike):
        return Path(recipe).read_text(encoding="utf-8")
    if isinstance(recipe, Mapping):
        return json.dumps(recipe)
    raise TypeError(f"recipe must be a str, a dict or a path, not {type(recipe).__name__}")


def list_request(
    prefix: str, latest_only: bool, page_size: int, page_token: str
) -> dataset_pb2.ListDatasetsRequest:
    return dataset_pb2.ListDatasetsRequest(
        display_name_prefix=prefix,
        latest_only=latest_only,
        page_size=page_size,
        page_token=page_token,
    )


def sample_request(
    ref: str, n: int, random: bool, seed: int, columns: Sequence[str] | None
) -> dataset_pb2.SampleDatasetRowsRequest:
    if isinstance(columns, str):
        raise TypeError("columns must be a list of column names, not a str")
    return dataset_pb2.SampleDatasetRowsRequest(
        name=ref,
        row_count=n,
        mode=dataset_pb2.SAMPLE_MODE_RANDOM if random else dataset_pb2.SAMPLE_MODE_HEAD,
        seed=seed,
        columns=list(columns or ()),
    )


def prepare_request(
    ref: str,
    recipe: str | Mapping[str, Any] | os.PathLike[str],
    output_name: str | None,
    validate_only: bool,
) -> dataset_pb2.PrepareDatasetRequest:
    return dataset_pb2.PrepareDatasetRequest(
        name=ref,
        recipe=recipe_text(recipe),
        output_display_name=output_name or "",
        validate_only=validate_only,
    )


def sample_rows(response: dataset_pb2.SampleDatasetRowsResponse) -> list[dict[str, Any]]:
    """The sampled rows as plain dicts (numbers are floats: JSON has no integer type)."""
    return [json_format.MessageToDict(row) for row in response.rows]


def sample_frame(response: dataset_pb2.SampleDatasetRowsResponse) -> pandas.DataFrame:
    """The sampled rows as a DataFrame with the server's column order."""
    import pandas

    return pandas.DataFrame.from_records(sample_rows(response), columns=list(response.columns))


# --- uploads -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class UploadPlan:
    """A file ready to stream: where it is, what to announce first, and how big it is."""

    path: Path
    metadata: dataset_pb2.UploadDatasetMetadata

    @property
    def size(self) -> int:
        return self.metadata.expected_size_bytes


def _is_dataframe(source: object) -> bool:
    # If pandas was never imported, `source` cannot be a DataFrame: no import needed to tell.
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(source, pandas.DataFrame)


def _write_frame(frame: pandas.DataFrame, path: Path) -> None:
    import pandas

    # A RangeIndex carries no data; any other index (dates, keys) becomes ordinary columns.
    if not isinstance(frame.index, pandas.RangeIndex):
        frame = frame.reset_index()
    frame.to_parquet(path, index=False)


def file_digest(path: Path, chunk_size: int = 1 << 20) -> tuple[int, str]:
    """Size and hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@contextlib.contextmanager
def upload_plan(
    source: str | os.PathLike[str] | pandas.DataFrame,
    *,
    name: str | None,
    format: str | None,
    column_hints: Mapping[str, str] | None,
    description: str,
    labels: Mapping[str, str] | None,
) -> Iterator[UploadPlan]:
    """Validates the arguments, hashes the file (a DataFrame goes to a temp Parquet file first)
    and yields the plan; the temp file, if any, is removed on exit."""
    fmt = data_format(format)
    hints = hint_messages(column_hints)
    with contextlib.ExitStack() as stack:
        if _is_dataframe(source):
            if not name:
                raise ValueError("name is required when uploading a DataFrame")
            if fmt not in (dataset_pb2.DATA_FORMAT_UNSPECIFIED, dataset_pb2.DATA_FORMAT_PARQUET):
                raise ValueError("a DataFrame is always uploaded as Parquet")
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="microlearn-"))) / _FRAME_FILE_NAME
            _write_frame(source, path)  # type: ignore[arg-type]
            fmt = dataset_pb2.DATA_FORMAT_PARQUET
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.exists():
                raise FileNotFoundError(f"no such file: {path}")
            if not path.is_file():
                raise IsADirectoryError(f"not a file: {path}")
            name = name or default_name(path)
        else:
            raise TypeError(
                f"source must be a path or a pandas.DataFrame, not {type(source).__name__}"
            )
        size, sha256 = file_digest(path)
        metadata = dataset_pb2.UploadDatasetMetadata(
            display_name=name,
            format=fmt,
            column_hints=hints,
            description=description,
            labels=string_map(labels),
            expected_size_bytes=size,
            expected_sha256=sha256,
        )
        yield UploadPlan(path=path, metadata=metadata)


class ReadFailure:
    """Holds a local error raised while streaming the file.

    gRPC swallows an exception raised by a request iterator and reports the call as
    CANCELLED; the clients re-raise the original error instead, which says what went wrong.
    """

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


def upload_requests(
    plan: UploadPlan, chunk_size: int, on_chunk: Callable[[int], object], failure: ReadFailure
) -> Iterator[dataset_pb2.UploadDatasetRequest]:
    """Metadata first, then the file in `chunk_size` pieces, never more than one in memory."""
    yield dataset_pb2.UploadDatasetRequest(metadata=plan.metadata)
    try:
        with open(plan.path, "rb") as f:
            while chunk := f.read(chunk_size):
                yield dataset_pb2.UploadDatasetRequest(chunk=chunk)
                on_chunk(len(chunk))
    except Exception as error:
        failure.error = error
        raise


def check_chunk_size(chunk_size: int) -> None:
    # Leave room for the message framing around the bytes.
    if not 0 < chunk_size <= MAX_MESSAGE_BYTES - 1024:
        raise ValueError(f"chunk_size must be between 1 and {MAX_MESSAGE_BYTES - 1024} bytes")


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool, initial: int = 0) -> Any:
    """A tqdm bar over `total` bytes (on stderr), or a do-nothing stand-in."""
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        leave=False,
    )


# Tasks as the SDK and CLI spell them, in and out.
_TASK_TYPES = {
    "binary": common_pb2.TASK_TYPE_BINARY_CLASSIFICATION,
    "multiclass": common_pb2.TASK_TYPE_MULTICLASS_CLASSIFICATION,
    "regression": common_pb2.TASK_TYPE_REGRESSION,
    "clustering": common_pb2.TASK_TYPE_CLUSTERING,
}
_TASK_NAMES = {value: name for name, value in _TASK_TYPES.items()}


def task_type(task: str | None) -> int:
    """`"binary"`/`"multiclass"`/`"regression"`/`"clustering"` -> TaskType; None -> UNSPECIFIED."""
    if not task:
        return common_pb2.TASK_TYPE_UNSPECIFIED
    try:
        return _TASK_TYPES[task]
    except KeyError:
        raise ValueError(f"task must be one of {', '.join(_TASK_TYPES)}, got {task!r}") from None


def task_name(value: int) -> str:
    """TaskType -> the short name `task_type` takes ("" when unspecified)."""
    return _TASK_NAMES.get(value, "" if value == common_pb2.TASK_TYPE_UNSPECIFIED else str(value))


def string_map(values: Mapping[str, object] | None) -> dict[str, str]:
    """Labels as the API carries them: string keys and values."""
    return {str(k): str(v) for k, v in (values or {}).items()}


def estimators_request(task: str | None, include_unavailable: bool):
    """A ListEstimatorsRequest for a task named as the CLI/SDK spell it."""
    from microlearn.v1 import selector_pb2

    return selector_pb2.ListEstimatorsRequest(
        task=task_type(task),
        include_unavailable=include_unavailable,
        page_size=200,
    )
