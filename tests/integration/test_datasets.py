"""DatasetService end to end over a real socket against real PostgreSQL/Redis: the happy paths."""

from __future__ import annotations

import io

import grpc
import pytest

from microlearn.v1 import common_pb2, dataset_pb2, dataset_pb2_grpc
from tests.conftest import TOKEN, sql

pytestmark = pytest.mark.integration

AUTH = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture()
def stub(platform):
    with grpc.insecure_channel(platform.address) as channel:
        yield dataset_pb2_grpc.DatasetServiceStub(channel)


def upload(stub, name: str, data: bytes, *, fmt=dataset_pb2.DATA_FORMAT_UNSPECIFIED, chunk: int = 1 << 16,
           hints=(), expected_size: int | None = None):
    def requests():
        yield dataset_pb2.UploadDatasetRequest(metadata=dataset_pb2.UploadDatasetMetadata(
            display_name=name, format=fmt, column_hints=list(hints),
            expected_size_bytes=len(data) if expected_size is None else expected_size))
        for start in range(0, len(data), chunk):
            yield dataset_pb2.UploadDatasetRequest(chunk=data[start:start + chunk])
    return stub.UploadDataset(requests(), metadata=AUTH, timeout=60)


IRIS_LIKE = b"sepal_length,sepal_width,petal_length,species\n" + b"".join(
    f"{5 + (i % 7) * 0.1:.1f},{3 + (i % 5) * 0.1:.1f},{1 + (i % 11) * 0.3:.1f},{['setosa', 'versicolor', 'virginica'][i % 3]}\n".encode()
    for i in range(150))


def test_upload_get_profile(stub, unique_name):
    response = upload(stub, unique_name, IRIS_LIKE, chunk=1000)
    dataset = response.dataset
    assert not response.deduplicated
    assert dataset.name == f"datasets/{dataset.id}"
    assert (dataset.display_name, dataset.version) == (unique_name, 1)
    assert (dataset.row_count, dataset.column_count) == (150, 4)
    assert dataset.source_format == dataset_pb2.DATA_FORMAT_CSV
    assert len(dataset.sha256) == 64 and len(dataset.source_sha256) == 64
    got = stub.GetDataset(dataset_pb2.GetDatasetRequest(name=unique_name), metadata=AUTH).dataset
    assert got.id == dataset.id
    columns = {c.name: c for c in got.profile.columns}
    assert columns["sepal_length"].type == common_pb2.COLUMN_TYPE_NUMERIC
    assert columns["species"].type == common_pb2.COLUMN_TYPE_CATEGORICAL
    assert columns["species"].distinct_count == 3
    assert got.profile.target_suggestions[0].column == "species"
    assert got.profile.target_suggestions[0].task == common_pb2.TASK_TYPE_MULTICLASS_CLASSIFICATION


def test_versions_dedup_and_references(stub, unique_name):
    first = upload(stub, unique_name, IRIS_LIKE).dataset
    again = upload(stub, unique_name, IRIS_LIKE)
    assert again.deduplicated and again.dataset.id == first.id
    second = upload(stub, unique_name, IRIS_LIKE + b"5.0,3.0,1.0,setosa\n").dataset
    assert second.version == 2
    by_version = stub.GetDataset(dataset_pb2.GetDatasetRequest(name=f"{unique_name}@1"), metadata=AUTH).dataset
    assert by_version.id == first.id
    by_name = stub.GetDataset(dataset_pb2.GetDatasetRequest(name=second.name), metadata=AUTH).dataset
    assert by_name.version == 2
    versions = stub.ListDatasetVersions(dataset_pb2.ListDatasetVersionsRequest(display_name=unique_name), metadata=AUTH)
    assert [d.version for d in versions.datasets] == [2, 1] and versions.total_size == 2


def test_list_pagination(stub, unique_name):
    for i in range(5):
        upload(stub, f"{unique_name}-{i}", IRIS_LIKE + f"1,1,1,x{i}\n".encode())
    seen, token = [], ""
    while True:
        page = stub.ListDatasets(dataset_pb2.ListDatasetsRequest(page_size=2, page_token=token,
                                                                 display_name_prefix=unique_name), metadata=AUTH)
        assert page.total_size == 5 and len(page.datasets) <= 2
        seen += [d.display_name for d in page.datasets]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == [f"{unique_name}-{i}" for i in range(5)]


