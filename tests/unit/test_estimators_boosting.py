"""XGBoost, LightGBM and the Lightning MLP: declarations, per-round progress, cancellation, early stopping
with patience and min_delta, class balancing, seeding, and the GPU device they are given."""

from __future__ import annotations

import logging
import random
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from microlearn.v1 import selector_pb2
from microlearn_grpc.core import estimators as E
from microlearn_grpc.core.estimators import EarlyStopping

NAMES = ["xgboost_classifier", "xgboost_regressor", "lightgbm_classifier", "lightgbm_regressor",
         "lightning_mlp_classifier", "lightning_mlp_regressor"]
CASES = [pytest.param(name, task, id=f"{name}-{task}") for name in NAMES
         for task in E.TASKS if task in E.get_estimator(name).tasks]
BOOSTERS = {"xgboost": lambda model: model.num_boosted_rounds(), "lightgbm": lambda model: model.current_iteration()}


def make(name: str, task: str, iterations: int, **params) -> E.Estimator:
    cls = E.get_estimator(name)
    return cls(task, {cls.iterations_param: iterations, **params}, seed=0)


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"binary": make_classification(240, 6, n_informative=4, random_state=0),
            "multiclass": make_classification(240, 6, n_informative=4, n_classes=3, random_state=1),
            "regression": make_regression(240, 6, n_informative=4, noise=5.0, random_state=2)}


@pytest.fixture(scope="module")
def noise() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 5))
    return {"binary": (X, rng.integers(0, 2, 240)), "multiclass": (X, rng.integers(0, 3, 240)),
            "regression": (X, rng.normal(size=240))}


def recorder() -> tuple[list[tuple[int, dict[str, float]]], E.IterationCallback]:
    calls: list[tuple[int, dict[str, float]]] = []
    return calls, lambda step, metrics: calls.append((step, metrics))


# -- declarations -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_declarations(name: str) -> None:
    cls = E.get_estimator(name)
    assert cls in E.list_estimators(available_only=True)
    assert cls.supports_iteration_progress and cls.supports_early_stopping and cls.supports_gpu == (
        cls.library != "lightgbm")
    assert cls.iterations_param == ("max_epochs" if cls.family == "neural_network" else "n_estimators")
    assert cls.needs_scaling == (not cls.handles_missing) == (cls.family == "neural_network")
    assert cls.supports_class_weights == ("classifier" in name)
    assert cls.model_format == {"xgboost": "xgboost", "lightgbm": "lightgbm", "lightning": "torch_state_dict"}[
        cls.library]
    described = cls.describe()
    assert set(described) == set(selector_pb2.Estimator.DESCRIPTOR.fields_by_name)
    assert described["library"].startswith(f"{cls.library} ") and described["available"]
    assert described["default_hyperparameters"][cls.iterations_param] > 1


def test_the_registry_orders_the_new_estimators_by_cost() -> None:
    names = [cls.name for cls in E.list_estimators("binary")]
    assert names.index("lightgbm_classifier") < names.index("xgboost_classifier") < \
        names.index("lightning_mlp_classifier")
    assert {"xgboost_regressor", "lightgbm_regressor", "lightning_mlp_regressor"} <= \
        {cls.name for cls in E.list_estimators("regression")}


# -- progress, cancellation, early stopping ---------------------------------------------------------------

