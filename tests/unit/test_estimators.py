"""The estimator registry: declarations, search spaces, hyperparameter validation, fit/predict on every task.

The XGBoost, LightGBM and Lightning estimators' training is tested in test_estimators_boosting.py, saving
and loading every estimator in test_estimator_persistence.py.
"""

from __future__ import annotations

import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import json_format
from sklearn.datasets import make_blobs, make_classification, make_regression

from microlearn.v1 import common_pb2, selector_pb2
from microlearn_grpc.core import estimators as E
from microlearn_grpc.core.estimators import (CategoricalDistribution, EarlyStopping, Estimator, FloatDistribution,
                                             HyperparameterError, IntDistribution, ParameterCondition,
                                             ParameterSpec, SearchSpace)

SKLEARN = [cls for cls in E.list_estimators() if cls.library == "scikit-learn"]
CASES = [pytest.param(cls, task, id=f"{cls.name}-{task}") for cls in SKLEARN for task in E.TASKS if task in cls.tasks]
ALL_CASES = [pytest.param(cls, task, id=f"{cls.name}-{task}")
             for cls in E.list_estimators() for task in E.TASKS if task in cls.tasks]
N_ESTIMATORS = 33  # 27 scikit-learn, 2 XGBoost, 2 LightGBM, 2 Lightning
SIZES = [(None, None), (1, 1), (30, 3), (300, 8), (5_000_000, 2_000)]


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    binary = make_classification(300, 8, n_informative=4, random_state=0)
    multi = make_classification(300, 8, n_informative=5, n_classes=3, random_state=1)
    regression = make_regression(300, 8, n_informative=5, noise=5.0, random_state=2)
    blobs, _ = make_blobs(300, 4, centers=3, random_state=3)
    return {"binary": binary, "multiclass": multi, "regression": regression, "clustering": (blobs, None)}


# -- the registry -----------------------------------------------------------------------------------------

def test_registry_holds_the_sklearn_estimators() -> None:
    names = {cls.name for cls in SKLEARN}
    assert len(names) >= 25
    assert {"logistic_regression", "linear_svc", "svc", "knn_classifier", "gaussian_nb", "decision_tree_classifier",
            "random_forest_classifier", "extra_trees_classifier", "hist_gradient_boosting_classifier",
            "linear_regression", "ridge", "lasso", "elastic_net", "svr", "knn_regressor", "decision_tree_regressor",
            "random_forest_regressor", "extra_trees_regressor", "hist_gradient_boosting_regressor", "kmeans",
            "minibatch_kmeans", "dbscan", "agglomerative", "gaussian_mixture"} <= names
    for task in E.TASKS:
        assert E.list_estimators(task), task
    costs = [cls.relative_cost for cls in E.list_estimators()]
    assert costs == sorted(costs)  # cheapest first, as ListEstimators answers


@pytest.mark.parametrize("cls", SKLEARN, ids=lambda cls: cls.name)
def test_declarations_are_complete(cls: type[Estimator]) -> None:
    assert cls.family in E.FAMILIES and cls.model_format == "sklearn_pipeline"
    assert cls.tasks and cls.tasks <= set(E.TASKS)
    assert cls.display_name and cls.description and cls.relative_cost > 0
    assert cls.is_available() and cls.unavailable_reason() == ""
    assert not cls.supports_gpu
    described = cls.describe()
    proto_fields = set(selector_pb2.Estimator.DESCRIPTOR.fields_by_name)
    assert set(described) == proto_fields
    assert described["library"].startswith("scikit-learn ")


def test_get_estimator_accepts_resource_names_and_suggests() -> None:
    assert E.get_estimator("estimators/ridge") is E.get_estimator("ridge")
    with pytest.raises(KeyError, match="did you mean 'random_forest_classifier'.*known: .*ridge"):
        E.get_estimator("random_forest_clasifier")
    with pytest.raises(ValueError, match="unknown task"):
        E.list_estimators("ranking")


