"""HPOService end to end: a real server, two real `microlearn worker` processes, PostgreSQL (with
Optuna's RDB storage), Redis and MLflow: studies search, prune, honour their budget, stop on request,
survive the loss of their coordinator's worker, and refuse every invalid spec."""

from __future__ import annotations

import re
import threading
import time

import grpc
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from microlearn.v1 import common_pb2, dataset_pb2_grpc, hpo_pb2, hpo_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from tests.conftest import TOKEN, sql
from tests.integration.test_datasets import upload
from tests.integration.test_training import csv_bytes

pytestmark = pytest.mark.integration

AUTH = (("authorization", f"Bearer {TOKEN}"),)
ST = hpo_pb2.StudyState
TERMINAL = (ST.STUDY_STATE_SUCCEEDED, ST.STUDY_STATE_FAILED, ST.STUDY_STATE_CANCELLED)


@pytest.fixture(scope="module")
def channel(platform, workers):
    with grpc.insecure_channel(platform.address) as channel:
        yield channel


@pytest.fixture(scope="module")
def hpo(channel):
    return hpo_pb2_grpc.HPOServiceStub(channel)


@pytest.fixture(scope="module")
def data(channel):
    stub = dataset_pb2_grpc.DatasetServiceStub(channel)
    tag = time.time_ns()
    return {"cancer": upload(stub, f"hpo-cancer-{tag}", csv_bytes(load_breast_cancer(as_frame=True).frame)).dataset,
            "diabetes": upload(stub, f"hpo-diabetes-{tag}", csv_bytes(load_diabetes(as_frame=True).frame)).dataset}


def start(hpo, **fields) -> hpo_pb2.Study:
    budget = fields.pop("budget", {})
    spec = hpo_pb2.StudySpec(budget=hpo_pb2.StudyBudget(**budget), **fields)
    return hpo.StartStudy(hpo_pb2.StartStudyRequest(spec=spec), metadata=AUTH).study


def wait(hpo, name: str, timeout: float = 120) -> hpo_pb2.Study:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = hpo.GetStudy(hpo_pb2.GetStudyRequest(name=name), metadata=AUTH).study
        if study.state in TERMINAL:
            # The whole leaderboard: GetStudy returns the top 50 by default, and a budget test runs more.
            return hpo.GetStudy(hpo_pb2.GetStudyRequest(name=name, leaderboard_size=10_000), metadata=AUTH).study
        time.sleep(0.3)
    raise AssertionError(f"{name} did not end within {timeout} s: {study}")


def idle_workers(backends, timeout: float = 90) -> None:
    """Wait for jobs earlier tests left behind (evaluation jobs that registrations and studies start
    in the background) so a budget test measures its own study, not a queue shared with them."""
    deadline = time.monotonic() + timeout
    while sql(backends, "SELECT id FROM jobs WHERE kind = 'evaluation' AND state IN ('PENDING', 'RUNNING')"):
        assert time.monotonic() < deadline, "evaluation jobs of earlier tests still running"
        time.sleep(0.2)


