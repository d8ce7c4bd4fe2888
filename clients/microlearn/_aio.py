"""The asyncio MicroLearn client (grpc.aio): the same methods as `Client`, as coroutines."""

from __future__ import annotations

import asyncio
import operator
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import grpc.aio

from microlearn import _config, _convert, _jobs, _models
from microlearn._deploy import AsyncDeployMixin
from microlearn._studies import AsyncStudyMixin
from microlearn._pipelines import AsyncPipelineMixin
from microlearn._client import UploadResult
from microlearn._errors import translate_rpc_errors
from microlearn._jobs import AsyncJob, JobEvent
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

__all__ = ["AsyncClient"]

_Item = TypeVar("_Item")


async def _upload_requests(
    plan: _convert.UploadPlan,
    chunk_size: int,
    on_chunk: Callable[[int], object],
    failure: _convert.ReadFailure,
) -> AsyncIterator[dataset_pb2.UploadDatasetRequest]:
    """Metadata first, then the file in chunks; disk reads run in a thread, off the loop."""
    yield dataset_pb2.UploadDatasetRequest(metadata=plan.metadata)
    try:
        f = await asyncio.to_thread(open, plan.path, "rb")
        try:
            while chunk := await asyncio.to_thread(f.read, chunk_size):
                yield dataset_pb2.UploadDatasetRequest(chunk=chunk)
                on_chunk(len(chunk))
        finally:
            f.close()
    except Exception as error:
        failure.error = error
        raise