def test_register_estimator_refuses_duplicates_and_broken_declarations() -> None:
    class Constant(E.SklearnEstimator):
        name = "constant_for_test"
        display_name = "Constant"
        family = "baseline"
        tasks = frozenset({"regression"})
        model_class = "sklearn.dummy.DummyRegressor"

        @classmethod
        def search_space(cls, task, n_rows=None, n_features=None):
            cls.check_task(task)
            return SearchSpace()

    E.register_estimator(Constant)
    try:
        assert E.get_estimator("constant_for_test") is Constant
        assert Constant in E.list_estimators("regression")
        with pytest.raises(ValueError, match="already registered"):
            E.register_estimator(Constant)
    finally:
        E.unregister_estimator("constant_for_test")
    with pytest.raises(KeyError):
        E.get_estimator("constant_for_test")
    with pytest.raises(ValueError, match="already registered"):
        E.register_estimator(type("Again", (Constant,), {"name": "ridge"}))
    with pytest.raises(ValueError, match="family"):
        E.register_estimator(type("Odd", (Constant,), {"name": "odd_for_test", "family": "magic"}))
    with pytest.raises(ValueError, match="tasks"):
        E.register_estimator(type("Odd", (Constant,), {"name": "odd_for_test", "tasks": frozenset({"ranking"})}))
    with pytest.raises(ValueError, match="iterations_param 'rounds'"):
        E.register_estimator(type("Odd", (Constant,), {"name": "odd_for_test", "iterations_param": "rounds"}))
    with pytest.raises(ValueError, match="lower_snake_case"):
        E.register_estimator(type("Odd", (Constant,), {"name": "Odd-Name"}))
    with pytest.raises(TypeError, match="abstract"):
        E.register_estimator(E.SklearnEstimator)


def test_importing_the_registry_does_not_import_sklearn() -> None:
    code = (f"import sys, microlearn_grpc.core.estimators as e; assert len(e.list_estimators()) == {N_ESTIMATORS}; "
            "heavy = sorted(m for m in ('sklearn', 'numpy', 'scipy', 'torch', 'xgboost', 'lightgbm', 'lightning') "
            "if m in sys.modules); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_is_available_checks_the_library_without_importing_it() -> None:
    class Missing(E.SklearnEstimator):
        name = "missing_for_test"
        display_name = "Missing"
        family = "gradient_boosting"
        tasks = frozenset({"regression"})
        library = "not-a-real-library"
        requires = ("not_a_real_module_xyz",)
        install_hint = "pip install 'microlearn[nothing]'"
        model_class = "not_a_real_module_xyz.Model"

        @classmethod
        def search_space(cls, task, n_rows=None, n_features=None):
            return SearchSpace()

    assert not Missing.is_available()
    assert "microlearn[nothing]" in Missing.unavailable_reason()
    E.register_estimator(Missing)
    try:
        assert Missing in E.list_estimators("regression")
        assert Missing not in E.list_estimators("regression", available_only=True)
    finally:
        E.unregister_estimator("missing_for_test")


# -- fit and predict with defaults ------------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "task"), CASES)
def test_fits_and_predicts_with_defaults(cls: type[Estimator], task: str, data) -> None:
    X, y = data[task]
    calls: list[tuple[int, dict[str, float]]] = []
    est = cls(task, seed=0)
    if task == "clustering":
        est.fit(X[:240], on_iteration=lambda step, metrics: calls.append((step, metrics)))
        assert len(est.labels_) == 240
        assert est.predict(X[240:]).shape == (60,)
        with pytest.raises(NotImplementedError):
            est.predict_proba(X[240:])
    else:
        est.fit(X[:240], y[:240], on_iteration=lambda step, metrics: calls.append((step, metrics)))
        predicted = est.predict(X[240:])
        assert predicted.shape == (60,)
        if task == "regression":
            assert np.isfinite(predicted).all()
            with pytest.raises(NotImplementedError):
                est.predict_proba(X[240:])
        else:
            proba = est.predict_proba(X[240:])
            assert proba.shape == (60, len(np.unique(y)))
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
            assert list(est.classes_) == sorted(np.unique(y))
    assert est.is_fitted and est.params_ == est.resolved_params(240, X.shape[1])
    steps = [step for step, _ in calls]
    assert steps == ([0] if not cls.supports_iteration_progress else list(range(1, len(steps) + 1)))
    # The fitted estimator is the unit to store: DBSCAN's and agglomerative's predict live on it, not on model_.
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X[240:]), est.predict(X[240:]))


def test_models_beat_their_baselines(data) -> None:
    X, y = data["binary"]
    accuracy = {name: (E.get_estimator(name)("binary").fit(X[:240], y[:240]).predict(X[240:]) == y[240:]).mean()
                for name in ("baseline_classifier", "random_forest_classifier", "logistic_regression", "svc")}
    assert all(accuracy[name] > accuracy["baseline_classifier"] + 0.15 for name in accuracy if "baseline" not in name)
    X, y = data["regression"]
    est = E.get_estimator("lasso")("regression").fit(X[:240], y[:240])
    assert 1 - ((est.predict(X[240:]) - y[240:]) ** 2).mean() / y[240:].var() > 0.95


