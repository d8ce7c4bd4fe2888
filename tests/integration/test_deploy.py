"""DeployService end to end over gRPC: registry and aliases, deployments, Predict (typed columns,
Arrow IPC, stream), input validation, canary split, promote and rollback under load, feedback,
a fresh serving process restoring deployments, and a tampered artifact refused."""

from __future__ import annotations

import collections
import threading
import time
import uuid

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2

from microlearn._deploy import arrow_ipc
from microlearn.v1 import common_pb2, deploy_pb2, deploy_pb2_grpc
from tests.conftest import ServerThread, make_settings, sql
from tests.integration.deploy_support import (
    Env,
    create,
    predict,
    register,
    rows,
    rpc_error,
    serving_table,
    train_models,
    wait_deployment,
)
from tests.integration.test_training import AUTH, sql_hmac

pytestmark = pytest.mark.integration
Code = grpc.StatusCode


@pytest.fixture(scope="module")
def env(platform, workers):
    with grpc.insecure_channel(platform.address) as channel:
        yield Env(channel, deploy_pb2_grpc.DeployServiceStub(channel), train_models(channel, 3),
                  uuid.uuid4().hex[:6])


def test_deploy_and_predict_unary_arrow_and_stream(env, platform, backends, tmp_path):
    name = env.name("churn")
    version = register(env.deploy, name, env.models[0], aliases=["production"])
    assert version.name == f"registeredModels/{name}/versions/1" and list(version.aliases) == ["production"]
    assert version.task == common_pb2.TASK_TYPE_BINARY_CLASSIFICATION and list(version.class_labels) == ["no", "yes"]
    assert {c.name for c in version.feature_schema.columns} == {"x1", "x2", "plan", "active", "signup"}

    created = create(env.deploy, name, {f"{name}@production": 0}, description="churn model")
    assert created.state == deploy_pb2.DEPLOYMENT_STATE_CREATING and created.name == f"deployments/{name}"
    ready = wait_deployment(env.deploy, name)
    assert ready.traffic[0].percent == 100 and ready.traffic[0].resolved_version == version.name
    assert ready.traffic[0].resolved_model == env.models[0] and ready.input_schema.columns

    frame = serving_table(5, seed=11)
    frame.loc[0, "x1"] = np.nan
    response = predict(env.deploy, name, frame, request_id="req-1")
    assert response.request_id == "req-1" and response.model_version == version.name
    assert response.model == env.models[0] and response.row_count == 5 and response.logged
    assert response.task == common_pb2.TASK_TYPE_BINARY_CLASSIFICATION and response.latency_ms > 0
    assert set(response.labels.values) <= {"yes", "no"} and len(response.labels.values) == 5
    proba = np.array([list(c.probabilities) for c in response.class_probabilities]).T
    assert [c.label for c in response.class_probabilities] == ["no", "yes"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)

    # The same rows through the model loaded in-process give the same answers.
    from microlearn_grpc.core.model_artifact import TrainedModel

    model_id = env.models[0].removeprefix("models/")
    artifact = platform.settings.data_dir / "artifacts" / "models" / f"{model_id}.tar"
    sha = sql(backends, "SELECT sha256 FROM models WHERE id = $1", model_id)[0]["sha256"]
    local = TrainedModel.load(artifact, tmp_path, key=platform.settings.signing_key(), sha256=sha,
                              signature=sql_hmac(platform, model_id))
    features = frame.drop(columns=["label"])
    np.testing.assert_allclose(local.predict_proba(features), proba, rtol=1e-6)
    assert list(local.predict(features)) == list(response.labels.values)

    by_arrow = env.deploy.Predict(deploy_pb2.PredictRequest(deployment=f"deployments/{name}",
                                                            arrow_ipc=arrow_ipc(features)), metadata=AUTH)
    assert list(by_arrow.labels.values) == list(response.labels.values) and not by_arrow.warnings
    np.testing.assert_allclose([list(c.probabilities) for c in by_arrow.class_probabilities], proba.T, rtol=1e-9)
    without = predict(env.deploy, name, frame, exclude_probabilities=True)
    assert not without.class_probabilities and list(without.labels.values) == list(response.labels.values)

    # Stream: every request answered under its id; a bad one gets `error` and the stream goes on.
    def requests():
        for i in range(30):
            single = serving_table(1, seed=100 + i)
            yield deploy_pb2.PredictStreamRequest(deployment=name if i == 0 else "", request_id=f"s{i}",
                                                  rows=rows(single))
        bad = serving_table(1).drop(columns=["label"]).assign(x1="oops")
        yield deploy_pb2.PredictStreamRequest(request_id="bad", rows=rows(bad))
        yield deploy_pb2.PredictStreamRequest(request_id="after", rows=rows(serving_table(2, seed=3)))
    answers = {r.request_id: r for r in env.deploy.PredictStream(requests(), metadata=AUTH, timeout=60)}
    assert set(answers) == {f"s{i}" for i in range(30)} | {"bad", "after"}
    assert answers["bad"].error.code == Code.INVALID_ARGUMENT.value[0] and "'x1'" in answers["bad"].error.message
    assert all(not answers[f"s{i}"].HasField("error") and answers[f"s{i}"].model_version == version.name
               for i in range(30))
    assert answers["after"].row_count == 2 and len(answers["after"].labels.values) == 2

    # Feedback attaches to logged predictions; unknown ids and rows are reported, not failed.
    feedback = env.deploy.SubmitFeedback(deploy_pb2.SubmitFeedbackRequest(deployment=name, entries=[
        deploy_pb2.FeedbackEntry(request_id="req-1", row_index=0, label="yes"),
        deploy_pb2.FeedbackEntry(request_id="req-1", row_index=9, label="no"),
        deploy_pb2.FeedbackEntry(request_id="nope", row_index=0, label="no")]), metadata=AUTH)
    assert feedback.accepted_count == 1
    assert [(r.index, "out of range" in r.reason or "no logged" in r.reason) for r in feedback.rejected] == \
        [(1, True), (2, True)]
    stored = sql(backends, "SELECT actual_label FROM prediction_feedback WHERE deployment = $1", name)
    assert stored == [{"actual_label": "yes"}]
    logged = sql(backends, "SELECT model_version, row_count, inputs FROM prediction_log"
                           " WHERE deployment = $1 AND request_id = 'req-1'", name)
    assert logged[0]["model_version"] == version.name and logged[0]["row_count"] == 5


