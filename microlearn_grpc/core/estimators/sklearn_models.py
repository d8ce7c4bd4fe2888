"""The scikit-learn base class, and its linear, kernel, neighbour, naive Bayes and baseline models.

scikit-learn is imported when a model is built, never when this module is. Search spaces follow FLAML's
habit of log scales for strengths and rates and ranges bounded by the data size; defaults are the ones a
single fit without search should use.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

from microlearn_grpc.core.estimators._base import (BINARY, CLUSTERING, MULTICLASS, REGRESSION, EarlyStopping,
                                                   Estimator, Progress, register_estimator)
from microlearn_grpc.core.estimators._search_space import (CategoricalDistribution, FloatDistribution,
                                                           HyperparameterError, IntDistribution, ParameterCondition,
                                                           ParameterSpec, SearchSpace, Value)

__all__ = ["SklearnEstimator"]

_CLASSIFICATION = frozenset({BINARY, MULTICLASS})
_REGRESSION = frozenset({REGRESSION})


# -- helpers to declare spaces briefly --------------------------------------------------------------------

def _int(name: str, low: int, high: int, default: int, description: str, *, log: bool = False,
         condition: ParameterCondition | None = None) -> ParameterSpec:
    """An integer parameter; ``high`` and ``default`` are clipped so data-bound ranges never invert."""
    high = max(low, high)
    return ParameterSpec(name, IntDistribution(low, high, log), min(high, max(low, default)), description, condition)


def _float(name: str, low: float, high: float, default: float, description: str, *, log: bool = False,
           condition: ParameterCondition | None = None) -> ParameterSpec:
    return ParameterSpec(name, FloatDistribution(low, high, log), min(high, max(low, default)), description,
                         condition)


def _cat(name: str, choices: tuple[Value, ...], default: Value, description: str,
         condition: ParameterCondition | None = None) -> ParameterSpec:
    return ParameterSpec(name, CategoricalDistribution(choices), default, description, condition)


def _space(*specs: ParameterSpec) -> SearchSpace:
    return SearchSpace(specs)


def _load(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _thread_limit(n_jobs: int) -> contextlib.AbstractContextManager:
    """Cap BLAS and OpenMP threads (HistGradientBoosting has no n_jobs) so a worker's jobs share its cores."""
    if n_jobs < 1:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n_jobs)


def _calibrated(classifier: Any) -> Any:
    """Platt scaling on 3-fold out-of-fold decision values; ``ensemble=False`` keeps one model fit on all rows,
    so predictions are the plain model's while predict_proba is calibrated (log loss and ensembles stay
    meaningful). Four fits instead of one, and every class needs at least 3 rows."""
    from sklearn.calibration import CalibratedClassifierCV

    return CalibratedClassifierCV(classifier, method="sigmoid", cv=3, ensemble=False)


