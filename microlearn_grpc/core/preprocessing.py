"""Preprocessing from a dataset profile: which column gets which treatment (`plan_features`), and
the scikit-learn pipeline that turns a raw table into a float matrix for one estimator
(`build_preprocessor`).

Treatment per semantic type (types as `core.profile` infers them):
- numeric: median imputation with missing indicators; standard scaling for estimators that need it;
- categorical with at most `one_hot_max` distinct values: missing becomes its own category, then
  one-hot, or ordinal codes for estimators that handle categories natively;
- categorical with more: cross-fitted target encoding, or frequency encoding without a target;
- boolean: 0/1 (Arrow bools; yes/no, true/false, y/n, t/f, 1/0 in any case), most-frequent
  imputation with missing indicators;
- datetime: year, month, day, day of week, hour (when the training values have a time of day) and
  epoch seconds, then the numeric treatment (one missing indicator per column, not per part);
- id, text, constant and all-missing columns: dropped, the reason kept in the plan.
Estimators that handle missing values natively get NaN instead of imputed values and indicators.
Nothing fails at predict time on unseen categories, unparseable values or missing values where
training had none: they become unknown categories or missing numbers, treated like the rest.

The input is a pandas DataFrame with the dataset's columns, whatever its dtypes (NumPy, nullable,
Arrow-backed); the first pipeline step gives them plain NumPy dtypes so scikit-learn never sees pd.NA.
scikit-learn and pandas load on first use, not on import. The custom transformers are defined then,
and module `__getattr__` defines them again by name when a pickled pipeline loads in a fresh process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

__all__ = ["MISSING_CATEGORY", "TASKS", "FeaturePlan", "PreprocessingNeeds", "build_preprocessor",
           "categorical_feature_mask", "feature_names", "plan_features"]

TASKS = ("binary", "multiclass", "regression", "clustering")
MISSING_CATEGORY = "__missing__"  # the category missing values of a categorical column become
DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour", "epoch")
_GROUPS = ("numeric", "categorical_low", "categorical_high", "boolean", "datetime", "text")
_TARGET_TYPES = {"binary": "binary", "multiclass": "multiclass", "regression": "continuous"}
_TRUE = frozenset({"true", "yes", "y", "t", "1"})
_FALSE = frozenset({"false", "no", "n", "f", "0"})


@dataclass(frozen=True)
class PreprocessingNeeds:
    """What an estimator asks of its input (each estimator declares these)."""

    needs_scaling: bool = False  # standardize numbers (linear models, SVMs, kNN, neural nets)
    handles_missing: bool = False  # takes NaN as is (HistGradientBoosting, LightGBM, XGBoost)
    handles_categorical: bool = False  # takes ordinal codes plus `categorical_feature_mask`

    @classmethod
    def of(cls, estimator: Any) -> PreprocessingNeeds:
        """The flags an estimator class (or instance) declares under these names; absent ones are False."""
        return cls(**{f.name: bool(getattr(estimator, f.name, False)) for f in fields(cls)})


@dataclass(frozen=True)
class FeaturePlan:
    """What happens to each column of a dataset version; stored with a model (`to_dict`).

    Columns keep the profile's order within each group. Text columns are listed under `text` and,
    until they are supported, also under `dropped`.
    """

    target: str | None
    numeric: tuple[str, ...] = ()
    categorical_low: tuple[str, ...] = ()
    categorical_high: tuple[str, ...] = ()
    boolean: tuple[str, ...] = ()
    datetime: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    dropped: dict[str, str] = field(default_factory=dict)  # column -> reason
    task: str | None = None

    def __post_init__(self) -> None:
        for group in _GROUPS:  # lists from JSON become tuples, so plans compare equal
            object.__setattr__(self, group, tuple(getattr(self, group)))
        object.__setattr__(self, "dropped", dict(self.dropped))

    @property
    def features(self) -> tuple[str, ...]:
        """The columns the preprocessor reads, group by group."""
        return self.numeric + self.categorical_low + self.categorical_high + self.boolean + self.datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists for the groups."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for group in _GROUPS:
            data[group] = list(data[group])
        data["dropped"] = dict(self.dropped)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeaturePlan:
        return cls(target=data.get("target"), task=data.get("task"), dropped=dict(data.get("dropped") or {}),
                   **{group: tuple(data.get(group) or ()) for group in _GROUPS})


def plan_features(profile: dict, target: str | None, *, task: str | None = None, one_hot_max: int = 15,
                  drop: Iterable[str] = ()) -> FeaturePlan:
    """Assign every profiled column to a treatment or drop it with a reason.

    `target` None means no target (clustering). Categorical columns with at most `one_hot_max`
    distinct values (and an exact count) are one-hot encoded, the others target/frequency encoded.
    `drop` names columns the user excluded.
    """
    columns = list(profile.get("columns") or [])
    names = [c["name"] for c in columns]
    if target is not None and target not in names:
        raise ValueError(f"target column {target!r} is not in the dataset; "
                         f"its columns are: {', '.join(map(repr, names))}")
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if task == "clustering" and target is not None:
        raise ValueError(f"clustering takes no target, got target column {target!r}")
    if one_hot_max < 0:
        raise ValueError(f"one_hot_max must be >= 0, got {one_hot_max}")
    drop = set(drop)
    unknown = sorted(drop - set(names))
    if unknown:
        raise ValueError(f"cannot drop {', '.join(map(repr, unknown))}: not in the dataset; "
                         f"its columns are: {', '.join(map(repr, names))}")
    rows = int(profile.get("row_count") or 0)
    groups: dict[str, list[str]] = {group: [] for group in _GROUPS}
    dropped: dict[str, str] = {}
    for column in columns:
        name, kind = column["name"], column["type"]
        distinct, missing = int(column.get("distinct_count") or 0), int(column.get("missing_count") or 0)
        if name == target:
            dropped[name] = "target"
        elif name in drop:
            dropped[name] = "dropped by request"
        elif kind == "id":
            dropped[name] = "id column"
        elif missing >= rows:
            dropped[name] = "all missing"
        elif distinct == 1 and missing == 0:
            dropped[name] = "constant"  # one value and some missing still says which rows are missing
        elif kind == "text":
            groups["text"].append(name)
            dropped[name] = "text (not supported yet)"
        elif kind == "categorical":
            low = distinct <= one_hot_max and column.get("distinct_count_exact", True)
            groups["categorical_low" if low else "categorical_high"].append(name)
        elif kind in ("numeric", "boolean", "datetime"):
            groups[kind].append(name)
        else:
            raise ValueError(f"column {name!r} has unknown type {kind!r}")
    return FeaturePlan(target=target, task=task, dropped=dropped, **{g: tuple(v) for g, v in groups.items()})


def build_preprocessor(plan: FeaturePlan, needs: PreprocessingNeeds = PreprocessingNeeds(), *,
                       seed: int = 0) -> Pipeline:
    """An unfitted pipeline: DataFrame with the plan's columns in, float64 matrix out.

    Fit it with the target (`fit(X, y)`, rows with a missing target left out) when the plan has
    high-cardinality categorical columns and a target: their target encoding learns from y
    (cross-fitted over folds shuffled with `seed`). Columns the plan does not use are ignored.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if not plan.features:
        reasons = "; ".join(f"{name}: {why}" for name, why in plan.dropped.items()) or "the dataset has no columns"
        raise ValueError(f"no usable feature columns ({reasons})")
    custom = _transformers()
    scale = [StandardScaler()] if needs.needs_scaling else []
    numeric = ([] if needs.handles_missing else [SimpleImputer(strategy="median", add_indicator=True)]) + scale
    # A datetime's parts are missing together: the expander adds one indicator per column, not per part.
    dates = ([] if needs.handles_missing else [SimpleImputer(strategy="median")]) + scale
    missing_category = SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)
    branches: list[tuple[str, Any, list[str]]] = []

    def add(name: str, columns: tuple[str, ...], steps: list) -> None:
        if columns:
            branches.append((name, make_pipeline(*steps) if steps else "passthrough", list(columns)))

    add("numeric", plan.numeric, numeric)
    add("boolean", plan.boolean,
        [] if needs.handles_missing else [SimpleImputer(strategy="most_frequent", add_indicator=True)])
    add("datetime", plan.datetime, [custom.DatetimeExpander(missing_indicator=not needs.handles_missing), *dates])
    if needs.handles_categorical:
        # NaN is the estimator's own missing value; -1 keeps the input finite for one that has none.
        unknown: float | int = float("nan") if needs.handles_missing else -1
        add("ordinal", plan.categorical_low,
            [missing_category, OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=unknown)])
    else:
        add("onehot", plan.categorical_low,
            [missing_category, OneHotEncoder(handle_unknown="ignore", sparse_output=False)])
    if plan.target is not None and plan.task != "clustering":
        add("target", plan.categorical_high, [_target_encoder(plan.task, seed), *scale])
    else:
        add("frequency", plan.categorical_high, [custom.FrequencyEncoder(), *scale])
    kinds = tuple((name, kind) for kind, names in (("numeric", plan.numeric), ("boolean", plan.boolean),
                                                    ("datetime", plan.datetime),
                                                    ("categorical", plan.categorical_low + plan.categorical_high))
                  for name in names)
    return Pipeline([("frame", custom.PlainFrame(columns=kinds)),
                     ("columns", ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0))])


