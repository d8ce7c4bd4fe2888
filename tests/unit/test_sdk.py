"""Unit tests of the SDK's client side against a small fake DatasetService on a real socket."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import microlearn
from microlearn import _convert
from microlearn.v1 import common_pb2, dataset_pb2, dataset_pb2_grpc


def _dataset(i: int, display_name: str = "iris", **fields) -> dataset_pb2.Dataset:
    return dataset_pb2.Dataset(
        name=f"datasets/ds{i}", id=f"ds{i}", display_name=display_name, version=i, **fields
    )


class FakeDatasets(dataset_pb2_grpc.DatasetServiceServicer):
    """Records what arrives and answers from canned data; `abort` fails every call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.metadata: list[dict[str, str]] = []
        self.abort: tuple[grpc.StatusCode, str] | None = None
        self.deduplicated = False
        self.stored = [_dataset(i) for i in range(1, 6)]
        self.get_response = _dataset(1)
        self.upload_requests: list[dataset_pb2.UploadDatasetRequest] = []

    def _enter(self, method: str, request: object, context: grpc.ServicerContext) -> None:
        self.calls.append((method, request))
        self.metadata.append(dict(context.invocation_metadata()))
        if self.abort:
            context.abort(*self.abort)

    def UploadDataset(self, request_iterator, context):
        self._enter("UploadDataset", None, context)
        self.upload_requests = list(request_iterator)
        meta = self.upload_requests[0].metadata
        data = b"".join(r.chunk for r in self.upload_requests[1:])
        if len(data) != meta.expected_size_bytes or hashlib.sha256(data).hexdigest() != meta.expected_sha256:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "size or sha256 mismatch")
        ds = _dataset(1, meta.display_name, row_count=3, column_count=2)
        return dataset_pb2.UploadDatasetResponse(dataset=ds, deduplicated=self.deduplicated)

    def GetDataset(self, request, context):
        self._enter("GetDataset", request, context)
        if request.name == "slow":
            time.sleep(1)
        return dataset_pb2.GetDatasetResponse(dataset=self.get_response)

    def _page(self, request, datasets):
        start = int(request.page_token or 0)
        end = start + request.page_size
        return datasets[start:end], (str(end) if end < len(datasets) else "")

    def ListDatasets(self, request, context):
        self._enter("ListDatasets", request, context)
        page, token = self._page(request, self.stored)
        return dataset_pb2.ListDatasetsResponse(datasets=page, next_page_token=token, total_size=len(self.stored))

    def ListDatasetVersions(self, request, context):
        self._enter("ListDatasetVersions", request, context)
        page, token = self._page(request, self.stored)
        return dataset_pb2.ListDatasetVersionsResponse(datasets=page, next_page_token=token)

    def SampleDatasetRows(self, request, context):
        self._enter("SampleDatasetRows", request, context)
        response = dataset_pb2.SampleDatasetRowsResponse(columns=["b", "a"])
        for i in range(request.row_count):
            response.rows.add().update({"a": f"x{i}", "b": None if i == 1 else float(i)})
        return response

    def DeleteDataset(self, request, context):
        self._enter("DeleteDataset", request, context)
        return dataset_pb2.DeleteDatasetResponse(name="datasets/ds1")

    def PrepareDataset(self, request, context):
        self._enter("PrepareDataset", request, context)
        if request.validate_only:
            return dataset_pb2.PrepareDatasetResponse()
        return dataset_pb2.PrepareDatasetResponse(datasets=[_dataset(7, "out-train"), _dataset(8, "out-test")])


