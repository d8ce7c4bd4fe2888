"""XGBoost and LightGBM boosted trees, trained through their native APIs (``xgb.train``, ``lgb.train``).

One callback per library hands each round's training and validation loss (log loss, or RMSE for
regression) to a ``RoundTracker``, which relays it, cancels and stops early by the rule every iterative
estimator shares; the booster kept has the trees of ``best_iteration_`` rounds only, so predictions and
the stored model agree. Models are stored in the libraries' own formats (``model.json``, ``model.txt``).
"""

from __future__ import annotations

import abc
import pathlib
from typing import Any, ClassVar

from microlearn_grpc.core.estimators._base import BINARY, CLASSIFICATION_TASKS, MULTICLASS, register_estimator
from microlearn_grpc.core.estimators._iterative import FitData, IterativeEstimator, RoundTracker
from microlearn_grpc.core.estimators._search_space import ParameterSpec
from microlearn_grpc.core.estimators.sklearn_models import _CLASSIFICATION, _REGRESSION, _float, _int, _space

__all__: list[str] = []  # the classes are reached through the registry


def _shared_params() -> tuple[ParameterSpec, ...]:
    # n_estimators starts at 1: a job's max_iterations and a refit's best iteration set it too.
    return (
        _int("n_estimators", 1, 2000, 100, "Boosting rounds (upper bound with early stopping).", log=True),
        _float("learning_rate", 0.005, 1.0, 0.1, "Shrinkage of each tree's contribution.", log=True))


def _sampling_and_penalties() -> tuple[ParameterSpec, ...]:
    return (
        _float("subsample", 0.5, 1.0, 1.0, "Share of rows each tree is grown on."),
        _float("colsample_bytree", 0.3, 1.0, 1.0, "Share of features each tree may split on."),
        _float("reg_alpha", 1e-3, 1e3, 1e-3, "l1 penalty on leaf values.", log=True),
        _float("reg_lambda", 1e-3, 1e3, 1.0, "l2 penalty on leaf values.", log=True))


def _losses(results: Any) -> dict[str, float]:
    """``train_loss`` and ``val_loss`` from (data name, value) pairs named "train" and "val"."""
    return {f"{name}_loss": float(value) for name, value in results}


class _Boosting(IterativeEstimator):
    family = "gradient_boosting"
    iterations_param = "n_estimators"
    handles_missing = True
    # Categories need the column types, which a float matrix has lost: they arrive encoded.
    handles_categorical = False
    model_file: ClassVar[str]

    def _save(self, directory: pathlib.Path) -> list[str]:
        self._write(directory / self.model_file)
        return [self.model_file]

    @classmethod
    def _load(cls, directory, meta):
        estimator = cls._restore(meta)
        estimator.model_ = estimator._read(directory / cls.model_file)
        return estimator

    @abc.abstractmethod
    def _write(self, path: pathlib.Path) -> None:
        """Store the booster at ``path`` in the library's format."""

    @abc.abstractmethod
    def _read(self, path: pathlib.Path) -> Any:
        """The booster stored at ``path``, set up for CPU prediction; sets ``_n_classes``."""


# -- XGBoost ----------------------------------------------------------------------------------------------

_XGB_OBJECTIVES = {BINARY: ("binary:logistic", "logloss"), MULTICLASS: ("multi:softprob", "mlogloss"),
                   "regression": ("reg:squarederror", "rmse")}


