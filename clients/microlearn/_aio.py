"""The asyncio MicroLearn client (grpc.aio): the same methods as `Client`, as coroutines."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from microlearn import _config, _convert
from microlearn._client import UploadResult
from microlearn._errors import translate_rpc_errors
from microlearn.v1 import dataset_pb2, dataset_pb2_grpc, selector_pb2, selector_pb2_grpc

if TYPE_CHECKING:
    import pandas

__all__ = ["AsyncClient"]


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


class AsyncClient:
    """An asyncio client for MicroLearn's DatasetService; see `Client` for the arguments.

    >>> async with AsyncClient() as ml:
    ...     result = await ml.upload_dataset("iris.csv")
    ...     async for ds in ml.list_datasets(prefix="iris"):
    ...         print(ds.name)

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
        self, method: Callable[..., Any], make_request: Callable[[str], Any]
    ) -> AsyncIterator[dataset_pb2.Dataset]:
        token = ""
        while True:
            response = await self._call(method, make_request(token))
            for dataset in response.datasets:
                yield dataset
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
            bar = _convert.progress_bar(plan, progress)
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
