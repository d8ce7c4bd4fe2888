"""Prediction input: typed columns or Arrow IPC bytes in, one NumPy array per model feature out,
checked against the model's feature schema.

What is refused (INVALID_ARGUMENT naming the column): values that cannot be the feature's type
(text in a numeric column, `maybe` in a boolean one, an unparseable date), infinite numbers,
columns of different lengths, a `null_mask` of the wrong length, duplicate names, no rows. What
only warns (the prediction goes ahead, as the contract says): a missing feature column (all its
values missing), an extra column (ignored), categories not seen in training (the model's encoder
treats them as unknown). NaN in a double column is a missing value, like a `null_mask` entry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from microlearn_grpc import errors

__all__ = ["InputSchema", "decode_arrays", "decode_arrow", "decode_columns", "decode_table", "to_frame"]

MAX_WARNED_VALUES = 5
_TRUE = frozenset({"true", "yes", "y", "t", "1"})
_FALSE = frozenset({"false", "no", "n", "f", "0"})
_CATEGORY_LIST_CAP = 1000  # training keeps at most this many categories; a full list may be truncated


@dataclasses.dataclass(frozen=True)
class InputSchema:
    """A model's features in training order, with their kinds and (for categoricals) known values."""

    columns: tuple[tuple[str, str], ...]
    categories: dict[str, frozenset[str]]

    @classmethod
    def from_feature_schema(cls, schema: list[dict[str, Any]]) -> InputSchema:
        columns = tuple((c["name"], c.get("type") or "numeric") for c in schema)
        categories = {c["name"]: frozenset(c.get("categories") or ()) for c in schema
                      if c.get("type") == "categorical" and 0 < len(c.get("categories") or ()) < _CATEGORY_LIST_CAP}
        return cls(columns=columns, categories=categories)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


