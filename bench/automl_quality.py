"""Quality vs time: `microlearn automl` next to FLAML, AutoGluon-Tabular and a default LightGBM.

    python bench/automl_quality.py [--budgets 30 120] [--datasets breast_cancer wine ...] [--skip autogluon]

Every classification/regression dataset scikit-learn ships (breast_cancer, iris, wine, digits,
diabetes) plus generated harder ones (imbalanced noisy binary with categoricals and missing values
at 50k rows, 5-class at 40k rows, regression with categoricals at 30k rows) is split 75/25 with a
fixed seed and written as CSV. Each system then runs as its own process with the same wall-clock
budget on the same 2 cores, one after the other (never concurrently):

  * MicroLearn: `microlearn automl TRAIN --target y --time-budget B --metric M --test TEST
    --predictions-out P` against a `microlearn up` started once (not timed) by this script;
  * FLAML (`AutoML.fit(time_budget=B)`), AutoGluon (`TabularPredictor.fit(time_limit=B)`) and
    LightGBM defaults, through bench/_baseline_runner.py in the baselines' virtual environment
    (--baselines-python; create it with `python3.11 -m venv bench/.venv-baselines &&
    bench/.venv-baselines/bin/pip install torch==2.13.0 "flaml[automl]" autogluon.tabular lightgbm`).

Wall time is measured around each process (start to exit, imports included, for all systems alike).
The test metric: ROC AUC (binary), accuracy (multiclass), RMSE (regression); each system optimizes
that same metric. Results: a table on stdout and bench/out/automl_quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import Platform  # noqa: E402

HERE = Path(__file__).resolve().parent
METRIC = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
TIE = {"roc_auc": 0.002, "accuracy": 0.005, "rmse": 0.005}  # absolute for scores, relative for RMSE


def datasets(seed: int = 0) -> dict[str, tuple[pd.DataFrame, str]]:
    from sklearn import datasets as sk

    out: dict[str, tuple[pd.DataFrame, str]] = {}
    for name, loader, task in (("breast_cancer", sk.load_breast_cancer, "binary"), ("iris", sk.load_iris, "multiclass"),
                               ("wine", sk.load_wine, "multiclass"), ("digits", sk.load_digits, "multiclass"),
                               ("diabetes", sk.load_diabetes, "regression")):
        frame = loader(as_frame=True).frame.rename(columns={"target": "y"})
        out[name] = (frame, task)
    rng = np.random.default_rng(seed)
    X, y = sk.make_classification(n_samples=50_000, n_features=30, n_informative=10, flip_y=0.1, weights=[0.9],
                                  random_state=seed)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(30)])
    frame["region"] = np.where(y == 1, rng.choice(list("ABCDE"), y.size, p=[.4, .3, .1, .1, .1]),
                               rng.choice(list("ABCDE"), y.size))
    frame["plan"] = rng.choice([f"p{i}" for i in range(60)], y.size)
    for column in ("x0", "x1", "x2", "region"):
        frame.loc[rng.random(y.size) < 0.05, column] = None
    frame["y"] = np.where(y == 1, "churn", "stay")
    out["synth_binary_50k"] = (frame, "binary")
    X, y = sk.make_classification(n_samples=40_000, n_features=25, n_informative=12, n_classes=5, flip_y=0.05,
                                  random_state=seed + 1)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(25)])
    frame["kind"] = rng.choice(list("PQRS"), y.size)
    frame["y"] = y
    out["synth_multiclass_40k"] = (frame, "multiclass")
    X, y = sk.make_regression(n_samples=30_000, n_features=20, n_informative=10, noise=20.0, random_state=seed + 2)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(20)])
    shop = rng.choice(["north", "south", "east", "west"], y.size)
    frame["shop"] = shop
    frame.loc[rng.random(y.size) < 0.05, "x3"] = None
    frame["y"] = y + pd.Series(shop).map({"north": 30.0, "south": -20.0, "east": 5.0, "west": 0.0}).to_numpy()
    out["synth_regression_30k"] = (frame, "regression")
    return out


def score(task: str, test: pd.DataFrame, predictions: pd.DataFrame) -> float:
    from sklearn import metrics

    truth = test["y"]
    if task == "regression":
        return float(np.sqrt(metrics.mean_squared_error(truth, predictions["prediction"].astype(float))))
    if task == "multiclass":
        return float(metrics.accuracy_score(truth.astype(str), predictions["prediction"].astype(str)))
    labels = sorted(truth.astype(str).unique())
    positive = labels[1]
    column = f"proba_{positive}"
    return float(metrics.roc_auc_score(truth.astype(str) == positive, predictions[column]))


def run(command: list[str], env: dict[str, str] | None, budget: int) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=budget * 4 + 300)
    elapsed = time.perf_counter() - began
    return elapsed, "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1][:200]


def better(metric: str, a: float, b: float) -> bool:
    """a beats or ties b."""
    if metric == "rmse":
        return a <= b * (1 + TIE[metric])
    return a >= b - TIE[metric]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 120])
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--skip", nargs="*", default=[], choices=["flaml", "autogluon", "lightgbm", "microlearn"])
    parser.add_argument("--microlearn-args", default="",
                        help='extra `microlearn automl` options for an experiment, e.g. "--parallelism 2"')
    parser.add_argument("--baselines-python", default=str(HERE / ".venv-baselines" / "bin" / "python"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="automl-quality-"))
    chosen = datasets()
    if args.datasets:
        chosen = {k: v for k, v in chosen.items() if k in args.datasets}
    systems = [s for s in ("microlearn", "flaml", "autogluon", "lightgbm") if s not in args.skip]
    platform = Platform(work / "platform") if "microlearn" in systems else None
    results = []
    try:
        env = {**os.environ}
        if platform is not None:
            env.update(MICROLEARN_ADDRESS=platform.address, MICROLEARN_TOKEN=platform.token)
        for name, (frame, task) in chosen.items():
            from sklearn.model_selection import train_test_split

            train, test = train_test_split(frame, test_size=0.25, random_state=0,
                                           stratify=frame["y"] if task != "regression" else None)
            train_path, test_path = work / f"{name}-train.csv", work / f"{name}-test.csv"
            train.to_csv(train_path, index=False)
            test.to_csv(test_path, index=False)
            metric = METRIC[task]
            for budget in args.budgets:
                for system in systems:
                    if system == "lightgbm" and budget != args.budgets[0]:
                        continue  # no search: the same model at every budget
                    out = work / f"{name}-{budget}-{system}.csv"
                    if system == "microlearn":
                        command = [sys.executable, "-m", "microlearn_grpc", "automl", str(train_path), "--target", "y",
                                   "--time-budget", str(budget), "--metric", metric, "--test", str(test_path),
                                   "--predictions-out", str(out), "--json", *args.microlearn_args.split()]
                    else:
                        command = [args.baselines_python, str(HERE / "_baseline_runner.py"), system, str(train_path),
                                   str(test_path), "y", task, metric, str(budget), str(out)]
                    elapsed, error = run(command, env, budget)
                    value = score(task, test, pd.read_csv(out)) if not error and out.exists() else None
                    results.append({"dataset": name, "task": task, "rows": len(frame), "budget": budget,
                                    "system": system, "metric": metric, "score": value,
                                    "wall_seconds": round(elapsed, 2), "budget_ratio": round(elapsed / budget, 3),
                                    "error": error})
                    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        if platform is not None:
            platform.stop()
    report(results, args.budgets)
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "automl_quality.json").write_text(json.dumps(results, indent=2))


def report(results: list[dict], budgets: list[int]) -> None:
    by = {(r["dataset"], r["budget"], r["system"]): r for r in results}
    names = list(dict.fromkeys(r["dataset"] for r in results))
    print(f"{'dataset':22} {'metric':8} {'budget':>6}  {'MicroLearn':>16} {'FLAML':>16} {'AutoGluon':>16} "
          f"{'LightGBM':>16}  verdict")
    wins = total = 0
    for name in names:
        for budget in budgets:
            cells, scores = [], {}
            for system in ("microlearn", "flaml", "autogluon", "lightgbm"):
                r = by.get((name, budgets[0] if system == "lightgbm" else budget, system))
                if r is None or r["score"] is None:
                    cells.append(f"{'—' if r is None else 'failed':>16}")
                    continue
                scores[system] = r["score"]
                cells.append(f"{r['score']:.4f} {r['wall_seconds']:5.1f}s".rjust(16))
            metric = next(r["metric"] for r in results if r["dataset"] == name)
            verdict = ""
            rivals = [scores[s] for s in ("flaml", "autogluon") if s in scores]
            if "microlearn" in scores and rivals:
                best = min(rivals) if metric == "rmse" else max(rivals)
                total += 1
                if better(metric, scores["microlearn"], best):
                    wins += 1
                    verdict = "win/tie"
                else:
                    verdict = "loss"
            print(f"{name:22} {metric:8} {budget:6d}  {' '.join(cells)}  {verdict}")
    print(f"\nMicroLearn wins or ties the better of FLAML/AutoGluon on {wins} of {total} (dataset, budget) pairs")
    for system in ("microlearn", "flaml", "autogluon"):
        mine = [r["budget_ratio"] for r in results if r["system"] == system]
        if mine:
            print(f"budget adherence {system:10}: max wall/budget = {max(mine):.3f}")


if __name__ == "__main__":
    main()