@pytest.fixture(scope="module")
def server():
    """One real server per module; tests share its fake and reset it (see `fake`)."""
    fake = FakeDatasets()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    dataset_pb2_grpc.add_DatasetServiceServicer_to_server(fake, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield fake, f"127.0.0.1:{port}"
    srv.stop(None)


@pytest.fixture
def fake(server) -> FakeDatasets:
    server[0].reset()
    return server[0]


@pytest.fixture
def client(server, fake, monkeypatch):
    monkeypatch.delenv("MICROLEARN_TOKEN", raising=False)
    with microlearn.Client(server[1], timeout=10) as c:
        yield c


# --- package surface ---------------------------------------------------------------------------


def test_import_is_light():
    code = (
        "import sys, microlearn, microlearn.cli; "
        "heavy = [m for m in ('pandas', 'pyarrow', 'tqdm', 'numpy') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_is_exact_and_resolves():
    expected = {
        "Client", "AsyncClient", "UploadResult", "MicroLearnError", "InvalidArgument", "NotFound",
        "AlreadyExists", "FailedPrecondition", "ResourceExhausted", "Unauthenticated",
        "PermissionDenied", "Unavailable", "DeadlineExceeded", "Cancelled", "Unimplemented", "Internal",
    }
    assert set(microlearn.__all__) == expected
    assert len(microlearn.__all__) == len(expected)
    for name in microlearn.__all__:
        obj = getattr(microlearn, name)
        assert obj.__module__ == "microlearn"
        if name not in {"Client", "AsyncClient", "UploadResult"}:
            assert issubclass(obj, microlearn.MicroLearnError)


# --- configuration and metadata ----------------------------------------------------------------


def test_token_is_sent_as_bearer_metadata(server, fake):
    with microlearn.Client(server[1], token="s3cret") as c:
        c.get_dataset("iris")
    assert fake.metadata[-1]["authorization"] == "Bearer s3cret"


def test_no_token_no_authorization_header(client, fake):
    client.get_dataset("iris")
    assert "authorization" not in fake.metadata[-1]


def test_address_and_token_from_environment(server, fake, monkeypatch):
    monkeypatch.setenv("MICROLEARN_ADDRESS", server[1])
    monkeypatch.setenv("MICROLEARN_TOKEN", "from-env")
    with microlearn.Client() as c:
        assert c.address == server[1]
        assert c.get_dataset("iris@1").name == "datasets/ds1"
    assert fake.metadata[-1]["authorization"] == "Bearer from-env"
    assert fake.calls[-1][1].name == "iris@1"  # refs pass through unchanged


def test_default_address(monkeypatch):
    monkeypatch.delenv("MICROLEARN_ADDRESS", raising=False)
    with microlearn.Client() as c:
        assert c.address == "127.0.0.1:50051"
        assert "token" not in repr(c)


def test_large_responses_fit_the_raised_message_limit(client, fake):
    fake.get_response = _dataset(1, description="x" * (5 << 20))  # over gRPC's default 4 MiB
    assert len(client.get_dataset("iris").description) == 5 << 20


# --- upload ---------------------------------------------------------------------------------------


def test_upload_streams_metadata_then_chunks_in_order(client, fake, tmp_path):
    data = bytes(range(256)) * 10 + b"tail"  # 2564 bytes: chunks of 1024, 1024, 516
    path = tmp_path / "iris.csv"
    path.write_bytes(data)
    result = client.upload_dataset(
        path,
        column_hints={"species": "categorical", "id": "ID"},
        format="csv",
        description="flowers",
        labels={"team": "ml", "n": 1},
        chunk_size=1024,
    )
    assert isinstance(result, microlearn.UploadResult)
    assert result.dataset.display_name == "iris" and result.deduplicated is False
    first, *chunks = fake.upload_requests
    assert first.WhichOneof("payload") == "metadata"
    meta = first.metadata
    assert meta.display_name == "iris"
    assert meta.format == dataset_pb2.DATA_FORMAT_CSV
    assert meta.expected_size_bytes == len(data)
    assert meta.expected_sha256 == hashlib.sha256(data).hexdigest()
    assert [(h.column, h.type) for h in meta.column_hints] == [
        ("species", common_pb2.COLUMN_TYPE_CATEGORICAL),
        ("id", common_pb2.COLUMN_TYPE_ID),
    ]
    assert meta.description == "flowers" and dict(meta.labels) == {"team": "ml", "n": "1"}
    assert all(r.WhichOneof("payload") == "chunk" for r in chunks)
    assert [len(r.chunk) for r in chunks] == [1024, 1024, 516]
    assert b"".join(r.chunk for r in chunks) == data


def test_upload_reports_deduplication_and_accepts_str_paths(client, fake, tmp_path):
    fake.deduplicated = True
    path = tmp_path / "sales.csv.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    result = client.upload_dataset(str(path), name="sales", progress=True)
    assert result.deduplicated is True
    assert fake.upload_requests[0].metadata.display_name == "sales"
    assert fake.upload_requests[0].metadata.format == dataset_pb2.DATA_FORMAT_UNSPECIFIED


def test_upload_dataframe_is_sent_as_parquet(client, fake):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="name"):
        client.upload_dataset(frame)
    client.upload_dataset(frame, name="frame")
    meta = fake.upload_requests[0].metadata
    data = b"".join(r.chunk for r in fake.upload_requests[1:])
    assert meta.format == dataset_pb2.DATA_FORMAT_PARQUET and data[:4] == b"PAR1"
    import io

    assert pandas.read_parquet(io.BytesIO(data)).equals(frame)


def test_upload_rejects_bad_arguments_locally(client, fake, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    with pytest.raises(ValueError, match="format"):
        client.upload_dataset(path, format="xlsx")
    with pytest.raises(ValueError, match="column type"):
        client.upload_dataset(path, column_hints={"a": "float"})
    with pytest.raises(FileNotFoundError):
        client.upload_dataset(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="chunk_size"):
        client.upload_dataset(path, chunk_size=0)
    assert fake.calls == []


def test_upload_server_rejection_maps_to_typed_error(client, fake, tmp_path):
    fake.abort = (grpc.StatusCode.INVALID_ARGUMENT, "display_name: must start with a letter")
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    with pytest.raises(microlearn.InvalidArgument, match="INVALID_ARGUMENT: display_name"):
        client.upload_dataset(path, name="_bad")


def test_local_read_error_is_reraised_not_cancelled(client, fake, tmp_path, monkeypatch):
    def broken(plan, chunk_size, on_chunk, failure):
        yield dataset_pb2.UploadDatasetRequest(metadata=plan.metadata)
        failure.error = OSError("disk went away")
        raise failure.error

    monkeypatch.setattr(_convert, "upload_requests", broken)
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    with pytest.raises(OSError, match="disk went away"):
        client.upload_dataset(path)


def test_default_name_strips_data_and_compression_suffixes():
    assert _convert.default_name(Path("data/iris.csv.gz")) == "iris"
    assert _convert.default_name(Path("sales.2024.parquet")) == "sales.2024"
    assert _convert.default_name(Path("events.jsonl")) == "events"
    assert _convert.default_name(Path("notes")) == "notes"


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, microlearn.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, microlearn.NotFound),
        (grpc.StatusCode.FAILED_PRECONDITION, microlearn.FailedPrecondition),
        (grpc.StatusCode.UNAUTHENTICATED, microlearn.Unauthenticated),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, microlearn.ResourceExhausted),
        (grpc.StatusCode.DATA_LOSS, microlearn.MicroLearnError),
    ],
)
def test_status_codes_map_to_typed_errors(client, fake, code, error_type):
    fake.abort = (code, "the details")
    with pytest.raises(microlearn.MicroLearnError) as info:
        client.get_dataset("iris")
    err = info.value
    assert type(err) is error_type
    assert err.code == code and err.details == "the details"
    assert str(err) == f"{code.name}: the details"
    assert err.__cause__ is None and err.__suppress_context__  # raised `from None`


