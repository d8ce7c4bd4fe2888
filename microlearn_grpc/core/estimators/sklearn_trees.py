"""scikit-learn's tree models: a single decision tree, random forest, extra trees, histogram gradient boosting.

Histogram gradient boosting is the iterative one: it reports every boosting round and honours early stopping.
"""

from __future__ import annotations

import math
from typing import Any

from microlearn_grpc.core.estimators._base import CLASSIFICATION_TASKS, register_estimator
from microlearn_grpc.core.estimators._search_space import ParameterSpec
from microlearn_grpc.core.estimators.sklearn_models import (_CLASSIFICATION, _REGRESSION, SklearnEstimator, _cat,
                                                            _float, _int, _space, _thread_limit)

__all__: list[str] = []  # the classes are reached through the registry

# -- trees ------------------------------------------------------------------------------------------------

def _criterion(task: str) -> tuple[ParameterSpec, ...]:
    # Regression keeps scikit-learn's squared error: absolute_error is far slower, poisson needs y >= 0.
    if task in CLASSIFICATION_TASKS:
        return (_cat("criterion", ("gini", "entropy"), "gini", "Split quality measure."),)
    return ()


class _DecisionTree(SklearnEstimator):
    family = "decision_tree"
    relative_cost = 0.1
    handles_missing = True  # scikit-learn >= 1.3 routes missing values at each split

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        leaf_high = 100 if n_rows is None else min(100, n_rows // 10)
        return _space(
            *_criterion(task),
            _int("max_depth", 2, 32, 10, "Deepest level of the tree."),
            _int("min_samples_leaf", 1, leaf_high, 5, "Fewest training rows in a leaf.", log=True),
            _float("max_features", 0.1, 1.0, 1.0, "Share of features considered at each split."))


@register_estimator
class DecisionTreeClassifierEstimator(_DecisionTree):
    name = "decision_tree_classifier"
    display_name = "Decision tree"
    description = "One classification tree; readable rules, fast, but less accurate than tree ensembles."
    tasks = _CLASSIFICATION
    model_class = "sklearn.tree.DecisionTreeClassifier"
    supports_class_weights = True


@register_estimator
class DecisionTreeRegressorEstimator(_DecisionTree):
    name = "decision_tree_regressor"
    display_name = "Decision tree"
    description = "One regression tree; readable rules, fast, but less accurate than tree ensembles."
    tasks = _REGRESSION
    model_class = "sklearn.tree.DecisionTreeRegressor"


class _Forest(SklearnEstimator):
    family = "tree_ensemble"

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        # Fewer trees on big data, where each costs more and the ensemble converges sooner.
        trees_high = 1000 if n_rows is None or n_rows <= 100_000 else 500 if n_rows <= 1_000_000 else 200
        leaf_high = 64 if n_rows is None else min(64, n_rows // 20)
        if task in CLASSIFICATION_TASKS:  # scikit-learn's "sqrt" as a share, when the width is known
            features = math.sqrt(n_features) / n_features if n_features else 0.3
        else:
            features = 1.0
        return _space(
            _int("n_estimators", 10, trees_high, 100, "Number of trees.", log=True),
            *_criterion(task),
            _float("max_features", 0.05, 1.0, features, "Share of features considered at each split."),
            _int("min_samples_leaf", 1, leaf_high, 1, "Fewest training rows in a leaf.", log=True))


@register_estimator
class RandomForestClassifierEstimator(_Forest):
    name = "random_forest_classifier"
    display_name = "Random forest"
    description = "Bagged deep trees on bootstrap samples; robust with little tuning, a strong tabular default."
    tasks = _CLASSIFICATION
    model_class = "sklearn.ensemble.RandomForestClassifier"
    relative_cost = 2.0  # FLAML's figure
    supports_class_weights = True
    handles_missing = True  # scikit-learn >= 1.4


@register_estimator
class RandomForestRegressorEstimator(_Forest):
    name = "random_forest_regressor"
    display_name = "Random forest"
    description = "Bagged deep trees on bootstrap samples; robust with little tuning, a strong tabular default."
    tasks = _REGRESSION
    model_class = "sklearn.ensemble.RandomForestRegressor"
    relative_cost = 2.0
    handles_missing = True


# Extra trees accept missing values only from scikit-learn 1.6 on, so the pipeline imputes for them.
@register_estimator
class ExtraTreesClassifierEstimator(_Forest):
    name = "extra_trees_classifier"
    display_name = "Extra trees"
    description = "Trees with random split thresholds on all rows; faster and smoother than a random forest."
    tasks = _CLASSIFICATION
    model_class = "sklearn.ensemble.ExtraTreesClassifier"
    relative_cost = 1.9  # FLAML's figure
    supports_class_weights = True


@register_estimator
class ExtraTreesRegressorEstimator(_Forest):
    name = "extra_trees_regressor"
    display_name = "Extra trees"
    description = "Trees with random split thresholds on all rows; faster and smoother than a random forest."
    tasks = _REGRESSION
    model_class = "sklearn.ensemble.ExtraTreesRegressor"
    relative_cost = 1.9


# -- histogram gradient boosting --------------------------------------------------------------------------

class _HistGradientBoosting(SklearnEstimator):
    """scikit-learn's LightGBM-style booster, reporting each round's training and validation loss (log loss
    for classifiers, half squared error for regressors) while it fits.

    scikit-learn has no callbacks, so the fit wraps the booster's per-round loss check (the private
    ``_check_early_stopping_loss``, unchanged from 0.21 to 1.9): it sees every round as it ends and can
    stop the fit exactly there. Should a release drop that method, the rounds are still reported, after
    the fit, from ``train_score_``. Early stopping is the booster's own: it stops once the validation loss
    has not improved by ``min_delta`` on its value ``patience`` rounds earlier, on ``X_val`` or, without
    it, on 10% of the training rows. Losses are recorded only with early stopping on, so progress without
    early stopping turns it on with a patience longer than the run.
    """

    family = "gradient_boosting"
    fixed_params = {"categorical_features": "from_dtype", "early_stopping": False}
    iterations_param = "max_iter"
    relative_cost = 1.2
    supports_iteration_progress = True
    supports_early_stopping = True
    handles_missing = True
    handles_categorical = True  # pandas "category" columns

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        leaf_high = 200 if n_rows is None else min(200, n_rows // 10)
        return _space(
            _float("learning_rate", 0.01, 1.0, 0.1, "Shrinkage of each tree's contribution.", log=True),
            # From 1: a job's max_iterations and a refit's best iteration set it too.
            _int("max_iter", 1, 2000, 100, "Boosting rounds (upper bound with early stopping).", log=True),
            _int("max_leaf_nodes", 4, 256, 31, "Leaves per tree.", log=True),
            _int("min_samples_leaf", 2, leaf_high, 20, "Fewest training rows in a leaf.", log=True),
            _float("l2_regularization", 0.0, 10.0, 0.0, "l2 penalty on leaf values."),
            _float("max_features", 0.1, 1.0, 1.0, "Share of features considered at each split."))

    def _fit(self, params, X, y, X_val, y_val, progress, early_stopping):
        model = self._build(params)
        total = params["max_iter"]
        if early_stopping is not None:
            model.set_params(early_stopping=True, n_iter_no_change=early_stopping.patience,
                             tol=early_stopping.min_delta, validation_fraction=None if X_val is not None else 0.1)
        elif progress.wanted:
            model.set_params(early_stopping=True, n_iter_no_change=total + 1, validation_fraction=None)
        validation = {"X_val": X_val, "y_val": y_val} if X_val is not None and model.early_stopping else {}
        reported = 0
        check = getattr(model, "_check_early_stopping_loss", None) if progress.wanted else None

        val_metric = progress.val_metric if validation else None

        def check_and_report(*args: Any, **kwargs: Any) -> bool:
            nonlocal reported
            stop = check(*args, **kwargs)
            step = len(model.train_score_) - 1  # score 0 is the model before the first tree
            if step > reported:
                reported = step
                metrics = _round_metrics(model, step)
                # The booster keeps the validation rows' raw predictions up to date, tree by tree: the task
                # metric reads them. scikit-learn keeps every round, so the last one is the model's.
                if val_metric is not None and "raw_predictions_val" in kwargs and (
                        step % val_metric.every == 0 or stop or step == total):
                    value = val_metric.compute(*_validation_predictions(model, kwargs))
                    if value is not None:
                        metrics[val_metric.name] = value
                stop = not progress.report(step, metrics) or stop
            return stop

        if check is not None:
            model._check_early_stopping_loss = check_and_report
        try:
            with _thread_limit(self.n_jobs):
                model.fit(X, y, **validation)
        finally:
            model.__dict__.pop("_check_early_stopping_loss", None)  # the closure must not be pickled
        for step in range(reported + 1, int(model.n_iter_) + 1 if progress.wanted else 0):
            if not progress.report(step, _round_metrics(model, step)):
                break
        self.n_iterations_ = int(model.n_iter_)
        self.best_iteration_ = self.n_iterations_  # scikit-learn keeps the rounds after the best one
        if progress.cancelled:
            self.stop_reason_ = "cancelled"
        elif progress.out_of_time:
            self.stop_reason_ = "time_limit"
        elif model.n_iter_ < total:
            self.stop_reason_ = "early_stopping"
        return model


def _validation_predictions(model: Any, loss_args: dict[str, Any]) -> tuple[Any, Any]:
    """(targets, predictions) of the validation rows from the arguments of the booster's loss check:
    class codes and probabilities over codes 0..K-1 (scikit-learn numbers the training classes), or values."""
    import numpy as np

    raw = loss_args["raw_predictions_val"]
    if not hasattr(model, "classes_"):
        return loss_args["y_val"], model._loss.link.inverse(raw.ravel())
    classes = np.asarray(model.classes_, dtype=np.int64)
    codes = classes[np.asarray(loss_args["y_val"], dtype=np.int64)]
    proba = model._loss.predict_proba(raw)
    full = np.zeros((len(proba), max(int(classes.max()), int(codes.max(initial=0))) + 1))
    full[:, classes] = proba
    return codes, full


def _round_metrics(model: Any, step: int) -> dict[str, float]:
    metrics = {"train_loss": -float(model.train_score_[step])}
    if len(model.validation_score_) > step:
        metrics["val_loss"] = -float(model.validation_score_[step])
    return metrics


@register_estimator
class HistGradientBoostingClassifierEstimator(_HistGradientBoosting):
    name = "hist_gradient_boosting_classifier"
    display_name = "Histogram gradient boosting"
    description = ("scikit-learn's LightGBM-style boosted trees; native missing values and categories, early "
                   "stopping, strong on tabular data of any size.")
    tasks = _CLASSIFICATION
    model_class = "sklearn.ensemble.HistGradientBoostingClassifier"
    supports_class_weights = True


@register_estimator
class HistGradientBoostingRegressorEstimator(_HistGradientBoosting):
    name = "hist_gradient_boosting_regressor"
    display_name = "Histogram gradient boosting"
    description = ("scikit-learn's LightGBM-style boosted trees; native missing values and categories, early "
                   "stopping, strong on tabular data of any size.")
    tasks = _REGRESSION
    model_class = "sklearn.ensemble.HistGradientBoostingRegressor"
