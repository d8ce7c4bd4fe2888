"""One training run, start to finish, in the process that does the fitting.

`fit_model(request, reporter)` reads the dataset's Parquet file, plans the features from its
profile, splits for validation, fits the preprocessing pipeline and the estimator, scores the
model and writes its artifact directory (see `core.model_artifact`). It knows nothing of jobs,
queues or databases: the worker runs it in a fit process (`child_main`, reused from fit to fit) and
relays what the reporter sends — per-iteration metrics, log lines, progress — as job events.

`request` is the JSON-ready dict the worker builds from the job's resolved spec:
    dataset_path, validation_dataset_path (optional), profile, target ("" for clustering), task,
    estimator, hyperparameters, validation {method, fraction, folds, stratify, group_column,
    time_column}, metric, max_iterations, early_stopping {patience, min_delta} or None, seed,
    device, n_jobs, balance_classes, feature_columns, ignore_columns, output_dir.
Errors the user can act on are raised as `TrainingError` (the job fails with its message).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microlearn_grpc.core._rows import TrainingError
from microlearn_grpc.core._rows import encode_labels as _encode_labels
from microlearn_grpc.core._rows import label as _label
from microlearn_grpc.core._rows import mean_std as _mean_std
from microlearn_grpc.core._rows import order_values as _order_values
from microlearn_grpc.core._rows import save_predictions as _save_predictions
from microlearn_grpc.core.metrics import jsonable

__all__ = ["Reporter", "TrainingError", "child_main", "fit_model"]

log = logging.getLogger(__name__)
_MAX_CATEGORIES = 1000
# A reused fit process that holds this much memory after a fit exits rather than keep it for the next.
_RETIRE_RSS_BYTES = 1 << 30
_TRAIN_SCORE_ROWS = 10_000  # train_* metrics are scored on a seeded sample of at most this many training rows


class Cancelled(Exception):
    """The job was asked to stop."""


@dataclass
class Reporter:
    """Where a run sends what happens. `cancelled()` is polled at every iteration boundary."""

    send: Callable[[tuple], None]
    cancelled: Callable[[], bool] = lambda: False

    def log(self, level: str, message: str) -> None:
        self.send(("log", level, message))

    def progress(self, fraction: float) -> None:
        self.send(("progress", max(0.0, min(1.0, fraction))))

    def metrics(self, step: int, values: Mapping[str, float], fraction: float | None = None) -> None:
        clean = {k: float(v) for k, v in values.items() if v is not None and _finite(v)}
        if clean:
            self.send(("metrics", int(step), clean, fraction))


def _finite(value: Any) -> bool:
    import math

    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# -- the run -------------------------------------------------------------------------------------------

def fit_model(request: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Train as `request` says, write the artifact into `request["output_dir"]`, return the results."""
    import numpy as np
    import pyarrow.parquet as pq

    from microlearn_grpc.core import metrics as metric_lib
    from microlearn_grpc.core.estimators import CLUSTERING, EarlyStopping, HyperparameterError, get_estimator
    from microlearn_grpc.core.preprocessing import PreprocessingNeeds, build_preprocessor, plan_features

    started = time.perf_counter()
    task, target = request["task"], request.get("target") or None
    seed = int(request["seed"])
    cls = get_estimator(request["estimator"])
    params = dict(request.get("hyperparameters") or {})
    # max_iterations overrides the estimator's iteration count (rounds, epochs), beyond its search range.
    iterations_param = getattr(cls, "iterations_param", None)
    max_iterations = int(request.get("max_iterations") or 0) if iterations_param else 0
    try:
        estimator_args = dict(seed=seed, n_jobs=int(request.get("n_jobs") or 1), device=request.get("device", "cpu"),
                              balance_classes=bool(request.get("balance_classes")))
        cls(task, params, **estimator_args)  # validates before any data is read
    except HyperparameterError as exc:
        raise TrainingError(str(exc)) from None

    frame = pq.read_table(request["dataset_path"]).to_pandas()
    reporter.log("INFO", f"read {request.get('dataset_display') or 'the dataset'}: {len(frame):,} rows × "
                         f"{frame.shape[1]} columns")
    validation = request.get("validation") or {}
    profile = request["profile"]
    excluded = set(request.get("ignore_columns") or [])
    excluded |= {c for c in (validation.get("group_column"), validation.get("time_column")) if c}
    wanted = request.get("feature_columns") or []
    if wanted:
        excluded |= {c["name"] for c in profile["columns"] if c["name"] not in wanted and c["name"] != target}
    plan = plan_features(profile, target, task=task, drop=sorted(excluded))
    for name, reason in plan.dropped.items():
        if name != target and reason != "dropped by request":
            reporter.log("INFO", f"column {name!r} not used: {reason}")
    needs = PreprocessingNeeds.of(cls)

    class_values: list[Any] | None = None
    y = None
    if task != CLUSTERING:
        present = frame[target].notna().to_numpy()
        if not present.all():
            reporter.log("WARNING", f"{int((~present).sum())} row(s) with a missing target were left out")
            frame = frame.loc[present].reset_index(drop=True)
        if task in ("binary", "multiclass"):
            class_values, y = _encode_labels(frame[target])
        else:
            y = frame[target].astype("float64").to_numpy()
    if len(frame) < 2:
        raise TrainingError(f"only {len(frame)} usable row(s): at least 2 are needed to train")

    early = request.get("early_stopping")
    early_stopping = EarlyStopping(patience=int(early.get("patience") or 10),
                                   min_delta=float(early.get("min_delta") or 0.0)) if early else None
    if early_stopping is not None and not cls.supports_early_stopping:
        reporter.log("WARNING", f"{cls.name} does not support early stopping; it trains with its full budget")
        early_stopping = None
    metric = request.get("metric") or metric_lib.DEFAULT_METRIC[task]
    n_classes = len(class_values) if class_values is not None else None

    def make(iterations: int = max_iterations) -> Any:
        estimator = cls(task, params, **estimator_args)
        if iterations:
            estimator.params[iterations_param] = iterations
        return estimator

    def predictions(model: Any, X: Any, kept: Any = None) -> dict[str, Any]:
        """What the metrics and plot data of these rows need: probabilities, else predicted values;
        `kept` are the model's own predictions of these rows, kept from its last iteration."""
        if kept is not None and task in ("binary", "multiclass"):
            kept = np.asarray(kept, dtype=float)
            proba = np.column_stack([1.0 - kept, kept]) if kept.ndim == 1 else kept
            if proba.shape[1] == n_classes:
                return {"proba": proba, "y_pred": None}
        elif kept is not None:
            return {"proba": None, "y_pred": kept}
        proba = _proba(model, X, n_classes) if task in ("binary", "multiclass") else None
        return {"proba": proba, "y_pred": model.predict(X) if proba is None else None}

    def score(model: Any, X: Any, y_true: Any, predicted: dict[str, Any] | None = None) -> dict[str, float]:
        if task == CLUSTERING:
            return metric_lib.score(task, None, X=X, labels=model.predict(X), seed=seed)
        return metric_lib.score(task, y_true, **(predicted or predictions(model, X)), n_classes=n_classes, seed=seed)

    def score_training_rows(model: Any, X: Any, y_true: Any) -> dict[str, float]:
        # The train_* metrics are for spotting overfitting: a seeded sample of the training rows is
        # enough, and predicting all of them cost more than the rest of the job's overhead.
        if len(y_true) > _TRAIN_SCORE_ROWS:
            rows = np.sort(np.random.default_rng(seed).choice(len(y_true), _TRAIN_SCORE_ROWS, replace=False))
            X, y_true = (X.iloc[rows] if hasattr(X, "iloc") else X[rows]), y_true[rows]
        return score(model, X, y_true)

    def importance_of(pre: Any, fitted: Any, rows: Any, y_rows: Any, parts: int = 1) -> Any:
        """Permutation importance of the original columns on validation rows, within a share of the row
        and time caps (a fold's share in k-fold); None when not asked for (a study's trials) or undefined."""
        if not request.get("importance"):
            return None
        from microlearn_grpc.core import importance as importance_lib

        return importance_lib.measure(
            lambda f: predictions(fitted, pre.transform(f)),
            lambda t, p: metric_lib.score(task, t, **p, n_classes=n_classes, only=metric).get(metric), rows, y_rows,
            plan.features, maximize=metric_lib.direction(metric) == "maximize", seed=seed,
            max_rows=importance_lib.MAX_ROWS // parts, deadline=importance_lib.deadline(fitted.fit_seconds_))

    def fit_all_rows(iterations: int, span: tuple[float, float], stop_at: float = 0.0) -> tuple[Any, Any, Any]:
        pre = build_preprocessor(plan, needs, seed=seed)
        X_all = pre.fit_transform(frame, y)
        fitted = make(iterations)
        _fit(fitted, X_all, y, None, None, reporter, None, span, deadline=stop_at or None)
        return pre, X_all, fitted

    fold_metrics: list[dict[str, float]] = []
    drops = None  # permutation importance, pooled over folds
    out_of_fold: list[tuple[Any, dict[str, Any]]] = []  # (row positions, predictions) of every validated row
    best_iterations: list[int] = []
    val_frame = None
    if request.get("validation_dataset_path"):
        val_frame = pq.read_table(request["validation_dataset_path"]).to_pandas()
        if task != CLUSTERING:
            val_frame = val_frame.loc[val_frame[target].notna().to_numpy()].reset_index(drop=True)

    if task == CLUSTERING:
        reporter.log("INFO", f"fitting {cls.name} on {len(frame):,} rows")
        preprocessor = build_preprocessor(plan, needs, seed=seed)
        X_all = preprocessor.fit_transform(frame)
        model = make()
        _fit(model, X_all, None, None, None, reporter, early_stopping, (0.05, 0.9))
        final_metrics = score(model, X_all, None)
        train_metrics: dict[str, float] = {}
        metrics_std: dict[str, float] = {}
        diagnostics: dict[str, Any] = {}
        train_rows = len(frame)
    elif request.get("all_rows"):  # a study's refit: every row, nothing held out (its trial measured that)
        reporter.log("INFO", f"refitting {cls.name} on all {len(frame):,} rows")
        preprocessor, X_all, model = fit_all_rows(max_iterations, (0.05, 0.9), float(request.get("stop_at") or 0))
        final_metrics, metrics_std, diagnostics = {}, {}, {}
        train_metrics = score_training_rows(model, X_all, y)
        train_rows = len(frame)
    else:
        if val_frame is not None:
            val_y = (_encode_with(val_frame[target], class_values) if class_values is not None
                     else val_frame[target].astype("float64").to_numpy())
            splits = None
        else:
            splits, split_warnings = split_rows(frame, y, validation, task=task, seed=seed)
            for text in split_warnings:
                reporter.log("WARNING", text)

        if splits is not None and len(splits) > 1:
            # k-fold: score every fold, then refit on all rows with the mean best iteration.
            for index, (train_idx, val_idx) in enumerate(splits):
                reporter.log("INFO", f"fold {index + 1}/{len(splits)}: {len(train_idx):,} train / "
                                     f"{len(val_idx):,} validation rows")
                span = (0.8 * index / len(splits), 0.8 * (index + 1) / len(splits))
                pre = build_preprocessor(plan, needs, seed=seed)
                Xt = pre.fit_transform(frame.iloc[train_idx], y[train_idx])
                Xv = pre.transform(frame.iloc[val_idx])
                model = make()
                _fit(model, Xt, y[train_idx], Xv, y[val_idx], reporter, early_stopping, span, report_steps=False)
                fold_predictions = predictions(model, Xv)
                values = score(model, Xv, y[val_idx], fold_predictions)
                fold_metrics.append(values)
                out_of_fold.append((val_idx, fold_predictions))
                fold_drops = importance_of(pre, model, frame.iloc[val_idx], y[val_idx], len(splits))
                drops = drops if fold_drops is None else fold_drops if drops is None else drops.merge(fold_drops)
                reporter.metrics(index + 1, {f"fold_{k}": v for k, v in values.items()}, span[1])
                if model.best_iteration_ or model.n_iterations_:
                    best_iterations.append(int(model.best_iteration_ or model.n_iterations_))
            final_metrics, metrics_std = _mean_std(fold_metrics)
            refit_iterations = max_iterations
            if best_iterations and iterations_param and early_stopping is not None:
                refit_iterations = max(1, int(round(sum(best_iterations) / len(best_iterations))))
            reporter.log("INFO", f"refitting on all {len(frame):,} rows")
            preprocessor, X_all, model = fit_all_rows(refit_iterations, (0.8, 0.95))
            train_metrics = score_training_rows(model, X_all, y)
            # Plot data from the out-of-fold predictions: every row, each predicted by a model that did not see it.
            rows = np.concatenate([np.asarray(i) for i, _ in out_of_fold])
            pooled = {key: (None if out_of_fold[0][1][key] is None else
                            np.concatenate([np.asarray(p[key]) for _, p in out_of_fold])[np.argsort(rows, kind="stable")])
                      for key in ("proba", "y_pred")}
            labels = [_label(v) for v in class_values] if class_values is not None else None
            diagnostics = metric_lib.diagnostics(task, y[np.sort(rows)], **pooled, class_labels=labels, seed=seed)
            train_rows = len(frame)
        else:
            if splits is not None:
                (train_idx, val_idx), = splits
                train_frame, valid_frame = frame.iloc[train_idx], frame.iloc[val_idx]
                y_train, y_val = y[train_idx], y[val_idx]
            else:
                train_frame, valid_frame, y_train, y_val = frame, val_frame, y, val_y
            reporter.log("INFO", f"fitting {cls.name} on {len(train_frame):,} rows, validating on "
                                 f"{len(valid_frame):,}")
            preprocessor = build_preprocessor(plan, needs, seed=seed)
            Xt = preprocessor.fit_transform(train_frame, y_train)
            Xv = preprocessor.transform(valid_frame)
            model = make()
            # A study's trial stops iterating at `stop_at` and keeps what it has, instead of being cancelled.
            _fit(model, Xt, y_train, Xv, y_val, reporter, early_stopping, (0.05, 0.9),
                 deadline=float(request["stop_at"]) if request.get("stop_at") else None,
                 val_metric=_validation_metric(metric_lib, task, metric, len(y_val), n_classes))
            validation_predictions = predictions(model, Xv, getattr(model, "validation_predictions_", None))
            out_of_fold.append((val_idx if splits is not None else None, validation_predictions))
            final_metrics = score(model, Xv, y_val, validation_predictions)
            metrics_std = {}
            train_metrics = score_training_rows(model, Xt, y_train)
            labels = [_label(v) for v in class_values] if class_values is not None else None
            diagnostics = metric_lib.diagnostics(task, y_val, **validation_predictions, class_labels=labels, seed=seed)
            drops = importance_of(preprocessor, model, valid_frame, y_val)
            train_rows = len(train_frame)
        if drops is not None:
            from microlearn_grpc.core.importance import summarize

            diagnostics["permutation_importance"] = found = summarize(drops, metric=metric)
            reporter.log("INFO", f"permutation importance of {len(found['features'])} columns on {found['rows']:,} "
                                 f"rows in {found['seconds']:.2f} s" + ("" if found["complete"] else " (time cap hit)"))

    reporter.progress(0.95)
    if request.get("predictions_path") and out_of_fold and y is not None:
        _save_predictions(Path(request["predictions_path"]), out_of_fold, y if val_frame is None else val_y)
    output = Path(request["output_dir"])
    feature_schema = _feature_schema(plan, profile, frame)
    _write_artifact(output, request, plan, preprocessor, model, feature_schema, class_values)
    result = {
        "metric": metric,
        "metrics": final_metrics,
        "metrics_std": metrics_std,
        "train_metrics": train_metrics,
        "fold_metrics": fold_metrics,
        "diagnostics": diagnostics,
        "hyperparameters": jsonable(model.params_ or {}),
        "feature_schema": feature_schema,
        "feature_plan": plan.to_dict(),
        "class_labels": [_label(v) for v in class_values] if class_values is not None else [],
        "iterations": int(model.n_iterations_ or 0),
        "best_iteration": int(model.best_iteration_ or model.n_iterations_ or 0),
        "stop_reason": model.stop_reason_ or "",
        "training_row_count": int(train_rows),
        "fit_time_seconds": float(model.fit_seconds_ or 0.0),
        "total_seconds": time.perf_counter() - started,
        "format": cls.model_format,
        "library": f"{cls.library} {cls.library_version() or ''}".strip(),
    }
    if model.stop_reason_ == "cancelled" or reporter.cancelled():
        raise Cancelled()
    return result


def split_rows(frame: Any, y: Any, validation: dict[str, Any], *, task: str, seed: int) -> tuple[list, list[str]]:
    """The validation splits (and warnings) of `frame`, rows with a missing target already left out, exactly
    as a training job with this `validation` spec and `seed` makes them."""
    from microlearn_grpc.core import validation as validation_lib

    strategy = validation_lib.Strategy(
        method=validation.get("method") or "holdout", fraction=float(validation.get("fraction") or 0.2),
        folds=int(validation.get("folds") or 5), stratify=validation.get("stratify"),
        group_column=validation.get("group_column") or "", time_column=validation.get("time_column") or "")
    groups = frame[strategy.group_column].to_numpy() if strategy.group_column else None
    order = _order_values(frame[strategy.time_column]) if strategy.time_column else None
    try:
        return validation_lib.split(len(frame), strategy, task=task, y=y, groups=groups, order=order, seed=seed)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None


def _fit(model: Any, X: Any, y: Any, X_val: Any, y_val: Any, reporter: Reporter, early_stopping: Any,
         span: tuple[float, float], *, report_steps: bool = True, val_metric: Any = None,
         deadline: float | None = None) -> None:
    """Fit one model, relaying iterations as progress within `span` and polling for cancellation; with
    `val_metric`, iterative fits add the task metric on the validation rows to their reports."""
    if reporter.cancelled():
        raise Cancelled()
    low, high = span
    total = _planned_iterations(model)

    def on_iteration(step: int, values: dict[str, float]) -> bool:
        fraction = low + (high - low) * min(1.0, step / total) if total and step else None
        if report_steps and step:
            reporter.metrics(step, values, fraction)
        elif fraction is not None:
            reporter.progress(fraction)
        return not reporter.cancelled()

    reporter.progress(low)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        model.fit(X, y, X_val=X_val, y_val=y_val, on_iteration=on_iteration, early_stopping=early_stopping,
                  val_metric=val_metric if report_steps else None, deadline=deadline)
    if model.stop_reason_ == "cancelled" or reporter.cancelled():
        raise Cancelled()
    if model.stop_reason_ == "early_stopping":
        reporter.log("INFO", f"early stopping after {model.n_iterations_} iterations "
                             f"(best: {model.best_iteration_ or model.n_iterations_})")
    elif model.stop_reason_ == "time_limit":
        reporter.log("INFO", f"stopped at the time limit (its study's deadline) after {model.n_iterations_} "
                             f"iterations; keeping the model (best: {model.best_iteration_ or model.n_iterations_})")
    reporter.progress(high)


# The task metric per round costs one pass over the validation rows for the label metrics, log loss and
# the regression metrics (well under a millisecond for 20,000 rows, far less than a boosting round),
# but ROC AUC sorts the scores once per class scored (about 3 ms for 20,000 rows here, comparable to a
# LightGBM round on 100k rows). So ROC AUC is computed every ceil(rows x classes / 2,000)-th round
# (every round up to 2,000 rows, every 10th for 20,000 binary rows), the others every round; each is
# always computed at the last round and, under early stopping, at every new best one (RoundTracker).
_AUC_ROWS_PER_ROUND = 2_000


def _validation_metric(metric_lib: Any, task: str, metric: str, n_rows: int, n_classes: int | None) -> Any:
    """The `val_<metric>` iterative fits report each round, computed as `metrics.score` computes it."""
    from microlearn_grpc.core.estimators import CLASSIFICATION_TASKS, ValidationMetric

    if not n_rows:
        return None
    classify = task in CLASSIFICATION_TASKS

    def compute(y_true: Any, predictions: Any) -> float | None:
        values = (metric_lib.score(task, y_true, proba=predictions, only=metric) if classify
                  else metric_lib.score(task, y_true, y_pred=predictions, only=metric))
        return values.get(metric)

    every = 1
    if metric == "roc_auc":
        sorts = 1 if (n_classes or 2) <= 2 else n_classes
        every = max(1, -(-n_rows * sorts // _AUC_ROWS_PER_ROUND))
    return ValidationMetric(f"val_{metric}", compute, every)


def _planned_iterations(model: Any) -> int | None:
    name = getattr(model, "iterations_param", None)
    if not name:
        return None
    value = model.resolved_params().get(name)
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def _proba(model: Any, X: Any, n_classes: int | None) -> Any:
    try:
        proba = model.predict_proba(X)
    except (NotImplementedError, AttributeError):
        return None
    import numpy as np

    proba = np.asarray(proba, dtype=float)
    if n_classes is not None and proba.shape[1] != n_classes:  # a class absent from the training rows
        full = np.zeros((proba.shape[0], n_classes))
        full[:, np.asarray(model.classes_, dtype=int)] = proba
        proba = full
    return proba


def _encode_with(series: Any, class_values: list[Any]) -> Any:
    import numpy as np

    lookup = {_label(v): i for i, v in enumerate(class_values)}
    labels = [_label(v) for v in series.tolist()]
    unknown = sorted({v for v in labels if v not in lookup})
    if unknown:
        raise TrainingError(f"the validation dataset has target values the training data lacks: "
                            f"{', '.join(unknown[:5])}")
    return np.asarray([lookup[v] for v in labels], dtype=np.int64)


def _feature_schema(plan: Any, profile: dict, frame: Any) -> list[dict[str, Any]]:
    by_name = {c["name"]: c for c in profile["columns"]}
    kinds = {}
    for group, kind in (("numeric", "numeric"), ("categorical_low", "categorical"),
                        ("categorical_high", "categorical"), ("boolean", "boolean"), ("datetime", "datetime")):
        for name in getattr(plan, group):
            kinds[name] = kind
    schema = []
    for name in plan.features:
        entry = {"name": name, "type": kinds[name], "physical_type": by_name[name].get("physical_type", "")}
        if kinds[name] == "categorical":
            values = frame[name].dropna().astype(str).unique()[:_MAX_CATEGORIES]
            entry["categories"] = sorted(values.tolist())
        schema.append(entry)
    return schema


def _write_artifact(output: Path, request: dict, plan: Any, preprocessor: Any, model: Any,
                    feature_schema: list[dict[str, Any]], class_values: list | None) -> None:
    from microlearn_grpc.core.model_artifact import write_manifest, write_preprocessor

    output.mkdir(parents=True, exist_ok=True)
    model.save(output)
    write_preprocessor(output, preprocessor)
    write_manifest(output, {
        "task": request["task"], "target": request.get("target") or "", "estimator": model.name,
        "feature_schema": feature_schema, "feature_plan": plan.to_dict(),
        "class_labels": [_label(v) for v in class_values] if class_values is not None else [],
        "class_values": class_values, "seed": request["seed"],
    })


# -- the child process ---------------------------------------------------------------------------------

def warm_up() -> None:
    """Run one tiny fit (a class-prior baseline on a few mixed columns, in a temporary directory) so
    that this process has done every lazy import and first-call set-up a fit needs. The worker's
    forkserver does it once: every fit process forked from it starts warm, which saves a trivial job
    most of its fit-process time. Nothing here may start threads (an OpenMP pool, say) in a process
    that forks afterwards, hence the baseline estimator."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from microlearn_grpc.core.profile import profile_table

    rows = 40
    table = pa.table({"x": [float(i % 7) if i % 5 else None for i in range(rows)],
                      "city": [("a", "b", "c", None)[i % 4] for i in range(rows)],
                      "flag": [bool(i % 2) for i in range(rows)],
                      "day": pa.array([f"2024-01-{1 + i % 28:02d}" for i in range(rows)]).cast(pa.date32()),
                      "label": [("yes", "no")[i % 3 == 0] for i in range(rows)]})
    with tempfile.TemporaryDirectory(prefix="microlearn-warm-up-") as scratch:
        path = Path(scratch) / "warm-up.parquet"
        pq.write_table(table, path)
        fit_model({"dataset_path": str(path), "profile": profile_table(table), "target": "label", "task": "binary",
                   "estimator": "baseline_classifier", "hyperparameters": {},
                   "validation": {"method": "holdout", "fraction": 0.25}, "metric": "", "max_iterations": 0,
                   "early_stopping": None, "seed": 0, "device": "cpu", "n_jobs": 1,
                   "output_dir": str(Path(scratch) / "model")}, Reporter(send=lambda message: None))


def child_main(conn: Any, cuda_visible_devices: str = "") -> None:
    """Entry point of a fit process: runs the fits it is sent over `conn`, one after another.

    From the parent: ("run", request) and "cancel" (the running fit stops at its next iteration); a request
    whose `action` is `evaluate` runs `core.evaluation.evaluate_model` instead of a fit.
    To the parent, for each request: ("log", level, text), ("progress", fraction),
    ("metrics", step, {name: value}, fraction), then one of ("result", dict), ("cancelled",),
    ("error", message, traceback); before that answer, ("retire",) when the process has grown past
    `_RETIRE_RSS_BYTES` and exits after it (the parent starts a fresh one for the next fit). If the
    parent goes away (the pipe closes) the process exits at once: a killed worker leaves no orphan fit.
    """
    import queue

    os.environ["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices  # before any CUDA library loads
    cancel = threading.Event()
    requests: queue.SimpleQueue = queue.SimpleQueue()
    lock = threading.Lock()

    def listen() -> None:
        try:
            while True:
                message = conn.recv()
                if message == "cancel":
                    cancel.set()
                elif message[0] == "run":
                    requests.put(message[1])
        except (EOFError, OSError):
            os._exit(3)  # the worker is gone (or is done with this process); nobody is waiting for a fit

    def send(message: tuple) -> None:
        with lock:
            conn.send(message)

    threading.Thread(target=listen, name="microlearn-parent-watch", daemon=True).start()
    logging.basicConfig(level=logging.WARNING)
    while True:
        request = requests.get()
        cancel.clear()  # a cancel of the previous fit arrives before this request, never after
        answer = _run_one(request, Reporter(send=send, cancelled=cancel.is_set))
        retire = _resident_bytes() > _RETIRE_RSS_BYTES
        if retire:
            send(("retire",))
        send(answer)
        if retire:
            with lock:
                os._exit(0)


def _run_one(request: dict[str, Any], reporter: Reporter) -> tuple:
    try:
        if request.get("action") == "evaluate":
            from microlearn_grpc.core.evaluation import evaluate_model

            return ("result", evaluate_model(request, reporter))
        return ("result", fit_model(request, reporter))
    except Cancelled:
        return ("cancelled",)
    except TrainingError as exc:
        return ("error", str(exc), "")
    except MemoryError:
        return ("error", "the fit ran out of memory; try fewer rows, a cheaper estimator or fewer parallel jobs", "")
    except Exception as exc:  # noqa: BLE001 - reported to the job, with the trace for the log
        return ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
