"""Training/validation row splits: a holdout or k folds, stratified by class, keeping groups on one side,
or ordered in time.

Rules `split` follows:
- every validation set has at least 2 rows (else ValueError): a holdout needs ceil(fraction * rows) >= 2,
  k-fold needs 2 * folds rows (2 * (folds + 1) ordered in time);
- classification is stratified unless `stratify` is False; when a class is too small for that (fewer than
  2 rows for a holdout, fewer than `folds` for k-fold) the split falls back to unstratified with a warning;
  an unstratified classification holdout still keeps one row of every class on the training side;
- with groups, equal group values stay on one side (rows with a missing group are groups of one); a
  holdout then holds out `fraction` of the groups, the best of 20 seeded draws: every class in training,
  class shares and row fraction closest to the target;
- with an order (a time column as numbers or datetime64), splits are contiguous and validation rows come
  after training rows; rows sharing one time value stay on one side; nothing is shuffled. Holdout: the
  last `fraction` of the rows. K-fold: an expanding window like scikit-learn's TimeSeriesSplit (folds + 1
  blocks; fold i trains on blocks 0..i and validates on block i+1, so the first block never validates).
  Rows with a missing time are used for training only.
Results depend only on the inputs and the seed. scikit-learn and pandas are imported on first use.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from microlearn_grpc.core.estimators._base import CLASSIFICATION_TASKS, TASKS

__all__ = ["METHODS", "Strategy", "split"]

METHODS = ("holdout", "kfold")
_GROUP_DRAWS = 20  # seeded GroupShuffleSplit draws a grouped holdout picks the best of
_MIN_VALIDATION_ROWS = 2

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Strategy:
    """How to validate; field names follow the proto's ValidationStrategy (its 0 defaults already applied)."""

    method: str = "holdout"
    fraction: float = 0.2
    folds: int = 5
    stratify: bool | None = None  # None: stratify classification tasks
    group_column: str = ""
    time_column: str = ""

    def check(self) -> Strategy:
        """Itself, or ValueError naming the spec field at fault."""
        if self.method not in METHODS:
            raise ValueError(f"spec.validation: unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.method == "holdout" and not 0 < self.fraction <= 0.5:
            raise ValueError(f"spec.validation.holdout.fraction must be above 0 and at most 0.5, got {self.fraction}")
        if self.method == "kfold" and (isinstance(self.folds, bool) or not isinstance(self.folds, (int, np.integer))
                                       or not 2 <= self.folds <= 20):
            raise ValueError(f"spec.validation.k_fold.folds must be a whole number from 2 to 20, got {self.folds}")
        if self.group_column and self.time_column:
            raise ValueError("spec.validation: set group_column or time_column, not both "
                             f"(got group_column {self.group_column!r} and time_column {self.time_column!r})")
        return self


def split(n_rows: int, strategy: Strategy, *, task: str, y: Any = None, groups: Any = None, order: Any = None,
          seed: int = 0) -> tuple[list[Split], list[str]]:
    """(train rows, validation rows) pairs — one for a holdout, `folds` for k-fold — and warnings for the user.

    Row indices are sorted int64 arrays. `y` (the target, any values) is required for classification;
    `groups` are the group column's values, `order` the time column's; both are required when the
    strategy names the column.
    """
    strategy.check()
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if strategy.group_column and groups is None:
        raise TypeError(f"split: strategy.group_column is {strategy.group_column!r} but no groups were given")
    if strategy.time_column and order is None:
        raise TypeError(f"split: strategy.time_column is {strategy.time_column!r} but no order was given")
    classification = task in CLASSIFICATION_TASKS
    if classification and y is None:
        raise TypeError("split: y is required to split a classification task")
    notes: list[str] = []
    codes, classes = _factorize(y, n_rows, "y") if classification else (None, [])
    stratify = classification and strategy.stratify is not False
    if strategy.stratify and not classification:
        notes.append(f"spec.validation.stratify applies to classification only; ignored for a {task} task")
    seed = int(seed) % 2**32
    if order is not None:
        if strategy.stratify:
            notes.append("spec.validation.stratify is ignored with a time column: validation rows are the latest")
        pairs = _by_time(_order(order, n_rows), strategy, notes)
    else:
        _check_size(n_rows, strategy)
        if groups is not None:
            pairs = _by_group(groups, n_rows, strategy, codes if stratify else None, codes, seed, notes)
        elif strategy.method == "holdout":
            pairs = [_holdout(n_rows, strategy.fraction, codes, classes, stratify, seed, notes)]
        else:
            pairs = _kfold(n_rows, strategy.folds, codes, classes, stratify, seed, notes)
    if codes is not None:
        _note_missing_classes(pairs, codes, classes, notes)
    return [(np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)) for train, val in pairs], notes


