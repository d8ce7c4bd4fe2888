"""Saving and loading: every registered estimator, for every task it supports, comes back from its
directory predicting exactly what it predicted before it was saved."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs, make_classification, make_regression

from microlearn_grpc.core import estimators as E
from microlearn_grpc.core.estimators import EarlyStopping

CASES = [pytest.param(cls, task, id=f"{cls.name}-{task}")
         for cls in E.list_estimators() for task in E.TASKS if task in cls.tasks]
MODEL_FILES = {"xgboost": ["model.json"], "lightgbm": ["model.txt"], "torch_state_dict": ["model.pt", "mlp.json"],
               "sklearn_pipeline": ["model.pkl"]}


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    blobs, _ = make_blobs(150, 4, centers=3, random_state=3)
    return {"binary": make_classification(150, 6, n_informative=4, random_state=0),
            "multiclass": make_classification(150, 6, n_informative=4, n_classes=3, random_state=1),
            "regression": make_regression(150, 6, n_informative=4, noise=5.0, random_state=2),
            "clustering": (blobs, None)}


def fitted(cls: type[E.Estimator], task: str, X: np.ndarray, y: np.ndarray | None) -> E.Estimator:
    params = {cls.iterations_param: 6} if cls.iterations_param else {}
    if task == "clustering":
        return cls(task, params).fit(X[:120])
    if cls.supports_early_stopping:  # so that the stored model is cut back to its best round
        return cls(task, params, seed=5).fit(X[:120], y[:120], X_val=X[120:], y_val=y[120:],
                                             early_stopping=EarlyStopping(patience=2))
    return cls(task, params, seed=5).fit(X[:120], y[:120])


@pytest.mark.parametrize(("cls", "task"), CASES)
def test_round_trip_predicts_the_same(cls, task, data, tmp_path) -> None:
    X, y = data[task]
    est = fitted(cls, task, X, y)
    written = est.save(tmp_path)
    assert written == ["estimator.json", *MODEL_FILES[cls.model_format]]
    assert sorted(written) == sorted(path.name for path in tmp_path.iterdir())
    meta = json.loads((tmp_path / "estimator.json").read_text())
    assert meta == {"name": cls.name, "task": task, "params_": est.params_, "n_iterations_": est.n_iterations_,
                    "best_iteration_": est.best_iteration_, "stop_reason_": est.stop_reason_,
                    "fit_seconds_": est.fit_seconds_, "seed": est.seed, "format": cls.model_format,
                    "library_version": cls.library_version()}

    loaded = E.load_estimator(tmp_path)
    assert type(loaded) is cls and loaded.is_fitted and loaded.task == task
    for attr in ("params_", "n_iterations_", "best_iteration_", "stop_reason_", "fit_seconds_", "seed"):
        assert getattr(loaded, attr) == getattr(est, attr), attr
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    if task in E.CLASSIFICATION_TASKS:
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
    if task == "clustering":
        np.testing.assert_array_equal(loaded.labels_, est.labels_)


def test_a_loaded_network_is_on_the_cpu_in_eval_mode(data, tmp_path) -> None:
    X, y = data["regression"]
    est = E.get_estimator("lightning_mlp_regressor")("regression", {"max_epochs": 2}).fit(X, y)
    est.save(tmp_path)
    loaded = E.load_estimator(tmp_path)
    assert {p.device.type for p in loaded.model_.parameters()} == {"cpu"} and not loaded.model_.training
    assert loaded.device == "cpu"


def test_save_needs_a_fitted_estimator_and_an_empty_directory(data, tmp_path) -> None:
    X, y = data["regression"]
    with pytest.raises(RuntimeError, match="not fitted"):
        E.get_estimator("ridge")("regression").save(tmp_path)
    est = E.get_estimator("ridge")("regression").fit(X, y)
    with pytest.raises(FileNotFoundError):
        est.save(tmp_path / "missing")
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        est.save(tmp_path)


def test_load_refuses_unknown_estimators_and_mismatched_formats(data, tmp_path) -> None:
    X, y = data["regression"]
    E.get_estimator("lightgbm_regressor")("regression", {"n_estimators": 3}).fit(X, y).save(tmp_path)
    meta_path = tmp_path / "estimator.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "name": "xgboost_regressor"}))
    with pytest.raises(ValueError, match="holds a 'lightgbm' model"):
        E.load_estimator(tmp_path)
    meta_path.write_text(json.dumps({**meta, "name": "no_such_model"}))
    with pytest.raises(KeyError, match="unknown estimator"):
        E.load_estimator(tmp_path)
