"""Streaming dataset profiler: per-column statistics, semantic types and likely targets, in one pass.

Estimates (everything else is exact):
- quantiles p25/p50/p75 come from a uniform reservoir sample per numeric column (`sample_size`
  values, fewer for very wide tables so all samples together stay under ~10M values); they
  are exact while a column has no more non-missing values than its sample holds;
- distinct counts are exact up to 100,000 values per column (fewer for very wide tables), then
  `distinct_count_exact` is False and `distinct_count` is a lower bound; top values of such a
  column are approximate (heavy hitters among the kept candidates);
- duplicate rows are counted exactly over the first 1,000,000 rows, and for longer tables
  scaled from them to the whole table.
Missing values are nulls and, in float columns, NaN. Infinite values are not missing: they
count as values (and show in top values as `inf`), but min/max/mean/std/quantiles are taken
over the finite values only, so the profile stays valid JSON.

Semantic types, in order (a user hint always wins):
1. boolean: Arrow bool, or text whose distinct values are one pair like yes/no, true/false,
   y/n, t/f (any case);
2. datetime: Arrow date/timestamp, or text that is all ISO 8601 dates/date-times;
3. numeric: Arrow integer/float/decimal — except integers with no missing values, strictly
   increasing over the whole table and at least 20 rows (a row index like 0..n-1): id;
   low-cardinality integers stay numeric but may be suggested as classification targets;
4. text columns: id when near-unique (distinct/non-missing > 0.95, at least 20 values) and no
   value contains whitespace; text when values are long (mean length > 30 characters),
   mostly contain whitespace and are high-cardinality (distinct/non-missing > 0.5);
   otherwise categorical;
5. anything else (all-missing, times of day, durations): categorical.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microlearn_grpc.core._profile_columns import (
    ISO_DATETIME,
    DistinctSketch,
    NumericMoments,
    Reservoir,
    ValueCounts,
    finite_or_none,
    hash_numbers,
    hash_text,
    render,
)

__all__ = ["COLUMN_TYPES", "StreamingProfiler", "profile_table"]

COLUMN_TYPES = ("numeric", "categorical", "boolean", "datetime", "text", "id")
DISTINCT_CAP = 100_000
DUPLICATE_ROWS = 1_000_000
_DISTINCT_BUDGET = 10_000_000  # distinct values kept over all columns together
_SAMPLE_BUDGET = 10_000_000  # sampled numbers kept over all columns together
_CHUNK_ROWS, _CHUNK_BYTES = 65_536, 32 << 20  # small batches are gathered to this before the work
_MIN_ID_ROWS = 20
_MAX_THREADS = 8
_BOOLEAN_PAIRS = ({"yes", "no"}, {"true", "false"}, {"y", "n"}, {"t", "f"})


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0x100000001B3)


def _column_hashes(column: pa.ChunkedArray) -> np.ndarray:
    """64-bit hash per value, vectorized; equal values (and nulls) hash equal across batches."""
    t = column.type
    if _is_text(t):
        return hash_text(column)
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_duration(t):
        column = column.cast(pa.int64()) if not pa.types.is_date32(t) else column.cast(pa.int32()).cast(pa.int64())
    elif pa.types.is_boolean(t):
        column = column.cast(pa.int8())
    elif pa.types.is_decimal(t):
        column = column.cast(pa.float64())
    values = column.fill_null(0).to_numpy() if column.null_count else column.to_numpy()
    hashes = hash_numbers(np.ascontiguousarray(values))
    if column.null_count:
        hashes[column.is_null().to_numpy(zero_copy_only=False)] = _NULL_HASH
    return hashes


class _Column:
    def __init__(self, field: pa.Field, cap: int) -> None:
        self.name = field.name
        self.type = field.type
        self.missing = 0
        self.non_null = 0
        self.counts = ValueCounts(cap)

    def add(self, column: pa.ChunkedArray) -> None:
        self.missing += column.null_count
        values = pc.drop_null(column) if column.null_count else column
        self._add(values)

    def row_hashes(self, column: pa.ChunkedArray) -> np.ndarray:
        """64-bit hash per row of the chunk last given to `add`, for duplicate detection."""
        return _column_hashes(column)

    def _add(self, values: pa.ChunkedArray) -> None:
        self.non_null += len(values)
        try:
            self.counts.add(values)
        except pa.ArrowNotImplementedError:  # a type value_counts cannot hash: counts stay empty
            pass


class _Numeric(_Column):
    def __init__(self, field: pa.Field, cap: int, reservoir: Reservoir) -> None:
        super().__init__(field, cap)
        self.moments = NumericMoments()
        self.reservoir = reservoir
        self.integer = pa.types.is_integer(field.type)
        self.increasing = self.integer
        self._last: int | None = None

    def add(self, column: pa.ChunkedArray) -> None:
        if column.null_count:
            self.increasing = False
        super().add(column)

    def _add(self, values: pa.ChunkedArray) -> None:
        if pa.types.is_floating(self.type):
            nan = pc.is_nan(values)
            n_nan = pc.sum(nan).as_py() or 0
            if n_nan:
                self.missing += n_nan
                values = pc.filter(values, pc.invert(nan))
        super()._add(values)
        x = values.cast(pa.float64()).to_numpy() if values.type != pa.float64() else values.to_numpy()
        finite = x[np.isfinite(x)]
        self.moments.add(finite)
        self.reservoir.add(finite)
        if self.increasing and len(values):
            ints = values.to_numpy()
            if (self._last is not None and ints[0] <= self._last) or np.any(ints[1:] <= ints[:-1]):
                self.increasing = False
            self._last = int(ints[-1])

    def numeric_summary(self) -> dict | None:
        m = self.moments
        if m.n == 0:
            return None
        p25, p50, p75 = (float(q) for q in np.quantile(self.reservoir.sample(), [0.25, 0.5, 0.75]))
        return {"min": m.min, "max": m.max, "mean": finite_or_none(m.mean) or 0.0, "std": finite_or_none(m.std) or 0.0,
                "p25": p25, "p50": p50, "p75": p75, "zero_count": m.zeros}


class _Temporal(_Column):
    def __init__(self, field: pa.Field, cap: int) -> None:
        super().__init__(field, cap)
        self.min = self.max = None

    def _add(self, values: pa.ChunkedArray) -> None:
        super()._add(values)
        if len(values) == 0:
            return
        if pa.types.is_timestamp(values.type) and values.type.unit == "ns":
            values = values.cast(pa.timestamp("us", values.type.tz), safe=False)  # Python datetimes hold us
        bounds = pc.min_max(values)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        self.min = low if self.min is None or low < self.min else self.min
        self.max = high if self.max is None or high > self.max else self.max


class _Text(_Column):
    """Strings are dictionary-encoded once per chunk: value counts, lengths, whitespace, ISO checks
    and row hashes are then computed on the distinct values only and weighted by their counts."""

    def __init__(self, field: pa.Field, cap: int) -> None:
        super().__init__(field, cap)
        self.sketch: DistinctSketch | None = None
        self.length_sum = 0
        self.with_space = 0
        self.iso = True  # every value so far is an ISO date/date-time
        self.iso_min = self.iso_max = None
        self.counts.on_overflow = self._overflow
        self._encoded: tuple[pa.Array, np.ndarray] | None = None

    def _overflow(self, values: pa.ChunkedArray) -> None:
        self.sketch = DistinctSketch()
        self.sketch.add(values)

    def add(self, column: pa.ChunkedArray) -> None:
        self.missing += column.null_count
        array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        encoded = pc.dictionary_encode(array)
        uniques = encoded.dictionary
        indices = encoded.indices.fill_null(-1).to_numpy() if encoded.null_count else encoded.indices.to_numpy()
        self._encoded = (uniques, indices)
        counts = np.bincount(indices[indices >= 0] if encoded.null_count else indices, minlength=len(uniques))
        self.non_null += len(array) - array.null_count
        if len(uniques) == 0:
            return
        self.counts.add_counts(uniques, counts)
        if self.sketch is not None:
            self.sketch.add(uniques)
        self.length_sum += int(np.dot(pc.utf8_length(uniques).to_numpy().astype(np.int64), counts))
        spaced = pc.match_substring(uniques, " ").to_numpy(zero_copy_only=False)
        self.with_space += int(counts[spaced].sum())
        if self.iso:
            if not pc.all(pc.match_substring_regex(uniques, ISO_DATETIME)).as_py():
                self.iso = False
            else:  # ISO strings of one layout sort in time order
                bounds = pc.min_max(uniques)
                low, high = bounds["min"].as_py(), bounds["max"].as_py()
                self.iso_min = low if self.iso_min is None or low < self.iso_min else self.iso_min
                self.iso_max = high if self.iso_max is None or high > self.iso_max else self.iso_max

    def row_hashes(self, column: pa.ChunkedArray) -> np.ndarray:
        if self._encoded is None:
            return _column_hashes(column)
        uniques, indices = self._encoded
        self._encoded = None
        hashes = np.append(_column_hashes(pa.chunked_array([uniques])), _NULL_HASH)
        return hashes[indices]  # index -1 (null) picks the null hash at the end

    def distinct_estimate(self) -> int:
        count, exact = self.counts.distinct()
        return count if exact or self.sketch is None else max(count, self.sketch.estimate())


class _Duplicates:
    """Row hashes of the first `limit` rows; duplicates = rows minus distinct hashes (64-bit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows = 0
        self._hashes: list[np.ndarray] = []
        self.failed = False

    def wants(self) -> bool:
        return not self.failed and self.rows < self.limit

    def add(self, table: pa.Table, profilers: list[_Column]) -> None:
        if not self.wants():
            return
        take = min(table.num_rows, self.limit - self.rows)
        rows = np.zeros(take, dtype=np.uint64)
        try:
            for column, profiler in zip(table.columns, profilers):
                if not pa.types.is_null(column.type):  # all-null columns are equal in every row
                    rows = rows * _MIX ^ profiler.row_hashes(column)[:take]
        except (TypeError, ValueError, NotImplementedError, pa.ArrowException):
            self.failed = True  # an exotic type: no duplicate count rather than no profile
            return
        self._hashes.append(rows)
        self.rows += take

    def count(self, total_rows: int) -> int:
        if self.failed or not self.rows:
            return 0
        hashes = np.sort(np.concatenate(self._hashes))
        duplicates = int(np.count_nonzero(hashes[1:] == hashes[:-1]))
        return duplicates if total_rows <= self.rows else round(duplicates * total_rows / self.rows)


class StreamingProfiler:
    """Feed record batches in table order with `update`, then call `finish` once for the profile dict."""

    def __init__(self, schema: pa.Schema, column_hints: dict[str, str] | None = None, *, sample_size: int = 100_000,
                 seed: int = 0) -> None:
        self.schema = schema
        self.hints = {k: v for k, v in (column_hints or {}).items() if k in schema.names}
        for column, kind in self.hints.items():
            if kind not in COLUMN_TYPES:
                raise ValueError(f"column hint for '{column}': unknown type {kind!r}")
        # One generator per column: columns are profiled in parallel, and results must not depend on timing.
        seeds = np.random.SeedSequence(seed).spawn(max(1, len(schema)))
        width = max(1, len(schema))
        numeric = max(1, sum(_is_numeric(f.type) for f in schema))  # dictionaries of numbers: rare, not counted
        cap = min(DISTINCT_CAP, max(1_000, _DISTINCT_BUDGET // width))
        k = max(1, min(sample_size, max(1_000, _SAMPLE_BUDGET // numeric)))
        self._columns: list[_Column] = []
        # Dictionary columns are profiled as their values.
        self._decode = [pa.types.is_dictionary(f.type) for f in schema]
        fields = [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema]
        for field, column_seed in zip(fields, seeds):
            if _is_numeric(field.type):
                self._columns.append(_Numeric(field, cap, Reservoir(k, np.random.default_rng(column_seed))))
            elif pa.types.is_date(field.type) or pa.types.is_timestamp(field.type):
                self._columns.append(_Temporal(field, cap))
            elif _is_text(field.type):
                self._columns.append(_Text(field, cap))
            else:
                self._columns.append(_Column(field, cap))
        self._duplicates = _Duplicates(DUPLICATE_ROWS)
        self._rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered_rows = self._buffered_bytes = 0
        self._finished: dict | None = None
        workers = min(_MAX_THREADS, os.cpu_count() or 1, len(self._columns))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="microlearn-profile") if workers > 1 else None

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self._finished is not None:
            raise RuntimeError("StreamingProfiler.update() after finish()")
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if table.schema.names != self.schema.names or table.schema.types != self.schema.types:
            raise ValueError(f"batch schema {table.schema} does not match the profiler's schema {self.schema}")
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered_rows += table.num_rows
        self._buffered_bytes += table.nbytes
        if self._buffered_rows >= _CHUNK_ROWS or self._buffered_bytes >= _CHUNK_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        self._buffer, self._buffered_rows, self._buffered_bytes = [], 0, 0
        for index, decode in enumerate(self._decode):
            if decode:
                decoded = table.column(index).cast(self._columns[index].type)
                table = table.set_column(index, table.field(index).name, decoded)
        if self._pool is not None:  # pyarrow.compute and numpy release the GIL: columns run in parallel
            list(self._pool.map(lambda i: self._columns[i].add(table.column(i)), range(len(self._columns))))
        else:
            for index, column in enumerate(self._columns):
                column.add(table.column(index))
        self._duplicates.add(table, self._columns)
        self._rows += table.num_rows

    def finish(self) -> dict:
        if self._finished is not None:
            return self._finished
        self._flush()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        columns = [self._describe(c) for c in self._columns]
        self._finished = {
            "row_count": self._rows,
            "column_count": len(columns),
            "duplicate_row_count": self._duplicates.count(self._rows),
            "columns": columns,
            "target_suggestions": suggest_targets(columns, self._columns, self._rows),
        }
        return self._finished

    def _describe(self, column: _Column) -> dict:
        distinct, exact = column.counts.distinct()
        kind = self.hints.get(column.name) or infer_type(column)
        numeric = column.numeric_summary() if isinstance(column, _Numeric) else None
        min_dt = max_dt = None
        if isinstance(column, _Temporal) and column.min is not None:
            min_dt, max_dt = render(column.min), render(column.max)
        elif isinstance(column, _Text) and column.iso and column.iso_min is not None and kind == "datetime":
            min_dt, max_dt = _iso(column.iso_min), _iso(column.iso_max)
        return {
            "name": column.name,
            "type": kind,
            "physical_type": str(column.type),
            "missing_count": column.missing,
            "distinct_count": distinct,
            "distinct_count_exact": exact,
            "numeric": numeric,
            "top_values": [{"value": render(v), "count": int(n)} for v, n in column.counts.top(10)],
            "min_datetime": min_dt,
            "max_datetime": max_dt,
            "hinted": column.name in self.hints,
        }


def _iso(text: str) -> str:
    """Normalize an ISO string (`2024-01-31 10:00Z` -> `2024-01-31T10:00:00+00:00`) when Python can read it."""
    try:
        if len(text) > 10:
            return dt.datetime.fromisoformat(text).isoformat()
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        return text


def infer_type(column: _Column) -> str:
    """The semantic type of a profiled column (rules in the module docstring)."""
    t = column.type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return "datetime"
    if isinstance(column, _Numeric):
        if column.integer and column.increasing and column.non_null >= _MIN_ID_ROWS and column.missing == 0:
            return "id"
        return "numeric"
    if isinstance(column, _Text):
        if column.non_null == 0:
            return "categorical"
        values = column.counts.values()
        if values is not None and len(values) <= 2:
            lowered = {str(v).strip().lower() for v in values.to_pylist()}
            if any(lowered <= pair for pair in _BOOLEAN_PAIRS):
                return "boolean"
        if column.iso:
            return "datetime"
        ratio = column.distinct_estimate() / column.non_null
        if ratio > 0.95 and column.non_null >= _MIN_ID_ROWS and column.with_space == 0:
            return "id"
        if column.length_sum / column.non_null > 30 and column.with_space > column.non_null / 2 and ratio > 0.5:
            return "text"
        return "categorical"
    return "categorical"


# -- target suggestions ----------------------------------------------------------------------

_TARGET_NAMES = {"target", "label", "labels", "class", "y", "outcome", "price", "species", "churn", "churned",
                 "survived", "default", "fraud", "response", "result", "diagnosis", "quality", "rating", "salary",
                 "income", "sales", "revenue", "grade", "status", "category", "sentiment", "is_fraud"}
_TARGET_WORDS = {"target", "label", "class", "outcome", "price", "churn", "fraud", "survived", "default", "response",
                 "diagnosis", "quality", "rating", "salary", "sales", "revenue", "sentiment"}
_MAX_SUGGESTIONS = 5


def _name_bonus(name: str) -> tuple[float, str | None]:
    lowered = name.strip().lower()
    if lowered in _TARGET_NAMES:
        return 0.4, "named like a target"
    words = set(re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name.strip()).lower()))
    if words & _TARGET_WORDS:
        return 0.25, "name suggests a target"
    return 0.0, None


def suggest_targets(described: list[dict], columns: list[_Column], row_count: int) -> list[dict]:
    """Score each column as a prediction target; at most five, best first.

    Candidates: boolean and low-cardinality categorical columns (binary for 2 classes,
    multiclass for 3-50), integer columns with 2-20 distinct values (classification), other
    numeric columns (regression). Never id, text or datetime columns, constant columns or
    columns missing more than half their values. The score adds a base per task, a bonus for a
    target-like name and for being the last column, and subtracts for missing values.
    """
    suggestions = []
    last = len(described) - 1
    rows = max(1, row_count)
    for index, (info, column) in enumerate(zip(described, columns)):
        kind, distinct = info["type"], info["distinct_count"]
        missing_fraction = info["missing_count"] / rows
        if kind in ("id", "text", "datetime") or distinct < 2 or missing_fraction > 0.5:
            continue
        if not (isinstance(column, (_Text, _Numeric)) or pa.types.is_boolean(column.type)):
            continue  # durations, times of day, binary: not something to predict
        reasons: list[str] = []
        if kind == "boolean" or (kind == "categorical" and distinct == 2) or (kind == "numeric" and distinct == 2):
            task, score = "binary", 0.45 if kind != "numeric" else 0.35
            reasons.append("two values")
        elif kind == "categorical":
            if distinct > 50 or not info["distinct_count_exact"]:
                continue
            task, score = "multiclass", 0.40 - 0.1 * (distinct - 3) / 47
            reasons.append(f"categorical with {distinct} classes")
        elif kind == "numeric" and isinstance(column, _Numeric) and column.integer and distinct <= 20:
            task, score = "multiclass", 0.30
            reasons.append(f"integer with {distinct} distinct values")
        elif kind == "numeric":
            task, score = "regression", 0.30
            reasons.append("numeric")
        else:
            continue
        bonus, why = _name_bonus(info["name"])
        if why:
            score += bonus
            reasons.append(why)
        if index == last and last > 0:
            score += 0.15
            reasons.append("last column")
        if missing_fraction:
            score -= 0.4 * missing_fraction
            reasons.append(f"{missing_fraction:.0%} missing")
        suggestions.append({"column": info["name"], "task": task, "reason": "; ".join(reasons),
                            "score": round(min(1.0, max(0.0, score)), 3), "_index": index})
    suggestions.sort(key=lambda s: (-s["score"], s["_index"]))
    for s in suggestions:
        del s["_index"]
    return suggestions[:_MAX_SUGGESTIONS]


def profile_table(table: pa.Table, column_hints: dict[str, str] | None = None) -> dict:
    """Profile a whole in-memory table (one streaming pass over its batches)."""
    profiler = StreamingProfiler(table.schema, column_hints)
    for batch in table.to_batches(max_chunksize=_CHUNK_ROWS):
        profiler.update(batch)
    return profiler.finish()
