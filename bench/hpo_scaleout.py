"""Scale-out: study trials per minute with 1, 2 and 4 worker processes on one fixed dataset.

    python bench/hpo_scaleout.py [--workers 1 2 4] [--seconds 60] [--rows 5000]

For each worker count, starts `microlearn up --workers N` (MICROLEARN_WORKER_CONCURRENCY=1, one thread
per job, so N processes run N trials at once), uploads a seeded make_classification table (--rows x 20,
binary), and runs one study with a --seconds time budget, parallelism N, a 20% holdout and the
candidates logistic_regression, lightgbm_classifier and extra_trees_classifier (pruning off, so every
trial runs to its end). Trials per minute = trials that completed / the study's wall time from
create to end. On this 2-core machine, 4 workers show the overhead of oversubscription, not a speedup.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import Platform, upload_dataset  # noqa: E402


def table(rows: int) -> bytes:
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=20, n_informative=8, flip_y=0.05, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(20)])
    frame["y"] = y
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def run(workers: int, seconds: int, rows: int) -> dict:
    from microlearn.v1 import common_pb2, hpo_pb2, hpo_pb2_grpc

    with tempfile.TemporaryDirectory(prefix="hpo-scaleout-") as tmp:
        platform = Platform(Path(tmp), "--workers", str(workers),
                            env={"MICROLEARN_WORKER_CONCURRENCY": "1", "MICROLEARN_THREADS_PER_JOB": "1"})
        try:
            with grpc.insecure_channel(platform.address) as channel:
                dataset = upload_dataset(channel, platform.metadata(), "scaleout", table(rows))
                time.sleep(3)  # let every worker finish warming up (forkserver, MLflow, Optuna)
                hpo = hpo_pb2_grpc.HPOServiceStub(channel)
                spec = hpo_pb2.StudySpec(
                    dataset=dataset.name, target="y", parallelism=workers, seed=0,
                    candidates=["logistic_regression", "lightgbm_classifier", "extra_trees_classifier"],
                    budget=hpo_pb2.StudyBudget(time_budget_seconds=seconds), pruner=hpo_pb2.PRUNER_KIND_NONE,
                    validation=common_pb2.ValidationStrategy(holdout=common_pb2.HoldoutValidation(fraction=0.2)))
                study = hpo.StartStudy(hpo_pb2.StartStudyRequest(spec=spec), metadata=platform.metadata()).study
                while True:
                    study = hpo.GetStudy(hpo_pb2.GetStudyRequest(name=study.name),
                                         metadata=platform.metadata()).study
                    if study.state in (hpo_pb2.STUDY_STATE_SUCCEEDED, hpo_pb2.STUDY_STATE_FAILED,
                                       hpo_pb2.STUDY_STATE_CANCELLED):
                        break
                    time.sleep(0.5)
        finally:
            platform.stop()
    wall = (study.end_time.ToDatetime() - study.create_time.ToDatetime()).total_seconds()
    counts = study.trial_counts
    return {"workers": workers, "complete": counts.complete, "cancelled": counts.cancelled,
            "failed": counts.failed, "wall": wall, "per_minute": counts.complete / wall * 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    results = [run(n, args.seconds, args.rows) for n in args.workers]
    print(f"{'workers':>7} {'trials done':>11} {'cancelled':>9} {'failed':>6} {'study wall s':>12} {'trials/min':>10}")
    for r in results:
        print(f"{r['workers']:7d} {r['complete']:11d} {r['cancelled']:9d} {r['failed']:6d} {r['wall']:12.1f} "
              f"{r['per_minute']:10.1f}")


if __name__ == "__main__":
    main()
