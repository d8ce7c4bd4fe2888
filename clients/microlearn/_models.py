"""Trained models as the SDK returns them (`Model`), and the file side of downloading and loading
one: resume from a `.part` file, check the SHA-256 the server announced, rename into place."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from microlearn import _convert
from microlearn._errors import MicroLearnError
from microlearn._jobs import timestamp
from microlearn.v1 import common_pb2, trainer_pb2

__all__ = ["Model"]

PART_SUFFIX = ".part"
_CHUNK = 1 << 20
# A download reopens its stream at most twice: to resume a part file it only found once the
# server named the file, and to start over when a resumed part turns out not to match.
DOWNLOAD_ATTEMPTS = 3


def _plain(value: Any) -> Any:
    """JSON numbers arrive as floats; show 20 rather than 20.0 (the server reads both the same)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Model:
    """A trained model: what it was trained on and with, and how well it did.

    `task` is binary/multiclass/regression/clustering, `format` for example sklearn_pipeline,
    `metrics` the validation metrics (`score` is the one named by `metric`), `train_metrics` the
    same on the training rows. `feature_schema` and `diagnostics` (plot data: confusion matrix,
    ROC/PR and calibration curves, residuals, permutation importance) are only filled by `get_model`
    (lists omit them). `feature_importance` lists {feature, importance, importance_std, repeats}, most
    important first, measured on `importance_metric`; `evaluation` is the latest evaluation job's
    {job, dataset, rows, row_count, metrics} (None before any). `proto` is the Model message itself.
    """

    name: str
    id: str
    job: str
    dataset: str
    target: str
    estimator: str
    task: str
    metric: str
    metrics: dict[str, float]
    metrics_std: dict[str, float]
    train_metrics: dict[str, float]
    hyperparameters: dict[str, Any]
    class_labels: list[str]
    feature_schema: list[dict[str, Any]]
    format: str
    size_bytes: int
    sha256: str
    create_time: dt.datetime | None
    mlflow_run_id: str
    iterations: int
    best_iteration: int
    training_row_count: int
    fit_time_seconds: float
    device: str
    study: str
    trial_number: int
    labels: dict[str, str]
    feature_importance: list[dict[str, Any]]
    importance_metric: str
    evaluation: dict[str, Any] | None
    diagnostics: dict[str, Any] = dataclasses.field(repr=False)
    proto: trainer_pb2.Model = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, model: trainer_pb2.Model) -> Model:
        return cls(
            name=model.name, id=model.id, job=model.job, dataset=model.dataset, target=model.target,
            estimator=model.estimator, task=_convert.task_name(model.task), metric=model.metric,
            metrics=dict(model.metrics), metrics_std=dict(model.metrics_std), train_metrics=dict(model.train_metrics),
            hyperparameters={k: _plain(json_format.MessageToDict(v)) for k, v in model.hyperparameters.values.items()},
            class_labels=list(model.class_labels),
            feature_schema=[
                {"name": c.name, "type": _convert.column_type_label(c.type), "physical_type": c.physical_type,
                 "categories": list(c.categories)}
                for c in model.feature_schema.columns
            ],
            format=_convert.enum_label(model.format, common_pb2.ModelFormat, "MODEL_FORMAT_"),
            size_bytes=model.size_bytes, sha256=model.sha256, create_time=timestamp(model, "create_time"),
            mlflow_run_id=model.mlflow_run_id, iterations=model.iterations, best_iteration=model.best_iteration,
            training_row_count=model.training_row_count, fit_time_seconds=model.fit_time_seconds,
            device=model.device, study=model.study, trial_number=model.trial_number, labels=dict(model.labels),
            feature_importance=[{"feature": f.feature, "importance": f.importance, "importance_std": f.importance_std,
                                 "repeats": f.repeats} for f in model.feature_importance],
            importance_metric=model.importance_metric,
            evaluation=({"job": model.evaluation.job, "dataset": model.evaluation.dataset,
                         "rows": model.evaluation.rows, "row_count": model.evaluation.row_count,
                         "metrics": dict(model.evaluation.metrics), "evaluate_time": timestamp(model.evaluation,
                                                                                                "evaluate_time")}
                        if model.HasField("evaluation") else None),
            diagnostics=_plain(json_format.MessageToDict(model.diagnostics)) if model.HasField("diagnostics") else {},
            proto=model,
        )

    @property
    def score(self) -> float | None:
        """The validation value of `metric`."""
        return self.metrics.get(self.metric)

    def to_dict(self) -> dict[str, Any]:
        """The model as the API spells it, JSON-ready."""
        return _convert.to_dict(self.proto)


def list_models_request(
    dataset: str | None, estimator: str | None, task: str | None, labels: Mapping[str, str] | None,
    order_by: str | None, page_size: int,
) -> trainer_pb2.ListModelsRequest:
    return trainer_pb2.ListModelsRequest(
        page_size=page_size, dataset=dataset or "", estimator=estimator or "", task=_convert.task_type(task),
        labels=_convert.string_map(labels), order_by=order_by or "")


