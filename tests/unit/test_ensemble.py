"""Greedy ensemble selection on synthetic validation predictions."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn_grpc.core import ensemble
from microlearn_grpc.core import metrics as metric_lib


def _rmse(y):
    return lambda p: float(np.sqrt(np.mean((p - y) ** 2)))


def test_averaging_independent_errors_beats_the_best_single_model():
    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    models = [y + rng.normal(scale=s, size=y.size) for s in (0.50, 0.55, 0.6)] + [rng.normal(size=y.size)]
    chosen = ensemble.select(models, _rmse(y), maximize=False)
    assert chosen.score < chosen.best_single * 0.8
    assert chosen.weights.get(3, 0.0) < 0.1, "the useless model gets (almost) no weight"
    assert sum(chosen.weights.values()) == pytest.approx(1.0)


def test_a_dominant_model_stays_alone():
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    models = [y + rng.normal(scale=0.01, size=y.size), y + rng.normal(scale=2.0, size=y.size)]
    chosen = ensemble.select(models, _rmse(y), maximize=False)
    assert chosen.weights == {0: 1.0} and chosen.score == chosen.best_single


def test_classification_probabilities_with_a_metric_to_maximize():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 1500)
    onehot = np.eye(3)[y]

    def noisy(scale):
        logits = onehot * 2 + rng.normal(scale=scale, size=onehot.shape)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)
    models = [noisy(1.5), noisy(1.5), noisy(1.6)]
    score = lambda p: metric_lib.score("multiclass", y, proba=p, n_classes=3, only="log_loss")["log_loss"]  # noqa: E731
    chosen = ensemble.select(models, score, maximize=False, max_members=2)
    assert len(chosen.weights) <= 2 and chosen.score < chosen.best_single


def test_no_predictions_is_an_error():
    with pytest.raises(ValueError):
        ensemble.select([], lambda p: 0.0, maximize=True)


class _Member:
    def __init__(self, proba):
        self.proba = np.asarray(proba)

    def predict_proba(self, frame):
        return self.proba

    def predict(self, frame):
        return self.proba[:, 1]


def test_ensemble_model_averages_members_and_decodes_labels():
    model = ensemble.EnsembleModel({"task": "binary", "class_values": ["no", "yes"], "class_labels": ["no", "yes"]},
                                   [_Member([[0.9, 0.1], [0.4, 0.6]]), _Member([[0.7, 0.3], [0.8, 0.2]])], [0.5, 0.5])
    assert model.predict_proba(None) == pytest.approx(np.array([[0.8, 0.2], [0.6, 0.4]]))
    assert list(model.predict(None)) == ["no", "no"]