def test_clusterers_assign_new_rows_like_training_rows() -> None:
    X, truth = make_blobs(200, 2, centers=[[-10, -10], [0, 0], [10, 10]], cluster_std=0.5, random_state=0)
    for name, params in [("agglomerative", {"n_clusters": 3}), ("kmeans", {"n_clusters": 3}),
                         ("dbscan", {"eps": 1.0}), ("gaussian_mixture", {"n_components": 3})]:
        est = E.get_estimator(name)("clustering", params)
        labels = est.fit_predict(X)
        assert len(set(labels) - {-1}) == 3, name
        np.testing.assert_array_equal(est.predict(X + 0.01), labels, err_msg=name)
    assert list(E.get_estimator("dbscan")("clustering", {"eps": 1.0}).fit(X).predict([[100.0, 100.0]])) == [-1]


# -- search spaces ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "task"), ALL_CASES)
def test_search_spaces_validate_their_defaults_and_samples(cls: type[Estimator], task: str) -> None:
    rng = random.Random(0)
    for n_rows, n_features in SIZES:
        space = cls.search_space(task, n_rows, n_features)
        defaults = space.defaults()
        assert space.validate(defaults) == defaults
        assert cls.default_params(task, n_rows, n_features) == defaults
        for _ in range(25):
            point = space.sample(rng)
            assert space.validate(point) == point
        message = json_format.ParseDict(space.to_dict(), common_pb2.SearchSpace())
        assert [p.name for p in message.parameters] == list(space.names)
        assert SearchSpace.from_dict(space.to_dict()) == space
    cls(task, cls.search_space(task).sample(rng))  # a sample of the widest space is a valid request
    if cls.iterations_param is not None:  # a job's max_iterations, however small, sets it
        assert cls(task, {cls.iterations_param: 1}).resolved_params()[cls.iterations_param] == 1


@pytest.mark.parametrize(("cls", "task"), CASES)
def test_sampled_hyperparameters_fit(cls: type[Estimator], task: str, data) -> None:
    X, y = data[task]
    X, y = X[:150], None if y is None else y[:150]
    rng = random.Random(cls.name)
    for _ in range(3):
        point = cls.search_space(task, len(X), X.shape[1]).sample(rng)
        point.update({k: min(v, 40) for k, v in point.items() if k in ("n_estimators", "max_iter")})  # speed
        est = cls(task, point, seed=1).fit(X, y)
        assert len(est.predict(X[:10])) == 10


def test_search_space_adapts_to_the_data_size() -> None:
    knn = E.get_estimator("knn_classifier")
    assert knn.search_space("binary", 30, 4)["n_neighbors"].distribution.high == 29
    assert knn.search_space("binary", 4, 4)["n_neighbors"].default == 3
    assert knn.search_space("binary")["n_neighbors"].distribution.high == 100
    forest = E.get_estimator("random_forest_classifier")
    assert forest.search_space("binary", 5_000_000, 10)["n_estimators"].distribution.high < \
        forest.search_space("binary", 10_000, 10)["n_estimators"].distribution.high
    assert forest.default_params("binary", 1000, 100)["max_features"] == pytest.approx(0.1)
    svc = E.get_estimator("svc")
    assert "too slow for 100,000 rows" in svc.check_data_size(100_000, 10)
    assert svc.check_data_size(5_000, 10) is None
    assert E.get_estimator("knn_regressor").check_data_size(1_000, 500) is not None
    assert E.get_estimator("random_forest_regressor").check_data_size(10_000_000, 5_000) is None


def test_unspecified_hyperparameters_take_the_defaults_for_the_data(data) -> None:
    X, y = data["binary"]
    est = E.get_estimator("random_forest_classifier")("binary", {"n_estimators": 20.0})
    assert est.params == {"n_estimators": 20} and isinstance(est.params["n_estimators"], int)
    est.fit(X, y)
    assert est.params_["max_features"] == pytest.approx(np.sqrt(8) / 8)
    assert est.model_.get_params()["n_estimators"] == 20 and est.model_.get_params()["random_state"] == 0
    with pytest.raises(HyperparameterError, match="n_neighbors=50 exceeds the 40 training rows"):
        E.get_estimator("knn_classifier")("binary", {"n_neighbors": 50}).fit(X[:40], y[:40])