def _target_encoder(task: str | None, seed: int) -> Any:
    """Target encoding cross-fitted over shuffled folds; NaN is a category of its own, unseen values
    get the target mean."""
    import inspect

    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.preprocessing import TargetEncoder

    target_type = _TARGET_TYPES.get(task or "", "auto")
    if inspect.signature(TargetEncoder).parameters["random_state"].default != "deprecated":
        return TargetEncoder(target_type=target_type, random_state=seed)  # scikit-learn < 1.9
    # Stratify only when the task says classification: "auto" might be a regression target.
    folds = StratifiedKFold if task in ("binary", "multiclass") else KFold
    return TargetEncoder(target_type=target_type, cv=folds(5, shuffle=True, random_state=seed))


def feature_names(preprocessor: Pipeline) -> list[str]:
    """Names of the fitted preprocessor's output columns, like `numeric__age` or `onehot__plan_basic`."""
    return [str(name) for name in preprocessor.get_feature_names_out()]


def categorical_feature_mask(preprocessor: Pipeline) -> list[bool]:
    """Per output column of a fitted preprocessor: True for the ordinal-coded categorical ones.

    Pass it as `categorical_features` to HistGradientBoosting (built with `handles_categorical`).
    """
    from sklearn.utils.validation import check_is_fitted

    columns = _column_transformer(preprocessor)
    check_is_fitted(columns)
    slices = columns.output_indices_
    mask = [False] * max((s.stop for s in slices.values()), default=0)
    if "ordinal" in slices:
        for index in range(slices["ordinal"].start, slices["ordinal"].stop):
            mask[index] = True
    return mask