class _XGBoost(_Boosting):
    display_name = "XGBoost"
    description = ("XGBoost's boosted trees (histogram method); native missing values, early stopping, "
                   "CUDA training; a top performer on tabular data.")
    library = "xgboost"
    distributions = ("xgboost", "xgboost-cpu")  # the CUDA build and the CPU-only one
    install_hint = "pip install xgboost (xgboost-cpu, the default install, has no CUDA)"
    model_format = "xgboost"
    model_file = "model.json"
    relative_cost = 1.6
    relative_cost_gpu = 0.4
    supports_gpu = True

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(
            *_shared_params(),
            _int("max_depth", 1, 12, 6, "Deepest level of each tree."),
            _float("min_child_weight", 1e-3, 128.0, 1.0, "Least total row weight (hessian) in a leaf.", log=True),
            *_sampling_and_penalties())

    def _build(self, params):
        """The booster parameters (``num_class`` is added once the classes are known)."""
        objective, metric = _XGB_OBJECTIVES[self.task]
        native = {"objective": objective, "eval_metric": metric, "tree_method": "hist", "device": self.device,
                  "seed": self.seed, "verbosity": 0, "eta": params["learning_rate"],
                  "max_depth": params["max_depth"], "min_child_weight": params["min_child_weight"],
                  "subsample": params["subsample"], "colsample_bytree": params["colsample_bytree"],
                  "alpha": params["reg_alpha"], "lambda": params["reg_lambda"]}
        if self.n_jobs > 0:
            native["nthread"] = self.n_jobs
        return native

    def _train(self, params: dict[str, Any], data: FitData, tracker: RoundTracker) -> Any:
        import xgboost as xgb

        native = self._build(params)
        if self.task == MULTICLASS:
            native["num_class"] = data.n_classes
        train = xgb.QuantileDMatrix(data.X, data.y, weight=data.w, nthread=self.n_jobs)  # -1: every core
        evals = [(train, "train")] if tracker.progress.wanted else []
        if data.X_val is not None:
            evals.append((xgb.QuantileDMatrix(data.X_val, data.y_val, weight=data.w_val, ref=train), "val"))

        val = evals[-1][0] if data.X_val is not None and tracker.wants_predictions else None

        class Rounds(xgb.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
                # An evaluation matrix's predictions are cached by the booster and grow a tree per round,
                # so predicting it with every tree so far costs one pass over the rows, not a re-prediction.
                predictions = None if val is None else (lambda: model.predict(val))
                return tracker.update(epoch + 1, _losses((name, log[-1]) for name, metrics in evals_log.items()
                                                         for log in metrics.values()), predictions)

        booster = xgb.train(native, train, num_boost_round=params["n_estimators"], evals=evals,
                            verbose_eval=False, callbacks=[Rounds()])
        if tracker.best_iteration < booster.num_boosted_rounds():
            booster = booster[:tracker.best_iteration]
        booster.set_param({"device": "cpu"})  # predictions run where the caller's data is
        return booster

    def _raw_predict(self, X):
        return self._fitted().inplace_predict(X)

    def _write(self, path):
        self._fitted().save_model(path)

    def _read(self, path):
        import json

        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(path)
        booster.set_param({"device": "cpu"})
        if self.task in CLASSIFICATION_TASKS:
            learner = json.loads(booster.save_config())["learner"]["learner_model_param"]
            self._n_classes = max(2, int(learner["num_class"]))  # 0 for binary
        return booster


@register_estimator
class XGBoostClassifierEstimator(_XGBoost):
    name = "xgboost_classifier"
    tasks = _CLASSIFICATION
    supports_class_weights = True  # balance_classes becomes row weights


@register_estimator
class XGBoostRegressorEstimator(_XGBoost):
    name = "xgboost_regressor"
    tasks = _REGRESSION


# -- LightGBM ---------------------------------------------------------------------------------------------

_LGB_OBJECTIVES = {BINARY: ("binary", "binary_logloss"), MULTICLASS: ("multiclass", "multi_logloss"),
                   "regression": ("regression", "rmse")}


class _LightGBM(_Boosting):
    display_name = "LightGBM"
    description = ("LightGBM's leaf-wise boosted trees; native missing values, early stopping, fast on large "
                   "tables; a top performer on tabular data.")
    library = "lightgbm"
    install_hint = "pip install lightgbm"
    model_format = "lightgbm"
    model_file = "model.txt"
    relative_cost = 1.0  # the unit of every relative_cost

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        leaf_high = 200 if n_rows is None else min(200, n_rows // 10)
        return _space(
            *_shared_params(),
            _int("num_leaves", 4, 256, 31, "Leaves per tree.", log=True),
            _int("min_child_samples", 2, leaf_high, 20, "Fewest training rows in a leaf.", log=True),
            *_sampling_and_penalties())

    def _build(self, params):
        """The booster parameters (``num_class`` is added once the classes are known)."""
        objective, metric = _LGB_OBJECTIVES[self.task]
        native = {key: params[key] for key in ("learning_rate", "num_leaves", "min_child_samples", "subsample",
                                               "colsample_bytree", "reg_alpha", "reg_lambda")}
        return {**native, "objective": objective, "metric": metric, "seed": self.seed,
                "num_threads": self._threads(), "verbose": -1, "subsample_freq": int(params["subsample"] < 1.0)}

    def _threads(self) -> int:
        return self.n_jobs if self.n_jobs > 0 else 0  # 0: OpenMP's default, every core

    def _train(self, params: dict[str, Any], data: FitData, tracker: RoundTracker) -> Any:
        import lightgbm as lgb

        native = self._build(params)
        if self.task == MULTICLASS:
            native["num_class"] = data.n_classes
        train = lgb.Dataset(data.X, data.y, weight=data.w)
        sets, names = ([train], ["train"]) if tracker.progress.wanted else ([], [])
        if data.X_val is not None:
            sets.append(lgb.Dataset(data.X_val, data.y_val, weight=data.w_val, reference=train))
            names.append("val")

        want = data.X_val is not None and tracker.wants_predictions

        def rounds(env: Any) -> None:
            results = env.evaluation_result_list
            predictions = (lambda: _lgb_validation_predictions(env.model, data.X_val)) if want else None
            if tracker.update(env.iteration + 1, _losses((result[0], result[2]) for result in results), predictions):
                # LightGBM's way to end training; it keeps the trees up to the (0-based) iteration given.
                raise lgb.callback.EarlyStopException(tracker.best_iteration - 1, results)

        booster = lgb.train(native, train, num_boost_round=params["n_estimators"], valid_sets=sets,
                            valid_names=names, callbacks=[rounds])
        if tracker.best_iteration < booster.current_iteration():
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=tracker.best_iteration))
        return booster

    def _raw_predict(self, X):
        return self._fitted().predict(X, num_threads=self._threads())

    def _write(self, path):
        self._fitted().save_model(path, num_iteration=self.best_iteration_)

    def _read(self, path):
        import lightgbm as lgb

        booster = lgb.Booster(model_file=path)
        if self.task in CLASSIFICATION_TASKS:  # one model per class, or one for binary
            self._n_classes = max(2, booster.num_model_per_iteration())
        return booster


def _lgb_validation_predictions(booster: Any, X_val: Any) -> Any:
    """The validation rows' predictions after the latest round (probabilities for the built-in objectives),
    read from the scores LightGBM keeps up to date while training (its private ``__inner_predict``; data
    set 1 is the first validation set), else predicted again with every tree so far."""
    inner = getattr(booster, "_Booster__inner_predict", None)
    if inner is not None:
        try:
            return inner(data_idx=1)
        except TypeError:  # LightGBM 3 took the index positionally
            return inner(1)
    return booster.predict(X_val)


@register_estimator
class LightGBMClassifierEstimator(_LightGBM):
    name = "lightgbm_classifier"
    tasks = _CLASSIFICATION
    supports_class_weights = True  # balance_classes becomes row weights


@register_estimator
class LightGBMRegressorEstimator(_LightGBM):
    name = "lightgbm_regressor"
    tasks = _REGRESSION
