"""Serving through the SDK (`Client.deploy`/`predict`, `AsyncClient`) and the CLI
(`microlearn deploy ...`, `microlearn predict`) against a real server and real workers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import grpc
import pytest
import typer
from typer.testing import CliRunner

import microlearn
from microlearn import cli
from tests.conftest import TOKEN
from tests.integration.deploy_support import FEATURES, serving_table, train_models

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:6]
COMMANDS = [("deploy", "create"), ("deploy", "list"), ("deploy", "show"), ("deploy", "promote"),
            ("deploy", "rollback"), ("deploy", "delete"), ("deploy", "batch-predict"), ("predict",)]


@pytest.fixture(scope="module")
def models(platform, workers) -> list[str]:
    with grpc.insecure_channel(platform.address) as channel:
        return train_models(channel, 2)


@pytest.fixture(scope="module")
def ml(platform):
    with microlearn.Client(platform.address, TOKEN) as client:
        yield client


def app() -> typer.Typer:
    """The commands mounted as microlearn_grpc/cli.py mounts them."""
    main = typer.Typer()
    main.add_typer(cli.deploy_app, name="deploy")
    main.command("predict")(cli.predict)
    return main


@pytest.fixture
def invoke(platform, monkeypatch):
    monkeypatch.setenv("MICROLEARN_ADDRESS", platform.address)
    monkeypatch.setenv("MICROLEARN_TOKEN", TOKEN)
    runner, main = CliRunner(), app()
    return lambda *args: runner.invoke(main, list(args))


def test_sdk_deploy_predict_promote_rollback(ml, models, platform):
    name = f"sdk-{RUN}"
    deployment = ml.deploy(models[0], name=name)
    assert deployment.state == microlearn.v1.deploy_pb2.DEPLOYMENT_STATE_READY
    assert deployment.traffic[0].model_version == f"{name}@production"
    frame = serving_table(4, seed=3).drop(columns=["label"])
    result = ml.predict(name, frame, request_id="sdk-1")
    assert isinstance(result, microlearn.Prediction) and result.request_id == "sdk-1"
    assert result.model_version == f"registeredModels/{name}/versions/1" and len(result.predictions) == 4
    assert list(result.probabilities.columns) == ["no", "yes"]
    assert list(result.to_frame().columns) == ["prediction", "probability_no", "probability_yes"]
    big = serving_table(1500, seed=4).drop(columns=["label"])  # sent as Arrow IPC
    assert len(ml.predict(name, big, probabilities=False).predictions) == 1500

    again = ml.deploy(models[1], name=name)  # a second deploy is a promotion of the alias
    assert again.traffic[0].resolved_version == f"registeredModels/{name}/versions/2"
    assert ml.predict(name, frame).model_version == f"registeredModels/{name}/versions/2"
    ml.rollback(f"{name}@production")
    assert ml.wait_deployment(name).traffic[0].resolved_version == f"registeredModels/{name}/versions/1"
    with pytest.raises(microlearn.InvalidArgument, match="'x1'"):
        ml.predict(name, frame.assign(x1="text"))

    async def run_async():
        async with microlearn.AsyncClient(platform.address, TOKEN) as client:
            return await client.predict(name, frame)
    assert asyncio.run(run_async()).model_version.startswith(f"registeredModels/{name}/versions/")
    assert ml.delete_deployment(name) == f"deployments/{name}"


def test_every_command_has_help_with_an_example():
    runner, main = CliRunner(), app()
    for command in COMMANDS:
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0 and "Example" in result.stdout, (command, result.stdout)


def test_cli_deploy_predict_promote_rollback_delete(invoke, models, tmp_path, ml):
    name = f"cli-{RUN}"
    result = invoke("deploy", "create", name, "--model", models[0])
    assert result.exit_code == 0 and "state    ready" in result.stdout, result.output
    canary = f"cli-canary-{RUN}"
    follower = f"cli-follower-{RUN}"
    invoke("deploy", "create", follower, "--model", models[1], "--registered-model", name, "--alias", "challenger",
           "--wait", "0")  # registers v2 as name@challenger (the follower follows it)
    result = invoke("deploy", "create", canary, "--traffic", f"{name}@production=90",
                    "--traffic", f"{name}@challenger=10", "--json")
    assert result.exit_code == 0, result.output
    assert [t["percent"] for t in json.loads(result.stdout)["traffic"]] == [90, 10]

    listed = json.loads(invoke("deploy", "list", "--registered-model", name, "--json").stdout)
    assert {f"deployments/{name}", f"deployments/{canary}", f"deployments/{follower}"} <= {d["name"] for d in listed}

    rows = tmp_path / "rows.csv"
    serving_table(6, seed=8)[FEATURES].to_csv(rows, index=False)
    scored = tmp_path / "scored.csv"
    result = invoke("predict", name, str(rows), "-o", str(scored))
    assert result.exit_code == 0 and "versions/1" in result.stdout, result.output
    import pandas as pd

    out = pd.read_csv(scored)
    assert len(out) == 6 and {"prediction", "probability_yes", "x1"} <= set(out.columns)

    result = invoke("deploy", "promote", f"{name}@2")
    assert result.exit_code == 0 and f"registeredModels/{name}/versions/2" in result.stdout, result.output
    result = invoke("deploy", "rollback", f"{name}@production")
    assert result.exit_code == 0 and "(was " in result.stdout, result.output
    deadline = time.monotonic() + 30  # the alias move reaches serving within about a second
    while not json.loads(invoke("predict", name, str(rows), "--json").stdout)["model_version"].endswith("/versions/1"):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    bad = tmp_path / "bad.csv"
    serving_table(2)[FEATURES].assign(x1="oops").to_csv(bad, index=False)
    result = invoke("predict", name, str(bad))
    assert result.exit_code == 1 and "'x1'" in result.output
    source = f"cli-batch-{RUN}"
    ml.upload_dataset(serving_table(30, seed=4), name=source)
    result = invoke("deploy", "batch-predict", name, source, "-p", "label", "-o", f"{source}-scored", "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)["job"]
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["outputs"], job
    scored_rows = ml.sample_dataset(job["outputs"][0], n=100)
    assert len(scored_rows) == 30 and {"label", "prediction", "probability_yes"} <= set(scored_rows.columns)
    result = invoke("deploy", "batch-predict", name, "no-such-dataset")
    assert result.exit_code == 1 and "no-such-dataset" in result.output

    for deployment in (canary, follower, name):
        assert invoke("deploy", "delete", deployment).exit_code == 0
    assert invoke("deploy", "show", name).exit_code == 1