# -- hyperparameter errors --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "params", "parameter", "message"), [
    ("random_forest_classifier", {"n_estimator": 10}, "n_estimator", "did you mean 'n_estimators'"),
    ("random_forest_classifier", {"n_estimators": 5}, "n_estimators", r"out of range \[10, 1000\]"),
    ("random_forest_classifier", {"n_estimators": 2.5}, "n_estimators", "must be an integer"),
    ("random_forest_classifier", {"n_estimators": "100"}, "n_estimators", "must be an integer"),
    ("random_forest_classifier", {"n_estimators": True}, "n_estimators", "must be an integer"),
    ("ridge", {"alpha": "strong"}, "alpha", "must be a number"),
    ("ridge", {"alpha": 0.0}, "alpha", "out of range"),
    ("ridge", {"alpha": float("nan")}, "alpha", "out of range"),
    ("svc", {"kernel": "linear"}, "kernel", "must be one of"),
    ("svc", {"degree": 3}, "degree", "only applies when kernel is one of \\['poly'\\] \\(it is 'rbf'\\)"),
    ("logistic_regression", {"penalty": "l1", "l1_ratio": 0.3}, "l1_ratio", "only applies when penalty"),
    ("agglomerative", {"metric": "cosine"}, "metric", "linkage"),
    ("baseline_classifier", {"strategy": "prior"}, "strategy", "takes none"),
])
def test_bad_hyperparameters_are_refused_by_name(name, params, parameter, message) -> None:
    cls = E.get_estimator(name)
    task = next(t for t in E.TASKS if t in cls.tasks)
    with pytest.raises(HyperparameterError, match=message) as raised:
        cls(task, params)
    assert raised.value.parameter == parameter
    assert str(raised.value).startswith(f"{name}: ")
    assert isinstance(raised.value, ValueError)
    copy = pickle.loads(pickle.dumps(raised.value))  # training errors come back from a child process
    assert (str(copy), copy.parameter) == (str(raised.value), parameter)


def test_conditional_parameters_apply_when_their_condition_holds() -> None:
    svc = E.get_estimator("svc")
    assert svc("binary", {"kernel": "poly", "degree": 4.0}).resolved_params()["degree"] == 4
    assert "degree" not in svc("binary").resolved_params()
    logistic = E.get_estimator("logistic_regression")("binary", {"penalty": "elasticnet"})
    assert logistic.resolved_params()["l1_ratio"] == 0.5


def test_unsupported_tasks_devices_and_class_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="ridge does not support task 'binary'.*regression"):
        E.get_estimator("ridge")("binary")
    with pytest.raises(ValueError, match="unknown task"):
        E.get_estimator("ridge")("ranking")
    with pytest.raises(ValueError, match="does not support task"):
        E.get_estimator("kmeans").search_space("regression")
    with pytest.raises(ValueError, match="CPU-only"):
        E.get_estimator("random_forest_classifier")("binary", device="cuda")
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:N'"):
        E.get_estimator("random_forest_classifier")("binary", device="gpu")
    with pytest.raises(ValueError, match="cannot reweight classes"):
        E.get_estimator("knn_classifier")("binary", balance_classes=True)
    with pytest.raises(ValueError, match="needs a target"):
        E.get_estimator("ridge")("regression").fit([[1.0], [2.0]])
    with pytest.raises(RuntimeError, match="not fitted"):
        E.get_estimator("ridge")("regression").predict([[1.0]])


def test_balance_classes_reaches_wrapped_models(data) -> None:
    X, y = data["binary"]
    est = E.get_estimator("linear_svc")("binary", balance_classes=True, seed=7).fit(X, y)
    params = est.model_.get_params()
    assert params["estimator__class_weight"] == "balanced" and params["estimator__random_state"] == 7


# -- distributions ----------------------------------------------------------------------------------------

