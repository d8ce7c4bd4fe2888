"""Estimators their own library trains round by round (boosting rounds, epochs): the shared round
bookkeeping (``RoundTracker``: reports, the task metric on the validation rows, early stopping,
cancellation) and the fit/predict plumbing behind ``IterativeEstimator._train``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from microlearn_grpc.core.estimators._base import CLASSIFICATION_TASKS, EarlyStopping, Estimator, Progress

__all__ = ["FitData", "IterativeEstimator", "RoundTracker"]


class RoundTracker:
    """What every iterative fit shares: it relays each round's metrics to ``progress``, remembers the round
    with the lowest ``val_loss`` and says when to stop, for cancellation or early stopping.

    A round improves when its validation loss is below the best so far by more than ``min_delta``; the fit
    stops once ``patience`` rounds pass without one. ``best_iteration`` is the number of rounds the final
    model keeps: the best round under early stopping, every round otherwise. With a ``ValidationMetric``
    on ``progress`` and validation rows, rounds that are due (see ``ValidationMetric``) also carry it,
    computed from the predictions the fit hands over lazily: the last round is ``total`` or the one
    early stopping ends on.
    """

    def __init__(self, progress: Progress, early_stopping: EarlyStopping | None, *, total: int | None = None,
                 y_val: Any = None):
        self.progress = progress
        self.early_stopping = early_stopping
        self.total = total
        self.val_metric = progress.val_metric if y_val is not None and len(y_val) else None
        self.y_val = y_val
        self.rounds = 0
        self.kept_predictions: tuple[int, Any] | None = None  # (round, validation predictions) of the last/best
        self.best_round: int | None = None
        self.best_loss = math.inf
        self.stop_reason: str | None = None

    @property
    def wants_predictions(self) -> bool:
        """Whether some rounds need the validation predictions (fits skip computing them otherwise)."""
        return self.val_metric is not None

    def update(self, step: int, metrics: Mapping[str, float], predictions: Callable[[], Any] | None = None) -> bool:
        """Record round ``step`` (counted from 1); True means stop after it. ``predictions()`` gives the
        validation predictions at this round, called only when the task metric is due."""
        self.rounds = step
        loss = metrics.get("val_loss")
        min_delta = self.early_stopping.min_delta if self.early_stopping is not None else 0.0
        if loss is not None and loss < self.best_loss - min_delta:
            self.best_round, self.best_loss = step, loss
        patience_over = (self.early_stopping is not None and self.best_round is not None
                         and step - self.best_round >= self.early_stopping.patience)
        if self.val_metric is not None and predictions is not None and (
                step % self.val_metric.every == 0 or patience_over or step == self.total
                or (self.early_stopping is not None and self.improved)):
            predicted = predictions()
            value = self.val_metric.compute(self.y_val, predicted)
            if self.early_stopping is None or self.improved:  # the model kept predicts these, if this round ends it
                self.kept_predictions = (step, predicted.copy())
            if value is not None:
                metrics = {**metrics, self.val_metric.name: value}
        if not self.progress.report(step, metrics):
            self.stop_reason = "cancelled" if self.progress.cancelled else "time_limit"
        elif patience_over:
            self.stop_reason = "early_stopping"
        return self.stop_reason is not None

    @property
    def improved(self) -> bool:
        """Whether the last round recorded is the best so far."""
        return self.best_round is not None and self.best_round == self.rounds

    @property
    def best_iteration(self) -> int:
        if self.early_stopping is not None and self.best_round is not None:
            return self.best_round
        return self.rounds


@dataclass
class FitData:
    """An iterative fit's inputs as arrays: features, targets (class codes or floats), row weights (None
    without class balancing), the validation rows, and the number of classes (None for regression)."""

    X: Any
    y: Any
    w: Any
    X_val: Any
    y_val: Any
    w_val: Any
    n_classes: int | None


class IterativeEstimator(Estimator):
    """A model its own library trains round by round (boosting rounds, epochs) behind ``_train``.

    The fit turns the inputs into ``FitData`` (holding out 10% of the training rows, with the seed and
    stratified for classes, when early stopping has no ``X_val``; class-balancing row weights), runs
    ``_train`` with a ``RoundTracker`` and records how the rounds went. ``_train`` returns a model that
    predicts with ``tracker.best_iteration`` rounds. Predictions come from ``_raw_predict``.
    """

    supports_iteration_progress = True
    supports_early_stopping = True
    _n_classes: int | None = None  # set by the fit, or by _load from the stored model
    validation_predictions_: Any = None  # set by a fit with a ValidationMetric; see _fit

    @abc.abstractmethod
    def _train(self, params: dict[str, Any], data: FitData, tracker: RoundTracker) -> Any:
        """Train, calling ``tracker.update`` after every round and stopping when it says so."""

    @abc.abstractmethod
    def _raw_predict(self, X: Any) -> Any:
        """Regression values, or class probabilities: rows x classes, or the positive class's alone."""

    def _fit(self, params, X, y, X_val, y_val, progress, early_stopping):
        data = _fit_data(self, X, y, X_val, y_val, holdout=early_stopping is not None)
        tracker = RoundTracker(progress, early_stopping, total=params.get(self.iterations_param),
                               y_val=data.y_val)
        model = self._train(params, data, tracker)
        self.n_iterations_, self.best_iteration_ = tracker.rounds, tracker.best_iteration
        # The caller's validation rows as the kept model predicts them, when the last report had them:
        # predicting those rows again would give the same numbers.
        kept = tracker.kept_predictions
        self.validation_predictions_ = (kept[1] if kept is not None and kept[0] == tracker.best_iteration
                                        and X_val is not None else None)
        self.stop_reason_ = tracker.stop_reason
        self._n_classes = data.n_classes
        return model

    def predict(self, X: Any) -> Any:
        if self.task in CLASSIFICATION_TASKS:
            return self.predict_proba(X).argmax(axis=1)
        self._fitted()
        return self._raw_predict(_matrix(X))

    def predict_proba(self, X: Any) -> Any:
        import numpy as np

        if self.task not in CLASSIFICATION_TASKS:
            raise NotImplementedError(f"{self.name} gives no probabilities for task {self.task!r}")
        self._fitted()
        proba = self._raw_predict(_matrix(X))
        return np.column_stack([1.0 - proba, proba]) if proba.ndim == 1 else proba

    @property
    def classes_(self) -> Any:
        import numpy as np

        if self.task not in CLASSIFICATION_TASKS:
            raise AttributeError(f"{self.name} has no classes for task {self.task!r}")
        self._fitted()
        return np.arange(self._n_classes)  # the trainer hands over class codes 0..K-1


