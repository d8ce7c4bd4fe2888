"""StartBatchPrediction end to end: a stored dataset predicted by a deployment on the workers, with
events, stored as a new dataset whose rows match Predict on the same rows; bad requests refused
naming the field; bad data failing the job with the column named."""

from __future__ import annotations

import uuid

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from microlearn.v1 import common_pb2, dataset_pb2, dataset_pb2_grpc, deploy_pb2, deploy_pb2_grpc, trainer_pb2_grpc
from tests.integration.deploy_support import deploy_model, predict, serving_table, train_models
from tests.integration.test_datasets import upload
from tests.integration.test_training import AUTH, csv_bytes, events, wait_state

pytestmark = pytest.mark.integration
Code = grpc.StatusCode
TERMINAL = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED)


@pytest.fixture(scope="module")
def env(platform, workers):
    prefix = uuid.uuid4().hex[:6]
    with grpc.insecure_channel(platform.address) as channel:
        deploy = deploy_pb2_grpc.DeployServiceStub(channel)
        name = f"batch-{prefix}"
        deploy_model(deploy, name, train_models(channel, 1)[0])
        yield {"deploy": deploy, "datasets": dataset_pb2_grpc.DatasetServiceStub(channel),
               "trainer": trainer_pb2_grpc.TrainerServiceStub(channel), "name": name, "prefix": prefix}


def start(env, **kwargs) -> deploy_pb2.StartBatchPredictionResponse:
    return env["deploy"].StartBatchPrediction(deploy_pb2.StartBatchPredictionRequest(deployment=env["name"], **kwargs),
                                              metadata=AUTH, timeout=30)


def test_batch_prediction_stores_predictions_matching_predict(env):
    frame = serving_table(1200, seed=31).drop(columns=["label"])
    frame.insert(0, "row_id", [f"r{i}" for i in range(len(frame))])
    source = f"batch-input-{env['prefix']}"
    upload(env["datasets"], source, csv_bytes(frame))
    started = start(env, input_dataset=source, passthrough_columns=["row_id"], labels={"team": "growth"})
    assert started.job.kind == common_pb2.JOB_KIND_BATCH_PREDICTION
    assert started.job.state == common_pb2.JOB_STATE_PENDING
    assert started.output_display_name == f"{source}-predictions"
    assert started.model_version == f"registeredModels/{env['name']}/versions/1"

    job = wait_state(env["trainer"], started.job.name, TERMINAL, 120)
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED, job.error
    assert job.outputs[0].startswith("datasets/") and job.metrics["rows"] == 1200
    history = events(env["trainer"], started.job.name)
    states = [e.state_change.state for e in history if e.HasField("state_change")]
    assert states[0] == common_pb2.JOB_STATE_PENDING and states[-1] == common_pb2.JOB_STATE_SUCCEEDED
    assert any(p.name == "rows_predicted" and p.value == 1200 for e in history for p in e.metrics.points)

    output = env["datasets"].GetDataset(dataset_pb2.GetDatasetRequest(name=job.outputs[0]), metadata=AUTH).dataset
    assert output.display_name == started.output_display_name and output.row_count == 1200
    sample = env["datasets"].SampleDatasetRows(dataset_pb2.SampleDatasetRowsRequest(name=job.outputs[0], row_count=20),
                                               metadata=AUTH)
    assert list(sample.columns) == ["row_id", "prediction", "probability_no", "probability_yes"]
    rows = [json_format.MessageToDict(r) for r in sample.rows]
    assert [r["row_id"] for r in rows] == [f"r{i}" for i in range(20)]
    expected = predict(env["deploy"], env["name"], frame.iloc[:20].drop(columns=["row_id"]))
    assert [r["prediction"] for r in rows] == list(expected.labels.values)
    proba = np.array([list(c.probabilities) for c in expected.class_probabilities]).T
    np.testing.assert_allclose([[r["probability_no"], r["probability_yes"]] for r in rows], proba, rtol=1e-9)


def test_bad_requests_are_refused_naming_the_field(env):
    source = f"batch-small-{env['prefix']}"
    upload(env["datasets"], source, csv_bytes(serving_table(20, seed=3)))
    for kwargs, code, text in [
        ({"input_dataset": source, "passthrough_columns": ["nope"]}, Code.INVALID_ARGUMENT, "'nope'"),
        ({"input_dataset": source, "passthrough_columns": ["prediction"]}, Code.INVALID_ARGUMENT, "clash"),
        ({"input_dataset": ""}, Code.INVALID_ARGUMENT, "input_dataset"),
        ({"input_dataset": "no-such-dataset"}, Code.NOT_FOUND, "no-such-dataset"),
        ({"input_dataset": source, "model_version": "7"}, Code.INVALID_ARGUMENT, "model_version"),
        ({"input_dataset": source, "output_display_name": "bad/name"}, Code.INVALID_ARGUMENT, "output_display_name"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            start(env, **kwargs)
        assert info.value.code() == code and text in info.value.details(), (kwargs, info.value.details())
    with pytest.raises(grpc.RpcError) as info:
        env["deploy"].StartBatchPrediction(deploy_pb2.StartBatchPredictionRequest(
            deployment="no-such-deployment", input_dataset=source), metadata=AUTH, timeout=30)
    assert info.value.code() == Code.NOT_FOUND


def test_bad_rows_fail_the_job_naming_the_column(env):
    frame = serving_table(30, seed=4).drop(columns=["label"]).astype({"x1": str})
    frame.loc[5, "x1"] = "lots"
    source = f"batch-bad-{env['prefix']}"
    upload(env["datasets"], source, csv_bytes(frame))
    started = start(env, input_dataset=source, exclude_probabilities=True, request_id=f"bad-{env['prefix']}")
    again = start(env, input_dataset=source, exclude_probabilities=True, request_id=f"bad-{env['prefix']}")
    assert again.job.name == started.job.name  # a retry with the same request_id starts nothing
    job = wait_state(env["trainer"], started.job.name, TERMINAL, 120)
    assert job.state == common_pb2.JOB_STATE_FAILED and "'x1'" in job.error, job.error


def test_sdk_batch_predict_waits_for_the_output_dataset(env, platform):
    import asyncio

    import microlearn
    from tests.conftest import TOKEN

    source = f"batch-sdk-{env['prefix']}"
    upload(env["datasets"], source, csv_bytes(serving_table(40, seed=8)))
    with microlearn.Client(platform.address, TOKEN) as client:
        job = client.batch_predict(env["name"], source, output=f"scored-{env['prefix']}", passthrough=["label"],
                                   probabilities=False).wait(120)
        frame = client.sample_dataset(job.outputs[0], n=100)
    assert list(frame.columns) == ["label", "prediction"] and len(frame) == 40

    async def run_async() -> list[str]:
        async with microlearn.AsyncClient(platform.address, TOKEN) as client:
            job = await client.batch_predict(env["name"], source, passthrough=["label"])
            return (await job.wait(120)).outputs

    (output,) = asyncio.run(run_async())
    done = env["datasets"].GetDataset(dataset_pb2.GetDatasetRequest(name=output), metadata=AUTH).dataset
    assert done.display_name == f"{source}-predictions" and done.row_count == 40

