"""`microlearn train`, `microlearn jobs ...` and `microlearn models ...` end to end: the Typer commands
mounted as the main CLI mounts them, run with CliRunner against a real server and real workers.
The database is shared with other tests: every name and label here is unique to this run."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest
import typer
from typer.testing import CliRunner

import microlearn
from microlearn import _cli_training, cli
from tests.conftest import TOKEN
from tests.integration.test_sdk_training import bad_holdout, churn, ml  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

ESTIMATOR = "hist_gradient_boosting_classifier"
RUN = uuid.uuid4().hex[:8]
COMMANDS = [("train",), ("jobs", "list"), ("jobs", "show"), ("jobs", "cancel"), ("jobs", "events"),
            ("models", "list"), ("models", "show"), ("models", "download"), ("models", "delete"),
            ("models", "compare")]


def app() -> typer.Typer:
    """The commands mounted as microlearn_grpc/cli.py mounts them."""
    main = typer.Typer()
    main.command("train")(cli.train)
    main.add_typer(cli.jobs_app, name="jobs")
    main.add_typer(cli.models_app, name="models")
    return main


@pytest.fixture
def invoke(platform, monkeypatch):
    monkeypatch.setenv("MICROLEARN_ADDRESS", platform.address)
    monkeypatch.setenv("MICROLEARN_TOKEN", TOKEN)
    runner, main = CliRunner(), app()
    return lambda *args, **kwargs: runner.invoke(main, list(args), **kwargs)


@pytest.fixture(scope="module")
def finished(ml, churn) -> microlearn.Job:
    return ml.train(churn.name, "churn", estimator=ESTIMATOR, max_iterations=10,
                    labels={"run": RUN, "set": "finished"}).wait(timeout=120)


def started_job(stdout: str) -> str:
    match = re.search(r"started (jobs/\S+)", stdout)
    assert match, stdout
    return match.group(1)


def test_every_command_has_help_with_an_example():
    runner, main = CliRunner(), app()
    for command in COMMANDS:
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example" in result.output and "--address" in result.output


def test_train_follow_shows_a_bar_logs_and_the_outcome(invoke, churn, monkeypatch):
    monkeypatch.setattr(_cli_training, "_stderr_is_terminal", lambda: True)
    result = invoke("train", churn.display_name, "-t", "churn", "-e", ESTIMATOR, "-p", "learning_rate=0.2",
                    "--param", "max_leaf_nodes=15", "--max-iterations", "20", "--patience", "5", "--holdout", "0.25",
                    "--seed", "3", "--label", f"run={RUN}", "--label", "set=follow", "--follow")
    assert result.exit_code == 0, result.output
    out = result.stdout
    name = started_job(out)
    assert f"{ESTIMATOR} on {churn.name}  (binary, target churn, metric roc_auc)" in out
    assert "PENDING  queued" in out and "RUNNING  running on cpu" in out and "INFO  fitting" in out
    assert re.search(rf"state\s+SUCCEEDED  {name}  \(\d+\.\d s\)", out)
    assert re.search(r"metrics\s+accuracy \d\.\d+.*roc_auc \d\.\d+", out)
    assert re.search(r"model\s+models/\S+", out)
    assert "val_loss=" in result.stderr and "100%" in result.stderr  # the bar's postfix and its end


def test_train_json_records_the_spec_without_following(invoke, churn):
    result = invoke("train", churn.name, "-t", "churn", "-e", ESTIMATOR, "--k-fold", "3", "--no-stratify",
                    "--max-iterations", "3", "--label", f"run={RUN}", "--label", "set=json", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["job"]["state"] == "JOB_STATE_PENDING"
    validation = data["training_spec"]["validation"]
    assert validation["k_fold"] == {"folds": 3} and validation["stratify"] is False


def test_train_follow_exits_1_when_the_job_fails(invoke, churn, bad_holdout):
    result = invoke("train", churn.name, "-t", "churn", "-e", ESTIMATOR, "--max-iterations", "5",
                    "--validation-dataset", bad_holdout.name, "--label", f"run={RUN}", "--follow")
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stdout
    assert re.search(r"error: jobs/\S+ FAILED: .*maybe", result.stderr)


def test_train_argument_errors(invoke, churn):
    base = ["train", churn.name, "-t", "churn", "-e", ESTIMATOR]
    for extra in (["--k-fold", "3", "--holdout", "0.2"], ["--param", "no-equals-sign"],
                  ["--no-early-stopping", "--patience", "3"], ["--holdout", "0.9"]):
        result = invoke(*base, *extra)
        assert result.exit_code == 2, (extra, result.output)
    assert invoke("train", churn.name, "-t", "churn").exit_code == 2  # --estimator is required
    result = invoke("train", churn.name, "-t", "no_such_column", "-e", ESTIMATOR)
    assert result.exit_code == 1 and "error: INVALID_ARGUMENT: spec.target" in result.stderr


def test_ctrl_c_stops_following_then_cancel_and_follow_the_end(invoke, churn, monkeypatch):
    def interrupt(self, event):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(_cli_training._Progress, "show", interrupt)
        result = invoke("train", churn.name, "-t", "churn", "-e", ESTIMATOR, "--max-iterations", "200000",
                        "--label", f"run={RUN}", "--label", "set=cancel", "--follow")
    name = started_job(result.stdout)
    assert result.exit_code == 130, result.output
    assert f"stopped following {name}; the job keeps running" in result.stderr
    assert f"microlearn jobs cancel {name}" in result.stderr

    result = invoke("jobs", "cancel", name, "--reason", "from the cli test")
    assert result.exit_code == 0, result.output
    assert f"{name} is stopping" in result.stdout or f"{name} is CANCELLED" in result.stdout

    result = invoke("jobs", "events", name, "--follow")
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert "state    CANCELLED" in last and "from the cli test" in last

    result = invoke("jobs", "list", "--label", f"run={RUN}", "--label", "set=cancel", "--state", "cancelled")
    assert result.exit_code == 0 and name in result.stdout and "CANCELLED" in result.stdout
    result = invoke("jobs", "cancel", name)
    assert f"{name} is CANCELLED: cancelled: from the cli test" in result.stdout


def test_jobs_list_show_and_events(invoke, finished):
    name = finished.name
    result = invoke("jobs", "list", "--label", f"run={RUN}", "--label", "set=finished", "--state", "succeeded",
                    "--estimator", ESTIMATOR)
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["JOB", "STATE", "PROGRESS", "ESTIMATOR", "DATASET", "SCORE", "CREATED"]
    assert row.split()[:4] == [name, "SUCCEEDED", "100%", ESTIMATOR] and "roc_auc 0." in row

    listed = json.loads(invoke("jobs", "list", "--label", f"run={RUN}", "--label", "set=finished", "--json").stdout)
    assert [j["job"]["name"] for j in listed] == [name] and listed[0]["training_spec"]["estimator"] == ESTIMATOR
    assert invoke("jobs", "list", "--label", f"run={RUN}", "--estimator", "random_forest_classifier").stdout == "no jobs\n"
    assert invoke("jobs", "list", "--state", "finished").exit_code == 2

    out = invoke("jobs", "show", finished.id).stdout
    assert f"{name}  (training)" in out and "SUCCEEDED  100%" in out and finished.model_name in out
    assert re.search(r"target\s+churn  \(binary, metric roc_auc\)", out) and "set=finished" in out
    assert json.loads(invoke("jobs", "show", name, "--json").stdout)["job"]["outputs"] == [finished.model_name]

    lines = invoke("jobs", "events", name).stdout.splitlines()
    assert "state    PENDING" in lines[0] and "state    SUCCEEDED" in lines[-1]
    assert any(re.search(r"metrics  step 1  .*val_loss=", line) for line in lines)
    assert any("log      INFO" in line for line in lines)
    events = [json.loads(line) for line in invoke("jobs", "events", name, "--json").stdout.splitlines()]
    assert events[0]["state_change"]["state"] == "JOB_STATE_PENDING" and len(events) == len(lines)
    assert invoke("jobs", "events", name, "--level", "loud").exit_code == 2
    result = invoke("jobs", "show", "jobs/no-such-job")
    assert result.exit_code == 1 and "error: NOT_FOUND" in result.stderr


def test_models_list_show_download_delete(invoke, finished, tmp_path, monkeypatch):
    name = finished.model_name
    labels = ["--label", f"run={RUN}", "--label", "set=finished"]
    result = invoke("models", "list", *labels, "--order-by", "metrics.roc_auc desc", "--task", "binary")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["MODEL", "ESTIMATOR", "TASK", "SCORE", "DATASET", "SIZE", "CREATED"]
    assert row.split()[:4] == [name, ESTIMATOR, "binary", "roc_auc"]
    assert [m["name"] for m in json.loads(invoke("models", "list", *labels, "--json").stdout)] == [name]
    assert invoke("models", "list", *labels, "--task", "regression").stdout == "no models\n"
    result = invoke("models", "list", "--order-by", "size")
    assert result.exit_code == 1 and "order_by" in result.stderr

    out = invoke("models", "show", name).stdout
    assert f"{ESTIMATOR}  (binary, target churn)" in out and "classes     no, yes" in out
    assert re.search(r"roc_auc\s+\d\.\d+\s+\d\.\d+", out) and re.search(r"max_iter\s+10", out)
    assert re.search(r"plan\s+categorical", out)
    model = json.loads(invoke("models", "show", name, "--json").stdout)
    assert model["name"] == name and model["task"] == "TASK_TYPE_BINARY_CLASSIFICATION"

    result = invoke("models", "download", name, "-o", str(tmp_path / "m.tar"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "m.tar")
    assert hashlib.sha256((tmp_path / "m.tar").read_bytes()).hexdigest() == model["sha256"]
    assert invoke("models", "download", name, "-o", str(tmp_path)).stdout.strip() == str(
        tmp_path / f"{model['id']}.tar")

    result = invoke("models", "delete", name)
    assert result.exit_code == 1 and "--yes" in result.stderr
    monkeypatch.setattr(_cli_training, "_stdin_is_interactive", lambda: True)
    result = invoke("models", "delete", name, input="n\n")
    assert result.exit_code == 1 and f"Delete {name} ({ESTIMATOR}, roc_auc 0." in result.output
    assert invoke("models", "show", name).exit_code == 0
    assert invoke("models", "delete", name, "--yes").stdout == f"deleted {name}\n"
    result = invoke("models", "show", name)
    assert result.exit_code == 1 and "error: NOT_FOUND" in result.stderr
