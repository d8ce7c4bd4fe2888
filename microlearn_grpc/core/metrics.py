"""Validation metrics per task, and the plot data stored with a model (confusion matrix, ROC and PR
curves, calibration, residuals) as plain JSON-ready values.

A metric that is undefined on the given rows is left out, never returned as NaN or infinity: ROC AUC
when y_true holds a single class, R² on fewer than two rows or a constant target, MAPE when every
target is 0, clustering scores with fewer than two clusters, and anything computed from
probabilities that are not all finite. The classification scores are computed here with numpy from a
confusion matrix and ranks (same definitions as scikit-learn's, which the tests check them against, at
a fraction of its per-call cost: iterative fits score the validation rows every round). scikit-learn is
imported on first use, for clustering scores and curves.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from microlearn_grpc.core.estimators._base import BINARY, CLASSIFICATION_TASKS, CLUSTERING, MULTICLASS, REGRESSION

__all__ = ["DEFAULT_METRIC", "METRICS", "check_metric", "diagnostics", "direction", "score"]

_CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc",
                           "log_loss")
METRICS: dict[str, tuple[str, ...]] = {
    BINARY: _CLASSIFICATION_METRICS,
    MULTICLASS: _CLASSIFICATION_METRICS,
    REGRESSION: ("rmse", "mae", "r2", "mape"),
    CLUSTERING: ("silhouette", "davies_bouldin", "calinski_harabasz"),
}
DEFAULT_METRIC = {BINARY: "roc_auc", MULTICLASS: "f1_macro", REGRESSION: "rmse", CLUSTERING: "silhouette"}
_MINIMIZE = frozenset({"log_loss", "rmse", "mae", "mape", "davies_bouldin"})
_ALL_METRICS = frozenset(name for names in METRICS.values() for name in names)
_SILHOUETTE_ROWS = 10_000  # silhouette is quadratic in rows: scored on a seeded sample this large
_RESIDUAL_ROWS = 1_000
_HISTOGRAM_BINS = 30
_CALIBRATION_BINS = 10
_PROBA_FLOOR = 1e-15  # log loss of a probability of 0 would be infinite


def direction(metric: str) -> str:
    """"maximize" or "minimize": which way `metric` gets better."""
    if metric not in _ALL_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(sorted(_ALL_METRICS))}")
    return "minimize" if metric in _MINIMIZE else "maximize"


def check_metric(task: str, metric: str | None) -> str:
    """The metric to optimize for `task`: `metric` itself, or the task's default when it is empty."""
    if task not in METRICS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(METRICS)}")
    metric = (metric or "").strip()
    if not metric:
        return DEFAULT_METRIC[task]
    if metric not in METRICS[task]:
        raise ValueError(f"spec.metric: {metric!r} is not a {task} metric; use one of {', '.join(METRICS[task])}")
    return metric


def score(task: str, y_true: Any, *, y_pred: Any = None, proba: Any = None, X: Any = None, labels: Any = None,
          n_classes: int | None = None, seed: int = 0, only: str | None = None) -> dict[str, float]:
    """Every defined metric of the task, by name (or just `only`, when given and defined).

    Classification: `y_true`/`y_pred` are class codes 0..K-1 and `proba` is (n, K) with K =
    `n_classes` (a 1-D `proba` is the positive-class probability of a binary task); `y_pred`
    defaults to the most probable class; ROC AUC and log loss need `proba`. Multiclass ROC AUC is
    the one-vs-rest macro average over the classes present in `y_true`. Regression: `y_pred` are
    numbers; MAPE is a fraction (0.1 = 10%) over the rows whose target is not 0. Clustering:
    `X` (dense or sparse) and cluster `labels`, -1 meaning noise; noise rows are left out.
    """
    if task in CLASSIFICATION_TASKS:
        values = _classification_scores(*_classes(y_true, y_pred, proba, n_classes), only=only)
    elif task == REGRESSION:
        values = _regression_scores(*_numbers(y_true, y_pred))
    elif task == CLUSTERING:
        values = _clustering_scores(X, labels, seed)
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(METRICS)}")
    return {name: float(v) for name, v in values.items()
            if v is not None and math.isfinite(v) and (only is None or name == only)}