@pytest.mark.parametrize(("name", "task"), CASES)
def test_reports_every_round_with_losses(name, task, data) -> None:
    X, y = data[task]
    calls, callback = recorder()
    est = make(name, task, 8).fit(X[:200], y[:200], X_val=X[200:], y_val=y[200:], on_iteration=callback)
    assert [step for step, _ in calls] == list(range(1, 9))
    assert all(set(metrics) == {"train_loss", "val_loss"} for _, metrics in calls)
    assert calls[-1][1]["train_loss"] < calls[0][1]["train_loss"]
    assert (est.n_iterations_, est.best_iteration_, est.stop_reason_) == (8, 8, None)
    predicted = est.predict(X[200:])
    assert predicted.shape == (40,)
    if task == "regression":
        with pytest.raises(NotImplementedError):
            est.predict_proba(X[200:])
        with pytest.raises(AttributeError):
            _ = est.classes_
    else:
        proba = est.predict_proba(X[200:])
        assert proba.shape == (40, len(np.unique(y)))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_array_equal(predicted, proba.argmax(axis=1))
        assert list(est.classes_) == sorted(np.unique(y))
    calls, callback = recorder()
    make(name, task, 3).fit(X, y, on_iteration=callback)
    assert [(step, set(metrics)) for step, metrics in calls] == [(s, {"train_loss"}) for s in (1, 2, 3)]


@pytest.mark.parametrize(("name", "task"), CASES)
def test_cancellation_stops_after_the_round_that_asked(name, task, data) -> None:
    X, y = data[task]
    steps: list[int] = []
    est = make(name, task, 200).fit(X, y, on_iteration=lambda step, metrics: steps.append(step) or step < 3)
    assert steps == [1, 2, 3]
    assert (est.n_iterations_, est.best_iteration_, est.stop_reason_) == (3, 3, "cancelled")
    assert est.predict(X[:5]).shape == (5,)  # what was trained so far is a usable model


def _loss(task: str, est: E.Estimator, X: np.ndarray, y: np.ndarray) -> float:
    if task == "regression":
        return float(np.sqrt(((est.predict(X) - y) ** 2).mean()))
    return float(-np.log(est.predict_proba(X)[np.arange(len(y)), y]).mean())


@pytest.mark.parametrize(("name", "task"), CASES)
def test_early_stopping_keeps_the_best_round(name, task, noise) -> None:
    X, y = noise[task]
    calls, callback = recorder()
    rate = 0.05 if "mlp" in name else 0.5
    est = make(name, task, 300, learning_rate=rate).fit(X[:200], y[:200], X_val=X[200:], y_val=y[200:],
                                                       on_iteration=callback, early_stopping=EarlyStopping(patience=3))
    losses = [metrics["val_loss"] for _, metrics in calls]
    assert est.stop_reason_ == "early_stopping"
    assert [step for step, _ in calls] == list(range(1, est.n_iterations_ + 1))
    assert est.n_iterations_ == est.best_iteration_ + 3 < 60
    assert losses[est.best_iteration_ - 1] == min(losses)
    # The model predicts with the best round: its validation loss is the one reported for that round.
    assert _loss(task, est, X[200:], y[200:]) == pytest.approx(min(losses), rel=1e-4)
    if E.get_estimator(name).library in BOOSTERS:
        assert BOOSTERS[E.get_estimator(name).library](est.model_) == est.best_iteration_


@pytest.mark.parametrize(("name", "task"), CASES)
def test_min_delta_and_the_held_out_validation_rows(name, task, noise) -> None:
    X, y = noise[task]
    calls, callback = recorder()
    # No later round can beat the first by 1000: it stops after exactly `patience` more, keeping round 1.
    est = make(name, task, 300).fit(X, y, on_iteration=callback, early_stopping=EarlyStopping(5, min_delta=1e3))
    assert (est.n_iterations_, est.best_iteration_, est.stop_reason_) == (6, 1, "early_stopping")
    assert all(set(metrics) == {"train_loss", "val_loss"} for _, metrics in calls)  # 10% of the rows held out


def test_without_early_stopping_the_model_keeps_every_round(noise) -> None:
    X, y = noise["binary"]
    est = make("lightgbm_classifier", "binary", 30, learning_rate=0.5).fit(X[:200], y[:200], X_val=X[200:],
                                                                          y_val=y[200:])
    assert (est.n_iterations_, est.best_iteration_, est.model_.current_iteration()) == (30, 30, 30)


