"""Shared setup of the serving tests: a generated table, trained models (through the real
TrainerService and `microlearn worker` processes) and small gRPC helpers."""

from __future__ import annotations

import dataclasses
import time
import uuid

import grpc
import numpy as np
import pandas as pd
import pytest

from microlearn._deploy import columnar_rows
from microlearn.v1 import common_pb2, dataset_pb2_grpc, deploy_pb2, deploy_pb2_grpc, trainer_pb2_grpc
from tests.integration.test_datasets import upload
from tests.integration.test_training import AUTH, csv_bytes, spec, start, wait_state

FEATURES = ["x1", "x2", "plan", "active", "signup"]


def serving_table(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, rows), rng.normal(5, 2, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    active = rng.choice(["yes", "no"], rows)
    signup = (pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 500, rows), unit="D")).strftime("%Y-%m-%d")
    logit = 1.5 * x1 - 0.4 * (x2 - 5) + (plan == "pro") - 0.8 * (active == "no")
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": x2, "plan": plan, "active": active, "signup": signup, "label": label})


@dataclasses.dataclass
class Env:
    channel: grpc.Channel
    deploy: deploy_pb2_grpc.DeployServiceStub
    models: list[str]          # models/ID of trained classifiers, interchangeable
    prefix: str                # unique per module, for registered model and deployment names

    def name(self, stem: str) -> str:
        return f"{stem}-{self.prefix}"


def train_models(channel: grpc.Channel, count: int, *, estimator: str = "logistic_regression") -> list[str]:
    datasets = dataset_pb2_grpc.DatasetServiceStub(channel)
    trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
    dataset = upload(datasets, f"serving-{uuid.uuid4().hex[:8]}", csv_bytes(serving_table())).dataset
    jobs = [start(trainer, spec(dataset, estimator=estimator, target="label", seed=i,
                                hyperparameters={"C": [0.05, 1.0, 10.0][i % 3]} if estimator == "logistic_regression"
                                else {}))
            for i in range(count)]
    done = [wait_state(trainer, job.name, (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED), 240)
            for job in jobs]
    assert all(j.state == common_pb2.JOB_STATE_SUCCEEDED for j in done), [j.error for j in done]
    return [j.outputs[0] for j in done]


def rows(frame: pd.DataFrame) -> common_pb2.ColumnarRows:
    return columnar_rows(frame[[c for c in frame.columns if c != "label"]])


def predict(stub, deployment: str, frame: pd.DataFrame | None = None, **kwargs) -> deploy_pb2.PredictResponse:
    frame = serving_table(3, seed=9) if frame is None else frame
    return stub.Predict(deploy_pb2.PredictRequest(deployment=deployment, rows=rows(frame), **kwargs),
                        metadata=AUTH, timeout=30)


def register(stub, name: str, model: str, aliases=()) -> deploy_pb2.ModelVersion:
    return stub.RegisterModelVersion(deploy_pb2.RegisterModelVersionRequest(
        registered_model=name, model=model, aliases=list(aliases)), metadata=AUTH, timeout=30).model_version


def create(stub, name: str, traffic: dict[str, int], **kwargs) -> deploy_pb2.Deployment:
    deployment = deploy_pb2.Deployment(
        traffic=[deploy_pb2.TrafficTarget(model_version=k, percent=v) for k, v in traffic.items()], **kwargs)
    return stub.CreateDeployment(deploy_pb2.CreateDeploymentRequest(deployment_id=name, deployment=deployment),
                                 metadata=AUTH, timeout=30).deployment


def wait_deployment(stub, name: str, states=(deploy_pb2.DEPLOYMENT_STATE_READY,), timeout: float = 60,
                    ) -> deploy_pb2.Deployment:
    deadline = time.monotonic() + timeout
    while True:
        found = stub.GetDeployment(deploy_pb2.GetDeploymentRequest(name=name), metadata=AUTH, timeout=30).deployment
        if found.state in states:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} is {deploy_pb2.DeploymentState.Name(found.state)} after {timeout} s: "
                                 f"{found.state_message}")
        time.sleep(0.05)


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, metadata=AUTH, timeout=30, **kwargs)
    return info.value


def deploy_model(stub, name: str, model: str) -> deploy_pb2.Deployment:
    """Register `model` as NAME@1 with alias production and serve it as deployment NAME (READY)."""
    register(stub, name, model, aliases=["production"])
    create(stub, name, {f"{name}@production": 0})
    return wait_deployment(stub, name)