def diagnostics(task: str, y_true: Any, *, y_pred: Any = None, proba: Any = None, class_labels: Any = None,
                max_points: int = 101, seed: int = 0) -> dict:
    """Plot data for a model's validation rows, JSON-ready (lists, floats, ints, strings; no NaN).

    Classification: `confusion_matrix` {labels, matrix} (rows are true classes, columns predicted);
    binary: `roc_curve` {fpr, tpr, thresholds}, `pr_curve` {precision, recall, thresholds} and
    `calibration` {mean_predicted, fraction_positive, count} over 10 equal-width bins (empty bins
    left out); multiclass: `roc_curves` and `pr_curves` by class label, one-vs-rest, for each
    class with both positives and negatives among the rows. Curves keep at most `max_points`
    points (first and last included) and all their lists have the same length; an infinite
    threshold becomes max(1, highest score). Regression: `residuals` {actual, predicted, residual}
    (residual = actual - predicted) on a seeded sample of at most 1,000 rows, and
    `residual_histogram` {edges, counts} over all rows. Clustering: nothing.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if task in CLASSIFICATION_TASKS:
        y, predicted, p, k = _classes(y_true, y_pred, proba, None if class_labels is None else len(class_labels))
        names = [str(c) for c in class_labels] if class_labels is not None else [str(c) for c in range(k)]
        out = _classification_plots(y, predicted, p, names, task, max_points)
    elif task == REGRESSION:
        out = _regression_plots(*_numbers(y_true, y_pred), seed)
    elif task == CLUSTERING:
        out = {}
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(METRICS)}")
    return jsonable(out)


# -- input checks --------------------------------------------------------------------------------


def _classes(y_true: Any, y_pred: Any, proba: Any, n_classes: int | None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """(codes, predicted codes, probabilities or None when absent or not all finite, K)."""
    y = np.asarray(y_true).ravel().astype(np.int64)
    p = None
    if proba is not None:
        p = np.asarray(proba, dtype=np.float64)
        if p.ndim == 1:
            p = np.column_stack([1.0 - p, p])
        if p.ndim != 2 or p.shape[0] != y.size:
            raise ValueError(f"proba must be (n_rows, n_classes) = ({y.size}, K), got shape {p.shape}")
        if n_classes is not None and p.shape[1] != n_classes:
            raise ValueError(f"proba has {p.shape[1]} columns but there are {n_classes} classes")
        n_classes = p.shape[1]
    if y_pred is None:
        if p is None:
            raise ValueError("classification scores need y_pred or proba")
        predicted = np.nan_to_num(p, nan=-np.inf).argmax(axis=1)
    else:
        predicted = np.asarray(y_pred).ravel().astype(np.int64)
        if predicted.size != y.size:
            raise ValueError(f"y_pred has {predicted.size} rows, y_true {y.size}")
    seen = max(int(y.max(initial=-1)), int(predicted.max(initial=-1))) + 1
    k = n_classes if n_classes is not None else max(seen, 2)
    if seen > k or min(int(y.min(initial=0)), int(predicted.min(initial=0))) < 0:
        raise ValueError(f"class codes must be 0..{k - 1}")
    if p is not None and not np.isfinite(p).all():
        p = None
    return y, predicted, p, k


def _numbers(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    if y_pred is None:
        raise ValueError("regression scores need y_pred")
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if p.size != y.size:
        raise ValueError(f"y_pred has {p.size} rows, y_true {y.size}")
    return y, p


# -- scores --------------------------------------------------------------------------------------


_LABEL_METRICS = frozenset({"accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro"})


def _classification_scores(y: np.ndarray, predicted: np.ndarray, p: np.ndarray | None, k: int, *,
                           only: str | None = None) -> dict[str, float | None]:
    if y.size == 0:
        return {}
    out: dict[str, float | None] = {}
    if only is None or only in _LABEL_METRICS:
        matrix = np.bincount(y * k + predicted, minlength=k * k).reshape(k, k)
        hits = np.diag(matrix).astype(np.float64)
        actual, called = matrix.sum(axis=1), matrix.sum(axis=0)
        # scikit-learn's macro averages run over the labels in y_true or y_pred, with 0 for 0/0
        # (zero_division=0); balanced accuracy is the mean recall over the classes in y_true.
        labels = (actual + called) > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(called > 0, hits / called, 0.0)
            recall = np.where(actual > 0, hits / actual, 0.0)
            f1 = np.where(actual + called > 0, 2 * hits / (actual + called), 0.0)
        out.update(accuracy=hits.sum() / y.size, balanced_accuracy=recall[actual > 0].mean(),
                   f1_macro=f1[labels].mean(), precision_macro=precision[labels].mean(),
                   recall_macro=recall[labels].mean())
    if p is not None and only in (None, "roc_auc"):
        out["roc_auc"] = _roc_auc(y, p, k)
    if p is not None and only in (None, "log_loss"):
        rows = p / np.where(p.sum(axis=1, keepdims=True) > 0, p.sum(axis=1, keepdims=True), 1.0)
        out["log_loss"] = float(-np.mean(np.log(np.clip(rows[np.arange(y.size), y], _PROBA_FLOOR, 1.0))))
    return out


def _roc_auc(y: np.ndarray, p: np.ndarray, k: int) -> float | None:
    present = np.unique(y)
    if present.size < 2:
        return None
    if k == 2:
        return _auc(y == 1, p[:, 1])
    return float(np.mean([_auc(y == c, p[:, c]) for c in present]))


def _auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """The area under the ROC curve as the Mann-Whitney statistic (ties count half), which equals
    scikit-learn's trapezoidal roc_auc_score."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    ranks = rankdata(scores)  # average ranks of tied scores
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _regression_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    if y.size == 0:
        return {}
    with np.errstate(all="ignore"):
        error = p - y
        out = {"rmse": math.sqrt(np.mean(error**2)), "mae": np.mean(np.abs(error))}
        spread = np.sum((y - y.mean()) ** 2)
        out["r2"] = 1.0 - np.sum(error**2) / spread if y.size >= 2 and spread > 0 else None
        nonzero = y != 0
        out["mape"] = np.mean(np.abs(error[nonzero]) / np.abs(y[nonzero])) if nonzero.any() else None
    return out