def evaluate_request(model: Any, dataset: str | None, metric: str | None,
                     request_id: str | None) -> trainer_pb2.EvaluateModelRequest:
    return trainer_pb2.EvaluateModelRequest(model=getattr(model, "name", model), dataset=dataset or "",
                                            metric=metric or "", request_id=request_id or "")


def model_ref(model: str | os.PathLike[str] | Model) -> str | Path:
    """What `load_model` was given: a model name (str) or a local artifact (Path)."""
    if isinstance(model, Model):
        return model.name
    if isinstance(model, os.PathLike):
        return Path(model)
    if not isinstance(model, str):
        raise TypeError(f"model must be a name, a path or a Model, not {type(model).__name__}")
    if not model.startswith("models/") and Path(model).is_file():
        return Path(model)
    return model


def model_id_of_file(path: Path) -> str:
    """Downloads are named by model id (`ID.tar`): the id a local artifact was downloaded as."""
    return path.name.split(".", 1)[0]


def _integrity_error(message: str) -> MicroLearnError:
    # A local check failing reads like the server's own DATA_LOSS for an artifact that fails it.
    return MicroLearnError(grpc.StatusCode.DATA_LOSS, message)


def load_artifact(path: Path, sha256: str) -> Any:
    """Checks the artifact's SHA-256 and loads it (a `TrainedModel`: `predict`, `predict_proba`).

    The platform's HMAC key stays on the server; the SHA-256 the server recorded is what vouches
    for these bytes here, so only load artifacts whose digest came from your MicroLearn server.
    """
    from microlearn_grpc.core.model_artifact import ArtifactVerificationError, TrainedModel

    try:
        return TrainedModel.load(path, Path(tempfile.gettempdir()), key=None, sha256=sha256, signature=None)
    except ArtifactVerificationError as exc:
        raise _integrity_error(f"{path} cannot be loaded: {exc}") from None


class ModelDownload:
    """One model download into a file, driven by a client over DownloadModel streams.

    `path` is a file, or an existing directory (the file then takes the server's name). Bytes go
    to `TARGET.part`; an interrupted download leaves it behind and the next one resumes from its
    size. The target appears, by an atomic rename, only once size and SHA-256 match the metadata.
    """

    def __init__(self, name: str, path: str | os.PathLike[str] | None, progress: bool) -> None:
        self.name = name
        self._path = Path.cwd() if path is None else Path(path)
        self._progress = progress
        self.offset = 0 if self._path.is_dir() else _size(_part(self._path))
        self.metadata: trainer_pb2.DownloadModelMetadata | None = None
        self.target: Path | None = None
        self._file: Any = None
        self._digest: Any = None
        self._bar: Any = None

    def request(self) -> trainer_pb2.DownloadModelRequest:
        return trainer_pb2.DownloadModelRequest(name=self.name, offset=self.offset)

    def begin(self, metadata: trainer_pb2.DownloadModelMetadata) -> bool:
        """Takes the stream's first message. False: reopen the stream at the new `offset`."""
        # The server's file name is used as a name only, never as a path.
        target = self._path / Path(metadata.filename or f"{metadata.model.id}.tar").name if self._path.is_dir() \
            else self._path
        part = _part(target)
        have = _size(part)
        if have > metadata.size_bytes:
            part.unlink()
            have = 0
        if have != self.offset or metadata.offset != self.offset:
            self.offset = have
            return False
        self.metadata, self.target = metadata, target
        self._digest = hashlib.sha256()
        if have:
            with part.open("rb") as f:
                while block := f.read(_CHUNK):
                    self._digest.update(block)
        self._file = part.open("ab" if have else "wb")
        self._bar = _convert.progress_bar(metadata.size_bytes, f"downloading {target.name}", self._progress,
                                          initial=have)
        return True

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._digest.update(chunk)
        self._bar.update(len(chunk))

    def close(self) -> None:
        """Closes the part file (kept for a later resume); safe to call more than once."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())  # what is on disk is what a resume will count
            self._file.close()
            self._file = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def finish(self) -> Path | None:
        """After the last chunk: the complete target, or None to start over from offset 0 (the
        part file it resumed was not from this artifact). Raises if fresh bytes fail the check."""
        assert self.metadata is not None and self.target is not None
        self.close()
        part = _part(self.target)
        size, digest = _size(part), self._digest.hexdigest()
        if size == self.metadata.size_bytes and digest == self.metadata.sha256:
            os.replace(part, self.target)
            return self.target
        part.unlink(missing_ok=True)
        if self.offset:
            self.offset = 0
            return None
        raise _integrity_error(f"the download of {self.name} is corrupt: {size} bytes with SHA-256 {digest}, "
                               f"expected {self.metadata.size_bytes} bytes with SHA-256 {self.metadata.sha256}")

    def gave_up(self) -> MicroLearnError:
        return _integrity_error(f"the download of {self.name} did not complete in {DOWNLOAD_ATTEMPTS} attempts")


def _part(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