def test_unreachable_server_is_unavailable():
    with microlearn.Client("127.0.0.1:1", timeout=5) as c:
        with pytest.raises(microlearn.Unavailable):
            c.get_dataset("iris")


def test_timeout_maps_to_deadline_exceeded(server, fake):
    with microlearn.Client(server[1], timeout=0.1) as c:
        with pytest.raises(microlearn.DeadlineExceeded):
            c.get_dataset("slow")


# --- list / sample / delete / prepare ------------------------------------------------------------


def test_list_follows_page_tokens_lazily(client, fake):
    pages = client.list_datasets(prefix="ir", latest_only=True, page_size=2)
    assert fake.calls == []  # nothing fetched until iterated
    assert next(pages).id == "ds1"
    assert len(fake.calls) == 1
    assert [d.id for d in pages] == ["ds2", "ds3", "ds4", "ds5"]
    requests = [req for method, req in fake.calls]
    assert [r.page_token for r in requests] == ["", "2", "4"]
    assert all(r.display_name_prefix == "ir" and r.latest_only and r.page_size == 2 for r in requests)


def test_list_versions_paginates(client, fake):
    assert len(list(client.list_dataset_versions("iris", page_size=3))) == 5
    assert [r.display_name for _, r in fake.calls] == ["iris", "iris"]


