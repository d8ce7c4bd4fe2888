"""`core.training.fit_model`, the fit a worker runs in its child process: every registered estimator
trains on a raw table with missing values, categoricals, booleans and datetimes, writes an artifact
that loads, and predicts on rows with unseen categories."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from microlearn_grpc.core.estimators import list_estimators
from microlearn_grpc.core.model_artifact import TrainedModel
from microlearn_grpc.core.profile import profile_table
from microlearn_grpc.core.training import Reporter, TrainingError, fit_model
from tests.integration.test_training import messy_table

TARGETS = {"binary": "churn", "multiclass": "plan", "regression": "spend", "clustering": ""}
CASES = [(cls.name, task) for cls in list_estimators() for task in sorted(cls.tasks)]


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    frame = messy_table(300, seed=5)
    frame["plan"] = frame["plan"].fillna("basic")
    path = tmp_path_factory.mktemp("data") / "messy.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path)
    return path, profile_table(table)


def request(path, profile, estimator, task, out, **extra):
    return {"dataset_path": str(path), "profile": profile, "target": TARGETS[task], "task": task,
            "estimator": estimator, "hyperparameters": {}, "validation": {"method": "holdout", "fraction": 0.25},
            "metric": "", "max_iterations": 8, "early_stopping": None, "seed": 3, "device": "cpu", "n_jobs": 1,
            "output_dir": str(out), **extra}


@pytest.mark.parametrize("estimator, task", CASES, ids=[f"{e}-{t}" for e, t in CASES])
def test_every_estimator_trains_raw_messy_data_and_loads(messy, tmp_path, estimator, task):
    path, profile = messy
    sent: list[tuple] = []
    result = fit_model(request(path, profile, estimator, task, tmp_path / "model"), Reporter(send=sent.append))
    assert result["metric"] in result["metrics"] or task == "clustering"
    assert result["metrics"], result
    assert {c["name"] for c in result["feature_schema"]} >= {"age", "city", "signup", "active"}
    model = TrainedModel.load_dir(tmp_path / "model")
    rows = messy_table(6, seed=9).drop(columns=[TARGETS[task]] if TARGETS[task] else [])
    rows.loc[0, "city"] = "atlantis"  # unseen category
    rows.loc[1, "age"] = None
    predictions = model.predict(rows)
    assert len(predictions) == 6
    if task in ("binary", "multiclass"):
        assert set(map(str, predictions)) <= set(result["class_labels"])
        assert model.predict_proba(rows).shape == (6, len(result["class_labels"]))
    kinds = {message[0] for message in sent}
    assert "log" in kinds and "progress" in kinds


def test_kfold_reports_folds_and_std(messy, tmp_path):
    path, profile = messy
    sent: list[tuple] = []
    result = fit_model(request(path, profile, "lightgbm_classifier", "binary", tmp_path / "m",
                               validation={"method": "kfold", "folds": 3},
                               early_stopping={"patience": 3, "min_delta": 0.0}), Reporter(send=sent.append))
    assert len(result["fold_metrics"]) == 3 and "roc_auc" in result["metrics_std"]
    fold_steps = [m[1] for m in sent if m[0] == "metrics" and "fold_roc_auc" in m[2]]
    assert fold_steps == [1, 2, 3]
    # Plot data from the out-of-fold predictions: every row counted once.
    matrix = result["diagnostics"]["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == result["training_row_count"]
    assert "roc_curve" in result["diagnostics"]


def test_trials_store_aligned_out_of_fold_and_holdout_predictions(messy, tmp_path):
    import numpy as np

    path, profile = messy
    for validation in ({"method": "kfold", "folds": 3}, {"method": "holdout", "fraction": 0.25}):
        target = tmp_path / f"{validation['method']}.npz"
        result = fit_model(request(path, profile, "logistic_regression", "binary", tmp_path / validation["method"],
                                   validation=validation, predictions_path=str(target)), Reporter(send=lambda m: None))
        with np.load(target) as saved:
            index, values, y = saved["index"], saved["values"], saved["y"]
        assert list(index) == sorted(index) and len(set(index)) == len(index)
        assert values.shape == (len(index), 2) and np.allclose(values.sum(axis=1), 1)
        expected = result["training_row_count"] if validation["method"] == "kfold" else None
        assert expected is None or len(index) == expected
        assert set(np.unique(y)) <= {0, 1}


def test_cancel_stops_the_fit(messy, tmp_path):
    path, profile = messy
    from microlearn_grpc.core.training import Cancelled

    steps: list[int] = []

    def send(message):
        if message[0] == "metrics":
            steps.append(message[1])
    with pytest.raises(Cancelled):
        fit_model(request(path, profile, "xgboost_classifier", "binary", tmp_path / "m", max_iterations=500),
                  Reporter(send=send, cancelled=lambda: len(steps) >= 3))
    assert 3 <= len(steps) <= 4


def test_fit_errors_are_for_people(messy, tmp_path):
    path, profile = messy
    with pytest.raises(TrainingError, match="learning_rate"):
        fit_model(request(path, profile, "lightgbm_classifier", "binary", tmp_path / "m",
                          hyperparameters={"learning_rate": -1}), Reporter(send=lambda m: None))


# -- the task metric per iteration ---------------------------------------------------------------------

ITERATIVE = [("lightgbm_classifier", "binary", ""), ("xgboost_classifier", "multiclass", "f1_macro"),
             ("hist_gradient_boosting_regressor", "regression", "mae"),
             ("lightning_mlp_classifier", "binary", "log_loss")]


@pytest.mark.parametrize("estimator, task, metric", ITERATIVE, ids=[e for e, _, _ in ITERATIVE])
def test_every_iteration_reports_the_task_metric_on_the_validation_rows(messy, tmp_path, estimator, task, metric):
    path, profile = messy
    sent: list[tuple] = []
    result = fit_model(request(path, profile, estimator, task, tmp_path / "m", metric=metric, max_iterations=25,
                               early_stopping={"patience": 3, "min_delta": 0.0}), Reporter(send=sent.append))
    name = f"val_{result['metric']}"
    steps = {m[1]: m[2] for m in sent if m[0] == "metrics"}
    assert steps and all(name in values and "val_loss" in values for values in steps.values()), steps
    # The model kept is the best round's: its per-round value is the job's final metric.
    assert steps[result["best_iteration"]][name] == pytest.approx(result["metrics"][result["metric"]])


def test_kfold_folds_do_not_report_per_iteration_metrics(messy, tmp_path):
    path, profile = messy
    sent: list[tuple] = []
    fit_model(request(path, profile, "xgboost_classifier", "binary", tmp_path / "m",
                      validation={"method": "kfold", "folds": 2}), Reporter(send=sent.append))
    assert not any(k.startswith("val_") for m in sent if m[0] == "metrics" for k in m[2])


def test_an_expensive_metric_is_reported_every_k_rounds_and_always_at_the_last_and_best():
    from microlearn_grpc.core import metrics as metric_lib
    from microlearn_grpc.core.estimators import EarlyStopping, Progress, RoundTracker
    from microlearn_grpc.core.training import _validation_metric

    assert _validation_metric(metric_lib, "binary", "roc_auc", 20_000, 2).every == 10
    assert _validation_metric(metric_lib, "binary", "log_loss", 20_000, 2).every == 1
    val_metric = _validation_metric(metric_lib, "binary", "roc_auc", 5_000, 2)
    assert val_metric.every == 3
    reports: dict[int, dict] = {}
    tracker = RoundTracker(Progress(lambda step, values: reports.__setitem__(step, values), val_metric),
                           EarlyStopping(patience=4), total=100, y_val=np.array([0, 1, 1, 0]))
    losses = [0.9, 0.8, 0.85, 0.84, 0.83, 0.82, 0.81, 0.9]  # best at round 2; patience runs out at round 6
    for step, loss in enumerate(losses, start=1):
        if tracker.update(step, {"val_loss": loss}, lambda: np.array([0.2, 0.7, 0.6, 0.4])):
            break
    assert tracker.stop_reason == "early_stopping" and tracker.best_iteration == 2
    assert sorted(s for s, values in reports.items() if "val_roc_auc" in values) == [1, 2, 3, 6]
    assert reports[6]["val_roc_auc"] == 1.0


def test_the_fast_classification_metrics_match_scikit_learn_with_ties_and_absent_classes():
    from sklearn import metrics as sk

    from microlearn_grpc.core.metrics import score

    rng = np.random.default_rng(7)
    for k in (2, 3, 5):
        for trial in range(10):
            n = int(rng.integers(5, 200))
            y = rng.integers(0, k, n)
            if trial % 3 == 0:
                y = np.where(y == k - 1, 0, y)  # a class absent from y_true but predicted
            predicted = rng.integers(0, k, n)
            proba = np.round(rng.dirichlet(np.ones(k), n), 1)  # rounded: ties in the scores
            got = score("binary" if k == 2 else "multiclass", y, y_pred=predicted, proba=proba, n_classes=k)
            assert got["f1_macro"] == pytest.approx(sk.f1_score(y, predicted, average="macro", zero_division=0))
            assert got["precision_macro"] == pytest.approx(
                sk.precision_score(y, predicted, average="macro", zero_division=0))
            assert got["recall_macro"] == pytest.approx(sk.recall_score(y, predicted, average="macro", zero_division=0))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, predicted))
            if k == 2 and len(set(y)) == 2:
                assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, proba[:, 1]))
            assert score("multiclass" if k > 2 else "binary", y, y_pred=predicted, proba=proba, n_classes=k,
                         only="f1_macro") == {"f1_macro": got["f1_macro"]}


@pytest.mark.parametrize("estimator, task", [("lightgbm_classifier", "multiclass"), ("xgboost_classifier", "binary"),
                                             ("lightning_mlp_regressor", "regression")])
@pytest.mark.parametrize("patience", [None, 2])
def test_the_kept_validation_predictions_are_what_the_fitted_model_predicts(estimator, task, patience):
    """The trainer scores the validation rows with the predictions kept from the last reported round
    instead of predicting them again: they must be the kept model's own."""
    from microlearn_grpc.core import metrics as metric_lib
    from microlearn_grpc.core.estimators import EarlyStopping, get_estimator
    from microlearn_grpc.core.training import _validation_metric

    rng = np.random.default_rng(4)
    X, X_val = rng.normal(size=(300, 5)), rng.normal(size=(80, 5))
    score = X[:, 0] + X[:, 1] ** 2
    y = {"binary": (score > 1).astype(int), "multiclass": np.digitize(score, [0.0, 1.5]),
         "regression": score}[task]
    y_val = {"binary": (X_val[:, 0] + X_val[:, 1] ** 2 > 1).astype(int),
             "multiclass": np.digitize(X_val[:, 0] + X_val[:, 1] ** 2, [0.0, 1.5]),
             "regression": X_val[:, 0] + X_val[:, 1] ** 2}[task]
    metric = metric_lib.DEFAULT_METRIC[task]
    model = get_estimator(estimator)(task, {get_estimator(estimator).iterations_param: 30}, seed=2)
    model.fit(X, y, X_val=X_val, y_val=y_val, on_iteration=lambda step, values: None,
              early_stopping=EarlyStopping(patience=patience) if patience else None,
              val_metric=_validation_metric(metric_lib, task, metric, len(y_val), 3 if task == "multiclass" else 2))
    kept = np.asarray(model.validation_predictions_)
    again = model.predict(X_val) if task == "regression" else model.predict_proba(X_val)
    if kept.ndim == 1 and again.ndim == 2:
        kept = np.column_stack([1.0 - kept, kept])
    np.testing.assert_allclose(kept, again, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("estimator", ["lightgbm_classifier", "hist_gradient_boosting_classifier",
                                       "xgboost_classifier"])
def test_a_study_deadline_stops_iterating_and_keeps_the_model(messy, tmp_path, estimator):
    import time

    path, profile = messy
    sent: list[tuple] = []
    result = fit_model(request(path, profile, estimator, "binary", tmp_path / "m", max_iterations=100_000,
                               hyperparameters={"learning_rate": 0.01}, stop_at=time.time() + 1.0),
                       Reporter(send=sent.append))
    assert result["stop_reason"] == "time_limit"
    assert 0 < result["iterations"] < 100_000 and "roc_auc" in result["metrics"]
    assert any(m[0] == "log" and "time limit" in m[2] for m in sent)