class AsyncClient(AsyncDeployMixin, AsyncStudyMixin, AsyncPipelineMixin):
    """An asyncio client for MicroLearn; the same methods as `Client`, as coroutines.

    >>> async with AsyncClient() as ml:
    ...     result = await ml.upload_dataset("iris.csv")
    ...     async for ds in ml.list_datasets(prefix="iris"):
    ...         print(ds.name)
    ...     job = await ml.train("iris", "species", estimator="lightgbm_classifier")
    ...     async for event in job.events():
    ...         print(event.kind, event.values or event.message)
    ...     model = await (await job.wait()).model()

    The channel is opened on first use, inside the running event loop.
    """

    def __init__(
        self,
        address: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = _config.DEFAULT_TIMEOUT,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.address = _config.resolve_address(address)
        self.timeout = timeout
        self._metadata = _config.call_metadata(_config.resolve_token(token)) or None
        self._owns_channel = channel is None
        self._channel = channel
        self._stub_instance: dataset_pb2_grpc.DatasetServiceStub | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(address={self.address!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel (unless it was passed in). Safe to call twice."""
        if self._owns_channel and self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub_instance = None

    @property
    def _selector(self) -> selector_pb2_grpc.SelectorServiceStub:
        self._stub  # opens the channel on first use
        assert self._channel is not None
        return selector_pb2_grpc.SelectorServiceStub(self._channel)

    @property
    def _trainer(self) -> trainer_pb2_grpc.TrainerServiceStub:
        self._stub  # opens the channel on first use
        assert self._channel is not None
        return trainer_pb2_grpc.TrainerServiceStub(self._channel)

    async def list_estimators(
        self, task: str | None = None, *, include_unavailable: bool = False
    ) -> list[selector_pb2.Estimator]:
        """See `Client.list_estimators`."""
        request = _convert.estimators_request(task, include_unavailable)
        found: list[selector_pb2.Estimator] = []
        while True:
            response = await self._call(self._selector.ListEstimators, request)
            found.extend(response.estimators)
            if not response.next_page_token:
                return found
            request.page_token = response.next_page_token

    async def compare_models(self, models: Sequence[Any], metrics: Sequence[str] = ()) -> Any:
        """See `Client.compare_models`."""
        names = [getattr(m, "name", m) for m in models]
        request = trainer_pb2.CompareModelsRequest(models=names, metrics=list(metrics))
        return await self._call(self._trainer.CompareModels, request)

    async def evaluate_model(self, model: Any, *, dataset: str | None = None, metric: str | None = None,
                             request_id: str | None = None, wait: bool = False, timeout: float | None = None
                             ) -> AsyncJob:
        """See `Client.evaluate_model`."""
        request = _models.evaluate_request(model, dataset, metric, request_id)
        job = AsyncJob(self, (await self._call(self._trainer.EvaluateModel, request)).job)
        return await job.wait(timeout) if wait else job

    async def model_report(self, model: Any, path: str | os.PathLike[str]) -> Path:
        """See `Client.model_report` (drawn on a thread)."""
        from microlearn._report import write_report

        found = await self.get_model(getattr(model, "name", model))
        return await asyncio.to_thread(write_report, found, Path(path))

    async def get_estimator(self, name: str) -> selector_pb2.Estimator:
        """See `Client.get_estimator`."""
        request = selector_pb2.GetEstimatorRequest(name=name)
        return (await self._call(self._selector.GetEstimator, request)).estimator

    @property
    def _stub(self) -> dataset_pb2_grpc.DatasetServiceStub:
        if self._stub_instance is None:
            if self._channel is None:
                self._channel = grpc.aio.insecure_channel(
                    self.address, options=_config.channel_options()
                )
            self._stub_instance = dataset_pb2_grpc.DatasetServiceStub(self._channel)
        return self._stub_instance

    async def _call(self, method: Callable[..., Any], request: Any) -> Any:
        with translate_rpc_errors():
            return await method(request, timeout=self.timeout, metadata=self._metadata)

    async def _paginate(
        self,
        method: Callable[..., Any],
        make_request: Callable[[str], Any],
        items: Callable[[Any], Iterable[_Item]] = operator.attrgetter("datasets"),
    ) -> AsyncIterator[_Item]:
        token = ""
        while True:
            response = await self._call(method, make_request(token))
            for item in items(response):
                yield item
            token = response.next_page_token
            if not token:
                return

    # --- datasets --------------------------------------------------------------------------

    async def upload_dataset(
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
        """See `Client.upload_dataset`. Hashing and reading the file run in worker threads."""
        _convert.check_chunk_size(chunk_size)
        plan_cm = _convert.upload_plan(
            source,
            name=name,
            format=format,
            column_hints=column_hints,
            description=description,
            labels=labels,
        )
        # Hashing (and writing a DataFrame to Parquet) is blocking work: keep it off the loop.
        plan = await asyncio.to_thread(plan_cm.__enter__)
        try:
            bar = _convert.progress_bar(plan.size, f"uploading {plan.metadata.display_name}", progress)
            failure = _convert.ReadFailure()
            requests = _upload_requests(plan, chunk_size, bar.update, failure)
            try:
                with translate_rpc_errors():
                    try:
                        response = await self._stub.UploadDataset(
                            requests, metadata=self._metadata
                        )
                    except (grpc.RpcError, asyncio.CancelledError):
                        # grpc.aio cancels the call when the request iterator fails.
                        failure.reraise()
                        raise
            finally:
                bar.close()
        finally:
            await asyncio.to_thread(plan_cm.__exit__, None, None, None)
        return UploadResult(dataset=response.dataset, deduplicated=response.deduplicated)

    async def get_dataset(self, ref: str) -> dataset_pb2.Dataset:
        """See `Client.get_dataset`."""
        request = dataset_pb2.GetDatasetRequest(name=ref)
        return (await self._call(self._stub.GetDataset, request)).dataset

    def list_datasets(
        self, *, prefix: str = "", latest_only: bool = False, page_size: int = 50
    ) -> AsyncIterator[dataset_pb2.Dataset]:
        """See `Client.list_datasets`; use with `async for`."""
        return self._paginate(
            self._stub.ListDatasets,
            lambda token: _convert.list_request(prefix, latest_only, page_size, token),
        )

    def list_dataset_versions(
        self, display_name: str, *, page_size: int = 50
    ) -> AsyncIterator[dataset_pb2.Dataset]:
        """See `Client.list_dataset_versions`; use with `async for`."""
        return self._paginate(
            self._stub.ListDatasetVersions,
            lambda token: dataset_pb2.ListDatasetVersionsRequest(
                display_name=display_name, page_size=page_size, page_token=token
            ),
        )

    async def sample_dataset(
        self,
        ref: str,
        n: int = 10,
        *,
        random: bool = False,
        seed: int = 0,
        columns: Sequence[str] | None = None,
    ) -> pandas.DataFrame:
        """See `Client.sample_dataset`."""
        request = _convert.sample_request(ref, n, random, seed, columns)
        response = await self._call(self._stub.SampleDatasetRows, request)
        return _convert.sample_frame(response)

    async def delete_dataset(self, ref: str, *, force: bool = False) -> str:
        """See `Client.delete_dataset`."""
        request = dataset_pb2.DeleteDatasetRequest(name=ref, force=force)
        return (await self._call(self._stub.DeleteDataset, request)).name

    async def prepare_dataset(
        self,
        ref: str,
        recipe: str | Mapping[str, Any] | os.PathLike[str],
        *,
        output_name: str | None = None,
        validate_only: bool = False,
    ) -> list[dataset_pb2.Dataset]:
        """See `Client.prepare_dataset`."""
        request = _convert.prepare_request(ref, recipe, output_name, validate_only)
        return list((await self._call(self._stub.PrepareDataset, request)).datasets)

    # --- training jobs ---------------------------------------------------------------------

    async def _stream(
        self, method: Callable[..., Any], request: Any, timeout: float | None, convert: Callable[[Any], _Item]
    ) -> AsyncIterator[_Item]:
        call = method(request, timeout=timeout, metadata=self._metadata)
        try:
            with translate_rpc_errors():
                async for response in call:
                    yield convert(response)
        finally:
            call.cancel()

    async def train(
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
    ) -> AsyncJob:
        """See `Client.train`."""
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
        response = await self._call(self._trainer.StartTraining, request)
        return AsyncJob(self, response.job, response.spec)

    async def _fetch_job(self, name: str) -> tuple[Any, trainer_pb2.TrainingSpec | None]:
        response = await self._call(self._trainer.GetJob, trainer_pb2.GetJobRequest(name=name))
        return response.job, _jobs.spec_of(response)

    async def get_job(self, name: str) -> AsyncJob:
        """See `Client.get_job`."""
        return AsyncJob(self, *await self._fetch_job(name))

    def list_jobs(
        self,
        *,
        states: Sequence[str] | None = None,
        dataset: str | None = None,
        estimator: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[AsyncJob]:
        """See `Client.list_jobs`; use with `async for`."""
        request = _jobs.list_jobs_request(states, dataset, estimator, labels, page_size)
        return self._paginate(
            self._trainer.ListJobs,
            lambda token: _jobs.with_page_token(request, token),
            lambda response: _jobs.jobs_of(self, AsyncJob, response),
        )

    async def _cancel_job_message(self, name: str, reason: str) -> Any:
        request = trainer_pb2.CancelJobRequest(name=name, reason=reason)
        return (await self._call(self._trainer.CancelJob, request)).job

    async def cancel_job(self, name: str, reason: str = "") -> AsyncJob:
        """See `Client.cancel_job`."""
        return AsyncJob(self, await self._cancel_job_message(name, reason))

    def job_events(
        self,
        name: str,
        *,
        after: str | None = None,
        replay_only: bool = False,
        min_log_level: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[JobEvent]:
        """See `Client.job_events`; use with `async for`."""
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
    ) -> AsyncIterator[Model]:
        """See `Client.list_models`; use with `async for`."""
        request = _models.list_models_request(dataset, estimator, task, labels, order_by, page_size)
        return self._paginate(
            self._trainer.ListModels,
            lambda token: _jobs.with_page_token(request, token),
            lambda response: [Model.from_proto(m) for m in response.models],
        )

    async def get_model(self, name: str) -> Model:
        """See `Client.get_model`."""
        response = await self._call(self._trainer.GetModel, trainer_pb2.GetModelRequest(name=name))
        return Model.from_proto(response.model)

    async def delete_model(self, name: str) -> str:
        """See `Client.delete_model`."""
        return (await self._call(self._trainer.DeleteModel, trainer_pb2.DeleteModelRequest(name=name))).name

    async def _download(
        self, name: str, path: str | os.PathLike[str] | None, progress: bool
    ) -> _models.ModelDownload:
        # File work (hashing a part file, writing chunks) runs in threads, off the loop.
        download = await asyncio.to_thread(_models.ModelDownload, name, path, progress)
        for _ in range(_models.DOWNLOAD_ATTEMPTS):
            call = self._trainer.DownloadModel(download.request(), metadata=self._metadata)
            try:
                with translate_rpc_errors():
                    first = await call.read()
                    if not await asyncio.to_thread(download.begin, first.metadata):
                        continue
                    while (response := await call.read()) is not grpc.aio.EOF:
                        await asyncio.to_thread(download.write, response.chunk)
            finally:
                call.cancel()
                await asyncio.to_thread(download.close)
            if await asyncio.to_thread(download.finish) is not None:
                return download
        raise download.gave_up()

    async def download_model(
        self, name: str, path: str | os.PathLike[str] | None = None, *, progress: bool = False
    ) -> Path:
        """See `Client.download_model`."""
        target = (await self._download(name, path, progress)).target
        assert target is not None
        return target

    async def load_model(
        self, model: str | os.PathLike[str] | Model, *, sha256: str | None = None
    ) -> TrainedModel:
        """See `Client.load_model`; loading runs in a worker thread."""
        ref = _models.model_ref(model)
        if isinstance(ref, Path):
            expected = sha256 or (await self.get_model(_models.model_id_of_file(ref))).sha256
            return await asyncio.to_thread(_models.load_artifact, ref, expected)
        with tempfile.TemporaryDirectory(prefix="microlearn-model-") as tmp:
            download = await self._download(ref, tmp, False)
            assert download.target is not None and download.metadata is not None
            return await asyncio.to_thread(
                _models.load_artifact, download.target, sha256 or download.metadata.sha256
            )