def test_sample_head_and_random(stub, unique_name):
    upload(stub, unique_name, IRIS_LIKE)
    head = stub.SampleDatasetRows(dataset_pb2.SampleDatasetRowsRequest(name=unique_name, row_count=3), metadata=AUTH)
    assert list(head.columns) == ["sepal_length", "sepal_width", "petal_length", "species"]
    assert [r["species"] for r in head.rows] == ["setosa", "versicolor", "virginica"]
    rand = stub.SampleDatasetRows(dataset_pb2.SampleDatasetRowsRequest(
        name=unique_name, row_count=20, mode=dataset_pb2.SAMPLE_MODE_RANDOM, seed=7, columns=["species"]), metadata=AUTH)
    again = stub.SampleDatasetRows(dataset_pb2.SampleDatasetRowsRequest(
        name=unique_name, row_count=20, mode=dataset_pb2.SAMPLE_MODE_RANDOM, seed=7, columns=["species"]), metadata=AUTH)
    assert list(rand.columns) == ["species"] and len(rand.rows) == 20
    assert [dict(r) for r in rand.rows] == [dict(r) for r in again.rows]


def test_parquet_and_jsonl_and_gzip(stub, unique_name):
    import gzip

    import pandas as pd

    frame = pd.read_csv(io.BytesIO(IRIS_LIKE))
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    assert upload(stub, f"{unique_name}-pq", buffer.getvalue()).dataset.source_format == dataset_pb2.DATA_FORMAT_PARQUET
    jsonl = frame.to_json(orient="records", lines=True).encode()
    got = upload(stub, f"{unique_name}-jl", jsonl).dataset
    assert got.source_format == dataset_pb2.DATA_FORMAT_JSONL and got.row_count == 150
    packed = upload(stub, f"{unique_name}-gz", gzip.compress(IRIS_LIKE)).dataset
    assert packed.row_count == 150 and packed.source_size_bytes == len(IRIS_LIKE)


