"""The synchronous MicroLearn client: one channel, typed errors, plain Python in and out."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from microlearn import _config, _convert
from microlearn._errors import translate_rpc_errors
from microlearn.v1 import dataset_pb2, dataset_pb2_grpc, selector_pb2, selector_pb2_grpc

if TYPE_CHECKING:
    import pandas

__all__ = ["Client", "UploadResult"]

_Response = TypeVar("_Response")


@dataclasses.dataclass(frozen=True, slots=True)
class UploadResult:
    """What `upload_dataset` returns.

    `dataset` is the stored version. `deduplicated` is True when the bytes matched the
    latest version of that name, so `dataset` is that existing version and nothing new was stored.
    """

    dataset: dataset_pb2.Dataset
    deduplicated: bool


class Client:
    """A synchronous client for MicroLearn's DatasetService.

    >>> with Client() as ml:                      # $MICROLEARN_ADDRESS, $MICROLEARN_TOKEN
    ...     result = ml.upload_dataset("iris.csv", progress=True)
    ...     print(result.dataset.name, result.dataset.version)
    ...     for ds in ml.list_datasets(latest_only=True):
    ...         print(ds.display_name, ds.row_count)

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
        self, method: Callable[..., Any], make_request: Callable[[str], Any]
    ) -> Iterator[dataset_pb2.Dataset]:
        token = ""
        while True:
            response = self._call(method, make_request(token))
            yield from response.datasets
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
            bar = _convert.progress_bar(plan, progress)
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
