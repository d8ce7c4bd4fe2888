"""The SDK's training surface end to end: `Client` and `AsyncClient` against a real server and real
`microlearn worker` processes. The database is shared with other tests, so every name and label
here is unique to this run and no test counts on what else is stored."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

import microlearn
from tests.conftest import TOKEN
from tests.integration.test_training import messy_table

pytestmark = pytest.mark.integration

ESTIMATOR = "hist_gradient_boosting_classifier"
RUN = uuid.uuid4().hex[:8]  # labels every job this module starts


@pytest.fixture(scope="module")
def ml(platform, workers):
    with microlearn.Client(platform.address, TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def churn(ml):
    return ml.upload_dataset(messy_table(), name=f"sdk-churn-{RUN}").dataset


@pytest.fixture(scope="module")
def bad_holdout(ml):
    """A validation dataset for `churn` with a class the training rows lack: only the fit can tell."""
    holdout = messy_table(60, seed=1)
    holdout.loc[:4, "churn"] = "maybe"
    return ml.upload_dataset(holdout, name=f"sdk-churn-bad-holdout-{RUN}").dataset


@pytest.fixture(scope="module")
def trained(ml, churn) -> list[microlearn.Job]:
    """Two finished jobs on `churn` (5 and 10 rounds), labelled run=RUN, set=trained."""
    jobs = [ml.train(churn.display_name, "churn", estimator=ESTIMATOR, max_iterations=n, seed=n,
                     labels={"run": RUN, "set": "trained", "rounds": n}) for n in (5, 10)]
    return [job.wait(timeout=120) for job in jobs]


def rows(n: int = 5):
    frame = messy_table(n, seed=3).drop(columns=["churn"])
    frame.loc[0, "plan"] = "never-seen"
    return frame


def test_train_follow_events_wait_model_download_load_delete(ml, churn, tmp_path):
    job = ml.train(churn.name, "churn", estimator=ESTIMATOR, max_iterations=20, seed=7, early_stopping={"patience": 5},
                   validation={"holdout": 0.25}, hyperparameters={"learning_rate": 0.2}, labels={"run": RUN})
    assert job.state == "PENDING" and job.name == f"jobs/{job.id}"
    assert job.spec.seed == 7 and job.spec.dataset == churn.name and job.spec.validation.holdout.fraction == 0.25

    events = list(job.events())  # live: history, then new events until the job ends
    states = [e.state for e in events if e.kind == "state"]
    assert states == ["PENDING", "RUNNING", "SUCCEEDED"], [(e.kind, e.message) for e in events]
    metrics = [e for e in events if e.kind == "metrics"]
    assert [e.step for e in metrics] == sorted(e.step for e in metrics) and metrics[0].step == 1
    assert "val_loss" in metrics[0].values
    assert any(e.kind == "log" and e.level == "INFO" and e.message for e in events)
    assert events[-1].is_terminal and events[-1].progress == 1.0
    replay = list(job.events(after=events[2].sequence, replay_only=True))
    assert [e.sequence for e in replay] == [e.sequence for e in events[3:]]

    assert job.wait(timeout=30) is job
    assert job.state == "SUCCEEDED" and job.done and job.progress == 1.0 and job.device == "cpu"
    assert job.end_time >= job.start_time >= job.create_time
    assert 0.5 <= job.metrics["roc_auc"] <= 1.0 and job.spec.task == microlearn.v1.common_pb2.TASK_TYPE_BINARY_CLASSIFICATION

    model = job.model()
    assert model.name == job.model_name and model.job == job.name and model.dataset == churn.name
    assert (model.task, model.metric, model.class_labels) == ("binary", "roc_auc", ["no", "yes"])
    assert model.score == job.metrics["roc_auc"] and model.format == "sklearn_pipeline"
    assert model.hyperparameters["learning_rate"] == 0.2 and model.labels == {"run": RUN}
    assert {c["name"] for c in model.feature_schema} >= {"age", "plan", "signup"}

    path = ml.download_model(model.name, tmp_path)
    assert path == tmp_path / f"{model.id}.tar" and not list(tmp_path.glob("*.part"))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256
    loaded = ml.load_model(path)
    assert set(loaded.predict(rows())) <= {"yes", "no"}
    assert loaded.predict_proba(rows()).shape == (5, 2)

    assert ml.delete_model(model.id) == model.name
    with pytest.raises(microlearn.NotFound):
        ml.get_model(model.name)
    with pytest.raises(microlearn.NotFound):
        job.model()


def test_download_resumes_a_part_file_and_replaces_a_foreign_one(ml, trained, tmp_path):
    model = trained[0].model()
    blob = ml.download_model(model.name, tmp_path / "full.tar").read_bytes()

    resumed = tmp_path / "resumed.tar"
    resumed.with_name("resumed.tar.part").write_bytes(blob[:1000])
    assert ml.download_model(model.name, resumed).read_bytes() == blob

    foreign = tmp_path / "foreign.tar"
    foreign.with_name("foreign.tar.part").write_bytes(b"x" * 1000)  # same size, other bytes: start over
    assert ml.download_model(model.name, foreign).read_bytes() == blob

    into_dir = tmp_path / "dir"
    into_dir.mkdir()
    (into_dir / f"{model.id}.tar.part").write_bytes(blob[:500])
    assert ml.download_model(model.name, into_dir).read_bytes() == blob
    assert not list(tmp_path.rglob("*.part"))


def test_load_model_by_name_model_or_checked_path(ml, trained, tmp_path):
    model = trained[1].model()
    assert ml.load_model(model.name).predict(rows()).shape == (5,)
    assert ml.load_model(model).predict_proba(rows()).shape == (5, 2)

    renamed = tmp_path / "renamed.tar"
    ml.download_model(model.name, renamed)
    with pytest.raises(microlearn.NotFound):  # no model id in the file name, and no sha256 given
        ml.load_model(renamed)
    assert ml.load_model(renamed, sha256=model.sha256).predict(rows()).shape == (5,)

    blob = bytearray(renamed.read_bytes())
    blob[-1] ^= 1
    tampered = tmp_path / f"{model.id}.tar"
    tampered.write_bytes(bytes(blob))
    with pytest.raises(microlearn.MicroLearnError, match="SHA-256 mismatch") as info:
        ml.load_model(tampered)
    assert info.value.code.name == "DATA_LOSS"


def test_cancel_a_running_job(ml, churn):
    job = ml.train(churn.name, "churn", estimator=ESTIMATOR, max_iterations=200_000, labels={"run": RUN})
    for event in job.events():
        if event.kind == "metrics":
            break
    with pytest.raises(TimeoutError, match="still RUNNING"):
        job.wait(timeout=0.3)
    assert job.cancel("enough for a test").state in ("RUNNING", "CANCELLED")
    with pytest.raises(microlearn.JobCancelled, match="enough for a test") as info:
        job.wait(timeout=60)
    assert info.value.job is job and info.value.state == "CANCELLED" and job.state == "CANCELLED"
    assert list(job.events())[-1].state == "CANCELLED"
    with pytest.raises(microlearn.JobCancelled):
        job.model()
    assert ml.cancel_job(job.name).state == "CANCELLED"  # an ended job stays as it is


def test_a_job_failing_at_fit_time_raises_job_failed(ml, churn, bad_holdout):
    job = ml.train(churn.name, "churn", estimator=ESTIMATOR, max_iterations=5, validation={"dataset": bad_holdout.name},
                   labels={"run": RUN})
    with pytest.raises(microlearn.JobFailed, match="maybe") as info:
        job.wait(timeout=120)
    assert isinstance(info.value, microlearn.JobError) and info.value.job is job
    assert job.state == "FAILED" and "maybe" in job.error and job.model_name is None
    assert job.wait(raise_on_failure=False) is job
    last = list(job.events(replay_only=True))[-1]
    assert (last.kind, last.state) == ("state", "FAILED") and "maybe" in last.message


def test_invalid_spec_is_refused_before_a_job_exists(ml, churn):
    with pytest.raises(microlearn.InvalidArgument, match="spec.target"):
        ml.train(churn.name, "no_such_column", estimator=ESTIMATOR)
    with pytest.raises(microlearn.InvalidArgument, match="spec.hyperparameters"):
        ml.train(churn.name, "churn", estimator=ESTIMATOR, hyperparameters={"no_such_param": 1})
    with pytest.raises(ValueError, match="one of holdout, k_fold or dataset"):
        ml.train(churn.name, "churn", estimator=ESTIMATOR, validation={"holdout": 0.2, "k_fold": 3})
    with pytest.raises(ValueError, match="unknown job state"):
        ml.list_jobs(states=["finished"])
    assert not list(ml.list_jobs(labels={"run": RUN, "set": "invalid"}))


def test_list_jobs_filters_and_pages(ml, trained, churn):
    mine = {"run": RUN, "set": "trained"}
    listed = list(ml.list_jobs(labels=mine, page_size=1))
    assert [j.name for j in listed] == [j.name for j in reversed(trained)]  # newest first, across pages
    assert all(j.spec.estimator == ESTIMATOR and j.state == "SUCCEEDED" for j in listed)
    assert len(list(ml.list_jobs(labels=mine, states=["succeeded", "FAILED"]))) == 2
    assert not list(ml.list_jobs(labels=mine, states=["running"]))
    assert len(list(ml.list_jobs(labels=mine, dataset=churn.display_name, estimator=ESTIMATOR))) == 2
    assert not list(ml.list_jobs(labels=mine, estimator="random_forest_classifier"))
    (one,) = ml.list_jobs(labels={**mine, "rounds": 10})
    assert one.name == trained[1].name and ml.get_job(one.id).spec.max_iterations == 10


def test_list_models_filters_orders_and_pages(ml, trained, churn):
    mine = {"run": RUN, "set": "trained"}
    best_first = list(ml.list_models(labels=mine, order_by="metrics.log_loss", page_size=1))
    assert len(best_first) == 2 and {m.job for m in best_first} == {j.name for j in trained}
    assert [m.metrics["log_loss"] for m in best_first] == sorted(m.metrics["log_loss"] for m in best_first)
    worst_first = list(ml.list_models(labels=mine, order_by="metrics.log_loss desc"))
    assert [m.name for m in worst_first] == [m.name for m in reversed(best_first)]
    assert all(m.feature_schema == [] for m in best_first)  # lists leave schemas out
    assert len(list(ml.list_models(labels=mine, dataset=churn.display_name, estimator=ESTIMATOR, task="binary"))) == 2
    assert not list(ml.list_models(labels=mine, task="regression"))
    with pytest.raises(microlearn.InvalidArgument, match="order_by"):
        list(ml.list_models(order_by="size"))


def test_async_client_trains_streams_waits_and_loads(platform, workers, churn):
    request_id = f"sdk-async-{RUN}"

    async def scenario():
        async with microlearn.AsyncClient(platform.address, TOKEN) as ml:
            job = await ml.train(churn.name, "churn", estimator=ESTIMATOR, max_iterations=5, request_id=request_id,
                                 labels={"run": RUN, "set": "async"})
            again = await ml.train(churn.name, "churn", estimator=ESTIMATOR, request_id=request_id)
            kinds = [e.kind async for e in job.events()]
            await job.wait(timeout=60)
            model = await job.model()
            listed = [j.name async for j in ml.list_jobs(labels={"run": RUN, "set": "async"})]
            models = [m.name async for m in ml.list_models(labels={"run": RUN, "set": "async"})]
            loaded = await ml.load_model(model.name)
            cancelled = await (await ml.get_job(job.name)).cancel()
            with pytest.raises(microlearn.NotFound):
                await ml.get_job("jobs/does-not-exist")
            return job, again, kinds, model, listed, models, loaded, cancelled

    job, again, kinds, model, listed, models, loaded, cancelled = asyncio.run(scenario())
    assert isinstance(job, microlearn.AsyncJob) and again.name == job.name  # request_id: one job
    assert kinds[0] == "state" and "metrics" in kinds and job.state == "SUCCEEDED"
    assert listed == [job.name] and models == [model.name] and model.job == job.name
    assert set(loaded.predict(rows())) <= {"yes", "no"}
    assert cancelled.state == "SUCCEEDED"
