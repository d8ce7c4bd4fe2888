"""Row-level helpers shared by training and evaluation: class labels and their codes, time ordering,
fold means, and the validation predictions a study's ensemble is built from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from microlearn_grpc.core.metrics import jsonable


class TrainingError(Exception):
    """A failure the user can act on (bad data for this estimator, too few rows, …)."""


def save_predictions(path: Path, parts: list[tuple[Any, dict[str, Any]]], y: Any) -> None:
    """The validation (or out-of-fold) predictions of every validated row, with the row positions and the
    encoded truth, for ensembles built from several trials' predictions of the same rows."""
    import numpy as np

    index = np.concatenate([np.arange(len(y)) if rows is None else np.asarray(rows) for rows, _ in parts])
    values = np.concatenate([np.asarray(p["proba"] if p["proba"] is not None else p["y_pred"], dtype=np.float64)
                             for _, p in parts])
    order = np.argsort(index, kind="stable")
    np.savez_compressed(path, index=index[order], values=values[order], y=np.asarray(y)[index[order]])


def mean_std(folds: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    import numpy as np

    names = sorted(set().union(*folds)) if folds else []
    means, stds = {}, {}
    for name in names:
        values = [f[name] for f in folds if name in f]
        means[name] = float(np.mean(values))
        stds[name] = float(np.std(values))
    return means, stds


def label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def encode_labels(series: Any) -> tuple[list[Any], Any]:
    """Integer codes 0..K-1 in sorted order of the class values, and the values (JSON-ready)."""
    import numpy as np

    values = series.to_numpy(dtype=object) if series.dtype == object else series.to_numpy()
    uniques, codes = np.unique(values.astype(str) if values.dtype == object else values, return_inverse=True)
    return [jsonable(v) for v in uniques.tolist()], codes.astype(np.int64)


def order_values(series: Any) -> Any:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series):
        return series.astype("float64").to_numpy()
    parsed = pd.to_datetime(series, errors="coerce", utc=True)
    if parsed.isna().all():
        raise TrainingError(f"time column {series.name!r} holds neither numbers nor dates")
    return parsed.astype("int64").to_numpy()