def test_study_searches_within_its_budget_on_both_workers(hpo, channel, data, backends, platform):
    idle_workers(backends)
    budget = 20
    began = time.monotonic()
    study = start(hpo, dataset=data["cancer"].name, target="target", budget={"time_budget_seconds": budget},
                  candidates=["lightgbm_classifier", "logistic_regression", "decision_tree_classifier"],
                  parallelism=4, seed=7, labels={"suite": "hpo"})
    assert study.state == ST.STUDY_STATE_PENDING and study.name.startswith("studies/")
    assert study.spec.metric == "roc_auc" and study.spec.direction == common_pb2.OPTIMIZATION_DIRECTION_MAXIMIZE
    assert study.spec.task == common_pb2.TASK_TYPE_BINARY_CLASSIFICATION
    late: list = []
    reader = threading.Thread(target=lambda: late.extend(
        e.event for e in hpo_pb2_grpc.HPOServiceStub(channel).StreamStudyEvents(
            hpo_pb2.StreamStudyEventsRequest(name=study.name), metadata=AUTH, timeout=120)))
    reader.start()
    done = wait(hpo, study.name)
    elapsed = time.monotonic() - began
    reader.join(30)
    assert done.state == ST.STUDY_STATE_SUCCEEDED, done.error
    # The budget counts from the coordinator's start; the whole call stays within it plus 10% and the
    # time a worker takes to pick the coordinator up.
    assert elapsed <= budget * 1.1 + 2, elapsed
    assert (done.end_time.ToDatetime() - done.create_time.ToDatetime()).total_seconds() <= budget * 1.1
    assert done.trial_counts.complete >= 4
    assert done.best_model.startswith("models/") and done.best_trial.model == done.best_model
    complete = [t for t in done.leaderboard if t.state == hpo_pb2.TRIAL_STATE_COMPLETE]
    assert [t.rank for t in complete] == list(range(1, len(complete) + 1))
    assert [t.score for t in complete] == sorted((t.score for t in complete), reverse=True)
    # Each candidate's defaults run first. A default trial may still be pruned (the median pruner
    # compares it with trials that reported earlier) or, rarely, not finish: it must have run.
    tried = {t.estimator for t in done.leaderboard if t.state != hpo_pb2.TRIAL_STATE_FAILED}
    assert tried == {"lightgbm_classifier", "logistic_regression", "decision_tree_classifier"}, [
        (t.number, t.estimator, hpo_pb2.TrialState.Name(t.state), t.score) for t in done.leaderboard]
    assert complete[0].score > 0.95 and complete[0].job.startswith("jobs/") and complete[0].fit_time_seconds > 0
    # (a trial cancelled at the deadline before any worker took it has no worker)
    workers = sql(backends, "SELECT DISTINCT worker_id FROM study_trials WHERE study_id = $1 AND worker_id <> ''",
                  done.id)
    assert len(workers) == 2, "trials ran on both worker processes"
    trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
    model = trainer.GetModel(trainer_pb2.GetModelRequest(name=done.best_model), metadata=AUTH).model
    assert model.study == done.name
    jobs = trainer.ListJobs(trainer_pb2.ListJobsRequest(study=done.name, kind=common_pb2.JOB_KIND_TRIAL,
                                                        page_size=1000), metadata=AUTH)
    assert jobs.total_size == sum([done.trial_counts.complete, done.trial_counts.failed, done.trial_counts.pruned,
                                   done.trial_counts.cancelled])
    kinds = [e.WhichOneof("payload") for e in late]
    assert kinds[0] == "state_change" and kinds[-1] == "state_change"
    assert late[-1].state_change.state == ST.STUDY_STATE_SUCCEEDED
    assert {"trial_started", "trial_completed", "new_best_trial"} <= set(kinds)
    from mlflow.tracking import MlflowClient

    tracking = MlflowClient(tracking_uri=platform.settings.mlflow_uri)
    parent = tracking.get_run(done.mlflow_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["microlearn.study_id"] == done.id
    assert parent.data.metrics["best_roc_auc"] == pytest.approx(done.best_trial.score)
    child = tracking.get_run(done.best_trial.mlflow_run_id)
    assert child.data.tags["mlflow.parentRunId"] == done.mlflow_run_id
    best = hpo.GetBestTrial(hpo_pb2.GetBestTrialRequest(name=done.name), metadata=AUTH)
    assert best.final and best.trial.number == done.best_trial.number
    listed = hpo.ListStudies(hpo_pb2.ListStudiesRequest(labels={"suite": "hpo"}), metadata=AUTH)
    assert done.name in [s.name for s in listed.studies] and not listed.studies[0].leaderboard
    trials = hpo.ListTrials(hpo_pb2.ListTrialsRequest(study=done.name, order_by="number", page_size=2),
                            metadata=AUTH)
    assert [t.number for t in trials.trials] == [0, 1] and trials.next_page_token
    replay = list(hpo.StreamStudyEvents(hpo_pb2.StreamStudyEventsRequest(
        name=done.name, replay_only=True, exclude_trial_reports=True), metadata=AUTH, timeout=30))
    assert [e.event.sequence for e in replay] == [e.sequence for e in late if
                                                  e.WhichOneof("payload") != "trial_reported"]


def test_trial_budget_regression_and_idempotent_start(hpo, data):
    request = hpo_pb2.StartStudyRequest(spec=hpo_pb2.StudySpec(
        dataset=data["diabetes"].name, target="target", budget=hpo_pb2.StudyBudget(max_trials=5),
        candidates=["ridge", "lightgbm_regressor"], parallelism=2, seed=1), request_id=f"hpo-{time.time_ns()}")
    first = hpo.StartStudy(request, metadata=AUTH).study
    again = hpo.StartStudy(request, metadata=AUTH).study
    assert again.name == first.name
    done = wait(hpo, first.name)
    assert done.state == ST.STUDY_STATE_SUCCEEDED, done.error
    counts = done.trial_counts
    assert counts.complete + counts.failed + counts.pruned + counts.cancelled == 5
    assert done.spec.metric == "rmse" and done.spec.direction == common_pb2.OPTIMIZATION_DIRECTION_MINIMIZE
    complete = [t.score for t in done.leaderboard if t.state == hpo_pb2.TRIAL_STATE_COMPLETE]
    assert complete == sorted(complete), "lower RMSE ranks first"


def test_stop_study_cancels_running_trials_and_keeps_the_best(hpo, data):
    study = start(hpo, dataset=data["cancer"].name, target="target", budget={"time_budget_seconds": 300},
                  candidates=["logistic_regression", "random_forest_classifier"], parallelism=2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = hpo.GetStudy(hpo_pb2.GetStudyRequest(name=study.name), metadata=AUTH).study
        if current.trial_counts.complete:
            break
        time.sleep(0.3)
    stopped = hpo.StopStudy(hpo_pb2.StopStudyRequest(name=study.name, cancel_running_trials=True,
                                                     reason="enough"), metadata=AUTH).study
    assert stopped.state in (ST.STUDY_STATE_STOPPING, ST.STUDY_STATE_SUCCEEDED)
    done = wait(hpo, study.name, timeout=30)
    assert done.state == ST.STUDY_STATE_SUCCEEDED and done.best_model
    assert hpo.StopStudy(hpo_pb2.StopStudyRequest(name=study.name), metadata=AUTH).study.state == done.state


def test_get_best_trial_before_any_completes(hpo, data):
    study = start(hpo, dataset=data["cancer"].name, target="target", budget={"time_budget_seconds": 60},
                  candidates=["logistic_regression"])
    try:
        with pytest.raises(grpc.RpcError) as caught:
            hpo.GetBestTrial(hpo_pb2.GetBestTrialRequest(name=study.name), metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        hpo.StopStudy(hpo_pb2.StopStudyRequest(name=study.name, cancel_running_trials=True), metadata=AUTH)
    wait(hpo, study.name, timeout=30)


@pytest.mark.parametrize("fields, code, fragment", [
    ({"dataset": ""}, grpc.StatusCode.INVALID_ARGUMENT, "spec.dataset"),
    ({"dataset": "datasets/nope"}, grpc.StatusCode.NOT_FOUND, "does not exist"),
    ({"target": "nope"}, grpc.StatusCode.INVALID_ARGUMENT, "spec.target"),
    ({"candidates": ["nope"]}, grpc.StatusCode.INVALID_ARGUMENT, "spec.candidates"),
    ({"candidates": ["ridge"]}, grpc.StatusCode.INVALID_ARGUMENT, "spec.candidates"),
    ({"metric": "rmse"}, grpc.StatusCode.INVALID_ARGUMENT, "spec.metric"),
    ({"budget": {"time_budget_seconds": -1}}, grpc.StatusCode.INVALID_ARGUMENT, "spec.budget.time_budget_seconds"),
    ({"budget": {"max_trials": -5}}, grpc.StatusCode.INVALID_ARGUMENT, "spec.budget.max_trials"),
    ({"parallelism": 1000}, grpc.StatusCode.INVALID_ARGUMENT, "spec.parallelism"),
    ({"max_candidates": 99}, grpc.StatusCode.INVALID_ARGUMENT, "spec.max_candidates"),
    ({"ensemble_max_members": 1}, grpc.StatusCode.INVALID_ARGUMENT, "spec.ensemble_max_members"),
    ({"sampler": 9}, grpc.StatusCode.INVALID_ARGUMENT, "spec.sampler"),
    ({"direction": 9}, grpc.StatusCode.INVALID_ARGUMENT, "spec.direction"),
    ({"labels": {"Bad Key": "x"}}, grpc.StatusCode.INVALID_ARGUMENT, "spec.labels"),
    ({"validation": common_pb2.ValidationStrategy(holdout=common_pb2.HoldoutValidation(fraction=0.9))},
     grpc.StatusCode.INVALID_ARGUMENT, "spec.validation"),
    ({"search_spaces": {"ridge": common_pb2.SearchSpace()}}, grpc.StatusCode.INVALID_ARGUMENT,
     "spec.search_spaces.ridge"),
    ({"search_spaces": {"lightgbm_classifier": common_pb2.SearchSpace(parameters=[common_pb2.ParameterSpec(
        name="no_such", int_distribution=common_pb2.IntDistribution(low=1, high=3, step=1))])}},
     grpc.StatusCode.INVALID_ARGUMENT, "no_such"),
    ({"task": common_pb2.TASK_TYPE_REGRESSION, "candidates": ["lightgbm_classifier"]},
     grpc.StatusCode.INVALID_ARGUMENT, "spec.candidates"),
])
def test_invalid_specs_are_refused_and_write_nothing(hpo, data, backends, fields, code, fragment):
    before = sql(backends, "SELECT count(*) AS n FROM studies")[0]["n"]
    base = {"dataset": data["cancer"].name, "target": "target", "candidates": ["lightgbm_classifier"]}
    with pytest.raises(grpc.RpcError) as caught:
        start(hpo, **{**base, **fields})
    assert caught.value.code() == code, caught.value.details()
    assert fragment in caught.value.details()
    assert sql(backends, "SELECT count(*) AS n FROM studies")[0]["n"] == before


def test_unknown_studies_and_bad_requests(hpo):
    for call, request in ((hpo.GetStudy, hpo_pb2.GetStudyRequest(name="studies/nope")),
                          (hpo.GetBestTrial, hpo_pb2.GetBestTrialRequest(name="nope")),
                          (hpo.StopStudy, hpo_pb2.StopStudyRequest(name="studies/nope"))):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        hpo.GetStudy(hpo_pb2.GetStudyRequest(name=""), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        hpo.ListStudies(hpo_pb2.ListStudiesRequest(page_token="garbage!"), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_killing_the_coordinators_worker_neither_loses_nor_hangs_the_study(hpo, data, workers, backends):
    import os
    import signal

    budget = 30
    study = start(hpo, dataset=data["cancer"].name, target="target", budget={"time_budget_seconds": budget},
                  candidates=["logistic_regression", "lightgbm_classifier"], parallelism=2, seed=3,
                  validation=common_pb2.ValidationStrategy(holdout=common_pb2.HoldoutValidation(fraction=0.2)))
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        row = sql(backends, "SELECT j.worker_id, j.state FROM studies s JOIN jobs j ON j.id = s.coordinator_job_id "
                            "WHERE s.id = $1", study.id)[0]
        done = sql(backends, "SELECT count(*) AS n FROM study_trials WHERE study_id = $1 AND state = 'COMPLETE'",
                   study.id)[0]["n"]
        if row["state"] == "RUNNING" and done:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the coordinator never got going")
    os.kill(int(row["worker_id"].rsplit("-", 2)[-2]), signal.SIGKILL)
    replacement = workers.start(1)
    try:
        finished = wait(hpo, study.name, timeout=budget + 40)
        assert finished.state == ST.STUDY_STATE_SUCCEEDED, finished.error
        coordinator = sql(backends, "SELECT j.attempt, j.state, j.worker_id FROM studies s JOIN jobs j ON "
                                    "j.id = s.coordinator_job_id WHERE s.id = $1", study.id)[0]
        assert coordinator["attempt"] == 2 and coordinator["state"] == "SUCCEEDED"
        assert coordinator["worker_id"] != row["worker_id"]
        logs = [e.event.log.message for e in hpo.StreamStudyEvents(hpo_pb2.StreamStudyEventsRequest(
            name=study.name, replay_only=True), metadata=AUTH, timeout=30) if e.event.WhichOneof("payload") == "log"]
        assert any("coordinator resumed" in m for m in logs), logs
        # Trials running on the killed worker were retried by the job machinery or ended: none is left behind.
        left = sql(backends, "SELECT count(*) AS n FROM study_trials WHERE study_id = $1 AND state IN "
                             "('PENDING', 'RUNNING')", study.id)[0]["n"]
        assert left == 0
    finally:
        assert replacement[0].poll() is None


def test_ensemble_of_the_best_trials_becomes_the_result_when_it_beats_them(hpo, channel, data):
    from microlearn import Client

    study = start(hpo, dataset=data["cancer"].name, target="target", budget={"time_budget_seconds": 25},
                  candidates=["logistic_regression", "lightgbm_classifier", "gaussian_nb", "extra_trees_classifier"],
                  parallelism=4, seed=11, ensemble=True, ensemble_max_members=3,
                  validation=common_pb2.ValidationStrategy(k_fold=common_pb2.KFoldValidation(folds=5)))
    done = wait(hpo, study.name)
    assert done.state == ST.STUDY_STATE_SUCCEEDED, done.error
    assert done.spec.validation.k_fold.folds == 5
    complete = [t for t in done.leaderboard if t.state == hpo_pb2.TRIAL_STATE_COMPLETE]
    logs = [e.event.log.message for e in hpo.StreamStudyEvents(hpo_pb2.StreamStudyEventsRequest(
        name=done.name, replay_only=True), metadata=AUTH, timeout=30) if e.event.WhichOneof("payload") == "log"]
    assert done.ensemble_score > 0, logs
    if done.ensemble_model:
        assert done.best_model == done.ensemble_model and complete
        # Compared on the same pooled out-of-fold predictions (a trial's leaderboard score is the mean
        # over folds, which differs slightly): "ensemble of N trials: roc_auc X (best trial Y)".
        line = next(m for m in logs if m.startswith("ensemble of "))
        ensemble_score, best_single = (float(v) for v in re.findall(r"roc_auc ([0-9.]+) \(best trial ([0-9.]+)", line)[0])
        assert ensemble_score > best_single and abs(ensemble_score - done.ensemble_score) < 1e-4
        trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
        model = trainer.GetModel(trainer_pb2.GetModelRequest(name=done.ensemble_model), metadata=AUTH).model
        assert model.format == common_pb2.MODEL_FORMAT_ENSEMBLE and model.study == done.name
        frame = load_breast_cancer(as_frame=True).frame
        with Client(channel=channel, token=TOKEN) as ml:
            loaded = ml.load_model(done.ensemble_model)
        proba = loaded.predict_proba(frame.drop(columns=["target"]))
        assert proba.shape == (len(frame), 2) and abs(proba.sum(axis=1) - 1).max() < 1e-6
        assert (loaded.predict(frame.drop(columns=["target"])).astype(int) == frame["target"]).mean() > 0.95
    else:  # the best single trial stays the result, and the log says why
        assert done.best_model == done.best_trial.model
        assert any("does not beat the best trial" in m for m in logs), logs


def test_compare_models_side_by_side(hpo, channel, data):
    trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
    study = start(hpo, dataset=data["cancer"].name, target="target", budget={"max_trials": 3},
                  candidates=["logistic_regression", "gaussian_nb", "decision_tree_classifier"], seed=5)
    done = wait(hpo, study.name)
    models = [t.model for t in sorted(done.leaderboard, key=lambda t: t.number) if t.model]
    assert len(models) == 3
    table = trainer.CompareModels(trainer_pb2.CompareModelsRequest(models=models), metadata=AUTH)
    assert table.task == common_pb2.TASK_TYPE_BINARY_CLASSIFICATION
    assert table.metrics[0] == "roc_auc" and {"accuracy", "log_loss", "f1_macro"} <= set(table.metrics)
    assert [r.model for r in table.rows] == models, "rows in request order"
    assert sorted(r.rank for r in table.rows) == [1, 2, 3]
    best = max(table.rows, key=lambda r: r.metrics["roc_auc"])
    assert table.best["roc_auc"] == best.model and best.rank == 1
    assert table.best["log_loss"] == min(table.rows, key=lambda r: r.metrics["log_loss"]).model, "lower is better"
    assert all(r.metrics_std["roc_auc"] > 0 for r in table.rows), "5-fold by default on 569 rows"
    assert all(r.study == done.name and r.fit_time_seconds > 0 and r.size_bytes > 0 for r in table.rows)
    only = trainer.CompareModels(trainer_pb2.CompareModelsRequest(models=models[:2], metrics=["log_loss"]),
                                 metadata=AUTH)
    assert list(only.metrics) == ["log_loss"] and set(only.rows[0].metrics) == {"log_loss"}
    for request, fragment in ((trainer_pb2.CompareModelsRequest(models=models[:1]), "give 2-50 models"),
                              (trainer_pb2.CompareModelsRequest(models=[models[0], models[0]]), "listed twice"),
                              (trainer_pb2.CompareModelsRequest(models=models, metrics=["rmse"]), "'rmse'")):
        with pytest.raises(grpc.RpcError) as caught:
            trainer.CompareModels(request, metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        trainer.CompareModels(trainer_pb2.CompareModelsRequest(models=[models[0], "models/mdl-nope"]), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_async_sdk_selects_searches_and_compares(platform, data):
    import asyncio

    from microlearn import AsyncClient

    async def scenario():
        async with AsyncClient(platform.address, TOKEN) as ml:
            selected = await ml.select_models(data["cancer"].name, "target", max_candidates=2)
            assert len(selected.candidates) == 2
            study = await ml.start_study(data["cancer"].name, "target", max_trials=2,
                                         candidates=["logistic_regression", "gaussian_nb"], seed=2)
            done = await ml.wait_study(study.name, timeout=120, poll=0.2)
            events = [e async for e in ml.study_events(done.name, replay_only=True)]
            table = await ml.compare_models([t.model for t in done.leaderboard if t.model])
            return done, events, table
    done, events, table = asyncio.run(scenario())
    assert done.state == ST.STUDY_STATE_SUCCEEDED and done.best_model
    assert events[-1].state_change.state == ST.STUDY_STATE_SUCCEEDED
    assert len(table.rows) == 2
