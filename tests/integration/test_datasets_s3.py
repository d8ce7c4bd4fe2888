"""The same DatasetService code path with the artifact store on S3 (a real S3-speaking server,
moto in server mode), as a multi-host deployment with MinIO would run it."""

from __future__ import annotations

import grpc
import pytest

from microlearn.v1 import dataset_pb2, dataset_pb2_grpc
from tests.conftest import ServerThread, make_settings, sql
from tests.integration.test_datasets import AUTH, IRIS_LIKE, upload

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_platform(backends, tmp_path_factory):
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    settings = make_settings(backends, tmp_path_factory.mktemp("s3-platform"), artifact_url="s3://ml-artifacts/prod",
                             s3_endpoint_url=f"http://{host}:{port}", s3_region="us-east-1",
                             s3_access_key_id="testing", s3_secret_access_key="testing")
    server = ServerThread(settings)
    server.start()
    yield server
    server.stop()
    moto.stop()


def test_upload_sample_prepare_delete_on_s3(s3_platform, backends, unique_name):
    assert s3_platform.container.artifacts.description.startswith("s3://ml-artifacts/prod")
    with grpc.insecure_channel(s3_platform.address) as channel:
        stub = dataset_pb2_grpc.DatasetServiceStub(channel)
        data = IRIS_LIKE + f"9,9,9,{unique_name}\n".encode()
        dataset = upload(stub, unique_name, data).dataset
        key = f"datasets/sha256/{dataset.sha256}.parquet"
        assert s3_platform.run(s3_platform.container.artifacts.exists(key))
        rows = stub.SampleDatasetRows(dataset_pb2.SampleDatasetRowsRequest(name=unique_name, row_count=151),
                                      metadata=AUTH)
        assert len(rows.rows) == 151 and rows.rows[-1]["species"] == unique_name
        derived = stub.PrepareDataset(dataset_pb2.PrepareDatasetRequest(
            name=unique_name, recipe='{"steps": [{"filter_rows": "species == \'setosa\'"}]}',
            output_display_name=f"{unique_name}-setosa"), metadata=AUTH).datasets[0]
        assert derived.row_count == 50
        stub.DeleteDataset(dataset_pb2.DeleteDatasetRequest(name=derived.name), metadata=AUTH)
        stub.DeleteDataset(dataset_pb2.DeleteDatasetRequest(name=dataset.name), metadata=AUTH)
    assert not s3_platform.run(s3_platform.container.artifacts.exists(key))
    assert sql(backends, "SELECT id FROM datasets WHERE display_name LIKE $1", f"{unique_name}%") == []
