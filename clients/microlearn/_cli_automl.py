"""`microlearn automl`: one command from a table to the best model (and predictions for a test file);
`microlearn select` (SelectModels) and `microlearn studies list|show|stop|events` (HPOService).

Its interface is what benchmark harnesses call; keep it stable:
    microlearn automl DATA_FILE --target COL --time-budget SECONDS [--metric M]
                     [--test TEST_FILE --predictions-out PRED.csv] [--deploy NAME]
The time budget covers the whole command: upload, search and predictions. The study gets what is
left after the upload, minus a reserve for downloading the best model and predicting.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from microlearn import _cli_base as base
from microlearn._cli_base import AddressOption, JsonOption, TokenOption

__all__ = ["automl", "select", "studies_app"]

_MIN_STUDY_SECONDS = 3


def _reserve(budget: float, predicting: bool, cells: int) -> float:
    """Seconds kept back from the study for what follows it: downloading and loading the best model and
    predicting, which grow with the table (about 2 s per million training cells, measured on 2 cores)."""
    if not predicting:
        return 0.5
    return min(0.25 * budget, 1.5 + 0.03 * budget + 2.0 * cells / 1e6)


def automl(
    data_file: Annotated[Path, typer.Argument(help="Training table: CSV, Parquet or JSON lines (optionally gzip).",
                                              exists=True, dir_okay=False, readable=True)],
    target: Annotated[str, typer.Option("--target", "-t", help="Column to predict.")],
    time_budget: Annotated[int, typer.Option("--time-budget", min=5,
                                             help="Wall-clock seconds for the whole command (upload, search, "
                                                  "predictions).")],
    metric: Annotated[Optional[str], typer.Option("--metric", help="Metric to optimize, e.g. roc_auc, f1_macro, "
                                                                   "log_loss, rmse, r2 (default: the task's).")] = None,
    test: Annotated[Optional[Path], typer.Option("--test", exists=True, dir_okay=False, readable=True,
                                                 help="Table to predict with the best model (same columns; the "
                                                      "target may be present and is ignored).")] = None,
    predictions_out: Annotated[Optional[Path], typer.Option(
        "--predictions-out", help="CSV to write for --test: one row per test row in order, column `prediction` "
                                  "and, for classification, one `proba_<class>` column per class.")] = None,
    deploy: Annotated[Optional[str], typer.Option("--deploy", help="Deploy the best model under this name.")] = None,
    candidates: Annotated[Optional[list[str]], typer.Option("--estimator", "-e",
                                                            help="Search only these estimators, repeatable "
                                                                 "(default: chosen by SelectModels).")] = None,
    parallelism: Annotated[int, typer.Option("--parallelism", min=0, max=256,
                                             help="Trials running at once (0: the server's default, 4).")] = 0,
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Random seed for splits and sampling.")] = None,
    ensemble: Annotated[bool, typer.Option("--ensemble/--no-ensemble",
                                           help="Combine the best trials into a weighted ensemble when it "
                                                "beats the best single model.")] = True,
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help=(
        "After the search, start the evaluation job that measures the best model's permutation importance "
        "on the workers (it runs on after this command returns; off by default so the machine is the "
        "next command's; `microlearn models evaluate MODEL` does it later).")) ] = False,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Upload a table, pick candidate models, search them within a time budget, print the leaderboard
    and register the best model; with --test, write its predictions for another table."""
    began = time.monotonic()
    if (test is None) != (predictions_out is None):
        raise base.fail("--test and --predictions-out go together", code=2)
    with base.connect(address, token) as ml:
        upload = ml.upload_dataset(data_file, name=_dataset_name(data_file))
        dataset = upload.dataset
        _say(json_output, f"uploaded {dataset.name} ({dataset.display_name}@{dataset.version}, "
                          f"{dataset.row_count:,} rows × {dataset.column_count} columns)")
        cells = dataset.row_count * dataset.column_count
        left = time_budget - (time.monotonic() - began) - _reserve(time_budget, test is not None, cells)
        study_budget = max(_MIN_STUDY_SECONDS, math.floor(left))
        study = ml.start_study(dataset.name, target, time_budget=study_budget, metric=metric,
                               candidates=candidates or (), parallelism=parallelism, seed=seed,
                               labels={"source": "automl"}, ensemble=ensemble, skip_evaluation=not evaluate)
        _say(json_output, f"{study.name}: {study.spec.metric} ({'higher' if study.spec.direction == 2 else 'lower'}"
                          f" is better) over {', '.join(study.spec.candidates)} for {study_budget} s")
        done = ml.wait_study(study.name, timeout=study_budget * 1.5 + 30, poll=0.25)
        from microlearn._studies import state_name

        if state_name(done) != "SUCCEEDED":
            raise base.fail(f"{done.name} ended {state_name(done)}: {done.error}")
        written = None
        if test is not None and predictions_out is not None:
            written = _predict(ml, done.best_model, target, test, predictions_out)
        deployment = None
        if deploy:
            deployment = ml.deploy(done.best_model, name=deploy)
        elapsed = time.monotonic() - began
        if json_output:
            base.print_json({
                "study": done.name, "dataset": dataset.name, "task": done.spec.task, "metric": done.spec.metric,
                "best_model": done.best_model, "best_score": done.best_trial.score,
                "best_estimator": done.best_trial.estimator, "ensemble_model": done.ensemble_model or None,
                "ensemble_score": done.ensemble_score if done.ensemble_model else None,
                "elapsed_seconds": round(elapsed, 3),
                "predictions": str(written) if written else None,
                "deployment": getattr(deployment, "name", None),
                "leaderboard": [{"rank": t.rank, "trial": t.number, "estimator": t.estimator, "score": t.score,
                                 "score_std": t.score_std, "fit_seconds": t.fit_time_seconds,
                                 "state": _trial_state(t)} for t in done.leaderboard],
            })
            return
        _leaderboard(done)
        if done.ensemble_model and done.best_model == done.ensemble_model:
            typer.echo(f"best: {done.best_model} (ensemble, {done.spec.metric} = {done.ensemble_score:.5g}; best "
                       f"single trial {done.best_trial.estimator} {done.best_trial.score:.5g}) in {elapsed:.1f} s "
                       f"of {time_budget} s")
        else:
            typer.echo(f"best: {done.best_model} ({done.best_trial.estimator}, {done.spec.metric} = "
                       f"{done.best_trial.score:.5g}) in {elapsed:.1f} s of {time_budget} s")
        if written:
            typer.echo(f"predictions: {written}")
        if deployment is not None:
            typer.echo(f"deployed: {getattr(deployment, 'name', deploy)}")