def _scaled_target(regressor: Any) -> Any:
    """Fit on the standardized target, so epsilon and alpha mean the same whatever the target's units."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler

    return TransformedTargetRegressor(regressor=regressor, transformer=StandardScaler())


# -- the shared base --------------------------------------------------------------------------------------

class SklearnEstimator(Estimator):
    """A scikit-learn model: ``model_class`` built from the hyperparameters plus ``fixed_params``.

    The seed, the thread count and class balancing are set on every nested ``random_state``, ``n_jobs``
    and ``class_weight`` parameter, so wrapped models (calibration, target scaling) get them too.
    """

    library = "scikit-learn"
    requires = ("sklearn",)
    install_hint = "pip install scikit-learn"
    model_format = "sklearn_pipeline"
    model_class: ClassVar[str]  # dotted path, imported when the model is built
    fixed_params: ClassVar[Mapping[str, Any]] = {}
    sets_n_jobs: ClassVar[bool] = True  # False where the model's n_jobs is deprecated or meaningless

    def _model_kwargs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, **self.fixed_params}

    def _wrap(self, model: Any) -> Any:
        return model

    def _build(self, params: dict[str, Any]) -> Any:
        model = self._wrap(_load(self.model_class)(**self._model_kwargs(params)))
        nested = model.get_params(deep=True)
        settings: dict[str, Any] = {}
        for key in nested:
            leaf = key.rpartition("__")[2]
            if leaf == "random_state":
                settings[key] = self.seed
            elif leaf == "n_jobs" and self.sets_n_jobs:
                settings[key] = self.n_jobs
            elif leaf == "class_weight" and self.balance_classes:
                settings[key] = "balanced"
        return model.set_params(**settings)

    def _fit(self, params: dict[str, Any], X: Any, y: Any, X_val: Any, y_val: Any, progress: Progress,
             early_stopping: EarlyStopping | None) -> Any:
        model = self._build(params)
        with _thread_limit(self.n_jobs):
            if self.task == CLUSTERING:
                self._labels = model.fit_predict(X)
            else:
                model.fit(X, y)
        return model


# -- linear models ----------------------------------------------------------------------------------------

@register_estimator
class LogisticRegressionEstimator(SklearnEstimator):
    name = "logistic_regression"
    display_name = "Logistic regression"
    description = ("Regularized linear classifier with calibrated probabilities; a fast, robust baseline that "
                   "does well when classes are close to linearly separable and on wide, sparse data.")
    family = "linear"
    tasks = _CLASSIFICATION
    model_class = "sklearn.linear_model.LogisticRegression"
    sets_n_jobs = False  # only parallelized one-vs-rest, which lbfgs and saga no longer use (deprecated in 1.8)
    relative_cost = 2.0
    supports_class_weights = True
    needs_scaling = True

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(
            _float("C", 1e-4, 1e4, 1.0, "Inverse regularization strength; smaller regularizes more.", log=True),
            _cat("penalty", ("l2", "l1", "elasticnet"), "l2", "Regularization: ridge (l2), lasso (l1) or both."),
            _float("l1_ratio", 0.0, 1.0, 0.5, "Share of l1 in the elastic-net penalty.",
                   condition=ParameterCondition("penalty", ("elasticnet",))))

    def _model_kwargs(self, params):
        penalty = params["penalty"]
        # lbfgs is the fast default; only saga handles l1 terms.
        kwargs: dict[str, Any] = {"C": params["C"], "solver": "lbfgs" if penalty == "l2" else "saga",
                                  "max_iter": 1000}
        cls = _load(self.model_class)
        if inspect.signature(cls).parameters["penalty"].default == "deprecated":  # scikit-learn >= 1.8
            kwargs["l1_ratio"] = {"l2": 0.0, "l1": 1.0}.get(penalty, params.get("l1_ratio"))
        else:
            kwargs["penalty"] = penalty
            if penalty == "elasticnet":
                kwargs["l1_ratio"] = params["l1_ratio"]
        return kwargs


@register_estimator
class LinearRegressionEstimator(SklearnEstimator):
    name = "linear_regression"
    display_name = "Linear regression"
    description = "Ordinary least squares; the simplest regression baseline, exact when the relation is linear."
    family = "linear"
    tasks = _REGRESSION
    model_class = "sklearn.linear_model.LinearRegression"
    relative_cost = 0.1

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(_cat("fit_intercept", (True, False), True, "Fit a constant term."))


@register_estimator
class RidgeEstimator(SklearnEstimator):
    name = "ridge"
    display_name = "Ridge regression"
    description = "Least squares with an l2 penalty; stable with many or correlated features."
    family = "linear"
    tasks = _REGRESSION
    model_class = "sklearn.linear_model.Ridge"
    relative_cost = 0.1
    needs_scaling = True

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(_float("alpha", 1e-4, 1e4, 1.0, "Regularization strength.", log=True))


class _SparseLinear(SklearnEstimator):
    """Lasso and elastic net, fitted on the standardized target so that alpha is scale-free."""

    family = "linear"
    tasks = _REGRESSION
    relative_cost = 0.5
    needs_scaling = True
    fixed_params = {"max_iter": 5000}

    def _wrap(self, model):
        return _scaled_target(model)


@register_estimator
class LassoEstimator(_SparseLinear):
    name = "lasso"
    display_name = "Lasso"
    description = "Least squares with an l1 penalty; selects features by zeroing the others' coefficients."
    model_class = "sklearn.linear_model.Lasso"

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(_float("alpha", 1e-5, 10.0, 0.01, "l1 strength, for the standardized target.", log=True))


@register_estimator
class ElasticNetEstimator(_SparseLinear):
    name = "elastic_net"
    display_name = "Elastic net"
    description = "Least squares with l1 and l2 penalties; feature selection that copes with correlated features."
    model_class = "sklearn.linear_model.ElasticNet"

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(
            _float("alpha", 1e-5, 10.0, 0.01, "Penalty strength, for the standardized target.", log=True),
            _float("l1_ratio", 0.05, 1.0, 0.5, "Share of l1 in the penalty (1 is the lasso)."))


# -- support vector machines ------------------------------------------------------------------------------

@register_estimator
class LinearSVCEstimator(SklearnEstimator):
    """LinearSVC has no predict_proba: probabilities come from ``_calibrated`` (Platt scaling)."""

    name = "linear_svc"
    display_name = "Linear SVM"
    description = ("Linear support vector classifier (liblinear) with Platt-calibrated probabilities; scales to "
                   "many rows and features, strong on high-dimensional data.")
    family = "svm"
    tasks = _CLASSIFICATION
    model_class = "sklearn.svm.LinearSVC"
    relative_cost = 3.0
    supports_class_weights = True
    needs_scaling = True

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(
            _float("C", 1e-4, 1e4, 1.0, "Inverse regularization strength.", log=True),
            _cat("penalty", ("l2", "l1"), "l2", "Norm of the penalty; l1 gives sparse coefficients."))

    def _model_kwargs(self, params):
        return {**params, "dual": "auto", "max_iter": 5000}

    def _wrap(self, model):
        return _calibrated(model)


# libsvm converges in thousands of iterations on sane settings; a polynomial kernel with large gamma and C
# can take tens of millions (minutes on 300 rows), so a search's bad corners end with a ConvergenceWarning.
_KERNEL_FIXED = {"cache_size": 500, "max_iter": 1_000_000}


def _kernel_space(n_features: int | None, *extra: ParameterSpec) -> SearchSpace:
    # On standardized features, 1 / n_features is what scikit-learn's gamma="scale" works out to.
    gamma = 1.0 / n_features if n_features else 0.1
    return _space(
        _float("C", 1e-3, 1e3, 1.0, "Inverse regularization strength.", log=True),
        _cat("kernel", ("rbf", "poly", "sigmoid"), "rbf", "Kernel function."),
        _float("gamma", 1e-4, 10.0, gamma, "Kernel coefficient: larger fits more local structure.", log=True),
        _int("degree", 2, 5, 3, "Degree of the polynomial kernel.", condition=ParameterCondition("kernel", ("poly",))),
        *extra)


@register_estimator
class SVCEstimator(SklearnEstimator):
    """Probabilities come from ``_calibrated``, the replacement scikit-learn 1.9 names for the deprecated
    ``SVC(probability=True)`` (which ran its own 5-fold Platt scaling)."""

    name = "svc"
    display_name = "Kernel SVM"
    description = ("Support vector classifier with an RBF, polynomial or sigmoid kernel and Platt-calibrated "
                   "probabilities; strong on small, dense data, quadratic or worse in rows.")
    family = "svm"
    tasks = _CLASSIFICATION
    model_class = "sklearn.svm.SVC"
    fixed_params = _KERNEL_FIXED
    relative_cost = 100.0
    supports_class_weights = True
    needs_scaling = True
    max_rows = 20_000

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _kernel_space(n_features)

    def _wrap(self, model):
        return _calibrated(model)


@register_estimator
class SVREstimator(SklearnEstimator):
    name = "svr"
    display_name = "Kernel SVR"
    description = ("Support vector regression with an RBF, polynomial or sigmoid kernel, fitted on the "
                   "standardized target; strong on small, smooth problems, quadratic or worse in rows.")
    family = "svm"
    tasks = _REGRESSION
    model_class = "sklearn.svm.SVR"
    fixed_params = _KERNEL_FIXED
    relative_cost = 50.0
    needs_scaling = True
    max_rows = 20_000

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _kernel_space(n_features, _float("epsilon", 1e-3, 1.0, 0.1,
                                                "Error tolerated without penalty, in standard deviations.", log=True))

    def _wrap(self, model):
        return _scaled_target(model)


@register_estimator
class LinearSVREstimator(SklearnEstimator):
    name = "linear_svr"
    display_name = "Linear SVR"
    description = "Linear support vector regression (liblinear) on the standardized target; scales to large data."
    family = "svm"
    tasks = _REGRESSION
    model_class = "sklearn.svm.LinearSVR"
    relative_cost = 0.5
    needs_scaling = True

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(
            _float("C", 1e-4, 1e4, 1.0, "Inverse regularization strength.", log=True),
            _float("epsilon", 0.0, 1.0, 0.0, "Error tolerated without penalty, in standard deviations."),
            _cat("loss", ("squared_epsilon_insensitive", "epsilon_insensitive"), "squared_epsilon_insensitive",
                 "Squared (smooth, converges fast) or absolute epsilon-insensitive loss."))

    def _model_kwargs(self, params):
        return {**params, "dual": "auto", "max_iter": 5000}

    def _wrap(self, model):
        return _scaled_target(model)


# -- nearest neighbours, naive Bayes, baselines -----------------------------------------------------------

class _KNeighbors(SklearnEstimator):
    family = "nearest_neighbors"
    relative_cost = 30.0  # FLAML's figure: prediction compares every row with every training row
    needs_scaling = True
    max_rows = 100_000
    max_features = 100  # distances lose contrast in many dimensions

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        high = 100 if n_rows is None else min(100, n_rows - 1)
        return _space(
            _int("n_neighbors", 1, high, 5, "Neighbours that vote (or are averaged).", log=True),
            _cat("weights", ("distance", "uniform"), "distance", "Weigh neighbours by inverse distance or equally."),
            _cat("p", (2, 1), 2, "Minkowski power: 2 is Euclidean, 1 Manhattan distance."))

    def _check_data(self, params, n_rows, n_features):
        if params["n_neighbors"] > n_rows:
            raise HyperparameterError(f"{self.name}: n_neighbors={params['n_neighbors']} exceeds the {n_rows} "
                                      "training rows", parameter="n_neighbors")


@register_estimator
class KNeighborsClassifierEstimator(_KNeighbors):
    name = "knn_classifier"
    display_name = "k-nearest neighbours"
    description = "Votes among the closest training rows; no training cost, good for small, low-dimensional data."
    tasks = _CLASSIFICATION
    model_class = "sklearn.neighbors.KNeighborsClassifier"


@register_estimator
class KNeighborsRegressorEstimator(_KNeighbors):
    name = "knn_regressor"
    display_name = "k-nearest neighbours"
    description = "Averages the closest training rows' targets; good for small, low-dimensional data."
    tasks = _REGRESSION
    model_class = "sklearn.neighbors.KNeighborsRegressor"


@register_estimator
class GaussianNBEstimator(SklearnEstimator):
    name = "gaussian_nb"
    display_name = "Gaussian naive Bayes"
    description = ("Per-class normal distributions of independent features; nearly free to train, a sanity "
                   "baseline that can do well on tiny data.")
    family = "naive_bayes"
    tasks = _CLASSIFICATION
    model_class = "sklearn.naive_bayes.GaussianNB"
    relative_cost = 0.05

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(_float("var_smoothing", 1e-12, 1e-1, 1e-9,
                             "Share of the largest feature variance added to all variances.", log=True))


class _Baseline(SklearnEstimator):
    family = "baseline"
    relative_cost = 0.01
    handles_missing = True  # it never looks at the features
    handles_categorical = True


@register_estimator
class BaselineClassifierEstimator(_Baseline):
    name = "baseline_classifier"
    display_name = "Class prior baseline"
    description = "Predicts the majority class with the training class frequencies as probabilities."
    tasks = _CLASSIFICATION
    model_class = "sklearn.dummy.DummyClassifier"
    fixed_params = {"strategy": "prior"}

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space()


@register_estimator
class BaselineRegressorEstimator(_Baseline):
    name = "baseline_regressor"
    display_name = "Constant baseline"
    description = "Predicts the training mean (or median) for every row."
    tasks = _REGRESSION
    model_class = "sklearn.dummy.DummyRegressor"

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(_cat("strategy", ("mean", "median"), "mean", "The constant: training mean or median."))