def _matrix(X: Any) -> Any:
    import numpy as np

    return np.asarray(X, dtype=np.float64)


def _fit_data(estimator: Estimator, X: Any, y: Any, X_val: Any, y_val: Any, *, holdout: bool) -> FitData:
    import numpy as np

    classify = estimator.task in CLASSIFICATION_TASKS
    dtype = np.int64 if classify else np.float64
    X, y = _matrix(X), np.asarray(y, dtype=dtype)
    if X_val is not None:
        X_val, y_val = _matrix(X_val), np.asarray(y_val, dtype=dtype)
    elif holdout:
        X, X_val, y, y_val = _holdout(X, y, estimator.seed, classify)
    if not classify:
        return FitData(X, y, None, X_val, y_val, None, None)
    n_classes = max(2, int(y.max()) + 1, int(y_val.max()) + 1 if y_val is not None and len(y_val) else 0)
    if not estimator.balance_classes:
        return FitData(X, y, None, X_val, y_val, None, n_classes)
    # scikit-learn's "balanced": rows / (classes * rows of the class), from the training rows' counts.
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return FitData(X, y, weights[y], X_val, y_val, None if y_val is None else weights[y_val], n_classes)


def _holdout(X: Any, y: Any, seed: int, stratify: bool) -> tuple[Any, Any, Any, Any]:
    """10% of the rows (at least one) for validation, stratified where every class can spare a row."""
    from sklearn.model_selection import train_test_split

    if len(y) < 2:
        raise ValueError("early stopping needs at least 2 training rows to hold some out for validation")
    size = max(1, round(0.1 * len(y)))
    try:
        return train_test_split(X, y, test_size=size, random_state=seed, stratify=y if stratify else None)
    except ValueError:  # a class with one row, or fewer validation rows than classes
        return train_test_split(X, y, test_size=size, random_state=seed)