def _bad(column: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"column {column!r}: {message}")


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_float(name: str, source: str, values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    if source in ("double", "int64"):
        out = values.astype("float64", copy=True)
    elif source == "string":
        out = np.full(len(values), np.nan)
        for i, value in enumerate(values):
            if missing[i] or value == "":
                continue
            try:
                out[i] = float(value)
            except ValueError:
                raise _bad(name, f"expected numbers; row {i} has {str(value)[:40]!r}") from None
    else:
        raise _bad(name, f"expected numbers (doubles or int64s), got {source}s")
    bad = np.isinf(out) & ~missing
    if bad.any():
        raise _bad(name, f"row {int(np.argmax(bad))} is infinite; send a missing value instead")
    out[missing] = np.nan
    return out


def _to_bool(name: str, source: str, values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    if source == "bool":
        out = values.astype("float64")
    elif source in ("int64", "double", "string"):
        out = np.full(len(values), np.nan)
        for i, value in enumerate(values):
            if missing[i] or (source == "double" and np.isnan(value)):
                continue
            text = str(value).strip().lower() if source == "string" else _label(float(value))
            if text in _TRUE:
                out[i] = 1.0
            elif text in _FALSE:
                out[i] = 0.0
            elif text != "":
                raise _bad(name, f"expected booleans (true/false, yes/no, 1/0); row {i} has {str(value)[:40]!r}")
    else:
        raise _bad(name, f"expected booleans, got {source}s")
    out[missing] = np.nan
    return out


def _to_text(name: str, source: str, values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if missing[i] or (source == "double" and np.isnan(value)):
            out[i] = np.nan
        elif source == "bool":
            out[i] = "True" if value else "False"
        else:
            out[i] = value if source == "string" else _label(value.item() if hasattr(value, "item") else value)
    return out


def _to_datetime(name: str, source: str, values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    import pandas as pd

    if source == "datetime":
        parsed = pd.to_datetime(pd.Series(values), errors="coerce", utc=True)
    elif source == "string":
        text = pd.Series(np.where(missing, None, values), dtype=object)
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        bad = parsed.isna().to_numpy() & ~missing & (text.fillna("").to_numpy() != "")
        if bad.any():
            row = int(np.argmax(bad))
            raise _bad(name, f"expected ISO 8601 dates or timestamps; row {row} has {str(values[row])[:40]!r}")
    else:
        raise _bad(name, f"expected ISO 8601 strings (or Arrow timestamps/dates), got {source}s")
    parsed[missing] = pd.NaT
    return parsed.dt.tz_convert(None).to_numpy()  # naive UTC datetime64, which the preprocessor reads as UTC


_CONVERTERS = {"numeric": _to_float, "boolean": _to_bool, "categorical": _to_text, "datetime": _to_datetime,
               "text": _to_text, "id": _to_text}


def _finish(schema: InputSchema, given: dict[str, tuple[str, np.ndarray, np.ndarray]], rows: int,
            ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Typed arrays for every feature (missing ones all missing) plus the warnings."""
    warnings: list[str] = []
    out: dict[str, np.ndarray] = {}
    absent = []
    for name, kind in schema.columns:
        if name not in given:
            absent.append(name)
            out[name] = (np.full(rows, np.nan, dtype=object if kind in ("categorical", "text", "id") else "float64")
                         if kind != "datetime" else np.full(rows, np.datetime64("NaT"), dtype="datetime64[ns]"))
            continue
        source, values, missing = given[name]
        converted = _CONVERTERS.get(kind, _to_float)(name, source, values, missing)
        out[name] = converted
        known = schema.categories.get(name)
        if known is not None:
            unseen = sorted({v for v in converted if isinstance(v, str) and v not in known})
            if unseen:
                shown = ", ".join(repr(v) for v in unseen[:MAX_WARNED_VALUES])
                warnings.append(f"column {name!r}: {len(unseen)} categor{'y' if len(unseen) == 1 else 'ies'} not "
                                f"seen in training ({shown}), treated as unknown")
    if absent:
        warnings.append(f"missing feature column(s) {', '.join(map(repr, absent))}: treated as missing values")
    extra = [name for name in given if name not in dict(schema.columns)]
    if extra:
        warnings.append(f"column(s) {', '.join(map(repr, extra))} are not features of the model: ignored")
    return out, warnings


def decode_arrays(given: dict[str, tuple[str, np.ndarray, np.ndarray]], schema: InputSchema, rows: int,
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Columns already read into arrays, `{name: (source, values, missing)}` with source one of
    double, int64, string, bool → (feature arrays, warnings), checked as `decode_columns` checks."""
    return _finish(schema, given, rows)


def decode_columns(rows: Any, schema: InputSchema) -> tuple[dict[str, np.ndarray], int, list[str]]:
    """A `ColumnarRows` message → (feature arrays, row count, warnings)."""
    if not rows.columns:
        raise errors.InvalidArgument("rows: no columns given; send one column per feature")
    given: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    count = None
    for position, column in enumerate(rows.columns):
        name = column.name
        if not name:
            raise errors.InvalidArgument(f"rows.columns[{position}].name: required")
        if name in given:
            raise _bad(name, "given twice")
        kind = column.WhichOneof("values")
        if kind is None:
            raise _bad(name, "no values: set doubles, int64s, strings or bools")
        raw = getattr(column, kind).values
        source = {"doubles": "double", "int64s": "int64", "strings": "string", "bools": "bool"}[kind]
        dtype = {"double": "float64", "int64": "int64", "string": object, "bool": bool}[source]
        values = np.fromiter(raw, dtype=dtype, count=len(raw)) if dtype is not object else np.array(raw, dtype=object)
        if count is None:
            count = len(values)
        elif len(values) != count:
            raise _bad(name, f"has {len(values)} values but {rows.columns[0].name!r} has {count}; "
                             "all columns need the same number of rows")
        if column.null_mask:
            if len(column.null_mask) != len(values):
                raise _bad(name, f"null_mask has {len(column.null_mask)} entries for {len(values)} values")
            missing = np.fromiter(column.null_mask, dtype=bool, count=len(values))
        else:
            missing = np.zeros(len(values), dtype=bool)
        if source == "double":
            missing = missing | np.isnan(values)
        given[name] = (source, values, missing)
    if not count:
        raise errors.InvalidArgument("rows: no rows to predict for")
    out, warnings = _finish(schema, given, count)
    return out, count, warnings


def decode_arrow(data: bytes, schema: InputSchema, *, max_rows: int) -> tuple[dict[str, np.ndarray], int, list[str]]:
    """Arrow IPC stream bytes → (feature arrays, row count, warnings)."""
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        raise errors.InvalidArgument(f"arrow_ipc: not a readable Arrow IPC stream ({exc})") from None
    return decode_table(table, schema, max_rows=max_rows)


def decode_table(table: Any, schema: InputSchema, *, max_rows: int, field: str = "arrow_ipc",
                 ) -> tuple[dict[str, np.ndarray], int, list[str]]:
    """An Arrow table (from IPC bytes, or a stored dataset's Parquet) → (feature arrays, row count, warnings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_columns == 0:
        raise errors.InvalidArgument(f"{field}: no columns given; send one column per feature")
    if table.num_rows == 0:
        raise errors.InvalidArgument(f"{field}: no rows to predict for")
    if table.num_rows > max_rows:
        raise errors.InvalidArgument(f"{field}: {table.num_rows} rows; at most {max_rows} per request")
    names = table.column_names
    duplicate = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if duplicate is not None:
        raise _bad(duplicate, "given twice")
    wanted = dict(schema.columns)
    given: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    for name, chunked in zip(names, table.columns):
        column = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        kind = column.type
        missing = column.is_null().to_numpy(zero_copy_only=False)
        if name not in wanted:
            given[name] = ("ignored", np.empty(0), missing)
            continue
        if pa.types.is_boolean(kind):
            source, values = "bool", column.fill_null(False).to_numpy(zero_copy_only=False)
        elif pa.types.is_integer(kind):
            source, values = "int64", column.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            values = column.cast(pa.float64()).fill_null(float("nan")).to_numpy(zero_copy_only=False)
            source, missing = "double", missing | np.isnan(values)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            source, values = "string", np.asarray(column.to_pylist(), dtype=object)
        elif pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            column = column.cast(pa.timestamp("ns", tz=kind.tz) if pa.types.is_timestamp(kind) else pa.timestamp("ns"))
            source, values = "datetime", pc.fill_null(column, 0).to_numpy(zero_copy_only=False)
        else:
            raise _bad(name, f"Arrow type {kind} is not supported; use numbers, strings, booleans or timestamps")
        given[name] = (source, values, missing)
    out, warnings = _finish(schema, {k: v for k, v in given.items() if v[0] != "ignored"}, table.num_rows)
    ignored = [k for k, v in given.items() if v[0] == "ignored"]
    if ignored:
        warnings.append(f"column(s) {', '.join(map(repr, ignored))} are not features of the model: ignored")
    return out, table.num_rows, warnings


def to_frame(values: dict[str, np.ndarray], schema: InputSchema) -> Any:
    """The DataFrame the model's preprocessor reads, columns in training order."""
    import pandas as pd

    return pd.DataFrame({name: values[name] for name, _ in schema.columns}, copy=False)