def _clustering_scores(X: Any, labels: Any, seed: int) -> dict[str, float | None]:
    if X is None or labels is None:
        raise ValueError("clustering scores need X and labels")
    import scipy.sparse
    from sklearn import metrics

    labels = np.asarray(labels).ravel()
    clustered = np.flatnonzero(labels != -1)
    labels = labels[clustered]
    if not 2 <= np.unique(labels).size < labels.size:
        return {}
    sparse = scipy.sparse.issparse(X)
    X = scipy.sparse.csr_matrix(X)[clustered] if sparse else np.asarray(X)[clustered]
    if labels.size > _SILHOUETTE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(labels.size, _SILHOUETTE_ROWS, replace=False))
        sample, sample_labels = X[rows], labels[rows]
    else:
        sample, sample_labels = X, labels
    out: dict[str, float | None] = {}
    if 2 <= np.unique(sample_labels).size < sample_labels.size:
        out["silhouette"] = metrics.silhouette_score(sample, sample_labels)
    # Davies-Bouldin and Calinski-Harabasz are linear in rows but take dense input only: a sparse X is
    # scored on the silhouette sample, densified, to bound memory.
    dense, dense_labels = (sample.toarray(), sample_labels) if sparse else (X, labels)
    if 2 <= np.unique(dense_labels).size < dense_labels.size:
        out["davies_bouldin"] = metrics.davies_bouldin_score(dense, dense_labels)
        out["calinski_harabasz"] = metrics.calinski_harabasz_score(dense, dense_labels)
    return out