BAD_INPUTS = [
    (lambda f: f.assign(x1=["a", "1", "2"]), "'x1'", "expected numbers"),
    (lambda f: f.assign(active=["yes", "maybe", "no"]), "'active'", "booleans"),
    (lambda f: f.assign(signup=["2022-01-01", "not a date", "2022-02-02"]), "'signup'", "ISO 8601"),
    (lambda f: f.assign(x2=[1.0, float("inf"), 2.0]), "'x2'", "infinite"),
]


@pytest.mark.parametrize("change,column,text", BAD_INPUTS)
def test_bad_input_is_invalid_argument_naming_the_column(env, change, column, text):
    name = env.name("validate")
    _deployed(env, name)
    frame = change(serving_table(3, seed=5).drop(columns=["label"]))
    error = rpc_error(env.deploy.Predict, deploy_pb2.PredictRequest(deployment=name, rows=rows(frame)))
    assert error.code() == Code.INVALID_ARGUMENT and column in error.details() and text in error.details()


def test_structural_input_errors_and_warnings(env):
    name = env.name("validate")
    _deployed(env, name)
    good = rows(serving_table(3, seed=5))
    ragged = common_pb2.ColumnarRows()
    ragged.CopyFrom(good)
    ragged.columns[1].doubles.values.append(1.0)
    masked = common_pb2.ColumnarRows()
    masked.CopyFrom(good)
    masked.columns[0].null_mask.extend([True])
    twice = common_pb2.ColumnarRows()
    twice.CopyFrom(good)
    twice.columns.append(good.columns[0])
    for message, expected in ((ragged, "'x2'"), (masked, "null_mask"), (twice, "given twice")):
        error = rpc_error(env.deploy.Predict, deploy_pb2.PredictRequest(deployment=name, rows=message))
        assert error.code() == Code.INVALID_ARGUMENT and expected in error.details(), error.details()
    for request, expected in ((deploy_pb2.PredictRequest(deployment=name, arrow_ipc=b"not arrow"), "arrow_ipc"),
                              (deploy_pb2.PredictRequest(deployment=name), "input"),
                              (deploy_pb2.PredictRequest(deployment="Bad Name", rows=good), "deployment"),
                              (deploy_pb2.PredictRequest(deployment=name, rows=good, model_version="x@9"),
                               "model_version")):
        error = rpc_error(env.deploy.Predict, request)
        assert error.code() == Code.INVALID_ARGUMENT and expected in error.details(), error.details()
    assert rpc_error(env.deploy.Predict, deploy_pb2.PredictRequest(deployment="no-such", rows=good)).code() == \
        Code.NOT_FOUND

    frame = serving_table(3, seed=5).drop(columns=["label", "x2"]).assign(extra=1, plan=["pro", "gold", "basic"])
    response = predict(env.deploy, name, frame)
    warnings = " | ".join(response.warnings)
    assert "'x2'" in warnings and "'extra'" in warnings and "'gold'" in warnings, warnings
    assert len(response.labels.values) == 3