def test_delete_refuses_while_referenced_then_force(stub, platform, unique_name, backends):
    # Unique bytes: identical Parquet is shared between versions, and this test checks the file goes.
    source = upload(stub, unique_name, IRIS_LIKE + f"1,1,1,{unique_name}\n".encode()).dataset
    derived = stub.PrepareDataset(dataset_pb2.PrepareDatasetRequest(
        name=source.name, recipe="steps:\n  - drop_columns: [sepal_width]\n", output_display_name=f"{unique_name}-clean"),
        metadata=AUTH).datasets[0]
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteDataset(dataset_pb2.DeleteDatasetRequest(name=source.name), metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert derived.name in err.value.details() and "force" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteDataset(dataset_pb2.DeleteDatasetRequest(name=unique_name), metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "@VERSION" in err.value.details()
    artifacts = platform.container.artifacts
    assert platform.run(artifacts.exists(f"datasets/sha256/{source.sha256}.parquet"))
    deleted = stub.DeleteDataset(dataset_pb2.DeleteDatasetRequest(name=f"{unique_name}@1", force=True), metadata=AUTH)
    assert deleted.name == source.name
    assert sql(backends, "SELECT id FROM datasets WHERE id = $1", source.id) == []
    assert not platform.run(artifacts.exists(f"datasets/sha256/{source.sha256}.parquet"))
    with pytest.raises(grpc.RpcError) as err:
        stub.GetDataset(dataset_pb2.GetDatasetRequest(name=source.name), metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # The derived version survives with a dangling lineage pointer.
    kept = stub.GetDataset(dataset_pb2.GetDatasetRequest(name=derived.name), metadata=AUTH).dataset
    assert kept.parent == source.name


def test_prepare_recipe_with_split_and_lineage(stub, unique_name):
    csv = b"age,city,income,label\n" + b"".join(
        f"{'' if i % 10 == 0 else 18 + i % 50},{['paris', 'lyon', ''][i % 3]},{1000 + i * 10},{i % 2}\n".encode()
        for i in range(200))
    source = upload(stub, unique_name, csv).dataset
    recipe = """
steps:
  - impute: {age: median}
  - filter_rows: "age >= 20"
  - rename_columns: {income: revenue}
  - train_test_split: {test_fraction: 0.25, seed: 1, stratify: label}
"""
    check = stub.PrepareDataset(dataset_pb2.PrepareDatasetRequest(name=unique_name, recipe=recipe, validate_only=True),
                                metadata=AUTH)
    assert list(check.datasets) == []
    result = stub.PrepareDataset(dataset_pb2.PrepareDatasetRequest(name=unique_name, recipe=recipe), metadata=AUTH)
    train, test = result.datasets
    assert train.display_name == f"{unique_name}-train" and test.display_name == f"{unique_name}-test"
    assert train.parent == source.name and "train_test_split" in train.recipe
    assert 0.15 < test.row_count / (train.row_count + test.row_count) < 0.35
    assert [c.name for c in train.profile.columns] == ["age", "city", "revenue", "label"]
    rows = stub.SampleDatasetRows(dataset_pb2.SampleDatasetRowsRequest(name=train.name, row_count=1000), metadata=AUTH)
    assert all(r["age"] >= 20 for r in rows.rows)


def test_prepare_invalid_recipe_names_the_step(stub, unique_name, backends):
    upload(stub, unique_name, IRIS_LIKE)
    before = sql(backends, "SELECT count(*) AS n FROM datasets")[0]["n"]
    with pytest.raises(grpc.RpcError) as err:
        stub.PrepareDataset(dataset_pb2.PrepareDatasetRequest(
            name=unique_name, recipe="steps:\n  - drop_columns: [species]\n  - impute: {nope: mean}\n"), metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "step 2" in err.value.details() and "impute" in err.value.details() and "nope" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.PrepareDataset(dataset_pb2.PrepareDatasetRequest(name=unique_name, recipe="steps: [ {explode: 1} ]"),
                            metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "explode" in err.value.details()
    assert sql(backends, "SELECT count(*) AS n FROM datasets")[0]["n"] == before


def test_auth_required_except_health(platform):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(platform.address) as channel:
        stub = dataset_pb2_grpc.DatasetServiceStub(channel)
        for metadata in [(), (("authorization", "Bearer wrong"),)]:
            with pytest.raises(grpc.RpcError) as err:
                stub.ListDatasets(dataset_pb2.ListDatasetsRequest(), metadata=metadata)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "token" in err.value.details()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_services_not_built_yet_answer_unimplemented():
    """Every service has landed; the stand-in for one that has not still answers UNIMPLEMENTED, naming the RPC."""
    import asyncio

    from microlearn_grpc.server import SERVICES, _unimplemented_servicer

    class Context:
        async def abort(self, code, details):
            self.code, self.details = code, details
            raise grpc.aio.AbortError()

    context = Context()
    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(_unimplemented_servicer(SERVICES["deploy"]).StartBatchPrediction(None, context))
    assert context.code == grpc.StatusCode.UNIMPLEMENTED
    assert "DeployService.StartBatchPrediction" in context.details


def test_reflection_lists_all_services(platform):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(platform.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              metadata=AUTH)
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"microlearn.v1.DatasetService", "microlearn.v1.SelectorService", "microlearn.v1.TrainerService",
            "microlearn.v1.HPOService", "microlearn.v1.DeployService", "inference.GRPCInferenceService",
            "grpc.health.v1.Health"} <= names


def test_conversion_while_streaming_handles_type_drift_and_quoted_newlines(stub, unique_name):
    """Uncompressed CSV is converted while it arrives; files the live pass cannot read as it
    assumed (a column changing type after the first block, line breaks inside quoted fields)
    must still come out right."""
    drift = b"n,tag\n" + b"".join(f"{i},t{i % 7}\n".encode() for i in range(300_000)) + b"oops,t1\n"
    got = upload(stub, f"{unique_name}-drift", drift, chunk=256 << 10).dataset
    assert got.row_count == 300_001
    assert {c.name: c.physical_type for c in got.profile.columns}["n"] == "string"

    quoted = b"id,note\n" + b"".join(f'{i},"line one\nline two {i}"\n'.encode() for i in range(100_000))
    got = upload(stub, f"{unique_name}-quoted", quoted, chunk=256 << 10).dataset
    assert got.row_count == 100_000
    rows = stub.SampleDatasetRows(dataset_pb2.SampleDatasetRowsRequest(name=got.name, row_count=2), metadata=AUTH)
    assert rows.rows[1]["note"] == "line one\nline two 1"


def test_bad_row_in_a_large_upload_is_located(stub, unique_name, backends):
    data = b"a,b\n" + b"1,2\n" * 500_000 + b"1,2,3\n" + b"4,5\n" * 10
    with pytest.raises(grpc.RpcError) as err:
        upload(stub, unique_name, data, chunk=128 << 10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "line 500002" in err.value.details(), err.value.details()
    assert sql(backends, "SELECT id FROM datasets WHERE display_name = $1", unique_name) == []


def test_identical_reupload_while_converting_is_deduplicated(stub, unique_name):
    data = b"x,y\n" + b"".join(f"{i},{i * 2}\n".encode() for i in range(200_000))
    first = upload(stub, unique_name, data, chunk=64 << 10)
    second = upload(stub, unique_name, data, chunk=64 << 10)
    assert second.deduplicated and second.dataset.id == first.dataset.id


def test_many_concurrent_uploads_all_finish(backends, tmp_path_factory):
    """More simultaneous streaming conversions than the default thread pool has threads: each
    live conversion waits for bytes that other threads write, so they must not starve them."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import ServerThread, make_settings

    server = ServerThread(make_settings(backends, tmp_path_factory.mktemp("many"), max_concurrent_uploads=10))
    server.start()
    try:
        def one(index: int):
            data = b"a,b,c\n" + b"".join(f"{i},{index},x{i % 9}\n".encode() for i in range(150_000))
            with grpc.insecure_channel(server.address) as channel:
                return upload(dataset_pb2_grpc.DatasetServiceStub(channel), f"many-{index}-{id(server)}", data,
                              chunk=32 << 10).dataset.row_count

        with ThreadPoolExecutor(10) as pool:
            assert list(pool.map(one, range(10), timeout=120)) == [150_000] * 10
    finally:
        server.stop()
