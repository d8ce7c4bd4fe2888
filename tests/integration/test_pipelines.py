"""PipelineService end to end: a real server, real `microlearn worker` processes, PostgreSQL and Redis.
`microlearn run` uploads a local file and runs dataset → prepare → select → optimize → evaluate → deploy
on the workers; the deployment answers Predict; invalid YAML is refused with its line; a pipeline whose
coordinator's worker dies resumes at its unfinished step; a cancelled pipeline stops its study."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import grpc
import numpy as np
import pandas as pd
import pytest

import microlearn
from microlearn.v1 import pipeline_pb2, pipeline_pb2_grpc
from tests.conftest import TOKEN, sql
from tests.integration.test_cli_automl import cli

pytestmark = pytest.mark.integration

AUTH = (("authorization", f"Bearer {TOKEN}"),)
PS = pipeline_pb2.PipelineState


def _table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    plan = rng.choice(["basic", "plus", "pro"], size=rows)
    score = 1.5 * x1 - x2 + (plan == "pro") + rng.normal(scale=0.5, size=rows)
    return pd.DataFrame({"id": [f"c{seed}-{i}" for i in range(rows)], "x1": x1, "x2": x2, "plan": plan,
                         "churned": np.where(score > 0, "yes", "no")})


def _pipeline(tmp_path, *, deploy: str = "", budget: int = 10, name: str = "") -> str:
    _table(400, 1).to_csv(tmp_path / "customers.csv", index=False)
    text = f"""\
name: {name or 'pipeline-test'}
labels: {{suite: pipelines}}
steps:
  - dataset: {{path: customers.csv, name: pipe-{uuid.uuid4().hex[:8]}}}
  - prepare:
      steps:
        - drop_columns: [id]
        - train_test_split: {{test_fraction: 0.25, seed: 7, stratify: churned}}
  - select: {{target: churned, max_candidates: 2}}
  - optimize:
      time_budget: {budget}
      metric: roc_auc
      candidates: [logistic_regression, decision_tree_classifier]
      parallelism: 2
      ensemble: false
      seed: 3
  - evaluate
