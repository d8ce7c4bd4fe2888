"""The synchronous MicroLearn client: one channel, typed errors, plain Python in and out."""

from __future__ import annotations

import dataclasses
import operator
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from microlearn import _config, _convert, _jobs, _models
from microlearn._deploy import DeployMixin
from microlearn._studies import StudyMixin
from microlearn._pipelines import PipelineMixin
from microlearn._errors import translate_rpc_errors
from microlearn._jobs import Job, JobEvent
from microlearn._models import Model
from microlearn.v1 import (
    dataset_pb2,
    dataset_pb2_grpc,
    selector_pb2,
    selector_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)

if TYPE_CHECKING:
    import pandas

    from microlearn_grpc.core.model_artifact import TrainedModel

__all__ = ["Client", "UploadResult"]

_Response = TypeVar("_Response")
_Item = TypeVar("_Item")


@dataclasses.dataclass(frozen=True, slots=True)
class UploadResult:
    """What `upload_dataset` returns.

    `dataset` is the stored version. `deduplicated` is True when the bytes matched the
    latest version of that name, so `dataset` is that existing version and nothing new was stored.
    """

    dataset: dataset_pb2.Dataset
    deduplicated: bool


class Client(DeployMixin, StudyMixin, PipelineMixin):
    """A synchronous client for MicroLearn's datasets, estimators, training jobs and models.

    >>> with Client() as ml:                      # $MICROLEARN_ADDRESS, $MICROLEARN_TOKEN
    ...     result = ml.upload_dataset("iris.csv", progress=True)
    ...     print(result.dataset.name, result.dataset.version)
    ...     for ds in ml.list_datasets(latest_only=True):
    ...         print(ds.display_name, ds.row_count)
    ...     job = ml.train("iris", "species", estimator="lightgbm_classifier").wait()
    ...     print(job.metrics, ml.load_model(job.model_name).predict(frame))

    Wherever a method takes `ref`, it accepts `datasets/{id}`, an id, `NAME` (latest version)
    or `NAME@VERSION`; the server resolves it. Failed calls raise `MicroLearnError` subclasses.

    `timeout` is the deadline in seconds for each call (None: no deadline). Uploads run
    without one, since their length grows with the file. `channel` lets you bring your own
    channel (TLS, interceptors, tests); the client then does not close it.
    """

    def __init__(
        self,
        address: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = _config.DEFAULT_TIMEOUT,
        channel: grpc.Channel | None = None,
    ) -> None:
        self.address = _config.resolve_address(address)
        self.timeout = timeout
        self._metadata = _config.call_metadata(_config.resolve_token(token)) or None
        self._owns_channel = channel is None
        self._channel = channel or grpc.insecure_channel(
            self.address, options=_config.channel_options()
        )
        self._stub = dataset_pb2_grpc.DatasetServiceStub(self._channel)
        self._selector = selector_pb2_grpc.SelectorServiceStub(self._channel)
        self._trainer = trainer_pb2_grpc.TrainerServiceStub(self._channel)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(address={self.address!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel (unless it was passed in). Safe to call twice."""
        if self._owns_channel:
            self._channel.close()

    def _call(self, method: Callable[..., _Response], request: Any) -> _Response:
        with translate_rpc_errors():
            return method(request, timeout=self.timeout, metadata=self._metadata)

    def _paginate(
        self,
        method: Callable[..., Any],
        make_request: Callable[[str], Any],
        items: Callable[[Any], Iterable[_Item]] = operator.attrgetter("datasets"),
    ) -> Iterator[_Item]:
        token = ""
        while True:
            response = self._call(method, make_request(token))
            yield from items(response)
            token = response.next_page_token
            if not token:
                return

    # --- estimators ------------------------------------------------------------------------

    def list_estimators(
        self, task: str | None = None, *, include_unavailable: bool = False
    ) -> list[selector_pb2.Estimator]:
        """The estimator registry, cheapest first; `task` is binary, multiclass, regression or clustering."""
        request = _convert.estimators_request(task, include_unavailable)
        found: list[selector_pb2.Estimator] = []
        while True:
            response = self._call(self._selector.ListEstimators, request)
            found.extend(response.estimators)
            if not response.next_page_token:
                return found
            request.page_token = response.next_page_token

    def get_estimator(self, name: str) -> selector_pb2.Estimator:
        """One estimator (`random_forest_classifier` or `estimators/random_forest_classifier`)."""
        request = selector_pb2.GetEstimatorRequest(name=name)
        return self._call(self._selector.GetEstimator, request).estimator

    # --- datasets --------------------------------------------------------------------------

    def upload_dataset(
        self,
        source: str | os.PathLike[str] | pandas.DataFrame,
        *,
        name: str | None = None,
        format: str | None = None,
        column_hints: Mapping[str, str] | None = None,
        description: str = "",
        labels: Mapping[str, str] | None = None,
        progress: bool = False,
        chunk_size: int = 1 << 20,
    ) -> UploadResult:
        """Uploads a CSV/Parquet/JSON-lines file (optionally gzip/zip) or a DataFrame.

        `name` defaults to the file name without its extensions (`iris.csv.gz` -> `iris`); a
        DataFrame needs one and is sent as Parquet. `format` ("csv", "parquet", "jsonl")
        defaults to detection from the content. `column_hints` maps column names to
        numeric/categorical/boolean/datetime/text/id. The file is streamed in `chunk_size`
        pieces after a first pass computes its size and SHA-256, which the server checks.
        `progress=True` shows a tqdm bar on stderr.
        """
        _convert.check_chunk_size(chunk_size)
        with _convert.upload_plan(
            source,
            name=name,
            format=format,
            column_hints=column_hints,
            description=description,
            labels=labels,
        ) as plan:
            bar = _convert.progress_bar(plan.size, f"uploading {plan.metadata.display_name}", progress)
            failure = _convert.ReadFailure()
            requests = _convert.upload_requests(plan, chunk_size, bar.update, failure)
            try:
                with translate_rpc_errors():
                    try:
                        response = self._stub.UploadDataset(requests, metadata=self._metadata)
                    except grpc.RpcError:
                        failure.reraise()
                        raise
            finally:
                bar.close()
        return UploadResult(dataset=response.dataset, deduplicated=response.deduplicated)

    def get_dataset(self, ref: str) -> dataset_pb2.Dataset:
        """One dataset version with its full profile."""
        request = dataset_pb2.GetDatasetRequest(name=ref)
        return self._call(self._stub.GetDataset, request).dataset

    def list_datasets(
        self, *, prefix: str = "", latest_only: bool = False, page_size: int = 50
    ) -> Iterator[dataset_pb2.Dataset]:
        """All dataset versions, newest first (without profiles).

        Pages are fetched lazily as the iterator advances; `page_size` is per request.
        """
        return self._paginate(
            self._stub.ListDatasets,
            lambda token: _convert.list_request(prefix, latest_only, page_size, token),
        )

    def list_dataset_versions(
        self, display_name: str, *, page_size: int = 50
    ) -> Iterator[dataset_pb2.Dataset]:
        """The versions of one dataset name, newest first (without profiles), fetched lazily."""
        return self._paginate(
            self._stub.ListDatasetVersions,
            lambda token: dataset_pb2.ListDatasetVersionsRequest(
                display_name=display_name, page_size=page_size, page_token=token
            ),
        )

    def _sample_rows(
        self, ref: str, n: int, random: bool, seed: int, columns: Sequence[str] | None
    ) -> dataset_pb2.SampleDatasetRowsResponse:
        request = _convert.sample_request(ref, n, random, seed, columns)
        return self._call(self._stub.SampleDatasetRows, request)

    def sample_dataset(
        self,
        ref: str,
        n: int = 10,
        *,
        random: bool = False,
        seed: int = 0,
        columns: Sequence[str] | None = None,
    ) -> pandas.DataFrame:
        """The first `n` rows (or `n` random rows, repeatable by `seed`) as a DataFrame.

        Values arrive as JSON: numbers are floats, datetimes ISO 8601 strings, missing None.
        """
        return _convert.sample_frame(self._sample_rows(ref, n, random, seed, columns))

    def delete_dataset(self, ref: str, *, force: bool = False) -> str:
        """Deletes one version (`datasets/{id}`, an id or `NAME@VERSION`); returns its resource name.

        Raises FailedPrecondition while something references it, unless `force`.
        """
        request = dataset_pb2.DeleteDatasetRequest(name=ref, force=force)
        return self._call(self._stub.DeleteDataset, request).name

    def prepare_dataset(
        self,
        ref: str,
        recipe: str | Mapping[str, Any] | os.PathLike[str],
        *,
        output_name: str | None = None,
        validate_only: bool = False,
    ) -> list[dataset_pb2.Dataset]:
        """Applies a recipe and returns the stored result(s): one dataset, or train and test.

        `recipe` is YAML/JSON text (str), a dict (sent as JSON) or a path to a recipe file
        (`pathlib.Path`). With `validate_only` the recipe is only checked and [] is returned.
        """
        request = _convert.prepare_request(ref, recipe, output_name, validate_only)
        return list(self._call(self._stub.PrepareDataset, request).datasets)

    # --- training jobs ---------------------------------------------------------------------

    def _stream(
        self, method: Callable[..., Any], request: Any, timeout: float | None, convert: Callable[[Any], _Item]
    ) -> Iterator[_Item]:
        """A server stream as an iterator; leaving it early (break, close) cancels the call."""
        call = method(request, timeout=timeout, metadata=self._metadata)
        try:
            with translate_rpc_errors():
                for response in call:
                    yield convert(response)
        finally:
            call.cancel()

    def train(
        self,
        dataset: str,
        target: str | None = None,
        *,
        estimator: str,
        hyperparameters: Mapping[str, Any] | None = None,
        task: str | None = None,
        metric: str | None = None,
        validation: Mapping[str, Any] | None = None,
        max_iterations: int = 0,
        early_stopping: bool | Mapping[str, Any] | None = None,
        seed: int | None = None,
        use_gpu: bool | None = None,
        balance_classes: bool = False,
        feature_columns: Sequence[str] = (),
        ignore_columns: Sequence[str] = (),
        experiment: str | None = None,
        labels: Mapping[str, str] | None = None,
        timeout_seconds: int = 0,
        request_id: str | None = None,
        importance: bool = False,
    ) -> Job:
        """Starts training `estimator` on `dataset` to predict `target`; returns the Job at once.

        `dataset` is a ref (`NAME`, `NAME@VERSION`, `datasets/ID`); the server pins it to a
        version. `hyperparameters` are JSON-like values (unknown names or out-of-range values are
        refused with InvalidArgument); `task` (binary, multiclass, regression, clustering) and
        `metric` default to what the data suggests. `validation` is one of ``{"holdout": 0.2}``,
        ``{"k_fold": 5}`` or ``{"dataset": "churn-test"}``, optionally with ``stratify``,
        ``group_column`` or ``time_column``. `max_iterations` caps boosting rounds or epochs (0:
        the estimator's default); `early_stopping` is True or ``{"patience": 10, "min_delta": 0}``.
        `use_gpu` True requires a GPU worker, False forbids one, None uses one when there is.
        Retrying with the same `request_id` returns the first call's job instead of a new one.
        `importance=True` also measures permutation feature importance before the job ends (it
        adds up to max(1 s, 25% of the fit)); otherwise `evaluate_model` measures it later, and
        registering the model as a version starts that by itself.
        """
        request = _jobs.training_request(
            dataset,
            target=target,
            estimator=estimator,
            hyperparameters=hyperparameters,
            task=task,
            metric=metric,
            validation=validation,
            max_iterations=max_iterations,
            early_stopping=early_stopping,
            seed=seed,
            use_gpu=use_gpu,
            balance_classes=balance_classes,
            feature_columns=feature_columns,
            ignore_columns=ignore_columns,
            experiment=experiment,
            labels=labels,
            timeout_seconds=timeout_seconds,
            request_id=request_id,
            importance=importance,
        )
        response = self._call(self._trainer.StartTraining, request)
        return Job(self, response.job, response.spec)

    def _fetch_job(self, name: str) -> tuple[Any, trainer_pb2.TrainingSpec | None]:
        response = self._call(self._trainer.GetJob, trainer_pb2.GetJobRequest(name=name))
        return response.job, _jobs.spec_of(response)

    def get_job(self, name: str) -> Job:
        """One job (`jobs/ID` or the id), with its resolved spec for training jobs."""
        return Job(self, *self._fetch_job(name))

    def list_jobs(
        self,
        *,
        states: Sequence[str] | None = None,
        dataset: str | None = None,
        estimator: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int = 50,
    ) -> Iterator[Job]:
        """Jobs, newest first, fetched a page at a time as the iterator advances.

        `states` such as ``["pending", "running"]``; `dataset` a ref (`NAME` means every version);
        `labels` must all match. Filters combine with AND.
        """
        request = _jobs.list_jobs_request(states, dataset, estimator, labels, page_size)
        return self._paginate(
            self._trainer.ListJobs,
            lambda token: _jobs.with_page_token(request, token),
            lambda response: _jobs.jobs_of(self, Job, response),
        )

    def _cancel_job_message(self, name: str, reason: str) -> Any:
        request = trainer_pb2.CancelJobRequest(name=name, reason=reason)
        return self._call(self._trainer.CancelJob, request).job

    def cancel_job(self, name: str, reason: str = "") -> Job:
        """Asks a job to stop: a pending one ends CANCELLED at once, a running one within seconds
        (still RUNNING in the returned Job; `wait()` for the end). An ended job is left as it is."""
        return Job(self, self._cancel_job_message(name, reason))

    def job_events(
        self,
        name: str,
        *,
        after: str | None = None,
        replay_only: bool = False,
        min_log_level: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[JobEvent]:
        """A job's events: its history, then live events until it ends (the last is its final state).

        `after` resumes after an event's `sequence`; `replay_only` stops after the history;
        `min_log_level` (INFO, WARNING, ERROR) drops lesser log lines. `timeout` bounds the whole
        stream (default: none, since a job may run for hours).
        """
        request = _jobs.events_request(name, after, replay_only, min_log_level)
        return self._stream(
            self._trainer.StreamJobEvents, request, timeout, lambda response: JobEvent.from_proto(response.event)
        )

    # --- models ----------------------------------------------------------------------------

    def list_models(
        self,
        *,
        dataset: str | None = None,
        estimator: str | None = None,
        task: str | None = None,
        labels: Mapping[str, str] | None = None,
        order_by: str | None = None,
        page_size: int = 50,
    ) -> Iterator[Model]:
        """Trained models (without feature schemas), fetched a page at a time.

        `order_by` is ``create_time desc`` (the default), ``create_time asc``, or ``metrics.NAME``
        with an optional `` desc``, e.g. ``metrics.roc_auc desc`` (models lacking it sort last).
        """
        request = _models.list_models_request(dataset, estimator, task, labels, order_by, page_size)
        return self._paginate(
            self._trainer.ListModels,
            lambda token: _jobs.with_page_token(request, token),
            lambda response: [Model.from_proto(m) for m in response.models],
        )

    def get_model(self, name: str) -> Model:
        """One model (`models/ID` or the id), with its feature schema."""
        response = self._call(self._trainer.GetModel, trainer_pb2.GetModelRequest(name=name))
        return Model.from_proto(response.model)

    def compare_models(self, models: Sequence[str | Model], metrics: Sequence[str] = ()) -> Any:
        """Side by side: the models' validation metrics (± std over folds), fit time, size, the best model per
        metric and each model's rank on the first metric column (a `CompareModelsResponse`; `rows` are in
        the order given)."""
        names = [m.name if isinstance(m, Model) else m for m in models]
        request = trainer_pb2.CompareModelsRequest(models=names, metrics=list(metrics))
        return self._call(self._trainer.CompareModels, request)

    def evaluate_model(self, model: str | Model, *, dataset: str | None = None, metric: str | None = None,
                       request_id: str | None = None, wait: bool = False, timeout: float | None = None) -> Job:
        """Starts an evaluation job: the model's metrics, plot data and permutation importance on `dataset`
        (a ref; default: the model's own validation or out-of-fold rows), stored with the model. With
        `wait`, returns once the job ended (raising JobFailed/JobCancelled unless it SUCCEEDED)."""
        job = Job(self, self._call(self._trainer.EvaluateModel, _models.evaluate_request(model, dataset, metric,
                                                                                          request_id)).job)
        return job.wait(timeout) if wait else job

    def model_report(self, model: str | Model, path: str | os.PathLike[str]) -> Path:
        """Writes the model's evaluation report: self-contained HTML (`.html`, charts as embedded PNGs) or
        one PNG sheet (`.png`) of its metrics, confusion matrix, ROC/PR and calibration curves, residuals
        and permutation importance, whichever apply. Returns the path."""
        from microlearn._report import write_report

        return write_report(self.get_model(model.name if isinstance(model, Model) else model), Path(path))

    def delete_model(self, name: str) -> str:
        """Deletes a model and its artifact; returns its name. FailedPrecondition while deployed."""
        return self._call(self._trainer.DeleteModel, trainer_pb2.DeleteModelRequest(name=name)).name

    def _download(
        self, name: str, path: str | os.PathLike[str] | None, progress: bool
    ) -> _models.ModelDownload:
        download = _models.ModelDownload(name, path, progress)
        for _ in range(_models.DOWNLOAD_ATTEMPTS):
            # No deadline: the length of a download grows with the artifact.
            responses = self._trainer.DownloadModel(download.request(), metadata=self._metadata)
            try:
                with translate_rpc_errors():
                    if not download.begin(next(responses).metadata):
                        continue
                    for response in responses:
                        download.write(response.chunk)
            finally:
                responses.cancel()
                download.close()
            if download.finish() is not None:
                return download
        raise download.gave_up()

    def download_model(
        self, name: str, path: str | os.PathLike[str] | None = None, *, progress: bool = False
    ) -> Path:
        """Downloads a model's artifact; returns the file's path.

        `path` is a file, or a directory to put the server's file name (`ID.tar`) in; default
        the current directory. Bytes stream into `PATH.part`, which a later call resumes from;
        the file appears only complete, with the SHA-256 the server announced. A mismatch raises
        MicroLearnError (DATA_LOSS). `progress=True` shows a tqdm bar on stderr.
        """
        target = self._download(name, path, progress).target
        assert target is not None
        return target

    def load_model(
        self, model: str | os.PathLike[str] | Model, *, sha256: str | None = None
    ) -> TrainedModel:
        """A model ready to `predict(frame)` / `predict_proba(frame)` on raw rows (a DataFrame).

        `model` is a name (`models/ID` or the id; downloaded to a temporary directory), a Model,
        or the path of a downloaded artifact, checked against `sha256` or else against the
        SHA-256 the server records for the model its file name carries (`ID.tar`). Loading
        unpickles the preprocessing pipeline, so the digest must match before anything is loaded.
        """
        ref = _models.model_ref(model)
        if isinstance(ref, Path):
            expected = sha256 or self.get_model(_models.model_id_of_file(ref)).sha256
            return _models.load_artifact(ref, expected)
        with tempfile.TemporaryDirectory(prefix="microlearn-model-") as tmp:
            download = self._download(ref, tmp, False)
            assert download.target is not None and download.metadata is not None
            return _models.load_artifact(download.target, sha256 or download.metadata.sha256)