# -- plot data -----------------------------------------------------------------------------------


def _classification_plots(y: np.ndarray, predicted: np.ndarray, p: np.ndarray | None, names: list[str], task: str,
                          max_points: int) -> dict:
    k = len(names)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y, predicted), 1)
    out: dict[str, Any] = {"confusion_matrix": {"labels": names, "matrix": matrix}}
    if p is None or y.size == 0:
        return out
    if task == BINARY:
        curves = _curves(y == 1, p[:, 1], max_points)
        if curves is not None:
            out["roc_curve"], out["pr_curve"] = curves
        out["calibration"] = _calibration(y == 1, p[:, 1])
        return out
    roc, pr = {}, {}
    for c, name in enumerate(names):
        curves = _curves(y == c, p[:, c], max_points)
        if curves is not None:
            roc[name], pr[name] = curves
    out["roc_curves"], out["pr_curves"] = roc, pr
    return out


def _curves(positive: np.ndarray, scores: np.ndarray, max_points: int) -> tuple[dict, dict] | None:
    """ROC and precision-recall curves of one class, or None when the rows hold only one side."""
    if positive.all() or not positive.any():
        return None
    from sklearn.metrics import precision_recall_curve, roc_curve

    highest = max(1.0, float(scores.max()))
    fpr, tpr, roc_thresholds = roc_curve(positive, scores)
    precision, recall, pr_thresholds = precision_recall_curve(positive, scores)
    # The last PR point (recall 0, precision 1) has no threshold in scikit-learn: it lies above every score.
    pr_thresholds = np.append(pr_thresholds, highest)
    roc_thresholds = np.where(np.isinf(roc_thresholds), highest, roc_thresholds)
    roc = _downsample({"fpr": fpr, "tpr": tpr, "thresholds": roc_thresholds}, max_points)
    pr = _downsample({"precision": precision, "recall": recall, "thresholds": pr_thresholds}, max_points)
    return roc, pr


def _downsample(curve: dict[str, np.ndarray], max_points: int) -> dict[str, np.ndarray]:
    n = len(next(iter(curve.values())))
    if n <= max_points:
        return curve
    keep = np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
    return {name: values[keep] for name, values in curve.items()}


def _calibration(positive: np.ndarray, scores: np.ndarray) -> dict:
    bins = np.clip((scores * _CALIBRATION_BINS).astype(np.int64), 0, _CALIBRATION_BINS - 1)
    count = np.bincount(bins, minlength=_CALIBRATION_BINS)
    total = np.bincount(bins, weights=scores, minlength=_CALIBRATION_BINS)
    hits = np.bincount(bins, weights=positive.astype(np.float64), minlength=_CALIBRATION_BINS)
    used = count > 0
    return {"mean_predicted": total[used] / count[used], "fraction_positive": hits[used] / count[used],
            "count": count[used]}


def _regression_plots(y: np.ndarray, p: np.ndarray, seed: int) -> dict:
    finite = np.isfinite(y) & np.isfinite(p)
    y, p = y[finite], p[finite]
    if y.size == 0:
        return {}
    residual = y - p
    rows = np.arange(y.size)
    if y.size > _RESIDUAL_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(y.size, _RESIDUAL_ROWS, replace=False))
    counts, edges = np.histogram(residual, bins=_HISTOGRAM_BINS)
    return {"residuals": {"actual": y[rows], "predicted": p[rows], "residual": residual[rows]},
            "residual_histogram": {"edges": edges, "counts": counts}}


def jsonable(value: Any) -> Any:
    """Plain Python containers and numbers; a non-finite float (say, an overflowed residual) becomes None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