"""
    if deploy:
        text += f"  - deploy: {{name: {deploy}, alias: production}}\n"
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def ml(platform, workers):
    with microlearn.Client(platform.address, TOKEN, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def stub(platform, workers):
    with grpc.insecure_channel(platform.address) as channel:
        yield pipeline_pb2_grpc.PipelineServiceStub(channel)


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_pipeline_end_to_end_with_the_cli(platform, ml, tmp_path, backends):
    deployment = f"pipe-{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    done = cli(platform, "run", _pipeline(tmp_path, deploy=deployment), "--json", timeout=90)
    assert done.returncode == 0, done.stderr + done.stdout
    assert time.monotonic() - began < 60
    pipeline = json.loads(done.stdout)
    assert pipeline["state"] == "PIPELINE_STATE_SUCCEEDED" and pipeline["display_name"] == "pipeline-test"
    steps = {s["kind"].removeprefix("PIPELINE_STEP_KIND_").lower(): s for s in pipeline["steps"]}
    assert list(steps) == ["dataset", "prepare", "select", "optimize", "evaluate", "deploy"]
    assert all(s["state"] == "PIPELINE_STEP_STATE_SUCCEEDED" for s in steps.values())
    assert steps["dataset"]["outputs"]["dataset"].startswith("datasets/") and steps["dataset"]["line"] == 4
    prepared = steps["prepare"]["outputs"]
    assert prepared["dataset"] != prepared["test_dataset"] and prepared["test_dataset"].startswith("datasets/")
    assert steps["select"]["outputs"]["task"] == "binary" and steps["select"]["outputs"]["target"] == "churned"
    optimized = steps["optimize"]["outputs"]
    assert optimized["study"].startswith("studies/") and optimized["model"].startswith("models/")
    assert 0.8 < steps["evaluate"]["metrics"]["roc_auc"] <= 1.0 and "held-out rows" in steps["evaluate"]["message"]
    assert steps["evaluate"]["outputs"]["dataset"] == prepared["test_dataset"]
    assert steps["deploy"]["outputs"]["deployment"] == f"deployments/{deployment}"
    # Live progress went to stderr while it ran.
    assert "[3] optimize  started" in done.stderr and "pipeline SUCCEEDED" in done.stderr
    # The study searched the prepared train split; the model is registered and served.
    study = ml.get_study(optimized["study"])
    assert study.spec.dataset == prepared["dataset"] and study.spec.labels["pipeline"] == pipeline["id"]
    version = steps["deploy"]["outputs"]["model_version"]
    assert sql(backends, "SELECT model_id FROM model_versions WHERE registered_model = $1 AND version = $2",
               deployment, int(version.rsplit("/", 1)[1]))[0]["model_id"] == optimized["model"].removeprefix("models/")
    assert ml.wait_deployment(deployment, 30).state == 2  # READY
    answer = ml.predict(deployment, _table(5, 9).drop(columns=["id", "churned"]))
    assert len(answer.predictions) == 5 and set(answer.predictions) <= {"yes", "no"}
    # The events stream replays the whole run in order.
    events = list(ml.pipeline_events(pipeline["name"]))
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "state_change" and events[0].state_change.state == PS.PIPELINE_STATE_PENDING
    assert events[-1].state_change.state == PS.PIPELINE_STATE_SUCCEEDED and events[-1].progress == 1.0
    assert [e.step_finished.index for e in events if e.WhichOneof("payload") == "step_finished"] == list(range(6))
    assert any("trial(s) complete" in e.log.message for e in events if e.WhichOneof("payload") == "log")
    listed = list(ml.list_pipelines(labels={"suite": "pipelines"}))
    assert pipeline["name"] in [p.name for p in listed] and not listed[0].yaml
    shown = cli(platform, "pipelines", "show", pipeline["name"])
    assert shown.returncode == 0 and "optimize" in shown.stdout and "SUCCEEDED" in shown.stdout
    replayed = cli(platform, "pipelines", "events", pipeline["name"], "--no-follow")
    assert replayed.returncode == 0 and "[5] deploy    done" in replayed.stdout, replayed.stdout + replayed.stderr


@pytest.mark.parametrize("edit, fragment", [
    (("time_budget: 10", 'time_budget: "abc"'),
     'pipeline.yaml line 11, steps[3].optimize.time_budget: must be a positive number, got "abc"'),
    (("target: churned", "target: nope"), "line 9, steps[2].select.target"),
    (("- drop_columns: [id]", "- drop_columns: [no_such_column]"), "line 6, steps[1].prepare.steps"),
    (("candidates: [logistic_regression, decision_tree_classifier]", "candidates: [no_such_estimator]"),
     "line 13, steps[3].optimize.candidates"),
    (("metric: roc_auc", "metric: accuracyy"), "line 12, steps[3].optimize.metric: unknown metric"),
])
def test_invalid_pipelines_are_refused_with_line_and_field(ml, stub, tmp_path, backends, edit, fragment):
    text = open(_pipeline(tmp_path)).read()
    dataset = ml.upload_dataset(tmp_path / "customers.csv", name="pipe-invalid").dataset.name
    before = sql(backends, "SELECT count(*) AS n FROM pipelines")[0]["n"]
    with pytest.raises(grpc.RpcError) as caught:
        stub.RunPipeline(pipeline_pb2.RunPipelineRequest(yaml=text.replace(*edit), source_name="pipeline.yaml",
                                                         uploaded_files={"customers.csv": dataset}), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in caught.value.details(), caught.value.details()
    assert sql(backends, "SELECT count(*) AS n FROM pipelines")[0]["n"] == before


def test_local_paths_need_an_upload_and_validate_only_runs_nothing(stub, ml, tmp_path, backends):
    text = open(_pipeline(tmp_path)).read()
    with pytest.raises(grpc.RpcError) as caught:
        stub.RunPipeline(pipeline_pb2.RunPipelineRequest(yaml=text), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "line 4, steps[0].dataset.path: 'customers.csv' is a file on the client's machine" in \
        caught.value.details()
    before = sql(backends, "SELECT count(*) AS n FROM pipelines")[0]["n"]
    checked = ml.run_pipeline(tmp_path / "pipeline.yaml", validate_only=True)
    assert not checked.name and [s.line for s in checked.steps] == [4, 5, 9, 10, 17]
    assert sql(backends, "SELECT count(*) AS n FROM pipelines")[0]["n"] == before
    for call, request in ((stub.GetPipeline, pipeline_pb2.GetPipelineRequest(name="pipelines/nope")),
                          (stub.CancelPipeline, pipeline_pb2.CancelPipelineRequest(name="nope"))):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_cli_shows_yaml_errors_before_uploading(platform, tmp_path, backends):
    path = _pipeline(tmp_path)
    with open(path) as file:
        text = file.read().replace("ensemble: false", "ensemble: maybe")
    with open(path, "w") as file:
        file.write(text)
    uploads = sql(backends, "SELECT count(*) AS n FROM datasets")[0]["n"]
    done = cli(platform, "run", path)
    assert done.returncode == 1
    assert "pipeline.yaml line 15, steps[3].optimize.ensemble: must be true or false, got \"maybe\"" in done.stderr
    assert sql(backends, "SELECT count(*) AS n FROM datasets")[0]["n"] == uploads


def test_a_pipeline_resumes_at_its_unfinished_step_after_its_worker_dies(ml, tmp_path, workers, backends):
    pipeline = ml.run_pipeline(_pipeline(tmp_path, budget=12, name="resume"))

    def optimizing():
        rows = sql(backends, "SELECT s.state, s.outputs, j.worker_id, j.state AS job_state FROM pipeline_steps s "
                             "JOIN pipelines p ON p.id = s.pipeline_id JOIN jobs j ON j.id = p.job_id "
                             "WHERE s.pipeline_id = $1 AND s.kind = 'optimize'", pipeline.id)
        if rows and rows[0]["state"] == "RUNNING" and "study" in json.loads(rows[0]["outputs"]):
            return {**rows[0], "outputs": json.loads(rows[0]["outputs"])}
        return None
    row = _wait_for(optimizing, 40, "the optimize step to start its study")
    before = {s["kind"]: s for s in sql(backends, "SELECT kind, attempts, ended_at FROM pipeline_steps WHERE "
                                                  "pipeline_id = $1", pipeline.id)}
    os.kill(int(row["worker_id"].rsplit("-", 2)[-2]), signal.SIGKILL)
    replacement = workers.start(1)
    try:
        done = ml.wait_pipeline(pipeline.name, timeout=60)
        assert done.state == PS.PIPELINE_STATE_SUCCEEDED, done.error
        after = {s["kind"]: {**s, "outputs": json.loads(s["outputs"])} for s in sql(
            backends, "SELECT kind, attempts, ended_at, outputs FROM pipeline_steps WHERE pipeline_id = $1",
            pipeline.id)}
        for kind in ("dataset", "prepare", "select"):  # finished steps were not redone
            assert after[kind]["attempts"] == 1 and after[kind]["ended_at"] == before[kind]["ended_at"]
        assert after["optimize"]["attempts"] == 2 and after["evaluate"]["attempts"] == 1
        # The resumed step re-attached to its study: the pipeline started exactly one.
        assert after["optimize"]["outputs"]["study"] == row["outputs"]["study"]
        train = after["prepare"]["outputs"]["dataset"].removeprefix("datasets/")
        assert sql(backends, "SELECT count(*) AS n FROM studies WHERE dataset_id = $1", train)[0]["n"] == 1
        job = sql(backends, "SELECT j.attempt, j.state, j.worker_id FROM pipelines p JOIN jobs j ON j.id = p.job_id "
                            "WHERE p.id = $1", pipeline.id)[0]
        assert job["attempt"] == 2 and job["state"] == "SUCCEEDED" and job["worker_id"] != row["worker_id"]
        logs = [e.log.message for e in ml.pipeline_events(pipeline.name, replay_only=True)
                if e.WhichOneof("payload") == "log"]
        assert any("resumed" in m and "step 3 (optimize)" in m for m in logs), logs
        assert any("re-attaching to studies/" in m for m in logs), logs
    finally:
        assert replacement[0].poll() is None


def test_cancel_stops_the_running_step_and_its_study(ml, tmp_path, backends):
    pipeline = ml.run_pipeline(_pipeline(tmp_path, budget=120, name="cancel"))

    def study():
        step = ml.get_pipeline(pipeline.name).steps[3]
        return step.outputs.get("study") if step.state == pipeline_pb2.PIPELINE_STEP_STATE_RUNNING else None
    study_name = _wait_for(study, 40, "the optimize step's study")
    ml.cancel_pipeline(pipeline.name, reason="enough")
    done = ml.wait_pipeline(pipeline.name, timeout=30)
    assert done.state == PS.PIPELINE_STATE_CANCELLED and "enough" in done.error
    states = [s.state for s in done.steps]
    assert states[:3] == [pipeline_pb2.PIPELINE_STEP_STATE_SUCCEEDED] * 3
    assert states[3:] == [pipeline_pb2.PIPELINE_STEP_STATE_CANCELLED] * 2
    stopped = ml.wait_study(study_name, timeout=30)
    assert stopped.error and (stopped.end_time.ToDatetime() - stopped.create_time.ToDatetime()).total_seconds() < 60
    assert ml.cancel_pipeline(pipeline.name).state == PS.PIPELINE_STATE_CANCELLED


def test_async_sdk_runs_lists_reads_and_cancels_pipelines(platform, workers, tmp_path):
    import asyncio

    async def scenario():
        async with microlearn.AsyncClient(platform.address, TOKEN) as aml:
            checked = await aml.run_pipeline(_pipeline(tmp_path), validate_only=True)
            started = await aml.run_pipeline(_pipeline(tmp_path, budget=300, name="async"))
            listed = [p async for p in aml.list_pipelines(page_size=1)]
            got = await aml.get_pipeline(started.name)
            await aml.cancel_pipeline(started.name, "async test over")
            return checked, started, listed, got, await aml.wait_pipeline(started.name, timeout=30, poll=0.2)
    checked, started, listed, got, done = asyncio.run(scenario())
    assert [s.kind for s in checked.steps] == [1, 2, 3, 4, 5] and not checked.name
    assert started.name in [p.name for p in listed] and got.yaml and got.display_name == "async"
    assert done.state == PS.PIPELINE_STATE_CANCELLED and done.error == "async test over"


def test_reflection_and_health_know_the_pipeline_service(platform):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(platform.address) as channel:
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=AUTH)
        assert "microlearn.v1.PipelineService" in {s.name for r in responses
                                                   for s in r.list_services_response.service}
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="microlearn.v1.PipelineService"), metadata=AUTH)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_pipeline_whose_job_ended_without_it_is_not_left_running(ml, tmp_path, backends):
    pipeline = ml.run_pipeline(_pipeline(tmp_path, budget=15, name="orphan"))
    _wait_for(lambda: ml.get_pipeline(pipeline.name).steps[3].outputs.get("study"), 40, "the optimize step's study")
    # What the reconciler does after a job's last attempt lost its worker.
    sql(backends, "UPDATE jobs SET state = 'FAILED', error = 'worker w1 stopped heartbeating', ended_at = now() "
                  "FROM pipelines p WHERE p.id = $1 AND jobs.id = p.job_id", pipeline.id)
    done = ml.get_pipeline(pipeline.name)
    assert done.state == PS.PIPELINE_STATE_FAILED and done.error == "worker w1 stopped heartbeating"
    assert done.steps[3].state == pipeline_pb2.PIPELINE_STEP_STATE_CANCELLED
    assert done.steps[3].error == "stopped: worker w1 stopped heartbeating"
    assert done.steps[4].error == "not run: the pipeline failed"
    last = list(ml.pipeline_events(pipeline.name, replay_only=True))[-1]
    assert last.state_change.state == PS.PIPELINE_STATE_FAILED