def _deployed(env: Env, name: str) -> None:
    try:
        env.deploy.GetDeployment(deploy_pb2.GetDeploymentRequest(name=name), metadata=AUTH)
    except grpc.RpcError:
        register(env.deploy, name, env.models[0])
        create(env.deploy, name, {f"{name}@1": 100})
    wait_deployment(env.deploy, name)


def test_registry_versions_aliases_and_refusals(env):
    name = env.name("registry")
    v1 = register(env.deploy, name, env.models[0], aliases=["champion"])
    v2 = register(env.deploy, name, env.models[1])
    again = env.deploy.RegisterModelVersion(deploy_pb2.RegisterModelVersionRequest(
        registered_model=f"registeredModels/{name}", model=env.models[1]), metadata=AUTH)
    assert (v1.version, v2.version) == (1, 2) and again.already_registered and again.model_version.version == 2

    listed = env.deploy.ListModelVersions(deploy_pb2.ListModelVersionsRequest(registered_model=name, page_size=1),
                                          metadata=AUTH)
    assert [v.version for v in listed.model_versions] == [2] and listed.total_size == 2 and listed.next_page_token
    by_alias = env.deploy.GetModelVersion(deploy_pb2.GetModelVersionRequest(
        name=f"registeredModels/{name}/aliases/champion"), metadata=AUTH).model_version
    assert by_alias.version == 1 and list(by_alias.aliases) == ["champion"]

    moved = env.deploy.SetAlias(deploy_pb2.SetAliasRequest(model_version=f"{name}@2", alias="champion"), metadata=AUTH)
    assert moved.previous_version == v1.name and moved.alias.version == v2.name
    assert [h.version for h in moved.alias.history] == [v1.name]
    back = env.deploy.RollbackAlias(deploy_pb2.RollbackAliasRequest(name=f"{name}@champion"), metadata=AUTH)
    assert back.alias.version == v1.name and back.rolled_back_version == v2.name and not back.alias.history
    error = rpc_error(env.deploy.RollbackAlias, deploy_pb2.RollbackAliasRequest(name=f"{name}@champion"))
    assert error.code() == Code.FAILED_PRECONDITION

    error = rpc_error(env.deploy.DeleteModelVersion, deploy_pb2.DeleteModelVersionRequest(name=f"{name}@1"))
    assert error.code() == Code.FAILED_PRECONDITION and "champion" in error.details()
    create(env.deploy, name, {f"{name}@champion": 100})
    error = rpc_error(env.deploy.DeleteAlias, deploy_pb2.DeleteAliasRequest(name=f"{name}@champion"))
    assert error.code() == Code.FAILED_PRECONDITION and f"deployments/{name}" in error.details()
    error = rpc_error(env.deploy.GetModelVersion, deploy_pb2.GetModelVersionRequest(name=f"{name}@7"))
    assert error.code() == Code.NOT_FOUND

    registered = env.deploy.ListRegisteredModels(deploy_pb2.ListRegisteredModelsRequest(name_prefix=name),
                                                 metadata=AUTH).registered_models
    assert [(r.name, r.latest_version, r.version_count) for r in registered] == [(f"registeredModels/{name}", 2, 2)]
    assert [a.alias for a in registered[0].aliases] == ["champion"]
    assert env.deploy.DeleteModelVersion(deploy_pb2.DeleteModelVersionRequest(name=f"{name}@2"),
                                         metadata=AUTH).name == v2.name

    for request, field in ((deploy_pb2.RegisterModelVersionRequest(registered_model="bad name!", model=env.models[0]),
                            "registered_model"),
                           (deploy_pb2.RegisterModelVersionRequest(registered_model=name, model=env.models[0],
                                                                   aliases=["Bad"]), "aliases[0]")):
        error = rpc_error(env.deploy.RegisterModelVersion, request)
        assert error.code() == Code.INVALID_ARGUMENT and field in error.details()
    for traffic, field in (({f"{name}@1": 50}, "percent"), ({f"{name}@1": 60, f"{name}@champion": 30}, "add up"),
                           ({"nope@1": 100}, "does not exist")):
        error = rpc_error(env.deploy.CreateDeployment, deploy_pb2.CreateDeploymentRequest(
            deployment_id=env.name("bad"), deployment=deploy_pb2.Deployment(traffic=[
                deploy_pb2.TrafficTarget(model_version=k, percent=v) for k, v in traffic.items()])))
        assert field in error.details() and "deployment.traffic" in error.details(), error.details()
    error = rpc_error(env.deploy.CreateDeployment, deploy_pb2.CreateDeploymentRequest(
        deployment_id=name, deployment=deploy_pb2.Deployment(traffic=[
            deploy_pb2.TrafficTarget(model_version=f"{name}@1")])))
    assert error.code() == Code.ALREADY_EXISTS


