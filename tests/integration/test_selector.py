"""SelectorService's estimator registry over gRPC, the SDK and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import pytest

from microlearn.v1 import common_pb2, selector_pb2, selector_pb2_grpc
from tests.conftest import TOKEN

pytestmark = pytest.mark.integration

AUTH = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture()
def stub(platform):
    with grpc.insecure_channel(platform.address) as channel:
        yield selector_pb2_grpc.SelectorServiceStub(channel)


def test_list_all_and_by_task(stub):
    everything = stub.ListEstimators(selector_pb2.ListEstimatorsRequest(page_size=1000), metadata=AUTH).estimators
    assert len(everything) >= 25
    costs = [e.relative_cost for e in everything]
    assert costs == sorted(costs), "cheapest first"
    binary = stub.ListEstimators(selector_pb2.ListEstimatorsRequest(
        task=common_pb2.TASK_TYPE_BINARY_CLASSIFICATION, page_size=1000), metadata=AUTH).estimators
    assert binary and all(common_pb2.TASK_TYPE_BINARY_CLASSIFICATION in e.supported_tasks for e in binary)
    ids = {e.estimator_id for e in binary}
    assert {"logistic_regression", "random_forest_classifier", "hist_gradient_boosting_classifier"} <= ids
    assert "ridge" not in ids


def test_pagination_covers_everything_once(stub):
    seen, token = [], ""
    while True:
        page = stub.ListEstimators(selector_pb2.ListEstimatorsRequest(page_size=4, page_token=token), metadata=AUTH)
        assert len(page.estimators) <= 4
        seen += [e.estimator_id for e in page.estimators]
        token = page.next_page_token
        if not token:
            break
    everything = stub.ListEstimators(selector_pb2.ListEstimatorsRequest(page_size=1000), metadata=AUTH).estimators
    assert seen == [e.estimator_id for e in everything]


def test_get_estimator_with_search_space(stub):
    by_id = stub.GetEstimator(selector_pb2.GetEstimatorRequest(name="hist_gradient_boosting_classifier"),
                              metadata=AUTH).estimator
    by_name = stub.GetEstimator(selector_pb2.GetEstimatorRequest(name=by_id.name), metadata=AUTH).estimator
    assert by_id == by_name and by_id.name == "estimators/hist_gradient_boosting_classifier"
    assert by_id.supports_iteration_progress and by_id.supports_early_stopping and by_id.handles_missing_values
    params = {p.name: p for p in by_id.search_space.parameters}
    assert params["learning_rate"].float_distribution.log
    assert set(by_id.default_hyperparameters.values) <= set(params)


@pytest.mark.parametrize("request_, code, words", [
    (selector_pb2.GetEstimatorRequest(name="random_forrest_classifier"), grpc.StatusCode.NOT_FOUND,
     ["random_forest_classifier"]),
    (selector_pb2.GetEstimatorRequest(name=""), grpc.StatusCode.INVALID_ARGUMENT, ["name is required"]),
    (selector_pb2.ListEstimatorsRequest(page_token="nonsense!"), grpc.StatusCode.INVALID_ARGUMENT, ["page_token"]),
    (selector_pb2.ListEstimatorsRequest(page_size=5000), grpc.StatusCode.INVALID_ARGUMENT, ["page_size"]),
    (selector_pb2.SelectModelsRequest(dataset="x"), grpc.StatusCode.NOT_FOUND, ["no dataset named 'x'"]),
])
def test_errors(stub, request_, code, words):
    method = {selector_pb2.GetEstimatorRequest: stub.GetEstimator, selector_pb2.ListEstimatorsRequest: stub.ListEstimators,
              selector_pb2.SelectModelsRequest: stub.SelectModels}[type(request_)]
    with pytest.raises(grpc.RpcError) as err:
        method(request_, metadata=AUTH)
    assert err.value.code() == code
    for word in words:
        assert word in err.value.details()


def test_sdk_and_cli(platform):
    from microlearn import Client

    with Client(platform.address, TOKEN) as client:
        regression = client.list_estimators("regression")
        assert {"ridge", "lasso", "random_forest_regressor"} <= {e.estimator_id for e in regression}
        assert client.get_estimator("kmeans").supported_tasks == [common_pb2.TASK_TYPE_CLUSTERING]
    env = {**os.environ, "MICROLEARN_ADDRESS": platform.address, "MICROLEARN_TOKEN": TOKEN}
    listed = subprocess.run([sys.executable, "-m", "microlearn_grpc", "estimators", "list", "--task", "clustering",
                             "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert {e["estimator_id"] for e in json.loads(listed.stdout)} >= {"kmeans", "dbscan", "gaussian_mixture"}
    shown = subprocess.run([sys.executable, "-m", "microlearn_grpc", "estimators", "show", "ridge"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "alpha" in shown.stdout, shown.stderr
