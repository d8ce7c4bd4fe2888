"""Every bad upload gets the right code, a message that says what and where, and stores nothing."""

from __future__ import annotations

import gzip
import io
import time
import zipfile

import grpc
import pytest

from microlearn.v1 import dataset_pb2, dataset_pb2_grpc
from tests.conftest import sql
from tests.integration.test_datasets import AUTH, IRIS_LIKE

pytestmark = pytest.mark.integration


def _artifact_files(server) -> set[str]:
    root = server.container.artifacts.local_path("datasets")
    return {str(p) for p in root.rglob("*") if p.is_file()} if root and root.exists() else set()


def _work_files(server) -> list:
    uploads = server.settings.data_dir.resolve() / "work" / "uploads"
    return [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else []


def _assert_nothing_stored(server, backends, name: str, artifacts_before: set[str]) -> None:
    assert sql(backends, "SELECT id FROM datasets WHERE display_name = $1", name) == []
    assert _artifact_files(server) == artifacts_before
    deadline = time.monotonic() + 10
    while _work_files(server) and time.monotonic() < deadline:  # a cancelled handler cleans up asynchronously
        time.sleep(0.05)
    assert _work_files(server) == []


def _send(server, name, data: bytes, *, chunk=1 << 16, expected_size=0, fmt=dataset_pb2.DATA_FORMAT_UNSPECIFIED):
    def requests():
        yield dataset_pb2.UploadDatasetRequest(metadata=dataset_pb2.UploadDatasetMetadata(
            display_name=name, format=fmt, expected_size_bytes=expected_size))
        for start in range(0, len(data), chunk):
            yield dataset_pb2.UploadDatasetRequest(chunk=data[start:start + chunk])
    with grpc.insecure_channel(server.address) as channel:
        return dataset_pb2_grpc.DatasetServiceStub(channel).UploadDataset(requests(), metadata=AUTH, timeout=60)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


CASES = [
    # id, payload, expected code, words the message must contain
    ("empty", b"", grpc.StatusCode.INVALID_ARGUMENT, ["empty"]),
    ("header-only", b"a,b,c\n", grpc.StatusCode.INVALID_ARGUMENT, ["header", "no data rows"]),
    ("ragged", b"a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n", grpc.StatusCode.INVALID_ARGUMENT, ["line 4", "4", "3"]),
    ("bad-quoting", b'a,b\n1,"x\n2,y\n', grpc.StatusCode.INVALID_ARGUMENT, ["line"]),
    ("non-utf8", b"a,b\n1,caf\xe9\n", grpc.StatusCode.INVALID_ARGUMENT, ["UTF-8", "line 2"]),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, grpc.StatusCode.INVALID_ARGUMENT, ["binary"]),
    ("duplicate-columns", b"a,b,a\n1,2,3\n", grpc.StatusCode.INVALID_ARGUMENT, ["duplicate", "'a'"]),
    ("zip-two-files", _zip({"a.csv": IRIS_LIKE, "b.csv": IRIS_LIKE}), grpc.StatusCode.INVALID_ARGUMENT, ["zip", "one"]),
    ("bad-parquet", b"PAR1" + b"\x00garbage" * 50, grpc.StatusCode.INVALID_ARGUMENT, ["Parquet"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_upload(platform, backends, unique_name, case):
    _, payload, code, words = case
    before = _artifact_files(platform)
    with pytest.raises(grpc.RpcError) as err:
        _send(platform, unique_name, payload)
    assert err.value.code() == code, err.value.details()
    for word in words:
        assert word.lower() in err.value.details().lower(), err.value.details()
    _assert_nothing_stored(platform, backends, unique_name, before)


LIMIT_CASES = [
    ("too-many-columns", (",".join(f"c{i}" for i in range(60)) + "\n" + ",".join("1" * 60) + "\n").encode(),
     ["60", "50", "columns"]),
    ("too-many-bytes", b"a,b\n" + b"1,2\n" * (1 << 20), ["bytes"]),
    ("gzip-bomb", gzip.compress(b"a,b\n" + b"0,0\n" * (5 << 20)), ["zip bomb"]),
    ("zip-bomb", _zip({"data.csv": b"a,b\n" + b"0,0\n" * (5 << 20)}), ["zip bomb"]),
]


@pytest.mark.parametrize("case", LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_limits(limited_platform, backends, unique_name, case):
    _, payload, words = case
    before = _artifact_files(limited_platform)
    with pytest.raises(grpc.RpcError) as err:
        _send(limited_platform, unique_name, payload)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    for word in words:
        assert word.lower() in err.value.details().lower(), err.value.details()
    _assert_nothing_stored(limited_platform, backends, unique_name, before)


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "a\\b", "x@1", "", ".hidden", "a b", "a" * 200])
def test_bad_names(platform, backends, name):
    before = _artifact_files(platform)
    with pytest.raises(grpc.RpcError) as err:
        _send(platform, name, IRIS_LIKE)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "display_name" in err.value.details()
    _assert_nothing_stored(platform, backends, name, before)


def test_stream_ended_before_announced_size(platform, backends, unique_name):
    before = _artifact_files(platform)
    with pytest.raises(grpc.RpcError) as err:
        _send(platform, unique_name, IRIS_LIKE[:1000], expected_size=len(IRIS_LIKE))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cut off" in err.value.details() and str(len(IRIS_LIKE)) in err.value.details()
    _assert_nothing_stored(platform, backends, unique_name, before)


def test_stream_cancelled_mid_upload(platform, backends, unique_name):
    """The client goes away mid-stream: the server must drop the spooled bytes, store nothing."""
    import threading

    before = _artifact_files(platform)
    sent_some = threading.Event()

    def requests():
        yield dataset_pb2.UploadDatasetRequest(metadata=dataset_pb2.UploadDatasetMetadata(display_name=unique_name))
        yield dataset_pb2.UploadDatasetRequest(chunk=IRIS_LIKE)
        for _ in range(200):
            yield dataset_pb2.UploadDatasetRequest(chunk=b"1,2,3,setosa\n" * 1000)
        sent_some.set()
        time.sleep(30)  # hang: the call is cancelled from outside

    with grpc.insecure_channel(platform.address) as channel:
        future = dataset_pb2_grpc.DatasetServiceStub(channel).UploadDataset.future(requests(), metadata=AUTH)
        assert sent_some.wait(30)
        time.sleep(0.3)
        future.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            future.result()
    _assert_nothing_stored(platform, backends, unique_name, before)


def test_first_message_must_be_metadata(platform):
    with grpc.insecure_channel(platform.address) as channel:
        stub = dataset_pb2_grpc.DatasetServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.UploadDataset(iter([dataset_pb2.UploadDatasetRequest(chunk=b"a,b\n1,2\n")]), metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "metadata" in err.value.details()


@pytest.mark.parametrize("request_, words", [
    (dataset_pb2.GetDatasetRequest(name=""), ["name is required"]),
    (dataset_pb2.GetDatasetRequest(name="nope-does-not-exist"), ["nope-does-not-exist"]),
    (dataset_pb2.GetDatasetRequest(name="x@zero"), ["positive integer"]),
])
def test_get_errors(platform, request_, words):
    with grpc.insecure_channel(platform.address) as channel:
        with pytest.raises(grpc.RpcError) as err:
            dataset_pb2_grpc.DatasetServiceStub(channel).GetDataset(request_, metadata=AUTH)
    assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    for word in words:
        assert word in err.value.details()


def test_list_and_sample_validation(platform, unique_name):
    with grpc.insecure_channel(platform.address) as channel:
        stub = dataset_pb2_grpc.DatasetServiceStub(channel)
        for call, request in [
            (stub.ListDatasets, dataset_pb2.ListDatasetsRequest(page_size=5000)),
            (stub.ListDatasets, dataset_pb2.ListDatasetsRequest(page_token="garbage!")),
            (stub.SampleDatasetRows, dataset_pb2.SampleDatasetRowsRequest(name="x", row_count=10_001)),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                call(request, metadata=AUTH)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()


def test_stale_temp_files_of_a_crashed_process_are_swept(platform):
    import os

    uploads = platform.settings.data_dir.resolve() / "work" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    stale, fresh = uploads / "upload-dead.part", uploads / "upload-live.part"
    stale.write_bytes(b"left by kill -9")
    fresh.write_bytes(b"still arriving")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert platform.container.datasets.sweep_stale_work() == 1
    assert not stale.exists() and fresh.exists()
    fresh.unlink()