def test_canary_split_routing_key_and_update(env):
    name = env.name("canary")
    register(env.deploy, name, env.models[0])
    register(env.deploy, name, env.models[1])
    create(env.deploy, name, {f"{name}@1": 90, f"{name}@2": 10})
    wait_deployment(env.deploy, name)
    single = rows(serving_table(1, seed=4))
    counts = collections.Counter(
        env.deploy.Predict(deploy_pb2.PredictRequest(deployment=name, rows=single), metadata=AUTH).model_version
        for _ in range(2000))
    share = counts[f"registeredModels/{name}/versions/2"] / 2000
    assert abs(share - 0.10) <= 0.05, counts
    sticky = {env.deploy.Predict(deploy_pb2.PredictRequest(deployment=name, rows=single, routing_key="user-42"),
                                 metadata=AUTH).model_version for _ in range(20)}
    assert len(sticky) == 1
    pinned = env.deploy.Predict(deploy_pb2.PredictRequest(deployment=name, rows=single, model_version=f"{name}@2"),
                                metadata=AUTH)
    assert pinned.model_version == f"registeredModels/{name}/versions/2"

    current = env.deploy.GetDeployment(deploy_pb2.GetDeploymentRequest(name=name), metadata=AUTH).deployment
    update = deploy_pb2.Deployment(name=name, etag=current.etag, traffic=[
        deploy_pb2.TrafficTarget(model_version=f"{name}@2", percent=100)])
    env.deploy.UpdateDeployment(deploy_pb2.UpdateDeploymentRequest(
        deployment=update, update_mask=field_mask_pb2.FieldMask(paths=["traffic"])), metadata=AUTH)
    stale = rpc_error(env.deploy.UpdateDeployment, deploy_pb2.UpdateDeploymentRequest(
        deployment=update, update_mask=field_mask_pb2.FieldMask(paths=["traffic"])))
    assert stale.code() == Code.ABORTED
    _until(lambda: predict(env.deploy, name).model_version == f"registeredModels/{name}/versions/2")
    listed = env.deploy.ListDeployments(deploy_pb2.ListDeploymentsRequest(registered_model=name), metadata=AUTH)
    assert [d.name for d in listed.deployments] == [f"deployments/{name}"]
    assert env.deploy.DeleteDeployment(deploy_pb2.DeleteDeploymentRequest(name=name), metadata=AUTH).name == \
        f"deployments/{name}"
    assert rpc_error(env.deploy.Predict, deploy_pb2.PredictRequest(deployment=name, rows=single)).code() == \
        Code.NOT_FOUND