# -- random splits -------------------------------------------------------------------------------


def _validation_rows(n_rows: int, fraction: float) -> int:
    return math.ceil(n_rows * fraction - 1e-9)  # as scikit-learn rounds a test fraction, minus float noise


def _check_size(n_rows: int, strategy: Strategy) -> None:
    n_val = _validation_rows(n_rows, strategy.fraction)
    if strategy.method == "holdout" and min(n_val, n_rows - n_val) < _MIN_VALIDATION_ROWS:
        raise ValueError(f"spec.validation.holdout.fraction: holding out {strategy.fraction} of {n_rows} rows leaves "
                         f"{n_val} validation and {n_rows - n_val} training rows, fewer than {_MIN_VALIDATION_ROWS}; "
                         f"use more rows{' or a larger fraction' if n_val < _MIN_VALIDATION_ROWS else ''}")
    if strategy.method == "kfold" and n_rows < _MIN_VALIDATION_ROWS * strategy.folds:
        raise ValueError(f"spec.validation.k_fold.folds: {strategy.folds} folds of {n_rows} rows leave fewer than "
                         f"{_MIN_VALIDATION_ROWS} validation rows per fold; use at most "
                         f"{max(n_rows // _MIN_VALIDATION_ROWS, 1)} folds or a holdout")


def _holdout(n_rows: int, fraction: float, codes: np.ndarray | None, classes: list, stratify: bool, seed: int,
             notes: list[str]) -> Split:
    n_val = _validation_rows(n_rows, fraction)
    rng = np.random.default_rng(seed)
    if codes is None:
        rows = rng.permutation(n_rows)
        return rows[n_val:], rows[:n_val]
    counts = np.bincount(codes)
    if stratify:
        small = _small_classes(counts, classes, 2)
        if not small and len(counts) <= min(n_val, n_rows - n_val):
            from sklearn.model_selection import StratifiedShuffleSplit

            splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
            return next(splitter.split(np.zeros((n_rows, 1)), codes))
        why = f"fewer than 2 rows in {small}" if small else f"{len(counts)} classes, {n_val} validation rows"
        notes.append(f"the holdout is not stratified ({why}); every class keeps a row in the training set")
    # One random row of every class is kept for training; validation rows are drawn from the others.
    rows = rng.permutation(n_rows)
    first = np.zeros(n_rows, dtype=bool)
    first[rows[np.unique(codes[rows], return_index=True)[1]]] = True
    ranked = np.concatenate([rows[~first[rows]], rows[first[rows]]])
    return ranked[n_val:], ranked[:n_val]


def _kfold(n_rows: int, folds: int, codes: np.ndarray | None, classes: list, stratify: bool, seed: int,
           notes: list[str]) -> list[Split]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if stratify:
        small = _small_classes(np.bincount(codes), classes, folds)
        if not small:
            splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
            return list(splitter.split(np.zeros((n_rows, 1)), codes))
        notes.append(f"the folds are not stratified (fewer than {folds} rows in {small})")
    return list(KFold(folds, shuffle=True, random_state=seed).split(np.zeros((n_rows, 1))))


# -- grouped splits ------------------------------------------------------------------------------


