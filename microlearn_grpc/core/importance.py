"""Permutation feature importance per original input column: shuffle one raw column, predict again
through the whole model (preprocessing included), and measure how much the metric drops.

The cost is bounded three ways, because it runs after fits whose time is budgeted: at most
`max_rows` rows (a seeded sample), `repeats` shuffles per column, and an optional deadline. The
baseline prediction is timed first, and when all the planned shuffles would not fit before the
deadline the sample shrinks (down to `MIN_ROWS`) so that they do; the deadline is still checked
before every prediction, and the work goes repeat by repeat over all columns, so running out leaves
every column with the same number of repeats (or the first ones with one more) rather than half of
them unmeasured; `complete` says whether every planned repeat ran.

Shuffles follow scikit-learn's `permutation_importance` (one RandomState per column, seeded from
`seed` as it derives its own), so on the same rows the two agree exactly; the tests check it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_REPEATS", "MAX_ROWS", "Drops", "deadline", "measure", "summarize"]

MAX_ROWS = 2_000
MIN_ROWS = 200  # a deadline shrinks the sample, down to this many rows
DEFAULT_REPEATS = 3


@dataclass
class Drops:
    """The metric drop of every shuffle, by column: positive means the model needed the column."""

    baseline: float
    rows: int
    drops: dict[str, list[float]] = field(default_factory=dict)
    complete: bool = True
    seconds: float = 0.0

    def merge(self, other: Drops) -> Drops:
        """Pool two measurements (the folds of a cross-validation): rows add up, baselines average by rows."""
        rows = self.rows + other.rows
        baseline = (self.baseline * self.rows + other.baseline * other.rows) / rows if rows else self.baseline
        drops = {name: self.drops.get(name, []) + other.drops.get(name, [])
                 for name in dict.fromkeys([*self.drops, *other.drops])}
        return Drops(baseline, rows, drops, self.complete and other.complete, self.seconds + other.seconds)


def measure(predict: Callable[[Any], Any], score: Callable[[Any, Any], float | None], frame: Any, y: Any,
            columns: Sequence[str], *, maximize: bool, repeats: int = DEFAULT_REPEATS, seed: int = 0,
            max_rows: int = MAX_ROWS, deadline: float | None = None) -> Drops | None:
    """Shuffle each of `columns` of the pandas `frame` `repeats` times and score `predict(frame)` with
    `score(y, predictions)`. None when the metric is undefined on these rows (a single class, say).
    `deadline` is a `time.monotonic()` value."""
    started = time.monotonic()
    n = len(frame)
    if n > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
        frame, y = frame.iloc[keep], np.asarray(y)[keep]
    frame = frame.reset_index(drop=True)
    y = np.asarray(y)
    timed = time.monotonic()
    baseline = score(y, predict(frame))
    if baseline is None or not math.isfinite(baseline):
        return None
    if deadline is not None and len(frame) > MIN_ROWS:
        # Fewer rows rather than unmeasured columns: shrink the sample so every planned shuffle fits.
        planned = (time.monotonic() - timed) * len(columns) * repeats
        left = deadline - time.monotonic()
        if planned > left:
            rows = max(MIN_ROWS, int(len(frame) * max(left, 0.0) / planned))
            keep = np.sort(np.random.default_rng(seed + 1).choice(len(frame), rows, replace=False))
            frame, y = frame.iloc[keep].reset_index(drop=True), y[keep]
            baseline = score(y, predict(frame))
            if baseline is None or not math.isfinite(baseline):
                return None
    sign = 1.0 if maximize else -1.0
    # scikit-learn draws one seed from random_state and gives every column a RandomState of it.
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    work = frame.copy()
    states = {name: (np.random.RandomState(column_seed), np.arange(len(frame)), frame[name]) for name in columns}
    result = Drops(float(baseline), len(frame), {name: [] for name in columns})
    for _ in range(repeats):
        for name in columns:
            if deadline is not None and time.monotonic() >= deadline:
                result.complete = False
                break
            state, order, current = states[name]
            state.shuffle(order)
            # Shuffled again from its last shuffle, as scikit-learn does (each repeat is still a uniform permutation).
            current = current.iloc[order].reset_index(drop=True)
            states[name] = (state, order, current)
            work[name] = current
            value = score(y, predict(work))
            work[name] = frame[name]
            if value is not None and math.isfinite(value):
                result.drops[name].append(sign * (float(baseline) - float(value)))
        if not result.complete:
            break
    result.seconds = time.monotonic() - started
    return result


def summarize(drops: Drops, *, metric: str) -> dict[str, Any]:
    """The JSON-ready record stored with a model: columns by mean drop, largest first; columns that
    no repeat reached are left out."""
    features = [{"name": name, "mean": float(np.mean(values)), "std": float(np.std(values)), "repeats": len(values)}
                for name, values in drops.drops.items() if values]
    features.sort(key=lambda f: (-f["mean"], f["name"]))
    return {"metric": metric, "baseline": drops.baseline, "rows": drops.rows,
            "repeats": max((f["repeats"] for f in features), default=0), "complete": drops.complete,
            "seconds": round(drops.seconds, 3), "features": features}


# Inline (in a training job) importance may take a quarter of the fit's time, and at least this long: it is a tax on
# every training job (the training-overhead goal is 20% + 1 s); an evaluation job measures in full.
TIME_FACTOR = 0.25
MIN_SECONDS = 1.0


def deadline(fit_seconds: float | None, *, factor: float = TIME_FACTOR, floor: float = MIN_SECONDS) -> float:
    """The `time.monotonic()` deadline of an importance measurement that follows a fit of `fit_seconds`."""
    return time.monotonic() + max(floor, factor * float(fit_seconds or 0.0))