@pytest.mark.parametrize("name", [n for n in NAMES if "mlp" not in n])
def test_boosters_take_missing_values(name, data) -> None:
    task = "binary" if "classifier" in name else "regression"
    X, y = data[task]
    holes = X.copy()
    holes[::3, 0] = np.nan
    est = make(name, task, 5).fit(holes, y, early_stopping=EarlyStopping(3))
    assert np.isfinite(est.predict(holes)).all()


# -- class balancing, seeding, devices --------------------------------------------------------------------

@pytest.mark.parametrize("name", [n for n in NAMES if "classifier" in n])
def test_balance_classes_raises_the_minority_share(name) -> None:
    X, y = make_classification(400, 6, n_informative=3, weights=[0.9, 0.1], flip_y=0.05, random_state=3)
    plain = make(name, "binary", 10).fit(X, y)
    balanced = E.get_estimator(name)("binary", {E.get_estimator(name).iterations_param: 10}, seed=0,
                                     balance_classes=True).fit(X, y)
    assert balanced.predict(X).mean() > plain.predict(X).mean()
    assert balanced.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean() + 0.05


@pytest.mark.parametrize(("name", "task"), CASES)
def test_a_seed_gives_the_same_model(name, task, data) -> None:
    X, y = data[task]
    first, again = (make(name, task, 5, subsample=0.8).fit(X, y) if "mlp" not in name
                    else make(name, task, 3).fit(X, y) for _ in range(2))
    np.testing.assert_array_equal(first.predict(X), again.predict(X))


def test_sampled_hyperparameters_fit(data) -> None:
    rng = random.Random(0)
    for case in CASES:
        name, task = case.values
        cls = E.get_estimator(name)
        X, y = data[task]
        for _ in range(2):
            point = cls.search_space(task, len(X), X.shape[1]).sample(rng)
            point[cls.iterations_param] = min(point[cls.iterations_param], 4)
            assert cls(task, point).fit(X, y).predict(X[:7]).shape == (7,), (name, point)


def test_devices_reach_the_libraries() -> None:
    xgb = E.get_estimator("xgboost_classifier")("binary", device="cuda:1", n_jobs=3)
    assert xgb.gpu_index == 1
    assert {"device": "cuda:1", "tree_method": "hist", "nthread": 3}.items() <= xgb.build().items()
    assert E.get_estimator("lightning_mlp_regressor")("regression", device="cuda").gpu_index == 0
    assert E.get_estimator("lightning_mlp_regressor")("regression").gpu_index is None
    with pytest.raises(ValueError, match="CPU-only"):
        E.get_estimator("lightgbm_classifier")("binary", device="cuda:0")


def test_lightning_trains_quietly_and_restores_global_state(data, capfd) -> None:
    import torch

    X, y = data["multiclass"]
    lightning_logger = logging.getLogger("lightning.pytorch")
    level, threads = lightning_logger.level, torch.get_num_threads()
    state = torch.random.get_rng_state()
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make("lightning_mlp_classifier", "multiclass", 2).fit(X, y, X_val=X[:20], y_val=y[:20],
                                                               early_stopping=EarlyStopping(2))
    out, err = capfd.readouterr()
    assert (out, err, [str(w.message) for w in caught]) == ("", "", [])
    assert (lightning_logger.level, torch.get_num_threads()) == (level, threads)
    assert torch.equal(torch.random.get_rng_state(), state)  # the fit's seeding does not touch the caller's RNG


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["lightning_mlp_classifier", "xgboost_classifier"])
def test_trains_on_a_gpu_and_predicts_on_the_cpu(name, data, tmp_path) -> None:
    X, y = data["binary"]
    calls, callback = recorder()
    est = E.get_estimator(name)("binary", {E.get_estimator(name).iterations_param: 5}, device="cuda:0").fit(
        X, y, on_iteration=callback, early_stopping=EarlyStopping(3))
    assert [step for step, _ in calls] == list(range(1, est.n_iterations_ + 1))
    est.save(tmp_path)
    np.testing.assert_array_equal(E.load_estimator(tmp_path).predict_proba(X), est.predict_proba(X))