def _dataset_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".zip", ".csv", ".parquet", ".jsonl", ".json", ".tsv"):
        name = name.removesuffix(suffix)
    return name or "automl"


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _trial_state(trial) -> str:
    from microlearn.v1 import hpo_pb2

    return hpo_pb2.TrialState.Name(trial.state).removeprefix("TRIAL_STATE_")


def _leaderboard(study) -> None:
    rows = [[str(t.rank or ""), str(t.number), t.estimator,
             f"{t.score:.5g}" + (f" ± {t.score_std:.2g}" if t.score_std else "") if t.rank else "",
             f"{t.fit_time_seconds:.2f}", _trial_state(t)] for t in study.leaderboard[:20]]
    base.table(["RANK", "TRIAL", "ESTIMATOR", study.spec.metric.upper(), "FIT S", "STATE"], rows, right=(0, 1, 3, 4))
    counts = study.trial_counts
    typer.echo(f"{counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed, "
               f"{counts.cancelled} cancelled")


def _predict(ml, model_name: str, target: str, test: Path, out: Path) -> Path:
    import pandas as pd

    import numpy as np

    model = ml.load_model(model_name)
    frame = _read_table(test)
    features = frame.drop(columns=[target]) if target in frame.columns else frame
    if model.task in ("binary", "multiclass"):
        proba = model.predict_proba(features)  # one pass: the prediction is the most probable class
        values = model.manifest.get("class_values") or model.class_labels
        result = pd.DataFrame({"prediction": np.asarray(values, dtype=object)[np.argmax(proba, axis=1)]})
        for index, label in enumerate(model.class_labels):
            result[f"proba_{label}"] = proba[:, index]
    else:
        result = pd.DataFrame({"prediction": model.predict(features)})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    result.to_csv(tmp, index=False)
    tmp.replace(out)
    return out


def _read_table(path: Path):
    import pandas as pd

    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith((".jsonl", ".json")):
        return pd.read_json(path, lines=True)
    return pd.read_csv(path)




# --- model selection and studies ----------------------------------------------------------------

studies_app = typer.Typer(help="Follow, list, inspect and stop hyperparameter studies.", no_args_is_help=True)


