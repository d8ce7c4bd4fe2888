"""Per-column accumulators of the streaming profiler. Each `add` is vectorized over a chunk of rows."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# ISO 8601 dates and date-times, as strings (what pyarrow did not already parse, e.g. mixed offsets).
ISO_DATETIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"


_SAMPLE = 8192  # values counted per chunk once a column is past the distinct cap

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 that spreads every input bit over the output."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def hash_text(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hash per string (or bytes) value. Python's own string hash (SipHash, in C) over the
    values is ~4x faster than pandas' hashing and keeps pandas out of the server process. It is
    salted per process (PYTHONHASHSEED), which is fine: hashes never leave one profiling run."""
    return mix64(np.fromiter(map(hash, values.to_pylist()), dtype=np.int64, count=len(values)).view(np.uint64))


def hash_numbers(values: np.ndarray) -> np.ndarray:
    """64-bit hash per number by its value (-0.0 and 0.0 alike, every NaN alike)."""
    if values.dtype.kind == "f":
        values = np.where(np.isnan(values), np.nan, values.astype(np.float64) + 0.0)
        bits = values.view(np.uint64)
    else:
        bits = np.ascontiguousarray(values).astype(np.int64, copy=False).view(np.uint64)
    return mix64(bits ^ np.uint64(0x9E3779B97F4A7C15))


class ValueCounts:
    """Exact value -> count while a column has at most `cap` distinct values; after that only the
    `keep` most frequent candidates are kept, and each new chunk contributes only its own `keep`
    most frequent values, counted on a systematic sample of the chunk (a heavy-hitters
    approximation: top values and their counts are estimates from then on), and the distinct count
    becomes a lower bound (the most distinct values ever seen at once, all or in one chunk).

    Merging is vectorized: per-chunk `value_counts` tables are gathered and combined with one
    `group_by(...).aggregate(sum)` when they outgrow the merged table (amortized linear).
    """

    def __init__(self, cap: int, keep: int = 1000) -> None:
        self.cap = cap
        self.keep = keep
        self.exact = True
        self.lower_bound = 0
        self._table: pa.Table | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.on_overflow = None  # callback(values) with every distinct value held when exactness is lost

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        if len(values) == 0:
            return
        step = 1
        if not self.exact and len(values) > 2 * _SAMPLE:
            # Past the cap only heavy hitters matter: count every step-th value and scale. A value
            # making up more than 1/step of the chunk (or a run of step values) cannot be missed.
            step = -(-len(values) // _SAMPLE)
            values = values.take(pa.array(np.arange(0, len(values), step)))
        counts = pc.value_counts(values)
        if isinstance(counts, pa.ChunkedArray):
            counts = counts.combine_chunks()
        n = counts.field("counts")
        self.add_counts(counts.field("values"), n if step == 1 else pc.multiply(n, step))

    def add_counts(self, values: pa.Array, counts: pa.Array | np.ndarray) -> None:
        """Add distinct `values` seen `counts` times each (one chunk's value counts)."""
        if len(values) == 0:
            return
        table = pa.table({"v": values, "n": pa.array(counts, type=pa.int64())})
        if not self.exact and table.num_rows > self.keep:
            # Past the cap only candidates for the top matter: a chunk's own top `keep` values.
            self.lower_bound = max(self.lower_bound, table.num_rows)
            table = table.take(pc.select_k_unstable(table, k=self.keep, sort_keys=[("n", "descending")]))
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= max(65_536, self._table.num_rows if self._table is not None else 0):
            self._merge()

    def _merge(self) -> None:
        parts = ([self._table] if self._table is not None else []) + self._pending
        self._pending, self._pending_rows = [], 0
        if not parts:
            return
        if len(parts) == 1:
            merged = parts[0]
        else:
            merged = pa.concat_tables(parts).group_by("v").aggregate([("n", "sum")])
            merged = pa.table({"v": merged.column("v"), "n": merged.column("n_sum")})
        if self.exact and merged.num_rows > self.cap:
            self.exact = False
            if self.on_overflow is not None:
                self.on_overflow(merged.column("v"))
        if not self.exact:
            self.lower_bound = max(self.lower_bound, merged.num_rows)
            if merged.num_rows > self.keep:
                merged = merged.take(pc.select_k_unstable(merged, k=self.keep, sort_keys=[("n", "descending")]))
        self._table = merged

    def distinct(self) -> tuple[int, bool]:
        self._merge()
        if not self.exact:
            return self.lower_bound, False
        return (self._table.num_rows if self._table is not None else 0), True

    def top(self, k: int = 10) -> list[tuple[object, int]]:
        """The k most frequent values, ties broken by value so the result is deterministic."""
        self._merge()
        if self._table is None or self._table.num_rows == 0:
            return []
        try:
            order = pc.sort_indices(self._table, sort_keys=[("n", "descending"), ("v", "ascending")])
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            order = pc.sort_indices(self._table, sort_keys=[("n", "descending")])
        top = self._table.take(order[:k])
        return list(zip(top.column("v").to_pylist(), top.column("n").to_pylist()))

    def values(self) -> pa.ChunkedArray | None:
        """All distinct values (only while exact)."""
        self._merge()
        return self._table.column("v") if self._table is not None and self.exact else None


class DistinctSketch:
    """K-minimum-values estimate of a distinct count (relative error about 1/sqrt(k)), fed with
    64-bit hashes; used only once a column has more distinct values than can be kept exactly."""

    def __init__(self, k: int = 2048) -> None:
        self.k = k
        self._mins = np.empty(0, dtype=np.uint64)

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        if len(values) == 0:
            return
        hashes = hash_text(values)
        if self._mins.size >= self.k:  # full: only hashes below the current k-th smallest can enter
            hashes = hashes[hashes < self._mins[-1]]
        merged = np.unique(np.concatenate([self._mins, hashes]))
        self._mins = merged[: self.k]

    def estimate(self) -> int:
        if self._mins.size < self.k:
            return int(self._mins.size)
        return int((self.k - 1) / (float(self._mins[-1]) / 2.0**64))


class Reservoir:
    """Uniform sample of up to k values of a stream (Algorithm R, vectorized per chunk: item i is
    kept with probability k/(i+1) in a random slot; numpy's last-write-wins on repeated slots
    gives the same result as the one-by-one algorithm)."""

    def __init__(self, k: int, rng: np.random.Generator) -> None:
        self.k = k
        self._rng = rng
        self._buffer = np.empty(0, dtype=np.float64)
        self.seen = 0

    def add(self, x: np.ndarray) -> None:
        if self.seen < self.k:
            take = min(self.k - self.seen, x.size)
            self._buffer = np.concatenate([self._buffer, x[:take]])
            self.seen += take
            x = x[take:]
        if x.size == 0:
            return
        index = self.seen + np.arange(x.size, dtype=np.float64)
        accept = self._rng.random(x.size) * (index + 1) < self.k
        slots = self._rng.integers(0, self.k, int(accept.sum()))
        self._buffer[slots] = x[accept]
        self.seen += x.size

    def sample(self) -> np.ndarray:
        return self._buffer


class NumericMoments:
    """Count, mean and M2 merged chunk by chunk (Chan et al.), plus min, max and zeros, over finite values."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zeros = 0

    def add(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        n_b = x.size
        mean_b = float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        total = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * self.n * n_b / total
        self.n = total
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        self.zeros += int(np.count_nonzero(x == 0))

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n else 0.0


def render(value: object) -> str:
    """A value as the string shown in top values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (int, Decimal, str)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):  # pandas.Timestamp and friends
        return value.isoformat()
    return str(value)


def finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
