"""One evaluation, in the process that does the fitting: a stored model's metrics, plot data and
permutation importance on held-out rows.

`evaluate_model(request, reporter)` runs in a worker's fit process (`core.training.child_main`
dispatches a request whose `action` is `evaluate` here). The rows are one of:

    dataset      every row of another dataset (a test set), scored with the stored model;
    validation   the validation rows of the model's own training job (the holdout rebuilt from the
                 job's validation spec and seed, or its validation dataset), scored with the stored model;
    refold       k-fold models have no rows of their own left out (they are refit on every row), so
                 their cross-validation is run again (`training_request`) and its out-of-fold
                 predictions are scored, importance pooled over the folds.

`request`: action, model_dir (an unpacked, verified artifact), dataset_path, rows, task, target, metric
(importance's metric), validation and seed (for `validation`), training_request (for `refold`),
fit_seconds (scales the time cap), repeats, output_dir (scratch).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from microlearn_grpc.core import importance as importance_lib
from microlearn_grpc.core._rows import TrainingError, encode_labels, label

__all__ = ["EVALUATION_REPEATS", "evaluate_model"]

EVALUATION_REPEATS = 5
# An evaluation job is asked for: its importance may take three times the model's fit, and at least 10 s.
_TIME_FACTOR, _MIN_SECONDS = 3.0, 10.0


def evaluate_model(request: dict[str, Any], reporter: Any) -> dict[str, Any]:
    started = time.perf_counter()
    if request["rows"] == "refold":
        return _refold(request, reporter, started)
    import pyarrow.parquet as pq

    from microlearn_grpc.core import metrics as metric_lib
    from microlearn_grpc.core.model_artifact import TrainedModel
    from microlearn_grpc.core.training import _encode_with, _proba, split_rows

    task, target, metric = request["task"], request["target"], request["metric"]
    model = TrainedModel.load_dir(Path(request["model_dir"]))
    frame = pq.read_table(request["dataset_path"]).to_pandas()
    if target not in frame.columns:
        raise TrainingError(f"the dataset has no column {target!r} (the model's target)")
    frame = frame.loc[frame[target].notna().to_numpy()].reset_index(drop=True)
    class_values = model.manifest.get("class_values")
    classify = task in ("binary", "multiclass")
    if request["rows"] == "validation" and not request.get("validation_dataset"):
        # The training job's own split: the same row filter, label codes, strategy and seed.
        codes = encode_labels(frame[target])[1] if classify else frame[target].astype("float64").to_numpy()
        splits, _ = split_rows(frame, codes, request.get("validation") or {}, task=task, seed=int(request["seed"]))
        frame = frame.iloc[splits[0][1]].reset_index(drop=True)
    if frame.empty:
        raise TrainingError("no rows with a target value to evaluate on")
    y = _encode_with(frame[target], class_values) if classify else frame[target].astype("float64").to_numpy()
    n_classes = len(class_values) if classify else None
    reporter.log("INFO", f"evaluating on {len(frame):,} rows")

    def predict(rows: Any) -> dict[str, Any]:
        X = model.transform(rows)
        proba = _proba(model.estimator, X, n_classes) if classify else None
        return {"proba": proba, "y_pred": model.estimator.predict(X) if proba is None else None}

    predicted = predict(frame)
    reporter.progress(0.2)
    metrics = metric_lib.score(task, y, **predicted, n_classes=n_classes, seed=int(request.get("seed") or 0))
    labels = [label(v) for v in class_values] if classify else None
    diagnostics = metric_lib.diagnostics(task, y, **predicted, class_labels=labels, seed=int(request.get("seed") or 0))
    drops = importance_lib.measure(
        predict, lambda t, p: metric_lib.score(task, t, **p, n_classes=n_classes, only=metric).get(metric),
        frame, y, model.feature_names, maximize=metric_lib.direction(metric) == "maximize",
        repeats=int(request.get("repeats") or EVALUATION_REPEATS), seed=int(request.get("seed") or 0),
        deadline=importance_lib.deadline(request.get("fit_seconds"), factor=_TIME_FACTOR, floor=_MIN_SECONDS))
    if drops is not None:
        diagnostics["permutation_importance"] = importance_lib.summarize(drops, metric=metric)
    reporter.progress(0.95)
    return {"metrics": metrics, "diagnostics": diagnostics, "rows": int(len(frame)),
            "seconds": time.perf_counter() - started, "kind": request["rows"]}


def _refold(request: dict[str, Any], reporter: Any, started: float) -> dict[str, Any]:
    from microlearn_grpc.core.training import fit_model

    reporter.log("INFO", "k-fold model: running its cross-validation again for out-of-fold figures")
    result = fit_model({**request["training_request"], "importance": True, "output_dir": request["output_dir"]},
                       reporter)
    return {"metrics": result["metrics"], "diagnostics": result["diagnostics"],
            "rows": int(result["training_row_count"]), "seconds": time.perf_counter() - started, "kind": "refold"}