def select(
    dataset: Annotated[str, typer.Argument(help="Dataset: NAME (latest version), NAME@VERSION or datasets/ID.")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Column to predict (default: the "
                                                                         "profile's best suggestion).")] = None,
    max_candidates: Annotated[int, typer.Option("--max-candidates", min=0, max=50, help="How many (0: 5).")] = 0,
    time_budget: Annotated[int, typer.Option("--time-budget", min=0, help="Seconds the candidates will be trained "
                                                                          "in; slow estimators drop out.")] = 0,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Detect the task of a target and rank the estimators worth training on the dataset.

    Example: microlearn select churn --target churned --time-budget 60
    """
    from google.protobuf import json_format

    with base.connect(address, token) as ml:
        answer = ml.select_models(dataset, target, max_candidates=max_candidates, time_budget=time_budget)
    if json_output:
        base.print_json(json_format.MessageToDict(answer, preserving_proto_field_name=True))
        return
    typer.echo(f"{answer.explanation.summary}")
    typer.echo(f"metric: {answer.recommended_metric}   features: {len(answer.feature_columns)}")
    base.table(["RANK", "ESTIMATOR", "SCORE", "EST. FIT S", "WHY"],
               [[c.rank, c.estimator, f"{c.score:.2f}", f"{c.estimated_fit_seconds:.1f}", c.reason]
                for c in answer.candidates], right=(0, 2, 3))
    for warning in answer.warnings:
        typer.echo(f"warning: {warning.message}" + (f" ({warning.suggestion})" if warning.suggestion else ""))


@studies_app.command("list")
def studies_list(
    dataset: Annotated[str, typer.Option("--dataset", help="Only studies on this dataset.")] = "",
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """List studies, newest first.

    Example: microlearn studies list --dataset churn
    """
    from microlearn._studies import state_name

    with base.connect(address, token) as ml:
        studies = list(ml.list_studies(dataset=dataset))
    if json_output:
        base.print_json([{"name": s.name, "state": state_name(s), "dataset": s.spec.dataset,
                          "metric": s.spec.metric, "best_model": s.best_model} for s in studies])
        return
    base.table(["STUDY", "STATE", "DATASET", "METRIC", "TRIALS", "BEST MODEL"],
               [[s.name, state_name(s), s.spec.dataset, s.spec.metric, s.trial_counts.complete, s.best_model]
                for s in studies])


@studies_app.command("show")
def studies_show(
    name: Annotated[str, typer.Argument(help="The study: studies/ID or the id.")],
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Show a study and its leaderboard.

    Example: microlearn studies show studies/study-0123456789abcdef
    """
    from google.protobuf import json_format

    from microlearn._studies import state_name

    with base.connect(address, token) as ml:
        study = ml.get_study(name)
    if json_output:
        base.print_json(json_format.MessageToDict(study, preserving_proto_field_name=True))
        return
    typer.echo(f"{study.name}  {state_name(study)}  {study.spec.dataset}  {study.spec.metric}"
               + (f"  error: {study.error}" if study.error else ""))
    _leaderboard(study)


@studies_app.command("stop")
def studies_stop(
    name: Annotated[str, typer.Argument(help="The study: studies/ID or the id.")],
    cancel_running: Annotated[bool, typer.Option("--cancel-running", help="Cancel running trials too.")] = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Stop a study early; it keeps the best model found so far.

    Example: microlearn studies stop studies/study-0123456789abcdef --cancel-running
    """
    from microlearn._studies import state_name

    with base.connect(address, token) as ml:
        study = ml.stop_study(name, cancel_running=cancel_running)
    typer.echo(f"{study.name}  {state_name(study)}")


@studies_app.command("events")
def studies_events(
    name: Annotated[str, typer.Argument(help="The study: studies/ID or the id.")],
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Print a study's events from the start, then live until it ends.

    Example: microlearn studies events studies/study-0123456789abcdef
    """
    with base.connect(address, token) as ml:
        for event in ml.study_events(name, exclude_trial_reports=True):
            kind = event.WhichOneof("payload")
            payload = getattr(event, kind)
            if kind == "state_change":
                from microlearn.v1 import hpo_pb2

                text = f"{hpo_pb2.StudyState.Name(payload.state).removeprefix('STUDY_STATE_')} {payload.message}"
            elif kind == "log":
                text = payload.message
            elif kind == "new_best_trial":
                text = f"trial {payload.trial.number} ({payload.trial.estimator}) {payload.trial.score:.5g}"
            else:
                text = f"trial {payload.number} ({payload.estimator})" + (
                    f" {payload.score:.5g}" if kind == "trial_completed" else f" {payload.error}".rstrip())
            typer.echo(f"{event.progress:5.0%}  {kind:16} {text}")