def _by_group(groups: Any, n_rows: int, strategy: Strategy, strata: np.ndarray | None, codes: np.ndarray | None,
              seed: int, notes: list[str]) -> list[Split]:
    from sklearn.model_selection import GroupKFold, GroupShuffleSplit, StratifiedGroupKFold

    group_codes, _ = _factorize(groups, n_rows, "groups")
    missing = group_codes < 0
    if missing.any():
        group_codes[missing] = group_codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
        notes.append(f"{int(missing.sum())} rows have no {_column(strategy.group_column)} value; each is a group "
                     "of its own")
    n_groups = int(group_codes.max()) + 1
    needed = 2 if strategy.method == "holdout" else strategy.folds
    if n_groups < needed:
        raise ValueError(f"spec.validation.group_column: {_column(strategy.group_column)} has {n_groups} distinct "
                         f"value{'s' if n_groups != 1 else ''}; {'a holdout' if needed == 2 else f'{needed} folds'} "
                         f"need{'s' if needed == 2 else ''} at least {needed} groups")
    X = np.zeros((n_rows, 1))
    if strategy.method == "holdout":
        splitter = GroupShuffleSplit(_GROUP_DRAWS, test_size=strategy.fraction, random_state=seed)
        draws = splitter.split(X, groups=group_codes)
        usable = [(train, val) for train, val in draws if min(len(train), len(val)) >= _MIN_VALIDATION_ROWS]
        if not usable:
            raise ValueError(f"spec.validation.holdout.fraction: holding out {strategy.fraction} of the "
                             f"{n_groups} groups of {_column(strategy.group_column)} leaves fewer than "
                             f"{_MIN_VALIDATION_ROWS} validation or training rows; use more rows or groups")
        return [min(usable, key=lambda pair: _holdout_quality(pair, strategy.fraction, strata, codes))]
    folds = strategy.folds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # StratifiedGroupKFold warns about small classes, which are checked here
        if strata is not None and np.bincount(strata).min() >= folds:
            splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
            pairs = list(splitter.split(X, strata, groups=group_codes))
        else:
            if strata is not None:
                notes.append(f"the folds are not stratified (a class has fewer than {folds} rows)")
            # GroupKFold does not shuffle before scikit-learn 1.6: renumbering the groups at random does.
            shuffled = np.random.default_rng(seed).permutation(n_groups)[group_codes]
            pairs = list(GroupKFold(folds).split(X, groups=shuffled))
    if min(len(val) for _, val in pairs) < _MIN_VALIDATION_ROWS:
        raise ValueError(f"spec.validation.k_fold.folds: the {n_groups} groups of "
                         f"{_column(strategy.group_column)} cannot fill {folds} folds with at least "
                         f"{_MIN_VALIDATION_ROWS} validation rows each; use fewer folds")
    return pairs


def _holdout_quality(pair: Split, fraction: float, strata: np.ndarray | None, codes: np.ndarray | None
                     ) -> tuple[int, float]:
    """Smaller is better: classes missing from training first, then distance from the wanted shares."""
    train, val = pair
    distance = abs(len(val) / (len(train) + len(val)) - fraction)
    if codes is None:
        return 0, distance
    k = int(codes.max()) + 1
    missing = int(np.count_nonzero(np.bincount(codes[train], minlength=k) == 0))
    if strata is not None:
        everything = np.bincount(codes, minlength=k) / len(codes)
        distance += float(np.abs(np.bincount(codes[val], minlength=k) / len(val) - everything).sum())
    return missing, distance


# -- time-ordered splits -------------------------------------------------------------------------


def _order(order: Any, n_rows: int) -> np.ndarray:
    values = np.asarray(order)
    if values.ndim != 1 or len(values) != n_rows:
        raise ValueError(f"order has shape {values.shape}, expected ({n_rows},)")
    if values.dtype.kind == "M":
        missing = np.isnat(values)
        values = values.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
        values[missing] = np.nan
        return values
    return values.astype(np.float64)


