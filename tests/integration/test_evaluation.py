"""Evaluation end to end: permutation importance from training jobs, EvaluateModel jobs on the model's
own validation rows, on out-of-fold rows and on another dataset, a study's refit on every row and the
evaluation job that follows the study, all through a real server and real workers."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from sklearn.datasets import load_breast_cancer

from microlearn.v1 import common_pb2, dataset_pb2_grpc, hpo_pb2, hpo_pb2_grpc, trainer_pb2
from tests.conftest import TOKEN
from tests.integration.test_datasets import upload
from tests.integration.test_training import (  # noqa: F401 - channel and trainer are fixtures
    AUTH, channel, csv_bytes, messy_table, spec, start, trainer, wait_state)

pytestmark = pytest.mark.integration

S = common_pb2.JobState
DONE = (S.JOB_STATE_SUCCEEDED, S.JOB_STATE_FAILED, S.JOB_STATE_CANCELLED)


@pytest.fixture(scope="module")
def datasets(channel):
    stub = dataset_pb2_grpc.DatasetServiceStub(channel)
    tag = time.time_ns()
    return {"train": upload(stub, f"eval-train-{tag}", csv_bytes(messy_table(400, seed=1))).dataset,
            "test": upload(stub, f"eval-test-{tag}", csv_bytes(messy_table(150, seed=8))).dataset,
            "narrow": upload(stub, f"eval-narrow-{tag}", csv_bytes(messy_table(50, seed=2)[["age", "churn"]])).dataset,
            "cancer": upload(stub, f"eval-cancer-{tag}", csv_bytes(load_breast_cancer(as_frame=True).frame)).dataset}


def model_of(trainer, job) -> trainer_pb2.Model:
    done = wait_state(trainer, job.name, DONE)
    assert done.state == S.JOB_STATE_SUCCEEDED, done.error
    return trainer.GetModel(trainer_pb2.GetModelRequest(name=done.outputs[0]), metadata=AUTH).model


def evaluate(trainer, model: str, **fields) -> trainer_pb2.Model:
    job = trainer.EvaluateModel(trainer_pb2.EvaluateModelRequest(model=model, **fields), metadata=AUTH).job
    assert job.kind == common_pb2.JOB_KIND_EVALUATION
    done = wait_state(trainer, job.name, DONE)
    assert done.state == S.JOB_STATE_SUCCEEDED, done.error
    assert list(done.outputs) == [model]
    evaluated = trainer.GetModel(trainer_pb2.GetModelRequest(name=model), metadata=AUTH).model
    assert evaluated.evaluation.job == job.name
    return evaluated


def test_training_importance_and_evaluations_on_own_rows_and_another_dataset(trainer, datasets):
    plain = model_of(trainer, start(trainer, spec(datasets["train"], seed=3, max_iterations=30)))
    assert not plain.feature_importance, "importance is measured in the job only when asked for"
    holdout = model_of(trainer, start(trainer, spec(datasets["train"], seed=3, max_iterations=30,
                                                    permutation_importance=True)))
    names = [f.feature for f in holdout.feature_importance]
    columns = {c.name for c in holdout.feature_schema.columns}
    assert names and set(names) <= columns and holdout.importance_metric == "roc_auc"
    if holdout.diagnostics["permutation_importance"]["complete"]:  # within its time cap (a loaded machine may hit it)
        assert set(names) == columns
    assert names[0] in ("age", "plan", "active", "spend"), names  # churn is drawn from these (spend from age)
    assert "confusion_matrix" in holdout.diagnostics and "roc_curve" in holdout.diagnostics
    listed = trainer.ListModels(trainer_pb2.ListModelsRequest(dataset=datasets["train"].name), metadata=AUTH).models
    assert listed[0].feature_importance and not listed[0].diagnostics.fields, "ListModels leaves the plot data out"

    # Its own validation rows, rebuilt from the job's split: the same rows, so the same score.
    own = evaluate(trainer, holdout.name)
    assert own.evaluation.rows == "validation" and own.evaluation.row_count == 80
    assert own.evaluation.metrics["roc_auc"] == pytest.approx(holdout.metrics["roc_auc"], abs=1e-9)
    assert own.diagnostics["permutation_importance"]["repeats"] == 5 and own.feature_importance

    # Another dataset: every row of it; a metric of the caller's choice for the importance.
    test = evaluate(trainer, holdout.name, dataset=datasets["test"].name, metric="log_loss")
    assert test.evaluation.rows == "dataset" and test.evaluation.row_count == 150
    assert test.evaluation.dataset == datasets["test"].name and test.importance_metric == "log_loss"
    assert 0.4 < test.evaluation.metrics["accuracy"] <= 1.0
    assert sum(map(sum, (r for r in _matrix(test)))) == 150

    for fields, code, fragment in (
            ({"model": holdout.name, "metric": "rmse"}, grpc.StatusCode.INVALID_ARGUMENT, "metric"),
            ({"model": holdout.name, "dataset": datasets["narrow"].name}, grpc.StatusCode.INVALID_ARGUMENT, "lacks"),
            ({"model": "models/mdl-nope"}, grpc.StatusCode.NOT_FOUND, "mdl-nope"),
            ({"model": ""}, grpc.StatusCode.INVALID_ARGUMENT, "model")):
        with pytest.raises(grpc.RpcError) as caught:
            trainer.EvaluateModel(trainer_pb2.EvaluateModelRequest(**fields), metadata=AUTH)
        assert caught.value.code() == code and fragment in caught.value.details()


def _matrix(model: trainer_pb2.Model) -> list[list[float]]:
    return [list(row) for row in model.diagnostics["confusion_matrix"]["matrix"]]


def test_kfold_model_is_evaluated_out_of_fold(trainer, datasets):
    kfold = model_of(trainer, start(trainer, spec(datasets["train"], estimator="logistic_regression", seed=2,
                                                 permutation_importance=True,
                                                 validation=common_pb2.ValidationStrategy(
                                                     k_fold=common_pb2.KFoldValidation(folds=3)))))
    assert kfold.feature_importance, "the training job pools its folds' importance"
    again = evaluate(trainer, kfold.name)
    assert again.evaluation.rows == "out_of_fold" and again.evaluation.row_count == 400
    assert again.evaluation.metrics["roc_auc"] == pytest.approx(kfold.metrics["roc_auc"], abs=1e-6)
    assert [f.feature for f in again.feature_importance][:1] == [f.feature for f in kfold.feature_importance][:1]


def test_study_refits_the_best_configuration_on_every_row_then_evaluates_it(channel, trainer, datasets):
    hpo = hpo_pb2_grpc.HPOServiceStub(channel)
    budget = 30
    study = hpo.StartStudy(hpo_pb2.StartStudyRequest(spec=hpo_pb2.StudySpec(
        dataset=datasets["cancer"].name, target="target", candidates=["logistic_regression", "gaussian_nb"],
        budget=hpo_pb2.StudyBudget(time_budget_seconds=budget, max_trials=3), parallelism=2, seed=4, refit=True,
        validation=common_pb2.ValidationStrategy(holdout=common_pb2.HoldoutValidation(fraction=0.25)))),
        metadata=AUTH).study
    began = time.monotonic()
    while (done := hpo.GetStudy(hpo_pb2.GetStudyRequest(name=study.name), metadata=AUTH).study).state in (
            hpo_pb2.STUDY_STATE_PENDING, hpo_pb2.STUDY_STATE_RUNNING, hpo_pb2.STUDY_STATE_STOPPING):
        assert time.monotonic() - began < 1.1 * budget + 10
        time.sleep(0.3)
    assert done.state == hpo_pb2.STUDY_STATE_SUCCEEDED, done.error
    assert done.spec.refit and done.best_model != done.best_trial.model
    refit = trainer.GetModel(trainer_pb2.GetModelRequest(name=done.best_model), metadata=AUTH).model
    trial = trainer.GetModel(trainer_pb2.GetModelRequest(name=done.best_trial.model), metadata=AUTH).model
    assert refit.training_row_count == 569 and 420 < trial.training_row_count < 430
    assert refit.estimator == trial.estimator and refit.study == done.name
    assert dict(refit.metrics) == dict(trial.metrics), "it carries its trial's validation figures"
    assert not trial.feature_importance, "trials do not spend the study's budget on importance"
    best = hpo.GetBestTrial(hpo_pb2.GetBestTrialRequest(name=study.name), metadata=AUTH)
    assert best.final and best.trial.model == trial.name

    # After the study, outside its budget: the evaluation job gives the result model its importance,
    # measured with the refit trial on that trial's validation rows.
    deadline = time.monotonic() + 60
    while not (evaluated := trainer.GetModel(trainer_pb2.GetModelRequest(name=refit.name), metadata=AUTH).model
               ).evaluation.job:
        assert time.monotonic() < deadline, "no evaluation of the study's result"
        time.sleep(0.3)
    assert evaluated.evaluation.rows == "validation"
    assert evaluated.evaluation.row_count + trial.training_row_count == 569
    assert evaluated.feature_importance and evaluated.importance_metric == "roc_auc"
    logs = [e.event.log.message for e in hpo.StreamStudyEvents(hpo_pb2.StreamStudyEventsRequest(
        name=done.name, replay_only=True), metadata=AUTH, timeout=30) if e.event.WhichOneof("payload") == "log"]
    assert any(m.startswith("refitting trial") for m in logs) and any(m.startswith("evaluating models/") for m in logs)


def test_sdk_evaluates_and_reports(platform, channel, trainer, datasets, tmp_path):
    from microlearn import Client

    model = model_of(trainer, start(trainer, spec(datasets["train"], estimator="logistic_regression", seed=5)))
    with Client(channel=channel, token=TOKEN) as ml:
        job = ml.evaluate_model(model.name, dataset=datasets["test"].name, wait=True)
        assert job.state == "SUCCEEDED"
        shown = ml.get_model(model.name)
        assert shown.evaluation["rows"] == "dataset" and shown.feature_importance[0]["feature"]
        path = ml.model_report(model.name, tmp_path / "report.html")
    html = path.read_text()
    for section in ("Metrics", "Confusion matrix", "ROC curve", "Precision-recall", "Calibration",
                    "Permutation importance"):
        assert section in html, section
    assert html.count("data:image/png;base64,") >= 4

    import asyncio

    from microlearn import AsyncClient

    async def twin():
        async with AsyncClient(platform.address, TOKEN) as aml:
            done = await aml.evaluate_model(model.name, wait=True, timeout=120)
            return done, await aml.model_report(model.name, tmp_path / "async.png")
    done, sheet = asyncio.run(twin())
    assert done.state == "SUCCEEDED" and sheet.read_bytes().startswith(b"\x89PNG")


def test_cli_evaluates_shows_and_reports(platform, trainer, datasets, tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from microlearn import cli

    monkeypatch.setenv("MICROLEARN_ADDRESS", platform.address)
    monkeypatch.setenv("MICROLEARN_TOKEN", TOKEN)
    main = typer.Typer()
    main.add_typer(cli.models_app, name="models")
    runner = CliRunner()
    model = model_of(trainer, start(trainer, spec(datasets["train"], estimator="ridge", target="spend", seed=6)))
    for command in ("evaluate", "report"):
        assert "Example" in runner.invoke(main, ["models", command, "--help"]).output
    result = runner.invoke(main, ["models", "evaluate", model.name, "--dataset", datasets["test"].name])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "150 dataset rows" in result.output
    assert "drop in rmse" in result.output.lower() and "income" in result.output
    shown = runner.invoke(main, ["models", "show", model.name])
    assert shown.exit_code == 0 and "evaluated" in shown.output and "drop in rmse" in shown.output.lower()
    result = runner.invoke(main, ["models", "report", model.name, "--out", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")
    html = runner.invoke(main, ["models", "report", model.name, "--out", str(tmp_path / "r.html")])
    assert html.exit_code == 0 and "Residuals" in (tmp_path / "r.html").read_text()
    assert runner.invoke(main, ["models", "report", model.name, "--out", "r.pdf"]).exit_code == 2


def test_registering_a_model_version_starts_its_evaluation(trainer, datasets, platform):
    """Plain training jobs skip importance; a registered version gets it from an evaluation job."""
    from microlearn.v1 import deploy_pb2, deploy_pb2_grpc

    model = model_of(trainer, start(trainer, spec(datasets["train"], seed=4, max_iterations=20)))
    assert not model.feature_importance
    with grpc.insecure_channel(platform.address) as channel:
        registry = deploy_pb2_grpc.DeployServiceStub(channel)
        version = registry.RegisterModelVersion(deploy_pb2.RegisterModelVersionRequest(
            registered_model=f"evaluated-{uuid.uuid4().hex[:8]}", model=model.name), metadata=AUTH).model_version
    deadline = time.monotonic() + 120
    while not (evaluated := trainer.GetModel(trainer_pb2.GetModelRequest(name=model.name),
                                             metadata=AUTH).model).feature_importance:
        assert time.monotonic() < deadline, f"{version.name}: no evaluation within 120 s"
        time.sleep(0.5)
    assert evaluated.evaluation.job and evaluated.importance_metric == "roc_auc"