def test_list_error_surfaces_while_iterating(client, fake):
    fake.abort = (grpc.StatusCode.PERMISSION_DENIED, "nope")
    with pytest.raises(microlearn.PermissionDenied):
        list(client.list_datasets())


def test_sample_returns_dataframe_in_server_column_order(client, fake):
    pandas = pytest.importorskip("pandas")
    frame = client.sample_dataset("iris@2", 3, random=True, seed=7, columns=["b", "a"])
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == ["b", "a"] and len(frame) == 3
    assert frame["a"].tolist() == ["x0", "x1", "x2"]
    assert pandas.isna(frame["b"][1])
    request = fake.calls[-1][1]
    assert (request.name, request.row_count, request.seed) == ("iris@2", 3, 7)
    assert request.mode == dataset_pb2.SAMPLE_MODE_RANDOM and list(request.columns) == ["b", "a"]


def test_delete_passes_force(client, fake):
    assert client.delete_dataset("iris@1", force=True) == "datasets/ds1"
    request = fake.calls[-1][1]
    assert request.name == "iris@1" and request.force


def test_prepare_accepts_text_dict_and_path(client, fake, tmp_path):
    recipe = {"steps": [{"drop_columns": ["id"]}]}
    results = client.prepare_dataset("iris", recipe, output_name="out")
    assert [d.display_name for d in results] == ["out-train", "out-test"]
    request = fake.calls[-1][1]
    assert json.loads(request.recipe) == recipe and request.output_display_name == "out"

    path = tmp_path / "r.yaml"
    path.write_text("steps:\n  - drop_duplicates: {}\n")
    assert client.prepare_dataset("iris", path, validate_only=True) == []
    request = fake.calls[-1][1]
    assert request.recipe == path.read_text() and request.validate_only

    client.prepare_dataset("iris", "steps: []")
    assert fake.calls[-1][1].recipe == "steps: []"
    with pytest.raises(TypeError):
        client.prepare_dataset("iris", 42)  # type: ignore[arg-type]


# --- async client -----------------------------------------------------------------------------------


def test_async_client_mirrors_sync_client(server, fake, tmp_path):
    path = tmp_path / "iris.csv"
    data = b"a,b\n" + b"1,2\n" * 1000
    path.write_bytes(data)

    async def scenario():
        async with microlearn.AsyncClient(server[1], token="t0k") as ml:
            uploaded = await ml.upload_dataset(path, chunk_size=1000)
            listed = [d.id async for d in ml.list_datasets(page_size=2)]
            got = await ml.get_dataset("iris")
            frame = await ml.sample_dataset("iris", 2)
            deleted = await ml.delete_dataset("iris@1")
            prepared = await ml.prepare_dataset("iris", {"steps": []})
            fake.abort = (grpc.StatusCode.NOT_FOUND, "no dataset 'x'")
            with pytest.raises(microlearn.NotFound, match="no dataset 'x'"):
                await ml.get_dataset("x")
            return uploaded, listed, got, frame, deleted, prepared

    uploaded, listed, got, frame, deleted, prepared = asyncio.run(scenario())
    assert uploaded.dataset.display_name == "iris"
    assert [len(r.chunk) for r in fake.upload_requests[1:]] == [1000] * 4 + [len(data) - 4000]
    assert listed == ["ds1", "ds2", "ds3", "ds4", "ds5"]
    assert got.name == "datasets/ds1" and deleted == "datasets/ds1" and len(prepared) == 2
    assert list(frame.columns) == ["b", "a"]
    assert all(m["authorization"] == "Bearer t0k" for m in fake.metadata)


def test_async_local_read_error_is_reraised(server, fake, tmp_path, monkeypatch):
    from microlearn import _aio

    async def broken(plan, chunk_size, on_chunk, failure):
        yield dataset_pb2.UploadDatasetRequest(metadata=plan.metadata)
        failure.error = OSError("disk went away")
        raise failure.error

    monkeypatch.setattr(_aio, "_upload_requests", broken)
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")

    async def scenario():
        async with microlearn.AsyncClient(server[1]) as ml:
            await ml.upload_dataset(path)

    with pytest.raises(OSError, match="disk went away"):
        asyncio.run(scenario())


def test_errors_are_picklable():
    import pickle

    err = microlearn.NotFound(grpc.StatusCode.NOT_FOUND, "gone")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is microlearn.NotFound and copy.details == "gone" and str(copy) == str(err)