def test_distributions_check_their_own_shape() -> None:
    with pytest.raises(ValueError):
        IntDistribution(5, 1)
    with pytest.raises(ValueError):
        IntDistribution(0, 10, log=True)
    with pytest.raises(ValueError):
        FloatDistribution(0.0, 1.0, log=True)
    with pytest.raises(ValueError):
        CategoricalDistribution(())
    with pytest.raises(HyperparameterError):
        ParameterSpec("depth", IntDistribution(1, 5), 9)
    kernel = ParameterSpec("kernel", CategoricalDistribution(("rbf", "poly")), "rbf")
    degree = ParameterSpec("degree", IntDistribution(2, 5), 3, condition=ParameterCondition("kernel", ("poly",)))
    with pytest.raises(ValueError, match="declared before"):
        SearchSpace((degree, kernel))
    with pytest.raises(HyperparameterError, match="must be one of"):
        SearchSpace((kernel, ParameterSpec("degree", IntDistribution(2, 5), 3,
                                           condition=ParameterCondition("kernel", ("linear",)))))
    assert SearchSpace((kernel, degree)).validate({"kernel": "poly"}) == {"kernel": "poly", "degree": 3}
    flag = CategoricalDistribution((True, False, 1))
    assert flag.coerce("x", 1.0) == 1 and flag.coerce("x", True) is True
    assert IntDistribution(0, 10, step=2).coerce("x", 4) == 4
    with pytest.raises(HyperparameterError, match="multiple of 2"):
        IntDistribution(0, 10, step=2).coerce("x", 3)
    assert FloatDistribution(0.0, 1.0, step=0.25).to_dict() == {"low": 0.0, "high": 1.0, "step": 0.25, "log": False}
    assert FloatDistribution(0.0, 1.0).to_dict()["step"] == 0.0  # the proto's "continuous"


# -- iterative training -----------------------------------------------------------------------------------

HGB = [("hist_gradient_boosting_classifier", "binary"), ("hist_gradient_boosting_regressor", "regression")]


@pytest.mark.parametrize(("name", "task"), HGB)
def test_boosting_reports_every_round_with_losses(name, task, data) -> None:
    X, y = data[task]
    calls: list[tuple[int, dict[str, float]]] = []
    est = E.get_estimator(name)(task, {"max_iter": 30}).fit(
        X[:200], y[:200], X_val=X[200:], y_val=y[200:], on_iteration=lambda s, m: calls.append((s, m)))
    assert [s for s, _ in calls] == list(range(1, 31))
    assert set(calls[0][1]) == {"train_loss", "val_loss"}
    assert calls[-1][1]["train_loss"] < calls[0][1]["train_loss"]
    assert est.n_iterations_ == est.best_iteration_ == 30 and est.stop_reason_ is None
    steps: list[int] = []
    E.get_estimator(name)(task, {"max_iter": 30}).fit(X, y, on_iteration=lambda s, m: steps.append(s))
    assert steps == list(range(1, 31))  # without validation data: training loss only


@pytest.mark.parametrize(("name", "task"), HGB)
def test_boosting_stops_when_the_callback_says_so(name, task, data) -> None:
    X, y = data[task]
    steps: list[int] = []
    est = E.get_estimator(name)(task, {"max_iter": 200}).fit(
        X, y, on_iteration=lambda s, m: steps.append(s) or s < 7)
    assert steps == list(range(1, 8))
    assert est.n_iterations_ == est.best_iteration_ == 7 and est.stop_reason_ == "cancelled"
    assert est.predict(X[:5]).shape == (5,)  # what was fitted so far is a usable model


@pytest.mark.parametrize(("name", "task"), HGB)
def test_boosting_stops_early_with_patience(name, task) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = rng.integers(0, 2, 300) if task == "binary" else rng.normal(size=300)  # noise: nothing to learn
    steps: list[int] = []
    est = E.get_estimator(name)(task, {"max_iter": 500, "learning_rate": 0.5}).fit(
        X[:200], y[:200], X_val=X[200:], y_val=y[200:], on_iteration=lambda s, m: steps.append(s),
        early_stopping=EarlyStopping(patience=4))
    assert est.stop_reason_ == "early_stopping"
    assert est.best_iteration_ == est.n_iterations_  # scikit-learn keeps the rounds after the best one
    assert 4 <= est.n_iterations_ < 50 and steps == list(range(1, est.n_iterations_ + 1))
    longer = E.get_estimator(name)(task, {"max_iter": 500, "learning_rate": 0.5}).fit(
        X, y, early_stopping=EarlyStopping(patience=40))  # no X_val: a 10% split of the training rows
    assert longer.stop_reason_ == "early_stopping" and longer.n_iterations_ > est.n_iterations_


def test_non_iterative_estimators_ignore_early_stopping(data, caplog) -> None:
    X, y = data["regression"]
    est = E.get_estimator("ridge")("regression").fit(X, y, early_stopping=EarlyStopping())
    assert est.is_fitted and est.stop_reason_ is None and est.best_iteration_ is None
    assert E.get_estimator("ridge").iterations_param is None
    assert E.get_estimator("hist_gradient_boosting_regressor").iterations_param == "max_iter"
    assert "does not support early stopping" in caplog.text
    with pytest.raises(ValueError):
        EarlyStopping(patience=0)
