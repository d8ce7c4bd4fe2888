"""Prometheus metrics over HTTP: the gRPC server's RPC and prediction series after real calls, and
the workers' queue depth and job durations, read the way Prometheus reads them (GET /metrics with
the bearer token, the text format parsed by prometheus_client's parser)."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
import uuid

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from microlearn.inference import grpc_predict_v2_pb2 as pb
from microlearn.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from microlearn.v1 import dataset_pb2, dataset_pb2_grpc, deploy_pb2, deploy_pb2_grpc
from microlearn_grpc.metrics import serve_metrics
from tests.conftest import TOKEN
from tests.integration.deploy_support import deploy_model, predict, rows, serving_table, train_models
from tests.integration.test_training import AUTH

pytestmark = pytest.mark.integration


def scrape(url: str, token: str | None = TOKEN) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


def eventually(url: str, ready, timeout: float = 10.0) -> dict[tuple[str, tuple], float]:
    """Scrape until `ready(samples)` (or the timeout: then the last scrape, for the asserts to explain)."""
    deadline = time.monotonic() + timeout
    while not ready(samples := scrape(url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return samples


@pytest.fixture(scope="module")
def deployed(platform, workers) -> str:
    name = f"metrics-{uuid.uuid4().hex[:6]}"
    with grpc.insecure_channel(platform.address) as channel:
        stub = deploy_pb2_grpc.DeployServiceStub(channel)
        deploy_model(stub, name, train_models(channel, 1)[0])
    return name


@pytest.fixture()
def endpoint(platform):
    served = serve_metrics(platform.container.metrics.registry, "127.0.0.1", 0, token=TOKEN)
    yield served
    served.close()


def test_server_counts_rpcs_by_code_and_predictions_by_version(platform, deployed, endpoint):
    before = scrape(endpoint.url)
    frame = serving_table(4, seed=2)
    with grpc.insecure_channel(platform.address) as channel:
        stub = deploy_pb2_grpc.DeployServiceStub(channel)
        for _ in range(3):
            predict(stub, deployed, frame)
        bad = frame.assign(x1="lots")
        with pytest.raises(grpc.RpcError):
            stub.Predict(deploy_pb2.PredictRequest(deployment=deployed, rows=rows(bad)), metadata=AUTH, timeout=30)
        inference = pb_grpc.GRPCInferenceServiceStub(channel)
        tensor = pb.ModelInferRequest.InferInputTensor(name="x1", datatype="FP64", shape=[2])
        tensor.contents.fp64_contents.extend([0.1, 0.2])
        inference.ModelInfer(pb.ModelInferRequest(model_name=deployed, inputs=[tensor]), metadata=AUTH, timeout=30)
        datasets = dataset_pb2_grpc.DatasetServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            datasets.ListDatasets(dataset_pb2.ListDatasetsRequest(), timeout=30)  # no token
        with pytest.raises(grpc.RpcError):
            datasets.GetDataset(dataset_pb2.GetDatasetRequest(name="no-such-dataset"), metadata=AUTH, timeout=30)

    predict_ok = dict(grpc_service="microlearn.v1.DeployService", grpc_method="Predict", grpc_code="OK")
    expected = [
        ("grpc_server_handled_total", predict_ok, 3),
        ("grpc_server_handling_seconds_count", predict_ok, 3),
        ("grpc_server_handling_seconds_bucket", {**predict_ok, "le": "+Inf"}, 3),
        ("grpc_server_handled_total", dict(grpc_method="Predict", grpc_code="INVALID_ARGUMENT"), 1),
        ("grpc_server_handled_total", dict(grpc_service="inference.GRPCInferenceService", grpc_method="ModelInfer",
                                           grpc_code="OK"), 1),
        ("grpc_server_handled_total", dict(grpc_method="ListDatasets", grpc_code="UNAUTHENTICATED"), 1),
        ("grpc_server_handled_total", dict(grpc_method="GetDataset", grpc_code="NOT_FOUND"), 1),
    ]

    def deltas(samples) -> list[float]:
        return [value(samples, name, **labels) - value(before, name, **labels) for name, labels, _ in expected]

    # An aborted RPC's status reaches the client just before the server's interceptor records it.
    after = eventually(endpoint.url, lambda samples: all(d >= n for d, (_, _, n) in zip(deltas(samples), expected)))
    assert deltas(after) == [n for _, _, n in expected]

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    version = dict(deployment=deployed, version=f"{deployed}@1")
    assert delta("microlearn_predictions_total", **version) == 4  # 3 Predict + 1 ModelInfer
    assert delta("microlearn_predicted_rows_total", **version) == 3 * 4 + 2
    assert delta("microlearn_prediction_latency_seconds_count", **version) == 4
    assert delta("microlearn_prediction_errors_total", **version, code="INVALID_ARGUMENT") == 1
    assert value(after, "microlearn_serving_models_loaded") >= 1
    assert value(after, "process_resident_memory_bytes") > 0


def test_endpoint_requires_the_token_and_serves_only_metrics(endpoint):
    with pytest.raises(urllib.error.HTTPError) as denied:
        scrape(endpoint.url, token=None)
    assert denied.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as wrong:
        scrape(endpoint.url, token="wrong")
    assert wrong.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as elsewhere:
        scrape(endpoint.url.replace("/metrics", "/other"))
    assert elsewhere.value.code == 404


def test_workers_report_queue_depth_and_job_durations(workers, deployed):
    """`deployed` trained a model on these workers; each serves its own /metrics (the second one on a
    free port, since the first took the default 9100 or both found it taken)."""
    alive = [workers.log_dir / f"worker-{i}.log" for i, proc in enumerate(workers.procs) if proc.poll() is None]
    urls = [url for path in alive for url in re.findall(r"metrics: (http://\S+/metrics)", path.read_text(errors="replace"))]
    assert len(urls) >= 2 and len(set(urls)) == len(urls), workers.logs()
    with pytest.raises(urllib.error.HTTPError) as denied:
        scrape(urls[0], token=None)
    assert denied.value.code == 401
    scrapes = [scrape(url) for url in urls]
    assert all(("microlearn_queue_depth", (("queue", "microlearn:jobs"),)) in s for s in scrapes)
    finished = sum(value(s, "microlearn_job_duration_seconds_count", kind="training", state="succeeded")
                   for s in scrapes)
    assert finished >= 1
    assert all(value(s, "process_cpu_seconds_total") > 0 for s in scrapes)
