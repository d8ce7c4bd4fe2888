"""A fitted preprocessor (`preprocessing.build_preprocessor`) compiled to plain NumPy, for serving.

scikit-learn's `ColumnTransformer` costs about 3 ms per call however few the rows (pandas indexing,
input validation, joblib dispatch per branch), which is 100 times what a 200-tree LightGBM takes
to score one row. `compile_preprocessor` reads the fitted parameters of the steps the platform
builds (SimpleImputer, StandardScaler, OneHotEncoder, OrdinalEncoder, TargetEncoder, the frequency
encoder) into a `FastTransform` that maps the serving decoder's typed column arrays straight to the
model's input matrix, with the same numbers. A branch with any other step (the datetime expander,
or a step a future version adds) keeps its scikit-learn transform, on a DataFrame of its own
columns only, so compilation never changes what a model predicts; `check` compares the two on
given rows, and serving refuses to use a compiled transform that disagrees.

Input: `{feature name: 1-D array}` as `serving.inputs` decodes them: float64 with NaN for numeric
and boolean features, object arrays of str (np.nan when missing) for categorical ones, naive UTC
datetime64 for datetimes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["FastTransform", "compile_preprocessor"]

Columns = list[np.ndarray]
Op = Callable[[Columns], Columns]
VECTOR_ROWS = 64  # from this many rows on, category lookups go through pandas' hash tables instead of a loop


class NotCompilable(Exception):
    """A step this module has no NumPy version of (its branch keeps the scikit-learn transform)."""


def _is_missing_object(column: np.ndarray) -> np.ndarray:
    """NaN / None entries of an object column (what scikit-learn's imputers and encoders call missing)."""
    return np.fromiter((v is None or (isinstance(v, float) and math.isnan(v)) for v in column), dtype=bool,
                       count=len(column))


def _missing(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind == "f":
        return np.isnan(column)
    if len(column) >= VECTOR_ROWS:
        import pandas as pd

        return pd.isna(column)
    return _is_missing_object(column)


# -- one function per supported step: fitted step → Op ----------------------------------------------------

def _simple_imputer(step: Any) -> Op:
    marker = step.missing_values
    if not (isinstance(marker, float) and math.isnan(marker)):
        raise NotCompilable("SimpleImputer with a missing value other than NaN")
    statistics = list(step.statistics_)
    constant = step.strategy == "constant"
    if constant or getattr(step, "keep_empty_features", False):
        keep = list(range(len(statistics)))
    else:  # scikit-learn drops the columns that were all missing in training (their statistic is NaN)
        keep = [i for i, s in enumerate(statistics)
                if not (isinstance(s, float) and math.isnan(s)) and not (s is None)]
    indicator = getattr(step, "indicator_", None)
    flagged = list(indicator.features_) if indicator is not None else []
    if indicator is not None and getattr(indicator, "features", "missing-only") != "missing-only":
        raise NotCompilable("MissingIndicator over all features")

    def apply(columns: Columns) -> Columns:
        masks = [_missing(c) for c in columns]
        out = []
        for i in keep:
            column, mask = columns[i], masks[i]
            if mask.any():
                column = column.copy()
                column[mask] = statistics[i]
            out.append(column)
        out += [masks[i].astype("float64") for i in flagged]
        return out

    return apply


def _standard_scaler(step: Any) -> Op:
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None

    def apply(columns: Columns) -> Columns:
        out = []
        for i, column in enumerate(columns):
            column = column.astype("float64")
            if mean is not None:
                column = column - mean[i]
            if scale is not None:
                column = column / scale[i]
            out.append(column)
        return out

    return apply


@dataclasses.dataclass(frozen=True)
class _Lookup:
    """A fitted encoder's categories of one column: value → index, and the index of the NaN category."""

    table: dict[Any, int]
    nan_index: int          # -1: training had no missing value in this column
    values: np.ndarray      # the non-missing categories, for pandas' vectorised lookup
    positions: np.ndarray   # their indexes among all categories

    @classmethod
    def of(cls, categories: np.ndarray) -> _Lookup:
        table: dict[Any, int] = {}
        nan_index = -1
        for index, value in enumerate(categories):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                nan_index = index
            else:
                table[value] = index
        return cls(table, nan_index, np.array(list(table), dtype=object), np.array(list(table.values()), dtype=np.int64))

    def codes(self, column: np.ndarray) -> np.ndarray:
        """Each value's category index; -1 for a value not seen in training (a missing value maps to
        the NaN category when training had one)."""
        if len(column) >= VECTOR_ROWS:
            import pandas as pd

            found = pd.Index(self.values, dtype=object).get_indexer(column.astype(object, copy=False))
            out = np.where(found >= 0, self.positions[np.maximum(found, 0)], -1)
            out[pd.isna(column)] = self.nan_index
            return out
        out = np.empty(len(column), dtype=np.int64)
        for i, value in enumerate(column):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                out[i] = self.nan_index
            else:
                out[i] = self.table.get(value, -1)
        return out


def _check_plain_encoder(step: Any) -> None:
    if getattr(step, "drop_idx_", None) is not None:
        raise NotCompilable("an encoder with dropped categories")
    if getattr(step, "_infrequent_enabled", False):
        raise NotCompilable("an encoder with infrequent categories")


def _one_hot(step: Any) -> Op:
    _check_plain_encoder(step)
    if step.handle_unknown not in ("ignore", "infrequent_if_exist"):
        raise NotCompilable("OneHotEncoder that raises on unknown categories")
    lookups = [_Lookup.of(c) for c in step.categories_]

    def apply(columns: Columns) -> Columns:
        out = []
        for column, lookup, categories in zip(columns, lookups, step.categories_):
            codes = lookup.codes(column)
            block = np.zeros((len(column), len(categories)))
            known = codes >= 0
            block[np.flatnonzero(known), codes[known]] = 1.0
            out += list(block.T)
        return out

    return apply


def _ordinal(step: Any) -> Op:
    _check_plain_encoder(step)
    if step.handle_unknown != "use_encoded_value":
        raise NotCompilable("OrdinalEncoder that raises on unknown categories")
    unknown = float(step.unknown_value)
    lookups = [_Lookup.of(c) for c in step.categories_]
    encoded_missing = getattr(step, "encoded_missing_value", np.nan)

    def apply(columns: Columns) -> Columns:
        out = []
        for column, lookup in zip(columns, lookups):
            codes = lookup.codes(column)
            values = codes.astype("float64")
            values[codes < 0] = unknown
            if lookup.nan_index >= 0:
                values[codes == lookup.nan_index] = encoded_missing
            out.append(values)
        return out

    return apply


def _target_encoder(step: Any) -> Op:
    lookups = [_Lookup.of(c) for c in step.categories_]
    n_classes = len(step.classes_) if step.target_type_ == "multiclass" else 1
    means = np.atleast_1d(np.asarray(step.target_mean_, dtype="float64"))
    encodings = [np.asarray(e, dtype="float64") for e in step.encodings_]

    def apply(columns: Columns) -> Columns:
        out = []
        for feature, (column, lookup) in enumerate(zip(columns, lookups)):
            codes = lookup.codes(column)
            unknown = codes < 0
            for k in range(n_classes):
                values = encodings[feature * n_classes + k][np.where(unknown, 0, codes)]
                values[unknown] = means[k % len(means)]
                out.append(values)
        return out

    return apply


def _frequency(step: Any) -> Op:
    from microlearn_grpc.core.preprocessing import MISSING_CATEGORY, _label

    frequencies = list(step.frequencies_)

    def apply(columns: Columns) -> Columns:
        out = []
        for column, table in zip(columns, frequencies):
            if len(column) >= VECTOR_ROWS:  # decoded categorical values are already str (or missing)
                import pandas as pd

                labels = pd.Series(column, dtype=object).where(~pd.isna(column), MISSING_CATEGORY)
                out.append(labels.map(table).to_numpy(dtype="float64", na_value=0.0))
                continue
            out.append(np.fromiter(
                (table.get(MISSING_CATEGORY if v is None or (isinstance(v, float) and math.isnan(v)) else _label(v), 0.0)
                 for v in column), dtype="float64", count=len(column)))
        return out

    return apply


_COMPILERS: dict[str, Callable[[Any], Op]] = {
    "SimpleImputer": _simple_imputer, "StandardScaler": _standard_scaler, "OneHotEncoder": _one_hot,
    "OrdinalEncoder": _ordinal, "TargetEncoder": _target_encoder, "_FrequencyEncoder": _frequency,
}


# -- branches and the whole transform ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Branch:
    columns: tuple[str, ...]
    ops: tuple[Op, ...] | None          # None: use `fallback`
    fallback: Any = None                # the fitted scikit-learn transformer of this branch

    def apply(self, values: Mapping[str, np.ndarray], rows: int) -> list[np.ndarray]:
        if self.ops is None:
            import pandas as pd

            frame = pd.DataFrame({name: values[name] for name in self.columns}, copy=False)
            block = np.asarray(self.fallback.transform(frame), dtype="float64")
            return list(block.reshape(rows, -1).T)
        columns: Columns = [values[name] for name in self.columns]
        for op in self.ops:
            columns = op(columns)
        return columns


@dataclasses.dataclass(frozen=True)
class FastTransform:
    """`transform(values, rows)` → the float64 matrix the fitted preprocessor would produce."""

    branches: tuple[_Branch, ...]
    width: int

    @property
    def compiled_branches(self) -> int:
        return sum(b.ops is not None for b in self.branches)

    def transform(self, values: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
        out = np.empty((rows, self.width), dtype="float64")
        position = 0
        for branch in self.branches:
            for column in branch.apply(values, rows):
                out[:, position] = column
                position += 1
        if position != self.width:
            raise ValueError(f"compiled transform produced {position} columns, expected {self.width}")
        return out

    def check(self, preprocessor: Any, values: Mapping[str, np.ndarray], rows: int) -> str | None:
        """None when this transform and the preprocessor agree on `values`, else what differs."""
        import pandas as pd

        expected = np.asarray(preprocessor.transform(pd.DataFrame(dict(values), copy=False)), dtype="float64")
        got = self.transform(values, rows)
        if expected.shape != got.shape:
            return f"shape {got.shape} instead of {expected.shape}"
        if not np.allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True):
            column = int(np.argmax(~np.isclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True).all(axis=0)))
            return f"output column {column} differs"
        return None


def compile_preprocessor(preprocessor: Any) -> FastTransform | None:
    """The fitted preprocessor as a FastTransform, or None when it is not one `build_preprocessor` made."""
    steps = getattr(preprocessor, "named_steps", None)
    if not steps or set(steps) != {"frame", "columns"} or type(steps["frame"]).__name__ != "_PlainFrame":
        return None
    columns = steps["columns"]
    if getattr(columns, "sparse_output_", False) or not hasattr(columns, "transformers_"):
        return None
    branches: list[_Branch] = []
    for name, transformer, selected in columns.transformers_:
        if transformer == "drop" or not len(selected):
            continue
        names = tuple(str(c) for c in selected)
        if _is_identity(transformer):  # "passthrough" (fitted, scikit-learn makes it a FunctionTransformer)
            branches.append(_Branch(names, ()))
            continue
        try:
            ops = tuple(_compile_step(step) for _, step in getattr(transformer, "steps", [(name, transformer)]))
        except (NotCompilable, AttributeError):
            ops = None
        branches.append(_Branch(names, ops, transformer))
    width = len(columns.get_feature_names_out())
    return FastTransform(tuple(branches), width)


def _is_identity(transformer: Any) -> bool:
    return transformer == "passthrough" or (type(transformer).__name__ == "FunctionTransformer"
                                            and transformer.func is None)


def _compile_step(step: Any) -> Op:
    compiler = _COMPILERS.get(type(step).__name__)
    if compiler is None:
        raise NotCompilable(type(step).__name__)
    return compiler(step)


def sample_values(schema: Sequence[tuple[str, str]], categories: Mapping[str, Sequence[str]], rows: int = 16,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Rows to `check` a compiled transform with: numbers, 0/1, known and unseen categories, dates, and
    a missing value in every column."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, kind in schema:
        if kind in ("categorical", "text", "id"):
            known = list(categories.get(name) or ["a", "b"])
            column = np.array([known[i % len(known)] for i in range(rows)], dtype=object)
            column[-2] = "__never_seen_in_training__"
            column[-1] = np.nan
        elif kind == "datetime":
            column = (np.datetime64("2021-01-01T00:00:00", "ns")
                      + rng.integers(0, 10**9, rows).astype("timedelta64[s]")).astype("datetime64[ns]")
            column[-1] = np.datetime64("NaT")
        elif kind == "boolean":
            column = rng.integers(0, 2, rows).astype("float64")
            column[-1] = np.nan
        else:
            column = rng.normal(0, 10, rows)
            column[-1] = np.nan
        out[name] = column
    return out