def _until(check, timeout: float = 30) -> float:
    """Seconds until `check()` is true (fails after `timeout`)."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - began


class Load:
    """Threads predicting in a loop, recording (time, version) and any error."""

    def __init__(self, stub, name: str, threads: int = 4) -> None:
        self.stub, self.name = stub, name
        self.seen: list[list[tuple[float, str]]] = [[] for _ in range(threads)]
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        single = rows(serving_table(1, seed=index))
        while not self.stop.is_set():
            try:
                response = self.stub.Predict(deploy_pb2.PredictRequest(deployment=self.name, rows=single),
                                             metadata=AUTH, timeout=30)
                self.seen[index].append((time.monotonic(), response.model_version))
            except grpc.RpcError as exc:
                self.errors.append(exc)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def latest(self) -> set[str]:
        return {s[-1][1] for s in self.seen if s}


def test_promote_and_rollback_under_load_fail_no_request(env):
    name = env.name("live")
    v1 = register(env.deploy, name, env.models[0], aliases=["production"])
    v2 = register(env.deploy, name, env.models[1])
    create(env.deploy, name, {f"{name}@production": 100})
    wait_deployment(env.deploy, name)
    with Load(env.deploy, name) as load:
        _until(lambda: load.latest() == {v1.name})
        promoted_at = time.monotonic()
        env.deploy.SetAlias(deploy_pb2.SetAliasRequest(model_version=f"{name}@2", alias="production"), metadata=AUTH)
        switch = _until(lambda: load.latest() == {v2.name})
        env.deploy.RollbackAlias(deploy_pb2.RollbackAliasRequest(name=f"{name}@production"), metadata=AUTH)
        back = _until(lambda: load.latest() == {v1.name})
    print(f"alias switch seen by all clients after {switch:.3f} s, rollback after {back:.3f} s")
    assert not load.errors, load.errors[:3]
    for seen in load.seen:
        versions = [v for _, v in seen]
        assert versions, "a client made no requests"
        # Each client sees v1, then v2, then v1 again: never a flip back and forth within a phase.
        changes = [b for a, b in zip(versions, versions[1:]) if a != b]
        assert changes == [v2.name, v1.name], changes[:10]
        first_v2 = next(t for t, v in seen if v == v2.name)
        assert first_v2 >= promoted_at


def test_fresh_serving_process_restores_deployments_and_follows_moves(env, platform, backends, tmp_path):
    name = env.name("restart")
    register(env.deploy, name, env.models[0], aliases=["production"])
    register(env.deploy, name, env.models[1])
    create(env.deploy, name, {f"{name}@production": 100})
    wait_deployment(env.deploy, name)
    # Another server process on the same database and artifact store, with the same signing key.
    other = ServerThread(make_settings(backends, tmp_path / "other", artifact_url=platform.settings.artifacts,
                                       model_signing_key=platform.settings.signing_key().decode()))
    other.start()
    try:
        with grpc.insecure_channel(other.address) as channel:
            stub = deploy_pb2_grpc.DeployServiceStub(channel)
            first = predict(stub, name)
            assert first.model_version == f"registeredModels/{name}/versions/1"
            env.deploy.SetAlias(deploy_pb2.SetAliasRequest(model_version=f"{name}@2", alias="production"),
                                metadata=AUTH)
            seconds = _until(lambda: predict(stub, name).model_version == f"registeredModels/{name}/versions/2")
            print(f"the other process followed the alias move after {seconds:.3f} s")
    finally:
        other.stop()


def test_tampered_artifact_is_refused_and_previous_version_keeps_serving(env, platform, backends):
    name = env.name("tamper")
    v1 = register(env.deploy, name, env.models[0], aliases=["production"])
    bad = register(env.deploy, name, env.models[2])
    create(env.deploy, name, {f"{name}@production": 100})
    wait_deployment(env.deploy, name)
    model_id = env.models[2].removeprefix("models/")
    artifact = platform.settings.data_dir / "artifacts" / "models" / f"{model_id}.tar"
    blob = bytearray(artifact.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    artifact.write_bytes(bytes(blob))
    with Load(env.deploy, name, threads=2) as load:
        _until(lambda: load.latest() == {v1.name})
        env.deploy.SetAlias(deploy_pb2.SetAliasRequest(model_version=bad.name, alias="production"), metadata=AUTH)
        failed = wait_deployment(env.deploy, name, (deploy_pb2.DEPLOYMENT_STATE_FAILED,), timeout=30)
        time.sleep(0.3)
    assert "verification" in failed.state_message and env.models[2] in failed.state_message, failed.state_message
    assert not load.errors and all(v == v1.name for s in load.seen for _, v in s)