def _by_time(values: np.ndarray, strategy: Strategy, notes: list[str]) -> list[Split]:
    known = np.flatnonzero(np.isfinite(values))
    unknown = np.flatnonzero(~np.isfinite(values))
    if unknown.size:
        notes.append(f"{unknown.size} rows have no {_column(strategy.time_column)} value; they are used for "
                     "training only")
    ranked = known[np.argsort(values[known], kind="stable")]
    m = len(ranked)
    ordered = values[ranked]
    starts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1  # where a new time value begins
    column = _column(strategy.time_column)
    if strategy.method == "holdout":
        _check_size(m, strategy)
        cut = _boundary(starts, m - _validation_rows(m, strategy.fraction), 2, m - _MIN_VALIDATION_ROWS)
        if cut is None:
            raise ValueError(f"spec.validation.holdout.fraction: {m} rows with a {column} value, "
                             f"{len(starts) + 1} distinct, cannot give at least 2 training rows and "
                             f"{_MIN_VALIDATION_ROWS} later validation rows; use more rows or a larger fraction")
        return [(np.concatenate([ranked[:cut], unknown]), ranked[cut:])]
    folds = strategy.folds
    block = m // (folds + 1)
    cuts: list[int] = []
    for i in range(folds):
        low = cuts[-1] + _MIN_VALIDATION_ROWS if cuts else 2
        cut = _boundary(starts, m - (folds - i) * block, low, m - _MIN_VALIDATION_ROWS * (folds - i))
        if block < _MIN_VALIDATION_ROWS or cut is None:
            raise ValueError(f"spec.validation.k_fold.folds: {folds} time-ordered folds need {folds + 1} blocks "
                             f"of at least {_MIN_VALIDATION_ROWS} rows, each starting at a new {column} value; "
                             f"{m} rows with {len(starts) + 1} distinct values are too few; use fewer folds or a "
                             "holdout")
        cuts.append(cut)
    ends = cuts[1:] + [m]
    return [(np.concatenate([ranked[:cut], unknown]), ranked[cut:end]) for cut, end in zip(cuts, ends)]


def _boundary(starts: np.ndarray, cut: int, low: int, high: int) -> int | None:
    """The start of a time value nearest to `cut` within [low, high] (rows of one time stay together)."""
    candidates = starts[(starts >= low) & (starts <= high)]
    if candidates.size == 0:
        return None
    return int(candidates[np.argmin(np.abs(candidates - cut))])


# -- helpers -------------------------------------------------------------------------------------


def _factorize(values: Any, n_rows: int, name: str) -> tuple[np.ndarray, list]:
    """Codes 0..k-1 in order of first appearance and the k values; missing values get code -1 for groups
    and a class of their own for y."""
    import pandas as pd

    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n_rows:
        raise ValueError(f"{name} has shape {values.shape}, expected ({n_rows},)")
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    uniques = uniques.tolist() if isinstance(uniques, np.ndarray) else list(uniques)
    if name == "y" and (codes < 0).any():
        codes[codes < 0] = len(uniques)
        uniques.append(None)
    return codes, uniques


def _small_classes(counts: np.ndarray, classes: list, minimum: int) -> str:
    """The classes with fewer than `minimum` rows, named for a message ('' when none)."""
    return _names(classes[c] for c in np.flatnonzero(counts < minimum))


def _names(values: Iterable, most: int = 5) -> str:
    values = list(values)
    if not values:
        return ""
    shown = ", ".join(repr(v) if v is not None else "(missing)" for v in values[:most])
    more = f" and {len(values) - most} more" if len(values) > most else ""
    return f"class{'es' if len(values) > 1 else ''} {shown}{more}"


def _note_missing_classes(pairs: list[Split], codes: np.ndarray, classes: list, notes: list[str]) -> None:
    k = len(classes)
    lacking = [np.flatnonzero(np.bincount(codes[train], minlength=k) == 0) for train, _ in pairs]
    absent = sorted(set().union(*(set(c.tolist()) for c in lacking)))
    if absent:
        where = "the training rows" if len(pairs) == 1 else (
            f"the training rows of {sum(1 for c in lacking if c.size)} of {len(pairs)} folds")
        notes.append(f"{_names(classes[c] for c in absent)} {'is' if len(absent) == 1 else 'are'} missing from "
                     f"{where}; a model cannot learn to predict {'it' if len(absent) == 1 else 'them'} there")


def _column(name: str) -> str:
    return f"column {name!r}" if name else "the column"
