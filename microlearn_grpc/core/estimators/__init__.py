"""The estimator registry: every model family MicroLearn trains, each describing its own search space, cost,
preprocessing needs and hardware, behind one fit/predict contract.

Adding a model is one class and one decorator::

    @register_estimator
    class MyEstimator(Estimator):
        name = "my_model"; family = "linear"; tasks = frozenset({"regression"}); ...

Importing this package registers the scikit-learn, XGBoost, LightGBM and Lightning estimators without
importing any of those libraries; they are imported when a model is fitted or loaded. A fitted estimator
saves itself with ``Estimator.save(directory)`` and comes back with ``load_estimator(directory)``.

Errors: ``HyperparameterError`` (a ``ValueError`` naming the parameter) for bad hyperparameters,
``ValueError`` for an unsupported task, ``KeyError`` for an unknown estimator name.
"""

# Importing the model modules registers their estimators.
from microlearn_grpc.core.estimators import sklearn_models as _sklearn_models  # noqa: F401
from microlearn_grpc.core.estimators import sklearn_trees as _sklearn_trees  # noqa: F401
from microlearn_grpc.core.estimators import sklearn_clustering as _sklearn_clustering  # noqa: F401
from microlearn_grpc.core.estimators import boosting as _boosting  # noqa: F401
from microlearn_grpc.core.estimators import torch_mlp as _torch_mlp  # noqa: F401
from microlearn_grpc.core.estimators._base import (BINARY, CLASSIFICATION_TASKS, CLUSTERING, FAMILIES,
                                                   MODEL_FORMATS, MULTICLASS, REGRESSION, TASKS, EarlyStopping,
                                                   Estimator, IterationCallback, Progress, ValidationMetric,
                                                   get_estimator, list_estimators, load_estimator,
                                                   register_estimator, unregister_estimator)
from microlearn_grpc.core.estimators._iterative import FitData, IterativeEstimator, RoundTracker
from microlearn_grpc.core.estimators._search_space import (CategoricalDistribution, Distribution,
                                                           FloatDistribution, HyperparameterError, IntDistribution,
                                                           ParameterCondition, ParameterSpec, SearchSpace)
from microlearn_grpc.core.estimators.sklearn_models import SklearnEstimator

__all__ = [
    "BINARY", "CLASSIFICATION_TASKS", "CLUSTERING", "FAMILIES", "MODEL_FORMATS", "MULTICLASS", "REGRESSION", "TASKS",
    "CategoricalDistribution", "Distribution", "EarlyStopping", "Estimator", "FitData", "FloatDistribution",
    "HyperparameterError", "IntDistribution", "IterationCallback", "IterativeEstimator", "ParameterCondition",
    "ParameterSpec", "Progress", "RoundTracker", "SearchSpace", "SklearnEstimator", "ValidationMetric", "get_estimator",
    "list_estimators", "load_estimator", "register_estimator", "unregister_estimator",
]
