"""Greedy ensemble selection (Caruana et al., 2004) and the weighted-average model it produces.

`select` starts from the best single model and, for a number of rounds, adds (with replacement) the
member whose inclusion most improves the averaged validation predictions; the weights are how often
each member was picked, and the round with the best score wins. It runs on the validation (or
out-of-fold) predictions every trial stored, all for the same rows, so it needs no refitting.

`EnsembleModel` averages its members' class probabilities (classification) or predictions
(regression) with those weights; it answers like a `TrainedModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from microlearn_grpc.core.model_artifact import ManifestView

__all__ = ["EnsembleModel", "Selection", "select"]


@dataclass(frozen=True)
class Selection:
    weights: dict[int, float]  # member index -> weight (sums to 1)
    score: float  # the ensemble's validation score
    best_single: float  # the best member's own score
    rounds: int


def select(predictions: list[np.ndarray], score: Callable[[np.ndarray], float], *, maximize: bool,
           max_members: int = 5, rounds: int = 25) -> Selection:
    """Pick weights for `predictions` (each (n,) or (n, K), aligned) that optimize `score` of their average."""
    if not predictions:
        raise ValueError("no predictions to ensemble")
    sign = 1.0 if maximize else -1.0
    singles = [score(p) for p in predictions]
    first = int(np.argmax([sign * s for s in singles]))
    total = predictions[first].astype(np.float64).copy()
    counts = {first: 1}
    best_counts, best_score = dict(counts), singles[first]
    for round_ in range(1, rounds):
        n = sum(counts.values())
        candidates = [i for i in range(len(predictions)) if i in counts or len(counts) < max_members]
        scored = [(sign * score((total + predictions[i]) / (n + 1)), i) for i in candidates]
        gain, pick = max(scored)
        total += predictions[pick]
        counts[pick] = counts.get(pick, 0) + 1
        if gain > sign * best_score + 1e-12:
            best_counts, best_score = dict(counts), sign * gain
    n = sum(best_counts.values())
    return Selection(weights={i: c / n for i, c in sorted(best_counts.items())}, score=float(best_score),
                     best_single=float(singles[first]), rounds=rounds)


class EnsembleModel(ManifestView):
    """A weighted average of trained models (each with `predict`/`predict_proba` on raw frames)."""

    def __init__(self, manifest: dict[str, Any], members: list[Any], weights: list[float]) -> None:
        self.manifest = manifest
        self.members = members
        self.weights = np.asarray(weights, dtype=np.float64)

    def transform(self, frame: Any) -> Any:
        """Members transform for themselves: what a caller transforms first is the raw frame itself."""
        return frame

    @property
    def estimator(self) -> Any:
        """The `estimator` interface of a TrainedModel (predict_proba / predict on `transform`'s output)."""
        return _Averaged(self)

    def predict_proba(self, frame: Any) -> np.ndarray:
        return sum(w * np.asarray(m.predict_proba(frame), dtype=np.float64)
                   for w, m in zip(self.weights, self.members))

    def predict(self, frame: Any) -> np.ndarray:
        if self.task in ("binary", "multiclass"):
            codes = np.argmax(self.predict_proba(frame), axis=1)
            values = self.manifest.get("class_values")
            return np.asarray(values, dtype=object)[codes] if values is not None else codes
        return sum(w * np.asarray(m.predict(frame), dtype=np.float64) for w, m in zip(self.weights, self.members))


class _Averaged:
    def __init__(self, model: EnsembleModel) -> None:
        self._model = model

    def predict_proba(self, frame: Any) -> np.ndarray:
        return self._model.predict_proba(frame)

    def predict(self, frame: Any) -> np.ndarray:
        if self._model.task in ("binary", "multiclass"):
            return np.argmax(self._model.predict_proba(frame), axis=1)
        return self._model.predict(frame)
