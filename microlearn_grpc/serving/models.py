"""Models held in memory by a serving process: each trained model is fetched once, verified
(SHA-256 + HMAC, by `TrainedModel.load`) before anything in it is unpickled, and kept warm.

Its preprocessing pipeline is also compiled to NumPy (`core.fast_transform`): the compiled transform
answers requests only after it reproduced the pipeline's own output on sample rows (known and unseen
categories, missing values) at load; otherwise requests go through scikit-learn as before.

Concurrent requests for the same model share one load. A load that fails verification raises
`errors.DataLoss` and leaves nothing cached, so the next routing change tries again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from microlearn_grpc import errors
from microlearn_grpc.serving.inputs import InputSchema, to_frame
from microlearn_grpc.storage.artifacts import ArtifactStore
from microlearn_grpc.storage.models_repo import ModelRecord, ModelRepository

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "ModelCache", "Prediction"]


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One batch's output: `values` (labels as strings, numbers or cluster ids) and, for
    classifiers, `probabilities` (rows × classes, in `class_labels` order)."""

    values: np.ndarray
    probabilities: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    record: ModelRecord
    trained: Any  # core.model_artifact.TrainedModel
    schema: InputSchema
    class_labels: tuple[str, ...]
    fast: Any = None  # core.fast_transform.FastTransform, checked against the pipeline at load; None: use it

    @property
    def task(self) -> str:
        return self.record.task

    @property
    def is_classifier(self) -> bool:
        return self.record.task in ("binary", "multiclass")

    def predict(self, values: dict[str, np.ndarray], rows: int, *, probabilities: bool) -> Prediction:
        """Decoded feature arrays (`serving.inputs`) in, predictions out. Transform once, then predict:
        for classifiers the label is the most probable class, so one `predict_proba` gives both."""
        if self.fast is not None:
            matrix = self.fast.transform(values, rows)
        else:
            matrix = self.trained.transform(to_frame(values, self.schema))
        estimator = self.trained.estimator
        if self.is_classifier:
            proba = np.asarray(estimator.predict_proba(matrix), dtype="float64")
            labels = np.asarray(self.class_labels, dtype=object)[np.argmax(proba, axis=1)]
            return Prediction(labels, proba if probabilities else None)
        raw = np.asarray(estimator.predict(matrix))
        if self.record.task == "clustering":
            return Prediction(raw.astype("int64"), None)
        return Prediction(raw.astype("float64"), None)


class ModelCache:
    def __init__(self, models: ModelRepository, artifacts: ArtifactStore, *, key: bytes, work_dir: Path) -> None:
        self._models = models
        self._artifacts = artifacts
        self._key = key
        self._work_dir = work_dir
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, asyncio.Future[LoadedModel]] = {}

    def peek(self, model_id: str) -> LoadedModel | None:
        return self._loaded.get(model_id)

    @property
    def loaded_ids(self) -> set[str]:
        return set(self._loaded)

    async def get(self, model_id: str) -> LoadedModel:
        found = self._loaded.get(model_id)
        if found is not None:
            return found
        pending = self._loading.get(model_id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(model_id))
            self._loading[model_id] = pending
            pending.add_done_callback(lambda _f: self._loading.pop(model_id, None))
        return await asyncio.shield(pending)

    def retain(self, model_ids: set[str]) -> None:
        """Drop models no deployment uses any more."""
        for model_id in list(self._loaded):
            if model_id not in model_ids:
                del self._loaded[model_id]

    async def _load(self, model_id: str) -> LoadedModel:
        from microlearn_grpc.core.model_artifact import ArtifactVerificationError, TrainedModel

        record = await self._models.get(model_id)
        if record is None:
            raise errors.NotFound(f"model models/{model_id} does not exist")
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work_dir, prefix="serve-") as tmp:
            # A private copy: the bytes verified are the bytes loaded, whatever happens to the store meanwhile.
            path = Path(tmp) / "model.tar"
            try:
                await self._artifacts.get_to_file(record.artifact_key, path)
            except Exception as exc:  # noqa: BLE001 - any store failure means this model cannot serve
                raise errors.DataLoss(f"the artifact of models/{model_id} cannot be read: {exc}") from None
            try:
                trained = await asyncio.to_thread(TrainedModel.load, path, Path(tmp), key=self._key,
                                                  sha256=record.sha256, signature=record.hmac)
            except ArtifactVerificationError as exc:
                log.error("refusing to load models/%s: %s", model_id, exc)
                raise errors.DataLoss(f"models/{model_id} failed verification and was not loaded: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - e.g. a library version that cannot read it
                log.exception("cannot load models/%s", model_id)
                raise errors.DataLoss(f"models/{model_id} could not be loaded: {type(exc).__name__}: {exc}") from None
        schema = InputSchema.from_feature_schema(trained.manifest.get("feature_schema") or [])
        fast = await asyncio.to_thread(compiled_transform, trained, schema, model_id)
        loaded = LoadedModel(record=record, trained=trained, schema=schema, class_labels=tuple(trained.class_labels),
                             fast=fast)
        self._loaded[model_id] = loaded
        log.info("loaded models/%s (%s; preprocessing %s)", model_id, record.estimator,
                 "compiled" if fast is not None else "through scikit-learn")
        return loaded


def compiled_transform(trained: Any, schema: InputSchema, model_id: str) -> Any:
    """The model's preprocessor compiled to NumPy, if it reproduces the pipeline on sample rows; else None."""
    from microlearn_grpc.core.fast_transform import compile_preprocessor, sample_values

    preprocessor = getattr(trained, "preprocessor", None)
    if preprocessor is None:  # an ensemble: its members transform for themselves
        return None
    try:
        fast = compile_preprocessor(preprocessor)
        if fast is None:
            return None
        categories = {name: sorted(known) for name, known in schema.categories.items()}
        values = sample_values(schema.columns, categories)
        problem = fast.check(preprocessor, values, len(next(iter(values.values()))))
    except Exception as exc:  # noqa: BLE001 - the scikit-learn path still serves
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        log.warning("models/%s: compiled preprocessing disagrees with the pipeline (%s); serving through "
                    "scikit-learn", model_id, problem)
        return None
    return fast