def _column_transformer(preprocessor: Pipeline) -> Any:
    steps = getattr(preprocessor, "named_steps", {})
    if "columns" not in steps:
        raise TypeError(f"expected a pipeline from build_preprocessor, got {type(preprocessor).__name__}")
    return steps["columns"]


# -- conversions to plain NumPy dtypes --------------------------------------------------------
# Each takes a pandas Series of any dtype and returns a NumPy array (datetimes: a UTC Series).
# Text, truth values and datetimes are converted once per distinct value (pd.factorize), so the
# Python-level work stays small on long columns.

def _as_float(series: pd.Series) -> Any:
    import numpy as np
    import pandas as pd

    try:
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):  # text in a numeric column
        values = pd.to_numeric(series.astype(object), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isinf(values), np.nan, values)  # a new array: the caller's frame stays untouched


def _label(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 3 and 3.0 (an integer column with holes, read as float) are one category
    return str(value)


def _as_text(series: pd.Series) -> Any:
    """Strings, with np.nan for missing values."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(series)
    labels = np.array([_label(v) for v in uniques] + [np.nan], dtype=object)
    return labels[codes]  # code -1 (missing) picks the trailing NaN


def _truth(value: Any) -> float:
    if isinstance(value, str):
        text = value.strip().lower()
        return 1.0 if text in _TRUE else 0.0 if text in _FALSE else float("nan")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number if number in (0.0, 1.0) else float("nan")


def _as_bool(series: pd.Series) -> Any:
    """1.0 / 0.0, NaN for missing values and anything that is not a recognised truth value."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(series)
    table = np.array([_truth(v) for v in uniques] + [np.nan], dtype="float64")
    return table[codes]


def _as_datetime(series: pd.Series) -> pd.Series:
    """A UTC datetime Series: naive values are taken as UTC, text must be ISO 8601 (else NaT)."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):  # also Arrow dates and timestamps
        return pd.to_datetime(series, errors="coerce", utc=True)
    codes, uniques = pd.factorize(series)
    # Numbers are not epochs here: as text they fail ISO parsing and become NaT.
    values = [v if isinstance(v, (dt.date, np.datetime64)) else str(v) for v in uniques] + [None]
    parsed = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", utc=True, format="ISO8601")
    return pd.Series(parsed.array.take(codes), index=series.index)


_CONVERT = {"numeric": _as_float, "categorical": _as_text, "boolean": _as_bool, "datetime": _as_datetime}


def _has_time(parsed: pd.Series) -> bool:
    values = parsed.dropna()
    return bool(len(values)) and bool((values != values.dt.floor("D")).any())


def _datetime_parts(parsed: pd.Series, with_hour: bool) -> list:
    import numpy as np
    import pandas as pd

    dates = parsed.dt
    parts = [dates.year, dates.month, dates.day, dates.day_of_week] + ([dates.hour] if with_hour else [])
    epoch = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return [p.to_numpy(dtype="float64", na_value=np.nan) for p in [*parts, epoch]]


# -- custom transformers, defined on first use -------------------------------------------------

_LAZY_CLASSES = frozenset({"_PlainFrame", "_DatetimeExpander", "_FrequencyEncoder"})
_define_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    # pickle finds the classes of a stored pipeline by name: define them then.
    if name in _LAZY_CLASSES:
        _transformers()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _transformers() -> SimpleNamespace:
    """The custom transformer classes; they subclass scikit-learn's, so they are made on first use."""
    with _define_lock:  # one class object per name, or pickle refuses instances of the other
        if "_PlainFrame" not in globals():
            for cls in _define_classes():
                cls.__qualname__ = cls.__name__  # pickle looks classes up by qualified name
                globals()[cls.__name__] = cls
    found = globals()
    return SimpleNamespace(PlainFrame=found["_PlainFrame"], DatetimeExpander=found["_DatetimeExpander"],
                           FrequencyEncoder=found["_FrequencyEncoder"])


def _define_classes() -> list[type]:
    import numpy as np
    import pandas as pd
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.utils.validation import check_is_fitted

    def names_of(X: Any) -> list[str]:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame, got {type(X).__name__}")
        return [str(c) for c in X.columns]

    class _PlainFrame(TransformerMixin, BaseEstimator):
        """Select the planned columns and give each a plain NumPy dtype for its kind:
        float64 (numeric, boolean as 0/1), object strings (categorical), UTC datetime64 (datetime);
        missing values are np.nan / NaT. Stateless; `columns` is ((name, kind), ...)."""

        def __init__(self, columns: tuple = ()) -> None:
            self.columns = columns

        def fit(self, X: Any, y: Any = None) -> _PlainFrame:
            self._check(X)
            return self

        def transform(self, X: Any) -> pd.DataFrame:
            X = self._check(X)
            data = {}
            for name, kind in self.columns:
                values = _CONVERT[kind](X[name])
                # .array: positional, so a duplicated index is no problem; dtype=object keeps pandas 3
                # from turning the strings back into its own string dtype.
                data[name] = pd.Series(values.array if isinstance(values, pd.Series) else values, index=X.index,
                                       dtype=object if kind == "categorical" else None)
            return pd.DataFrame(data, index=X.index)

        def _check(self, X: Any) -> pd.DataFrame:
            if not isinstance(X, pd.DataFrame) and hasattr(X, "to_pandas"):  # a pyarrow Table
                X = X.to_pandas()
            present = set(names_of(X))
            absent = [name for name, _ in self.columns if name not in present]
            if absent:
                raise ValueError(f"input lacks column(s) {', '.join(map(repr, absent))}")
            return X

        def get_feature_names_out(self, input_features: Any = None) -> Any:
            return np.asarray([name for name, _ in self.columns], dtype=object)

        def __sklearn_is_fitted__(self) -> bool:
            return True

    class _DatetimeExpander(TransformerMixin, BaseEstimator):
        """Each datetime column becomes year, month, day, day of week, hour (only when the training
        values have a time of day) and epoch seconds; NaT gives NaN. With `missing_indicator`, a
        column with missing training values also gets `<name>_missing` (1.0 where NaT)."""

        def __init__(self, missing_indicator: bool = False) -> None:
            self.missing_indicator = missing_indicator

        def fit(self, X: Any, y: Any = None) -> _DatetimeExpander:
            self.feature_names_in_ = np.asarray(names_of(X), dtype=object)
            self.n_features_in_ = len(self.feature_names_in_)
            parsed = [_as_datetime(X[name]) for name in self.feature_names_in_]
            self.with_hour_ = [_has_time(p) for p in parsed]
            self.with_missing_ = [bool(self.missing_indicator and p.isna().any()) for p in parsed]
            return self

        def transform(self, X: Any) -> Any:
            check_is_fitted(self)
            parts = []
            for name, with_hour, with_missing in zip(self.feature_names_in_, self.with_hour_, self.with_missing_):
                parsed = _as_datetime(X[name])
                parts += _datetime_parts(parsed, with_hour)
                if with_missing:
                    parts.append(parsed.isna().to_numpy(dtype="float64"))
            return np.column_stack(parts) if parts else np.empty((len(X), 0))

        def get_feature_names_out(self, input_features: Any = None) -> Any:
            check_is_fitted(self)
            names = []
            for name, with_hour, with_missing in zip(self.feature_names_in_, self.with_hour_, self.with_missing_):
                names += [f"{name}_{part}" for part in DATETIME_PARTS if part != "hour" or with_hour]
                names += [f"{name}_missing"] if with_missing else []
            return np.asarray(names, dtype=object)

    class _FrequencyEncoder(TransformerMixin, BaseEstimator):
        """Each value becomes its share of the training rows; missing values count as one value,
        unseen values get 0. The encoding of high-cardinality columns when there is no target."""

        def fit(self, X: Any, y: Any = None) -> _FrequencyEncoder:
            self.feature_names_in_ = np.asarray(names_of(X), dtype=object)
            self.n_features_in_ = len(self.feature_names_in_)
            self.frequencies_ = []
            for name in self.feature_names_in_:
                counts = pd.Series(self._labels(X[name]), dtype=object).value_counts(normalize=True)
                self.frequencies_.append({str(k): float(v) for k, v in counts.items()})
            return self

        def transform(self, X: Any) -> Any:
            check_is_fitted(self)
            columns = [pd.Series(self._labels(X[name]), dtype=object).map(table).to_numpy(dtype="float64", na_value=0.0)
                       for name, table in zip(self.feature_names_in_, self.frequencies_)]
            return np.column_stack([np.nan_to_num(c, nan=0.0) for c in columns]) if columns else np.empty((len(X), 0))

        @staticmethod
        def _labels(series: pd.Series) -> Any:
            labels = _as_text(series)
            labels[pd.isna(labels)] = MISSING_CATEGORY
            return labels.astype(object)

        def get_feature_names_out(self, input_features: Any = None) -> Any:
            check_is_fitted(self)
            return np.asarray([f"{name}_frequency" for name in self.feature_names_in_], dtype=object)

    return [_PlainFrame, _DatetimeExpander, _FrequencyEncoder]
