"""`microlearn automl` as benchmark harnesses call it: a subprocess against the running platform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

from tests.conftest import TOKEN

pytestmark = pytest.mark.integration


def cli(platform, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "MICROLEARN_ADDRESS": platform.address, "MICROLEARN_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "microlearn_grpc", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def run(platform, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return cli(platform, "automl", *args, timeout=timeout)


def test_automl_within_budget_writes_predictions_in_test_order(platform, workers, tmp_path):
    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    train, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["target"])
    train.to_csv(tmp_path / "wine-train.csv", index=False)
    test.to_csv(tmp_path / "wine-test.csv", index=False)
    out = tmp_path / "out" / "pred.csv"
    budget = 20
    began = time.monotonic()
    done = run(platform, str(tmp_path / "wine-train.csv"), "--target", "target", "--time-budget", str(budget),
               "--test", str(tmp_path / "wine-test.csv"), "--predictions-out", str(out), "--json")
    elapsed = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert elapsed <= budget * 1.1 + 3, elapsed  # + 3: starting this Python process and importing the SDK
    summary = json.loads(done.stdout)
    assert summary["best_model"].startswith("models/") and summary["metric"] == "f1_macro"
    assert summary["leaderboard"][0]["rank"] == 1 and summary["elapsed_seconds"] <= budget * 1.1
    predictions = pd.read_csv(out)
    assert len(predictions) == len(test)
    assert list(predictions.columns) == ["prediction", "proba_barbera", "proba_barolo", "proba_grignolino"]
    assert (predictions["prediction"].to_numpy() == test["target"].to_numpy()).mean() > 0.85
    assert predictions.filter(like="proba_").sum(axis=1).round(6).eq(1).all()


def test_automl_prints_a_leaderboard(platform, workers, tmp_path):
    frame = load_wine(as_frame=True).frame
    frame.to_csv(tmp_path / "wine.csv", index=False)
    done = run(platform, str(tmp_path / "wine.csv"), "--target", "target", "--time-budget", "8",
               "-e", "logistic_regression", "-e", "gaussian_nb")
    assert done.returncode == 0, done.stderr
    assert "RANK" in done.stdout and "logistic_regression" in done.stdout
    assert "best: models/" in done.stdout and "uploaded datasets/" in done.stderr
    study = next(line.split(":")[0] for line in done.stderr.splitlines() if line.startswith("studies/"))
    shown = cli(platform, "studies", "show", study)
    assert shown.returncode == 0 and "SUCCEEDED" in shown.stdout and "gaussian_nb" in shown.stdout
    listed = json.loads(cli(platform, "studies", "list", "--json").stdout)
    assert study in [s["name"] for s in listed]
    events = cli(platform, "studies", "events", study)
    assert events.returncode == 0 and "trial_completed" in events.stdout and "SUCCEEDED" in events.stdout
    selected = cli(platform, "select", "wine", "--target", "target")
    assert selected.returncode == 0 and "distinct values" in selected.stdout
    assert "lightgbm_classifier" in selected.stdout


def test_automl_usage_errors(platform, tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    done = run(platform, str(tmp_path / "t.csv"), "--target", "b", "--time-budget", "10", "--test",
               str(tmp_path / "t.csv"))
    assert done.returncode == 2 and "--predictions-out" in done.stderr
    missing = run(platform, str(tmp_path / "t.csv"), "--target", "nope", "--time-budget", "10")
    assert missing.returncode == 1 and "spec.target" in missing.stderr
