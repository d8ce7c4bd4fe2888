"""TrainerService end to end: real server, real `microlearn worker` processes, real PostgreSQL,
Redis, artifact store and MLflow (SQLite), all over sockets."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from google.protobuf import struct_pb2

from microlearn.v1 import common_pb2, dataset_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from tests.conftest import TOKEN, sql
from tests.integration.test_datasets import upload

pytestmark = pytest.mark.integration

AUTH = (("authorization", f"Bearer {TOKEN}"),)
S = common_pb2.JobState


def messy_table(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Numbers, categoricals, booleans and datetimes, with missing values everywhere: what users upload."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows).astype(float)
    income = rng.normal(50_000, 15_000, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    city = rng.choice([f"city{i}" for i in range(40)], rows)
    active = rng.choice(["yes", "no"], rows)
    signup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), unit="D")
    logit = (age - 45) / 12 + (plan == "pro") * 1.5 - (plan == "basic") + (active == "yes") * 0.8
    churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame({"age": age, "income": income, "plan": plan, "city": city, "active": active,
                          "signup": signup.strftime("%Y-%m-%d"), "spend": income / 1000 + age * 2 + rng.normal(0, 5, rows),
                          "churn": churn})
    for column in ("age", "income", "plan", "city", "signup"):
        frame.loc[rng.random(rows) < 0.08, column] = None
    return frame


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@pytest.fixture(scope="module")
def channel(platform, workers):
    with grpc.insecure_channel(platform.address) as channel:
        yield channel


@pytest.fixture(scope="module")
def trainer(channel):
    return trainer_pb2_grpc.TrainerServiceStub(channel)


@pytest.fixture(scope="module")
def messy_dataset(channel):
    stub = dataset_pb2_grpc.DatasetServiceStub(channel)
    return upload(stub, f"messy-{time.time_ns()}", csv_bytes(messy_table())).dataset


def spec(dataset, estimator="hist_gradient_boosting_classifier", target="churn", **kwargs) -> trainer_pb2.TrainingSpec:
    hyperparameters = kwargs.pop("hyperparameters", {})
    message = trainer_pb2.TrainingSpec(dataset=dataset.name, target=target, estimator=estimator, **kwargs)
    for key, value in hyperparameters.items():
        message.hyperparameters.values[key].CopyFrom(_value(value))
    return message


def _value(value) -> struct_pb2.Value:
    from google.protobuf import json_format

    return json_format.ParseDict(value, struct_pb2.Value())


def start(trainer, training_spec, request_id: str = "") -> common_pb2.Job:
    return trainer.StartTraining(trainer_pb2.StartTrainingRequest(spec=training_spec, request_id=request_id),
                                 metadata=AUTH, timeout=30).job


def wait_state(trainer, job_name: str, states, timeout: float = 120) -> common_pb2.Job:
    deadline = time.monotonic() + timeout
    while True:
        job = trainer.GetJob(trainer_pb2.GetJobRequest(name=job_name), metadata=AUTH).job
        if job.state in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"{job_name} still {S.Name(job.state)} after {timeout} s: {job}")
        time.sleep(0.1)


def events(trainer, job_name: str, **kwargs) -> list[common_pb2.JobEvent]:
    request = trainer_pb2.StreamJobEventsRequest(name=job_name, **kwargs)
    return [r.event for r in trainer.StreamJobEvents(request, metadata=AUTH, timeout=180)]


def test_train_streams_to_two_subscribers_tracks_in_mlflow_and_downloads(platform, trainer, messy_dataset, tmp_path):
    job = start(trainer, spec(messy_dataset, max_iterations=40, seed=7,
                              early_stopping=common_pb2.EarlyStopping(enabled=True, patience=5),
                              labels={"suite": "integration"}))
    assert job.state == S.JOB_STATE_PENDING and job.name == f"jobs/{job.job_id}"

    early: list = []
    first = threading.Thread(target=lambda: early.extend(events(trainer, job.name)))
    first.start()
    wait_state(trainer, job.name, (S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED))
    late = events(trainer, job.name)  # joins while running (or after): replay, then tail to the end
    first.join(180)
    assert [e.sequence for e in early] == [e.sequence for e in late]
    states = [e.state_change.state for e in early if e.WhichOneof("payload") == "state_change"]
    assert states == [S.JOB_STATE_PENDING, S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED], [(e.state_change, e.log) for e in early]
    steps = [p.step for e in early if e.WhichOneof("payload") == "metrics" for p in e.metrics.points
             if p.name == "val_loss"]
    assert steps and steps == sorted(steps) and steps[0] == 1
    # Every iteration also carries the job's metric on the validation rows (HPO pruning reads it).
    task_metric = {p.step: p.value for e in early if e.WhichOneof("payload") == "metrics" for p in e.metrics.points
                   if p.name == "val_roc_auc"}
    assert sorted(task_metric) == steps and all(0.0 <= v <= 1.0 for v in task_metric.values())
    assert any(e.WhichOneof("payload") == "log" for e in early)
    assert early[-1].progress == 1.0

    done = trainer.GetJob(trainer_pb2.GetJobRequest(name=job.name), metadata=AUTH)
    assert done.job.state == S.JOB_STATE_SUCCEEDED and done.job.attempt == 1
    assert done.job.device == "cpu" and done.job.worker_id
    assert done.training_spec.seed == 7 and done.training_spec.task == common_pb2.TASK_TYPE_BINARY_CLASSIFICATION
    (model_name,) = done.job.outputs
    assert 0.5 <= done.job.metrics["roc_auc"] <= 1.0

    model = trainer.GetModel(trainer_pb2.GetModelRequest(name=model_name), metadata=AUTH).model
    assert model.job == job.name and model.dataset == messy_dataset.name and model.labels["suite"] == "integration"
    assert list(model.class_labels) == ["no", "yes"] and model.metric == "roc_auc"
    assert {"accuracy", "f1_macro", "log_loss", "roc_auc"} <= set(model.metrics)
    assert {c.name for c in model.feature_schema.columns} >= {"age", "plan", "signup", "active"}
    assert model.format == common_pb2.MODEL_FORMAT_SKLEARN_PIPELINE and model.iterations >= 1

    # MLflow: the job's run, found from the job id, with params, per-step metrics and the model.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=platform.settings.mlflow_uri)
    run = client.get_run(done.job.mlflow_run_id)
    assert run.data.tags["microlearn.job_id"] == job.job_id and run.info.status == "FINISHED"
    assert run.data.params["estimator"] == "hist_gradient_boosting_classifier"
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == len(steps)
    history = client.get_metric_history(run.info.run_id, "val_roc_auc")  # per step, then the final value
    assert len(history) == len(steps) + 1
    assert run.data.metrics["val_roc_auc"] == pytest.approx(done.job.metrics["roc_auc"])
    assert task_metric[model.best_iteration] == pytest.approx(done.job.metrics["roc_auc"])
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")]

    # Download in chunks, check the digest, load and predict on raw rows (with unseen categories).
    chunks = list(trainer.DownloadModel(trainer_pb2.DownloadModelRequest(name=model_name), metadata=AUTH))
    metadata = chunks[0].metadata
    blob = b"".join(c.chunk for c in chunks[1:])
    assert len(blob) == metadata.size_bytes == model.size_bytes
    assert hashlib.sha256(blob).hexdigest() == metadata.sha256 == model.sha256
    resumed = list(trainer.DownloadModel(trainer_pb2.DownloadModelRequest(name=model_name, offset=1000), metadata=AUTH))
    assert b"".join(c.chunk for c in resumed[1:]) == blob[1000:]

    from microlearn_grpc.core.model_artifact import TrainedModel, verify_file

    path = tmp_path / metadata.filename
    path.write_bytes(blob)
    loaded = TrainedModel.load(path, tmp_path, key=platform.settings.signing_key(), sha256=metadata.sha256,
                               signature=sql_hmac(platform, model.id))
    rows = messy_table(5, seed=3).drop(columns=["churn"])
    rows.loc[0, "plan"] = "never-seen"
    assert set(loaded.predict(rows)) <= {"yes", "no"}
    assert loaded.predict_proba(rows).shape == (5, 2)
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    from microlearn_grpc.core.model_artifact import ArtifactVerificationError

    with pytest.raises(ArtifactVerificationError):
        verify_file(tampered, platform.settings.signing_key(), metadata.sha256, sql_hmac(platform, model.id))


def sql_hmac(platform, model_id: str) -> str:
    from tests.conftest import Backends

    backends = Backends(platform.settings.database_url, platform.settings.redis_url, Path("."))
    return sql(backends, "SELECT hmac FROM models WHERE id = $1", model_id)[0]["hmac"]


def test_cancel_running_job_stops_within_seconds(trainer, messy_dataset):
    job = start(trainer, spec(messy_dataset, max_iterations=200_000, hyperparameters={"learning_rate": 0.01}))
    wait_state(trainer, job.name, (S.JOB_STATE_RUNNING,))
    seen_metrics = None
    for response in trainer.StreamJobEvents(trainer_pb2.StreamJobEventsRequest(name=job.name), metadata=AUTH,
                                            timeout=60):
        if response.event.WhichOneof("payload") == "metrics":
            seen_metrics = response.event
            break
    assert seen_metrics is not None
    asked = time.monotonic()
    response = trainer.CancelJob(trainer_pb2.CancelJobRequest(name=job.name, reason="test says stop"), metadata=AUTH)
    assert response.job.state in (S.JOB_STATE_RUNNING, S.JOB_STATE_CANCELLED)
    done = wait_state(trainer, job.name, (S.JOB_STATE_CANCELLED, S.JOB_STATE_FAILED, S.JOB_STATE_SUCCEEDED), 30)
    assert done.state == S.JOB_STATE_CANCELLED and "test says stop" in done.error
    assert time.monotonic() - asked < 5
    assert not done.outputs
    last = events(trainer, job.name)[-1]
    assert last.state_change.state == S.JOB_STATE_CANCELLED
    # Cancelling again changes nothing.
    again = trainer.CancelJob(trainer_pb2.CancelJobRequest(name=job.name), metadata=AUTH).job
    assert again.state == S.JOB_STATE_CANCELLED and again.end_time == done.end_time


@pytest.fixture(scope="module")
def idle_trainer(backends, platform, tmp_path_factory):
    """A second server on the same database whose queue no worker serves: its jobs stay PENDING."""
    from tests.conftest import ServerThread, make_settings

    server = ServerThread(make_settings(backends, Path(platform.settings.data_dir), queue_name="microlearn:idle-test"))
    server.start()
    with grpc.insecure_channel(server.address) as channel:
        yield trainer_pb2_grpc.TrainerServiceStub(channel)
    server.stop()


def test_cancel_pending_job_never_starts(idle_trainer, messy_dataset, backends):
    job = start(idle_trainer, spec(messy_dataset, max_iterations=5))
    cancelled = idle_trainer.CancelJob(trainer_pb2.CancelJobRequest(name=job.name), metadata=AUTH).job
    assert cancelled.state == S.JOB_STATE_CANCELLED and cancelled.end_time.seconds > 0
    stream = events(idle_trainer, job.name)
    assert [e.state_change.state for e in stream] == [S.JOB_STATE_PENDING, S.JOB_STATE_CANCELLED]
    (row,) = sql(backends, "SELECT attempt, started_at, worker_id FROM jobs WHERE id = $1", job.job_id)
    assert row == {"attempt": 0, "started_at": None, "worker_id": None}
    assert not sql(backends, "SELECT 1 FROM dataset_references WHERE referrer = $1", job.name)


def test_duplicate_request_id_starts_one_job(trainer, messy_dataset, backends):
    request_id = f"req-{time.time_ns()}"
    first = start(trainer, spec(messy_dataset, max_iterations=5), request_id=request_id)
    second = start(trainer, spec(messy_dataset, max_iterations=999), request_id=request_id)
    assert second.job_id == first.job_id
    done = wait_state(trainer, first.name, (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED))
    assert done.state == S.JOB_STATE_SUCCEEDED and done.attempt == 1
    assert sql(backends, "SELECT count(*) AS n FROM jobs WHERE request_id = $1", request_id) == [{"n": 1}]
    assert sql(backends, "SELECT count(*) AS n FROM models WHERE job_id = $1", first.job_id) == [{"n": 1}]


def test_worker_killed_mid_job_is_picked_up_again(trainer, messy_dataset, workers):
    import os
    import signal

    import psutil

    job = start(trainer, spec(messy_dataset, max_iterations=4000, hyperparameters={"learning_rate": 0.01}))
    for response in trainer.StreamJobEvents(trainer_pb2.StreamJobEventsRequest(name=job.name), metadata=AUTH,
                                            timeout=60):
        if response.event.WhichOneof("payload") == "metrics":
            break
    running = trainer.GetJob(trainer_pb2.GetJobRequest(name=job.name), metadata=AUTH).job
    assert running.state == S.JOB_STATE_RUNNING and running.attempt == 1
    pid = int(running.worker_id.rsplit("-", 2)[-2])
    children = psutil.Process(pid).children(recursive=True)
    assert children, "the fit runs in a child process of the worker"
    os.kill(pid, signal.SIGKILL)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"orphaned processes after the worker died: {alive}"
    replacement = workers.start(1)
    try:
        done = wait_state(trainer, job.name, (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED), timeout=180)
        assert done.state == S.JOB_STATE_SUCCEEDED, done.error
        assert done.attempt == 2 and done.worker_id != running.worker_id
        logs = [e.log.message for e in events(trainer, job.name) if e.WhichOneof("payload") == "log"]
        assert any("stopped heartbeating" in m and "retrying (attempt 2 of 3)" in m for m in logs), logs
    finally:
        assert replacement[0].poll() is None


INVALID = [
    (dict(estimator="no_such_model"), "spec.estimator", "unknown estimator"),
    (dict(target="nope"), "spec.target", "not in dataset"),
    (dict(estimator="ridge"), "spec.estimator", "does not support"),
    (dict(hyperparameters={"max_depthh": 3}), "spec.hyperparameters.max_depthh", "max_depthh"),
    (dict(hyperparameters={"learning_rate": "fast"}), "spec.hyperparameters.learning_rate", "learning_rate"),
    (dict(hyperparameters={"learning_rate": 50.0}), "spec.hyperparameters.learning_rate", "learning_rate"),
    (dict(metric="rmse"), "spec.metric", "rmse"),
    (dict(validation=common_pb2.ValidationStrategy(holdout=common_pb2.HoldoutValidation(fraction=0.9))),
     "spec.validation.holdout.fraction", "0.5"),
    (dict(validation=common_pb2.ValidationStrategy(k_fold=common_pb2.KFoldValidation(folds=50))),
     "spec.validation.k_fold.folds", "2-20"),
    (dict(validation=common_pb2.ValidationStrategy(group_column="ghost")), "spec.validation.group_column", "ghost"),
    (dict(max_iterations=-1), "spec.max_iterations", "1,000,000"),
    (dict(estimator="random_forest_classifier", use_gpu=True), "spec.use_gpu", "GPU"),
    (dict(target="spend", estimator="ridge", balance_classes=True), "spec.balance_classes", "classification"),
    (dict(early_stopping=common_pb2.EarlyStopping(enabled=True, patience=20_000)), "spec.early_stopping.patience",
     "1-10000"),
    (dict(task=common_pb2.TASK_TYPE_REGRESSION), "spec.task", "regression"),
    (dict(labels={"Bad Key": "x"}), "spec.labels", "keys"),
    (dict(ignore_columns=["ghost"]), "spec.ignore_columns", "ghost"),
    (dict(timeout_seconds=-5), "spec.timeout_seconds", "timeout"),
]


@pytest.mark.parametrize("changes, field, text", INVALID, ids=[i[1] + "-" + str(n) for n, i in enumerate(INVALID)])
def test_invalid_requests_are_refused_naming_the_field(trainer, messy_dataset, backends, changes, field, text):
    marker = f"bad-{time.time_ns()}"
    changes = dict(changes)
    labels = {"case": marker, **changes.pop("labels", {})}
    with pytest.raises(grpc.RpcError) as error:
        start(trainer, spec(messy_dataset, labels=labels, **changes))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert field in error.value.details() and text in error.value.details(), error.value.details()
    assert not sql(backends, "SELECT 1 FROM jobs WHERE labels->>'case' = $1", marker)


def test_missing_spec_dataset_and_job_errors(trainer, messy_dataset):
    cases = [
        (lambda: trainer.StartTraining(trainer_pb2.StartTrainingRequest(), metadata=AUTH), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: start(trainer, trainer_pb2.TrainingSpec(dataset="datasets/ds-missing", target="y", estimator="ridge")),
         grpc.StatusCode.NOT_FOUND),
        (lambda: trainer.GetJob(trainer_pb2.GetJobRequest(name="jobs/job-missing"), metadata=AUTH),
         grpc.StatusCode.NOT_FOUND),
        (lambda: trainer.CancelJob(trainer_pb2.CancelJobRequest(name=""), metadata=AUTH), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: list(trainer.StreamJobEvents(trainer_pb2.StreamJobEventsRequest(name="jobs/job-missing"), metadata=AUTH)),
         grpc.StatusCode.NOT_FOUND),
        (lambda: list(trainer.StreamJobEvents(trainer_pb2.StreamJobEventsRequest(name="jobs/x", after_sequence="zz"),
                                              metadata=AUTH)), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: trainer.ListJobs(trainer_pb2.ListJobsRequest(page_token="garbage"), metadata=AUTH),
         grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: trainer.ListModels(trainer_pb2.ListModelsRequest(order_by="size"), metadata=AUTH),
         grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: trainer.GetModel(trainer_pb2.GetModelRequest(name="models/mdl-missing"), metadata=AUTH),
         grpc.StatusCode.NOT_FOUND),
        (lambda: list(trainer.DownloadModel(trainer_pb2.DownloadModelRequest(name="models/mdl-missing"), metadata=AUTH)),
         grpc.StatusCode.NOT_FOUND),
    ]
    for call, code in cases:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == code, error.value.details()
        assert error.value.details()


def test_list_jobs_filters_paginates_and_models_order(trainer, messy_dataset, channel):
    marker = f"list-{time.time_ns()}"
    names = [start(trainer, spec(messy_dataset, max_iterations=3 + i, labels={"batch": marker})).name
             for i in range(3)]
    for name in names:
        wait_state(trainer, name, (S.JOB_STATE_SUCCEEDED,))
    seen, token = [], ""
    while True:
        page = trainer.ListJobs(trainer_pb2.ListJobsRequest(page_size=2, page_token=token, labels={"batch": marker}),
                                metadata=AUTH)
        assert page.total_size == 3
        seen += [j.name for j in page.jobs]
        assert all(j.name in page.training_specs for j in page.jobs)
        token = page.next_page_token
        if not token:
            break
    assert seen == names[::-1]
    filtered = trainer.ListJobs(trainer_pb2.ListJobsRequest(
        states=[S.JOB_STATE_SUCCEEDED], estimator="hist_gradient_boosting_classifier",
        dataset=messy_dataset.display_name, labels={"batch": marker}), metadata=AUTH)
    assert filtered.total_size == 3
    none = trainer.ListJobs(trainer_pb2.ListJobsRequest(states=[S.JOB_STATE_RUNNING], labels={"batch": marker}),
                            metadata=AUTH)
    assert none.total_size == 0
    models = trainer.ListModels(trainer_pb2.ListModelsRequest(labels={"batch": marker}, order_by="metrics.roc_auc desc"),
                                metadata=AUTH).models
    scores = [m.metrics["roc_auc"] for m in models]
    assert len(models) == 3 and scores == sorted(scores, reverse=True)
    deleted = trainer.DeleteModel(trainer_pb2.DeleteModelRequest(name=models[0].name), metadata=AUTH)
    assert deleted.name == models[0].name
    with pytest.raises(grpc.RpcError) as error:
        trainer.GetModel(trainer_pb2.GetModelRequest(name=models[0].name), metadata=AUTH)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_use_gpu_on_a_cpu_worker_falls_back_and_says_so(trainer, messy_dataset):
    job = start(trainer, spec(messy_dataset, estimator="xgboost_classifier", max_iterations=5, use_gpu=True))
    done = wait_state(trainer, job.name, (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED))
    assert done.state == S.JOB_STATE_SUCCEEDED and done.device == "cpu"
    warnings = [e.log.message for e in events(trainer, job.name)
                if e.WhichOneof("payload") == "log" and e.log.level == common_pb2.LOG_LEVEL_WARNING]
    assert any("use_gpu was requested" in w and "no GPU" in w for w in warnings), warnings
    model = trainer.GetModel(trainer_pb2.GetModelRequest(name=done.outputs[0]), metadata=AUTH).model
    assert model.format == common_pb2.MODEL_FORMAT_XGBOOST and model.device == "cpu"


def test_kfold_job_reports_std_and_a_failing_fit_fails_with_its_reason(trainer, messy_dataset):
    job = start(trainer, spec(messy_dataset, estimator="lightgbm_classifier", max_iterations=10,
                              validation=common_pb2.ValidationStrategy(k_fold=common_pb2.KFoldValidation(folds=3))))
    done = wait_state(trainer, job.name, (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED))
    assert done.state == S.JOB_STATE_SUCCEEDED, done.error
    model = trainer.GetModel(trainer_pb2.GetModelRequest(name=done.outputs[0]), metadata=AUTH).model
    assert "roc_auc" in model.metrics_std and model.training_row_count == messy_dataset.row_count
    # A time column of city names passes the spec check (the column exists) but not the data check.
    bad = start(trainer, spec(messy_dataset, estimator="knn_classifier",
                              validation=common_pb2.ValidationStrategy(time_column="city")))
    failed = wait_state(trainer, bad.name, (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED))
    assert failed.state == S.JOB_STATE_FAILED and not failed.outputs
    assert "time column 'city' holds neither numbers nor dates" in failed.error
    last = events(trainer, bad.name)[-1]
    assert last.state_change.state == S.JOB_STATE_FAILED and "city" in last.state_change.message


def test_fit_processes_are_reused_after_an_answer_and_replaced_after_a_kill(tmp_path):
    """The worker keeps a fit process that answered (a result, an error, a honoured cancel) for the next
    job, and starts a fresh one after one it had to terminate."""
    import asyncio

    import pyarrow as pa
    import pyarrow.parquet as pq

    from microlearn_grpc.core.profile import profile_table
    from workers.training import _FitProcesses, fit_context

    frame = messy_table(200, seed=3)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, tmp_path / "messy.parquet")
    base = {"dataset_path": str(tmp_path / "messy.parquet"), "profile": profile_table(table), "target": "churn",
            "task": "binary", "estimator": "baseline_classifier", "hyperparameters": {},
            "validation": {"method": "holdout", "fraction": 0.25}, "metric": "", "max_iterations": 0,
            "early_stopping": None, "seed": 1, "device": "cpu", "n_jobs": 1}

    def answer(fit, **changes):
        fit.conn.send(("run", {**base, "output_dir": str(tmp_path / f"out-{time.time_ns()}"), **changes}))
        while True:
            assert fit.conn.poll(120), "the fit process did not answer"
            message = fit.conn.recv()
            if message[0] in ("result", "error", "cancelled"):
                return message

    async def scenario():
        fits = _FitProcesses(fit_context(), keep=1)
        first = await fits.acquire("")
        assert answer(first)[0] == "result"
        await fits.release(first)
        again = await fits.acquire("")
        assert again is first and again.process.pid == first.process.pid
        assert answer(again, estimator="lightgbm_classifier", hyperparameters={"learning_rate": -1})[0] == "error"
        await fits.release(again)
        third = await fits.acquire("")
        assert third is first
        await third.stop()  # what a timeout or an expired cancel grace does
        assert not first.process.is_alive()
        fresh = await fits.acquire("")
        assert fresh is not first and answer(fresh)[0] == "result"
        await fits.release(fresh)
        await fits.close()
        assert not fresh.process.is_alive()

    asyncio.run(scenario())
