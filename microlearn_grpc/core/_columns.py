"""Column-level rules shared by every source format: names, supported types, user type hints."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from microlearn_grpc.core._ingest_base import IngestError, IngestLimits

HINT_TYPES = ("numeric", "categorical", "boolean", "datetime", "text", "id")
STRING_HINTS = frozenset({"categorical", "text", "id"})  # stored as strings whatever they look like
_ISO_HELP = "an ISO 8601 date/time like 2024-01-31 or 2024-01-31T13:45:00"


def check_hint_kinds(hints: dict[str, str] | None) -> dict[str, str]:
    """Validate the hint values (not the column names: those need the header)."""
    hints = dict(hints or {})
    for column, kind in hints.items():
        if kind not in HINT_TYPES:
            raise IngestError("invalid", f"column hint for '{column}': unknown type {kind!r}; "
                                         f"use one of {', '.join(HINT_TYPES)}")
    return hints


def validate_columns(names: Sequence[str], hints: dict[str, str], limits: IngestLimits, *, what: str = "column",
                     where: str = "") -> None:
    """Reject empty and duplicate names, too many columns, and hints naming absent columns."""
    if len(names) > limits.max_columns:
        raise IngestError("limit", f"the file has {len(names)} columns, more than the limit of {limits.max_columns} "
                                   "columns; drop columns before uploading")
    first_seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name.strip():
            extra = (" (a file written by pandas with its index has an unnamed first column: write it with "
                     "index=False, or name the column)") if position == 1 and "header" in where else ""
            raise IngestError("invalid", f"{what} {position} has an empty name{where}; every column needs a "
                                         f"name{extra}")
        if name in first_seen:
            raise IngestError("invalid", f"duplicate column name '{name}' (columns {first_seen[name]} and "
                                         f"{position}){where}; rename one of them")
        first_seen[name] = position
    missing = [column for column in hints if column not in first_seen]
    if missing:
        shown = ", ".join(f"'{n}'" for n in list(names)[:20]) + (", ..." if len(names) > 20 else "")
        raise IngestError("invalid", f"column hint for '{missing[0]}': there is no column named '{missing[0]}' "
                                     f"(the columns are {shown})")


def normalize_batch(batch: pa.RecordBatch | pa.Table, where: Callable[[str], str] = lambda _: ""
                    ) -> pa.Table:
    """Bring a batch to the canonical column types: nested objects flattened to `a.b`, dictionaries
    decoded, views and half floats widened; lists, maps and binary data refused."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    table = table.replace_schema_metadata(None)
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    columns, changed = [], False
    for field, column in zip(table.schema, table.columns):
        target = canonical_type(field.type)
        if target is None:
            raise IngestError("invalid", f"column '{field.name}' has nested or binary type {field.type}"
                                         f"{where(field.name)}; "
                                         "only flat values are supported (numbers, booleans, strings, dates and "
                                         "times; nested objects are flattened, lists are not)")
        if target != field.type:
            column, changed = column.cast(target), True
        columns.append(column)
    return pa.table(columns, names=table.column_names) if changed else table


def canonical_type(t: pa.DataType) -> pa.DataType | None:
    """The type a column of type `t` is stored as, or None when it cannot be stored."""
    if pa.types.is_dictionary(t):
        return canonical_type(t.value_type)
    if pa.types.is_float16(t):
        return pa.float32()
    if t == pa.string_view() or pa.types.is_large_string(t):
        return pa.string()  # batches are small: 32-bit offsets always fit
    if pa.types.is_string(t):
        return t
    if (pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
            or pa.types.is_fixed_size_binary(t) or t == pa.binary_view()):
        return None
    return t


class HintApplier:
    """Converts hinted columns batch by batch; a value that does not convert is an error naming its row.

    `locate(row)` turns a 0-based data row into words for the message ("line 7").
    """

    def __init__(self, hints: dict[str, str], locate: Callable[[int], str]) -> None:
        self._hints = hints
        self._locate = locate
        self._datetime_types: dict[str, pa.DataType] = {}  # fixed by the first batch, so all batches agree

    def apply(self, table: pa.Table, first_row: int) -> pa.Table:
        for name, kind in self._hints.items():
            index = table.schema.get_field_index(name)
            column = table.column(index)
            converted = self._convert(name, kind, column, first_row)
            if converted is not column:
                table = table.set_column(index, name, converted)
        return table

    def _convert(self, name: str, kind: str, column: pa.ChunkedArray, first_row: int) -> pa.ChunkedArray:
        t = column.type
        if kind in STRING_HINTS:
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                return column
            return self._cast(column, pa.string(), name)
        if kind == "numeric":
            if pa.types.is_floating(t) and t == pa.float64():
                return column
            if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t) \
                    or pa.types.is_null(t):
                return self._cast(column, pa.float64(), name)
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                return self._parse(name, column, [pa.float64()], first_row, "a number", trim=True)
            raise IngestError("invalid", f"column '{name}' is hinted as numeric but holds {t} values")
        if kind == "datetime":
            if pa.types.is_temporal(t) or pa.types.is_null(t):
                return column
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                candidates = [self._datetime_types[name]] if name in self._datetime_types else \
                    [pa.timestamp("us"), pa.timestamp("us", tz="UTC")]
                out = self._parse(name, column, candidates, first_row, _ISO_HELP, trim=True)
                self._datetime_types[name] = out.type
                return out
            raise IngestError("invalid", f"column '{name}' is hinted as datetime but holds {t} values; "
                                         f"a datetime column needs text like {_ISO_HELP}")
        return column  # "boolean": a semantic type only, the values are kept as they are

    @staticmethod
    def _cast(column: pa.ChunkedArray, target: pa.DataType, name: str) -> pa.ChunkedArray:
        try:
            return column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise IngestError("invalid", f"column '{name}' cannot be stored as {target}: {err}") from None

    def _parse(self, name: str, column: pa.ChunkedArray, candidates: list[pa.DataType], first_row: int,
               expected: str, *, trim: bool) -> pa.ChunkedArray:
        values = pc.utf8_trim_whitespace(column) if trim else column
        for target in candidates:
            try:
                return values.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        row = first_bad_row(values.combine_chunks(), candidates[0])
        value = column[row].as_py()
        hint = "numeric" if expected == "a number" else "datetime"
        raise IngestError("invalid", f"column '{name}' is hinted as {hint}, but {self._locate(first_row + row)} has "
                                     f"{value!r} in it, which is not {expected}")


def first_bad_row(values: pa.Array, target: pa.DataType) -> int:
    """Index of the first value that does not cast to `target`, found by bisection (log n vectorized casts)."""
    lo, hi = 0, len(values)  # invariant: the first bad value is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            values.slice(lo, mid - lo).cast(target)
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo
