"""The `microlearn train`, `microlearn jobs ...` and `microlearn models ...` commands.

`train --follow` and `jobs events --follow` stream the job's events; Ctrl-C stops following (the
job keeps running) and says how to cancel it. A followed job that fails or is cancelled exits 1.
"""

from __future__ import annotations

import enum
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Optional

import typer

from microlearn import _cli_base as base
from microlearn import _convert
from microlearn._cli_base import AddressOption, JsonOption, TaskChoice, TokenOption
from microlearn._jobs import Job, JobEvent, headline_metric
from microlearn._models import Model

__all__ = ["jobs_app", "models_app", "train"]

jobs_app = typer.Typer(
    help="Follow, list, inspect and cancel jobs (training runs, trials, batch predictions).",
    no_args_is_help=True,
)
models_app = typer.Typer(
    help="List, inspect, compare, evaluate, report on, download and delete trained models.",
    no_args_is_help=True,
)


class StateChoice(str, enum.Enum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


LimitOption = Annotated[
    int, typer.Option("--limit", min=0, help="Show at most this many, newest first (0: all).")
]
LabelOption = Annotated[
    Optional[list[str]], typer.Option("--label", metavar="KEY=VALUE", help="Only those with this label, repeatable.")
]

# Looked up here when called, so tests can stand in for a terminal.
_stdin_is_interactive = base.stdin_is_interactive
_stderr_is_terminal = base.stderr_is_terminal


# --- showing jobs and events ------------------------------------------------------------------


def _limited(items: Iterator[Any], limit: int) -> list[Any]:
    return list(itertools.islice(items, limit) if limit else items)


def _page_size(limit: int) -> int:
    return min(limit, 200) if limit else 200


def _score(metric: str, metrics: dict[str, float]) -> str:
    return f"{metric} {metrics[metric]:.4g}" if metric in metrics else ""


def _metrics_line(metrics: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:.4g}" for name, value in sorted(metrics.items()))


def _duration(job: Job) -> str:
    if job.start_time is None:
        return ""
    end = job.end_time or job.heartbeat_time or job.start_time
    return f"{(end - job.start_time).total_seconds():.1f} s"


def _event_line(event: JobEvent) -> str:
    moment = event.time.strftime("%H:%M:%S") if event.time else ""
    if event.kind == "metrics":
        values = "  ".join(f"{name}={value:.4g}" for name, value in event.values.items())
        detail = f"step {event.step}  {values}"
    elif event.kind == "state":
        detail = f"{event.state}  {event.message}"
    else:
        detail = f"{event.level}  {event.message}"
    return f"{moment}  {event.kind:<7}  {detail}".rstrip()


def _interrupted(name: str) -> typer.Exit:
    typer.echo(f"\nstopped following {name}; the job keeps running.\n"
               f"  cancel it:        microlearn jobs cancel {name}\n"
               f"  follow it again:  microlearn jobs events {name} --follow", err=True)
    return typer.Exit(130)


class _Progress:
    """A followed job on screen. On a terminal: a tqdm bar on stderr whose postfix is the latest
    validation metric, with state changes and log lines printed above it. Elsewhere: just those lines."""

    def __init__(self, job: Job, bar: bool) -> None:
        self._metric = job.spec.metric if job.spec is not None else ""
        self._bar = None
        if bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=100, desc=job.id, file=sys.stderr, leave=False, dynamic_ncols=True,
                             bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}{postfix}")

    def show(self, event: JobEvent) -> None:
        if event.kind == "metrics":
            headline = headline_metric(event.values, self._metric)
            if self._bar is not None and headline is not None:
                self._bar.set_postfix_str(f"step {event.step}  {headline[0]}={headline[1]:.4g}", refresh=False)
        elif event.kind == "state":
            self._write(f"{event.state}  {event.message}")
        elif event.kind == "log":
            self._write(f"{event.level}  {event.message}")
        if self._bar is not None:
            self._bar.n = round(event.progress * 100)
            self._bar.refresh()

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)  # clears the bar, prints, redraws it below
        else:
            typer.echo(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _follow(job: Job) -> Job:
    """Shows the job's events until it ends; returns it refreshed."""
    progress = _Progress(job, bar=_stderr_is_terminal())
    try:
        for event in job.events():
            progress.show(event)
    except KeyboardInterrupt:
        progress.close()
        raise _interrupted(job.name) from None
    finally:
        progress.close()
    if not job.refresh().done:  # the stream broke off early (a server restart): wait for the end
        job.wait(raise_on_failure=False)
    return job


def _print_outcome(job: Job) -> None:
    base.fields([
        ("state", f"{job.state}  {job.name}" + (f"  ({_duration(job)})" if _duration(job) else "")),
        ("metrics", _metrics_line(job.metrics)),
        ("model", job.model_name or ""),
    ])


def _fail_unless_succeeded(job: Job) -> None:
    if job.state in ("FAILED", "CANCELLED"):
        raise base.fail(f"{job.name} {job.state}: {job.error}" if job.error else f"{job.name} {job.state}")


def _print_job(job: Job) -> None:
    spec = job.spec
    placement = f"{job.device} (worker {job.worker_id}, attempt {job.attempt} of {job.max_attempts})" \
        if job.worker_id else ""
    base.fields([
        ("job", f"{job.name}  ({job.kind})"),
        ("state", f"{job.state}  {job.progress:.0%}"),
        ("error", job.error),
        ("estimator", spec.estimator if spec else ""),
        ("dataset", spec.dataset if spec else ""),
        ("target", f"{spec.target or '(none)'}  ({_convert.task_name(spec.task)}, metric {spec.metric})"
                   if spec else ""),
        ("created", base.when(job.create_time)),
        ("ran", f"{base.when(job.start_time)}, {_duration(job)}" if job.start_time else ""),
        ("device", placement),
        ("metrics", _metrics_line(job.metrics)),
        ("outputs", ", ".join(job.outputs)),
        ("mlflow run", job.mlflow_run_id),
        ("labels", base.pairs(job.labels)),
    ])


# --- train --------------------------------------------------------------------------------------


def _param_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # plain text need not be quoted: --param loss=log_loss


def _validation(k_fold: int | None, holdout: float | None, validation_dataset: str | None,
                stratify: bool | None, group_column: str | None, time_column: str | None) -> dict[str, Any] | None:
    given = [flag for flag, value in (("--k-fold", k_fold), ("--holdout", holdout),
                                      ("--validation-dataset", validation_dataset)) if value is not None]
    if len(given) > 1:
        raise typer.BadParameter(f"give one of --k-fold, --holdout or --validation-dataset, not {' and '.join(given)}")
    validation = {"k_fold": k_fold, "holdout": holdout, "dataset": validation_dataset, "stratify": stratify,
                  "group_column": group_column, "time_column": time_column}
    return {key: value for key, value in validation.items() if value is not None} or None


def _early_stopping(enabled: bool | None, patience: int | None, min_delta: float | None) -> Any:
    if patience is None and min_delta is None:
        return enabled
    if enabled is False:
        raise typer.BadParameter("--patience and --min-delta need early stopping; drop --no-early-stopping")
    return {"patience": patience or 0, "min_delta": min_delta or 0.0}


def train(
    dataset: Annotated[str, typer.Argument(help="Training data: NAME (latest version), NAME@VERSION or datasets/ID.")],
    estimator: Annotated[
        str, typer.Option("--estimator", "-e", help="Estimator id; `microlearn estimators list` shows them.")
    ],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Column to predict (none for clustering).")] = None,
    param: Annotated[
        Optional[list[str]],
        typer.Option("--param", "-p", metavar="NAME=VALUE",
                     help="Hyperparameter, repeatable. VALUE is JSON when it parses (3, 0.1, true, [1,2]), else text."),
    ] = None,
    task: Annotated[Optional[TaskChoice], typer.Option("--task", help="Task (default: detected from the target).")] = None,
    metric: Annotated[
        Optional[str], typer.Option("--metric", help="Metric to score and early-stop on, e.g. roc_auc, rmse (default: the task's).")
    ] = None,
    max_iterations: Annotated[
        int, typer.Option("--max-iterations", min=0, help="Boosting rounds or epochs (0: the estimator's default).")
    ] = 0,
    early_stopping: Annotated[
        Optional[bool], typer.Option("--early-stopping/--no-early-stopping", help="Stop when the validation metric stalls.")
    ] = None,
    patience: Annotated[
        Optional[int], typer.Option("--patience", min=1, help="Iterations without improvement before stopping (turns early stopping on).")
    ] = None,
    min_delta: Annotated[
        Optional[float], typer.Option("--min-delta", min=0.0, help="Smallest change that counts as an improvement.")
    ] = None,
    k_fold: Annotated[Optional[int], typer.Option("--k-fold", min=2, max=20, help="Validate with N-fold cross-validation.")] = None,
    holdout: Annotated[
        Optional[float], typer.Option("--holdout", min=0.0, max=0.5, help="Validate on this fraction of the rows (default 0.2).")
    ] = None,
    validation_dataset: Annotated[
        Optional[str], typer.Option("--validation-dataset", help="Validate on another dataset with the same columns.")
    ] = None,
    stratify: Annotated[
        Optional[bool], typer.Option("--stratify/--no-stratify", help="Keep class proportions in splits (default on for classification).")
    ] = None,
    group_column: Annotated[Optional[str], typer.Option("--group-column", help="Rows sharing its value stay on one side of a split.")] = None,
    time_column: Annotated[Optional[str], typer.Option("--time-column", help="Split in time order: validate on the latest rows.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Random seed (default: picked and recorded).")] = None,
    gpu: Annotated[
        Optional[bool], typer.Option("--gpu/--no-gpu", help="Require a GPU worker / forbid one (default: a GPU if there is one).")
    ] = None,
    balance_classes: Annotated[bool, typer.Option("--balance-classes", help="Reweight classes by inverse frequency.")] = False,
    feature: Annotated[Optional[list[str]], typer.Option("--feature", help="Use only these columns as features, repeatable.")] = None,
    ignore: Annotated[Optional[list[str]], typer.Option("--ignore", help="Never use this column as a feature, repeatable.")] = None,
    label: Annotated[Optional[list[str]], typer.Option("--label", metavar="KEY=VALUE", help="Label for the job and model, repeatable.")] = None,
    experiment: Annotated[Optional[str], typer.Option("--experiment", help="MLflow experiment (default: microlearn).")] = None,
    timeout: Annotated[int, typer.Option("--timeout", min=0, help="Fail the job after this many seconds (0: the server's limit).")] = 0,
    importance: Annotated[bool, typer.Option("--importance", help=(
        "Also measure permutation feature importance before the job ends (adds up to max(1 s, 25% of the fit); "
        "otherwise `microlearn models evaluate` measures it later)."))] = False,
    request_id: Annotated[
        Optional[str], typer.Option("--request-id", help="Idempotency key: a retry with the same key returns the first job.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Show progress, metrics and logs until the job ends; exit 1 unless it succeeds.")
    ] = False,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Train one estimator on a dataset: starts a job and prints it (or follows it with --follow).

    Example: microlearn train churn -t churned -e lightgbm_classifier -p learning_rate=0.05 --k-fold 5 --follow
    """
    hyperparameters = {name: _param_value(value) for name, value in base.parse_pairs(param or [], "--param").items()}
    validation = _validation(k_fold, holdout, validation_dataset, stratify, group_column, time_column)
    early = _early_stopping(early_stopping, patience, min_delta)
    labels = base.parse_pairs(label or [], "--label")
    with base.connect(address, token) as client:
        try:
            job = client.train(
                dataset, target, estimator=estimator, hyperparameters=hyperparameters,
                task=task.value if task else None, metric=metric, validation=validation,
                max_iterations=max_iterations, early_stopping=early, seed=seed, use_gpu=gpu,
                balance_classes=balance_classes, feature_columns=feature or (), ignore_columns=ignore or (),
                experiment=experiment, labels=labels, timeout_seconds=timeout, request_id=request_id,
                importance=importance)
        except (TypeError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from None
        if not json_output:
            spec = job.spec
            typer.echo(f"started {job.name}  {spec.estimator} on {spec.dataset}  "
                       f"({_convert.task_name(spec.task)}, target {spec.target or '(none)'}, metric {spec.metric})")
        if follow:
            _follow(job)
    if json_output:
        base.print_json(job.to_dict())
    elif follow:
        _print_outcome(job)
    else:
        typer.echo(f"follow it: microlearn jobs events {job.name} --follow")
    if follow:
        _fail_unless_succeeded(job)


# --- jobs ---------------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(
    state: Annotated[
        Optional[list[StateChoice]], typer.Option("--state", help="Only jobs in this state, repeatable.")
    ] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Only jobs on this dataset (NAME: every version).")] = None,
    estimator: Annotated[Optional[str], typer.Option("--estimator", help="Only jobs of this estimator.")] = None,
    label: LabelOption = None,
    limit: LimitOption = 50,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """List jobs, newest first.

    Example: microlearn jobs list --state running --state pending --dataset churn
    """
    with base.connect(address, token) as client:
        jobs = _limited(client.list_jobs(states=[s.value for s in state or ()], dataset=dataset, estimator=estimator,
                                         labels=base.parse_pairs(label or [], "--label"),
                                         page_size=_page_size(limit)), limit)
    if json_output:
        base.print_json([job.to_dict() for job in jobs])
        return
    if not jobs:
        typer.echo("no jobs")
        return
    base.table(
        ["job", "state", "progress", "estimator", "dataset", "score", "created"],
        [[job.name, job.state, f"{job.progress:.0%}", job.spec.estimator if job.spec else job.kind,
          job.spec.dataset if job.spec else "", _score(job.spec.metric, job.metrics) if job.spec else "",
          base.when(job.create_time)] for job in jobs],
        right=(2,),
    )


@jobs_app.command("show")
def jobs_show(
    name: Annotated[str, typer.Argument(help="The job: jobs/ID or ID.")],
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Show one job: state, spec, device, metrics and outputs.

    Example: microlearn jobs show jobs/job-3f2a
    """
    with base.connect(address, token) as client:
        job = client.get_job(name)
    if json_output:
        base.print_json(job.to_dict())
        return
    _print_job(job)


@jobs_app.command("cancel")
def jobs_cancel(
    name: Annotated[str, typer.Argument(help="The job: jobs/ID or ID.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded in the job's error and events.")] = "",
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a job: a pending one at once, a running one within seconds. An ended job is left as it is.

    Example: microlearn jobs cancel jobs/job-3f2a --reason "wrong target"
    """
    with base.connect(address, token) as client:
        job = client.cancel_job(name, reason)
    if json_output:
        base.print_json(job.to_dict())
    elif job.state == "RUNNING":
        typer.echo(f"{job.name} is stopping; follow it: microlearn jobs events {job.name} --follow")
    else:
        typer.echo(f"{job.name} is {job.state}" + (f": {job.error}" if job.error else ""))


@jobs_app.command("events")
def jobs_events(
    name: Annotated[str, typer.Argument(help="The job: jobs/ID or ID.")],
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", "-f", help="Keep streaming new events until the job ends.")
    ] = False,
    after: Annotated[Optional[str], typer.Option("--after", help="Start after this event sequence.")] = None,
    level: Annotated[
        Optional[str], typer.Option("--level", help="Skip log lines below this level: DEBUG, INFO, WARNING, ERROR.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print each event as one line of JSON.")] = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Print a job's events: state changes, per-iteration metrics and log lines.

    Example: microlearn jobs events jobs/job-3f2a --follow
    """
    with base.connect(address, token) as client:
        try:
            events = client.job_events(name, after=after, replay_only=not follow, min_log_level=level)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--level") from None
        try:
            for event in events:
                typer.echo(json.dumps(_convert.to_dict(event.proto)) if json_output else _event_line(event))
        except KeyboardInterrupt:
            raise _interrupted(name) from None


# --- models -------------------------------------------------------------------------------------


def _print_model(model: Model) -> None:
    base.fields([
        ("model", model.name),
        ("estimator", f"{model.estimator}  ({model.task}, target {model.target or '(none)'})"),
        ("score", _score(model.metric, model.metrics)),
        ("dataset", model.dataset),
        ("job", model.job),
        ("trained", f"{model.iterations} iterations (best {model.best_iteration}), {model.training_row_count:,} rows, "
                    f"{model.fit_time_seconds:.2g} s on {model.device}"),
        ("created", base.when(model.create_time)),
        ("artifact", f"{model.format}, {base.size(model.size_bytes)}, sha256 {model.sha256[:16]}..."),
        ("classes", ", ".join(model.class_labels)),
        ("mlflow run", model.mlflow_run_id),
        ("labels", base.pairs(model.labels)),
    ])
    typer.echo("")
    base.table(
        ["metric", "validation", "± std", "train"],
        [[name, f"{value:.4g}", f"{model.metrics_std[name]:.2g}" if name in model.metrics_std else "",
          f"{model.train_metrics[name]:.4g}" if name in model.train_metrics else ""]
         for name, value in sorted(model.metrics.items())],
        right=(1, 2, 3),
    )
    typer.echo("")
    base.table(["hyperparameter", "value"], sorted(model.hyperparameters.items()))
    if model.feature_schema:
        typer.echo("")
        base.table(["feature", "type", "stored as"],
                   [[c["name"], c["type"], c["physical_type"]] for c in model.feature_schema])
    from microlearn._cli_evaluation import print_evaluation

    print_evaluation(model)


def _model_rows(models: Iterable[Model]) -> list[list[Any]]:
    return [[m.name, m.estimator, m.task, _score(m.metric, m.metrics), m.dataset, base.size(m.size_bytes),
             base.when(m.create_time)] for m in models]


@models_app.command("list")
def models_list(
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Only models of this dataset (NAME: every version).")] = None,
    estimator: Annotated[Optional[str], typer.Option("--estimator", help="Only models of this estimator.")] = None,
    task: Annotated[Optional[TaskChoice], typer.Option("--task", help="Only models for this task.")] = None,
    label: LabelOption = None,
    order_by: Annotated[
        Optional[str],
        typer.Option("--order-by", help="'create_time desc' (default), 'create_time asc', or 'metrics.NAME' [desc], "
                                        "e.g. 'metrics.roc_auc desc'."),
    ] = None,
    limit: LimitOption = 50,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """List trained models, newest first (or by a metric).

    Example: microlearn models list --dataset churn --order-by "metrics.roc_auc desc" --limit 5
    """
    with base.connect(address, token) as client:
        models = _limited(client.list_models(dataset=dataset, estimator=estimator, task=task.value if task else None,
                                             labels=base.parse_pairs(label or [], "--label"), order_by=order_by,
                                             page_size=_page_size(limit)), limit)
    if json_output:
        base.print_json([model.to_dict() for model in models])
        return
    if not models:
        typer.echo("no models")
        return
    base.table(["model", "estimator", "task", "score", "dataset", "size", "created"], _model_rows(models), right=(5,))


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="The model: models/ID or ID.")],
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Show one model: scores, hyperparameters and the features it expects.

    Example: microlearn models show models/mdl-3f2a
    """
    with base.connect(address, token) as client:
        model = client.get_model(name)
    if json_output:
        base.print_json(model.to_dict())
        return
    _print_model(model)


@models_app.command("compare")
def models_compare(
    names: Annotated[list[str], typer.Argument(help="2-50 models: models/ID or ID.")],
    metric: Annotated[Optional[list[str]], typer.Option("--metric", "-m", help="Only this metric, repeatable "
                                                                               "(default: all recorded).")] = None,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Compare models side by side: metrics (± std over folds), fit time, size; * marks the best per metric.

    Example: microlearn models compare models/mdl-3f2a models/mdl-9c1d -m roc_auc -m log_loss
    """
    from google.protobuf import json_format

    with base.connect(address, token) as client:
        table = client.compare_models(names, metric or ())
    if json_output:
        base.print_json(json_format.MessageToDict(table, preserving_proto_field_name=True))
        return

    def cell(row, name: str) -> str:
        if name not in row.metrics:
            return "-"
        text = f"{row.metrics[name]:.4g}" + (f"±{row.metrics_std[name]:.2g}" if name in row.metrics_std else "")
        return text + ("*" if table.best.get(name) == row.model else "")
    base.table(["RANK", "MODEL", "ESTIMATOR", *table.metrics, "FIT S", "SIZE"],
               [[row.rank or "", row.model, row.estimator, *(cell(row, m) for m in table.metrics),
                 f"{row.fit_time_seconds:.2f}", base.size(row.size_bytes)] for row in table.rows])


@models_app.command("download")
def models_download(
    name: Annotated[str, typer.Argument(help="The model: models/ID or ID.")],
    output: Annotated[
        Optional[str], typer.Option("--output", "-o", help="File, or directory for ID.tar (default: the current directory).")
    ] = None,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Download a model's artifact (resuming a partial download) and check its SHA-256.

    Example: microlearn models download models/mdl-3f2a -o churn-model.tar
    """
    with base.connect(address, token) as client:
        path = client.download_model(name, output, progress=_stderr_is_terminal())
    typer.echo(str(path))


@models_app.command("delete")
def models_delete(
    name: Annotated[str, typer.Argument(help="The model: models/ID or ID.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a trained model and its artifact.

    Asks for confirmation unless --yes; without a terminal, --yes is required.

    Example: microlearn models delete models/mdl-3f2a --yes
    """
    if not yes and not _stdin_is_interactive():
        raise base.fail(f"refusing to delete {name} without confirmation: stdin is not a terminal; pass --yes")
    with base.connect(address, token) as client:
        if not yes:
            model = client.get_model(name)
            typer.confirm(f"Delete {model.name} ({model.estimator}, {_score(model.metric, model.metrics)})? "
                          "This cannot be undone.", abort=True)
        deleted = client.delete_model(name)
    typer.echo(f"deleted {deleted}")
