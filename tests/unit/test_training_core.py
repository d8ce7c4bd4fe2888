"""`core.training.fit_model`, the fit a worker runs in its child process: every registered estimator
trains on a raw table with missing values, categoricals, booleans and datetimes, writes an artifact
that loads, and predicts on rows with unseen categories."""

from __future__ import annotations

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
