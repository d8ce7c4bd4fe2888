"""Permutation importance per original column (core.importance) agrees with scikit-learn's."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import mean_squared_error, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from microlearn_grpc.core.importance import Drops, measure, summarize


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"strong": rng.normal(size=n), "weak": rng.normal(size=n), "noise": rng.normal(size=n),
                         "city": rng.choice(["a", "b", "c"], size=n)})


def _pipeline(estimator):
    encode = ColumnTransformer([("num", StandardScaler(), ["strong", "weak", "noise"]),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])])
    return make_pipeline(encode, estimator)


def test_binary_roc_auc_matches_sklearn_permutation_importance():
    X = _frame()
    y = (2 * X["strong"] + 0.5 * X["weak"] + (X["city"] == "a") + np.random.default_rng(1).normal(size=len(X)) > 0)
    y = y.astype(int).to_numpy()
    model = _pipeline(LogisticRegression()).fit(X, y)
    columns = list(X.columns)
    ours = measure(lambda f: model.predict_proba(f)[:, 1], lambda t, p: roc_auc_score(t, p), X, y, columns,
                   maximize=True, repeats=4, seed=7)
    theirs = permutation_importance(model, X, y, scoring="roc_auc", n_repeats=4, random_state=7)
    for i, name in enumerate(columns):
        assert ours.drops[name] == pytest.approx(list(theirs.importances[i]), abs=1e-12)
    summary = summarize(ours, metric="roc_auc")
    assert summary["features"][0]["name"] == "strong"
    assert summary["features"][0]["mean"] == pytest.approx(theirs.importances_mean[0])
    assert summary["features"][0]["std"] == pytest.approx(theirs.importances_std[0])
    assert summary["complete"] and summary["repeats"] == 4 and summary["rows"] == len(X)


def test_regression_rmse_drop_is_positive_and_matches_sklearn():
    X = _frame(seed=2)
    y = 3 * X["strong"].to_numpy() + X["weak"].to_numpy()
    model = _pipeline(Ridge()).fit(X, y)

    def rmse(t, p):
        return float(np.sqrt(mean_squared_error(t, p)))

    ours = measure(model.predict, rmse, X, y, list(X.columns), maximize=False, repeats=3, seed=0)
    theirs = permutation_importance(model, X, y, scoring="neg_root_mean_squared_error", n_repeats=3, random_state=0)
    for i, name in enumerate(X.columns):
        assert ours.drops[name] == pytest.approx(list(theirs.importances[i]), abs=1e-9)
    assert np.mean(ours.drops["strong"]) > np.mean(ours.drops["weak"]) > 0


def test_rows_are_sampled_and_the_deadline_stops_early():
    X = _frame(n=500)
    y = X["strong"].to_numpy()
    calls = []

    def predict(frame):
        calls.append(len(frame))
        return frame["strong"].to_numpy()

    def score(t, p):
        return -float(np.mean((t - p) ** 2))

    sampled = measure(predict, score, X, y, ["strong", "weak"], maximize=True, repeats=2, max_rows=100)
    assert set(calls) == {100} and len(calls) == 1 + 2 * 2
    stopped = measure(predict, score, X, y, ["strong", "weak"], maximize=True, repeats=5,
                      deadline=time.monotonic() - 1)
    assert not stopped.complete and summarize(stopped, metric="mse")["features"] == []


def test_undefined_baseline_gives_none_and_merge_pools_folds():
    X = _frame(n=20)
    assert measure(lambda f: np.zeros(len(f)), lambda t, p: None, X, np.zeros(20), ["strong"], maximize=True) is None
    a = Drops(0.8, 10, {"x": [0.1, 0.2]})
    b = Drops(0.6, 30, {"x": [0.3], "y": [0.0]}, complete=False)
    merged = a.merge(b)
    assert merged.rows == 40 and merged.baseline == pytest.approx(0.65)
    assert merged.drops == {"x": [0.1, 0.2, 0.3], "y": [0.0]} and not merged.complete


# -- in a training run ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from microlearn_grpc.core.profile import profile_table

    frame = _frame(n=240, seed=4)
    frame["label"] = np.where(frame["strong"] + 0.2 * frame["noise"] > 0, "yes", "no")
    frame["amount"] = 5 * frame["strong"] + frame["weak"]
    path = tmp_path_factory.mktemp("importance") / "table.parquet"
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(arrow, path)
    return path, profile_table(arrow)


def _fit(table, tmp_path, **changes):
    from microlearn_grpc.core.training import Reporter, fit_model

    path, profile = table
    request = {"dataset_path": str(path), "profile": profile, "target": "label", "task": "binary",
               "estimator": "logistic_regression", "hyperparameters": {}, "ignore_columns": ["amount"],
               "validation": {"method": "holdout", "fraction": 0.25}, "metric": "", "max_iterations": 0,
               "early_stopping": None, "seed": 1, "device": "cpu", "n_jobs": 1, "output_dir": str(tmp_path / f"m{time.monotonic_ns()}"),
               "importance": True, **changes}
    return fit_model(request, Reporter(send=lambda message: None))


@pytest.mark.parametrize("validation", [{"method": "holdout", "fraction": 0.25}, {"method": "kfold", "folds": 3}])
def test_training_measures_importance_of_original_columns_on_validation_rows(table, tmp_path, validation):
    result = _fit(table, tmp_path, validation=validation)
    found = result["diagnostics"]["permutation_importance"]
    assert found["metric"] == "roc_auc" and found["complete"]
    assert [f["name"] for f in found["features"]][0] == "strong"
    assert {f["name"] for f in found["features"]} == {"strong", "weak", "noise", "city"}
    assert found["rows"] == (60 if validation["method"] == "holdout" else 240)  # out-of-fold: every row once
    assert found["repeats"] == (3 if validation["method"] == "holdout" else 9)  # pooled over the 3 folds


def test_trials_skip_importance_and_a_refit_uses_every_row(table, tmp_path):
    assert "permutation_importance" not in _fit(table, tmp_path, importance=False)["diagnostics"]
    refit = _fit(table, tmp_path, all_rows=True)
    assert refit["training_row_count"] == 240 and refit["metrics"] == {} and refit["diagnostics"] == {}
    regression = _fit(table, tmp_path, target="amount", task="regression", estimator="ridge", ignore_columns=["label"])
    top = regression["diagnostics"]["permutation_importance"]["features"][0]
    assert top["name"] == "strong" and top["mean"] > 1  # rmse rises by more than 1 without it
