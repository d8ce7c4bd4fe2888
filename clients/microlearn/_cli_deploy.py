"""The `microlearn deploy ...` and `microlearn predict` commands: serve trained models behind named
deployments, move aliases (promote, rollback), and predict for the rows of a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from microlearn import _cli_base as base
from microlearn import _convert
from microlearn._cli_base import AddressOption, JsonOption, TokenOption
from microlearn.v1 import deploy_pb2

__all__ = ["deploy_app", "predict"]

deploy_app = typer.Typer(
    help="Serve trained models: create deployments, promote and roll back versions, delete them.",
    no_args_is_help=True,
)


def _state(deployment: deploy_pb2.Deployment) -> str:
    return _convert.enum_label(deployment.state, deploy_pb2.DeploymentState, "DEPLOYMENT_STATE_")


def _traffic(deployment: deploy_pb2.Deployment) -> str:
    return ", ".join(f"{t.model_version} {t.percent}% (v{t.resolved_version.rsplit('/', 1)[-1]})"
                     if t.resolved_version else f"{t.model_version} {t.percent}%" for t in deployment.traffic)


def _show(deployment: deploy_pb2.Deployment) -> None:
    base.fields([("name", deployment.name), ("state", _state(deployment)), ("message", deployment.state_message),
                 ("task", _convert.task_name(deployment.task)), ("traffic", _traffic(deployment)),
                 ("description", deployment.description), ("labels", base.pairs(dict(deployment.labels))),
                 ("inputs", ", ".join(c.name for c in deployment.input_schema.columns))])


def _split(values: list[str]) -> dict[str, int]:
    split = {}
    for ref, percent in base.parse_pairs(values, "--traffic").items():
        try:
            split[ref] = int(percent)
        except ValueError:
            raise typer.BadParameter(f"{ref}={percent}: the percentage must be an integer", param_hint="--traffic")
    return split


@deploy_app.command("create")
def deploy_create(
    name: Annotated[str, typer.Argument(help="Deployment name: lowercase letters, digits and '-'.")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Trained model to serve (models/ID or ID); "
                                                 "registered as the next version of --registered-model.")] = None,
    alias: Annotated[str, typer.Option("--alias", help="Alias pointed at the new version; the deployment "
                                                       "follows it.")] = "production",
    registered_model: Annotated[Optional[str], typer.Option("--registered-model", help="Registered model name "
                                                            "(default: the deployment name).")] = None,
    traffic: Annotated[Optional[list[str]], typer.Option("--traffic", metavar="REF=PERCENT", help=(
        "Instead of --model: a traffic target (NAME@N or NAME@ALIAS) and its share, repeatable, "
        "e.g. --traffic churn@production=90 --traffic churn@3=10."))] = None,
    description: Annotated[str, typer.Option("--description", help="Free-text description.")] = "",
    log_fraction: Annotated[Optional[float], typer.Option("--log-fraction", min=0.0, max=1.0, help=(
        "Share of predictions logged for monitoring and feedback (default 1).")) ] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for READY (0: return at once).")] = 60.0,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Serve a trained model (or a traffic split between registered versions) as deployment NAME.

    With --model, the model is registered as the next version of the registered model, the alias is pointed at it, and a deployment following that alias is created (if NAME exists and follows the alias, this is a promotion).

    With --traffic, a deployment splitting traffic between existing versions or aliases is created.

    Examples:
      microlearn deploy create churn --model models/mdl-3f2a
      microlearn deploy create churn-canary --traffic churn@production=90 --traffic churn@4=10
    """
    if bool(model) == bool(traffic):
        raise base.fail("give either --model or --traffic", 2)
    with base.connect(address, token) as client:
        if model:
            deployment = client.deploy(model, name=name, alias=alias, registered_model=registered_model,
                                       description=description, prediction_log_fraction=log_fraction,
                                       wait=wait or None)
        else:
            deployment = client.create_deployment(name, _split(traffic or []), description=description,
                                                  prediction_log_fraction=log_fraction)
            if wait:
                deployment = client.wait_deployment(name, wait)
    if json_output:
        base.print_json(_convert.to_dict(deployment))
        return
    _show(deployment)
    if deployment.state == deploy_pb2.DEPLOYMENT_STATE_FAILED:
        raise typer.Exit(1)


@deploy_app.command("list")
def deploy_list(
    registered_model: Annotated[Optional[str], typer.Option("--registered-model", help=(
        "Only deployments serving a version of this registered model."))] = None,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """List deployments with their state and traffic.

    Example: microlearn deploy list --json
    """
    with base.connect(address, token) as client:
        deployments = client.list_deployments(registered_model=registered_model or "")
    if json_output:
        base.print_json([_convert.to_dict(d) for d in deployments])
        return
    if not deployments:
        typer.echo("no deployments")
        return
    base.table(["deployment", "state", "task", "traffic"],
               [[d.name.removeprefix("deployments/"), _state(d), _convert.task_name(d.task), _traffic(d)]
                for d in deployments])


@deploy_app.command("show")
def deploy_show(
    name: Annotated[str, typer.Argument(help="The deployment: NAME or deployments/NAME.")],
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Show one deployment: state, traffic (with the versions aliases resolve to) and its inputs.

    Example: microlearn deploy show churn --json
    """
    with base.connect(address, token) as client:
        deployment = client.get_deployment(name)
    if json_output:
        base.print_json(_convert.to_dict(deployment))
        return
    _show(deployment)


@deploy_app.command("promote")
def deploy_promote(
    version: Annotated[str, typer.Argument(help="The version to promote: NAME@N (or NAME@ALIAS to copy an alias).")],
    alias: Annotated[str, typer.Option("--alias", help="The alias to move.")] = "production",
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Point an alias at a version: deployments following it switch within a second.

    No request fails during the switch; `rollback` undoes it.

    Example: microlearn deploy promote churn@4 --alias production
    """
    with base.connect(address, token) as client:
        response = client.promote(version, alias)
    if json_output:
        base.print_json(_convert.to_dict(response))
        return
    typer.echo(f"{response.alias.name} -> {response.alias.version}"
               + (f" (was {response.previous_version})" if response.previous_version else ""))


@deploy_app.command("rollback")
def deploy_rollback(
    alias: Annotated[str, typer.Argument(help="The alias: NAME@ALIAS, e.g. churn@production.")],
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Move an alias back to the version it pointed at before its last move (repeat to go further back).

    Example: microlearn deploy rollback churn@production
    """
    with base.connect(address, token) as client:
        response = client.rollback(alias)
    if json_output:
        base.print_json(_convert.to_dict(response))
        return
    typer.echo(f"{response.alias.name} -> {response.alias.version} (was {response.rolled_back_version})")


@deploy_app.command("delete")
def deploy_delete(
    name: Annotated[str, typer.Argument(help="The deployment: NAME or deployments/NAME.")],
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a deployment (its registered versions, logged predictions and feedback stay).

    Example: microlearn deploy delete churn-canary
    """
    with base.connect(address, token) as client:
        typer.echo(f"deleted {client.delete_deployment(name)}")


@deploy_app.command("batch-predict")
def deploy_batch_predict(
    name: Annotated[str, typer.Argument(help="The deployment: NAME or deployments/NAME.")],
    dataset: Annotated[str, typer.Argument(help="The stored dataset to score: NAME, NAME@VERSION or datasets/ID.")],
    output: Annotated[str, typer.Option("--output", "-o", help=(
        "Display name of the output dataset (default: '{dataset}-predictions').")) ] = "",
    passthrough: Annotated[Optional[list[str]], typer.Option("--passthrough", "-p", metavar="COLUMN", help=(
        "Input column copied to the output next to the predictions (an id, say); repeatable."))] = None,
    model_version: Annotated[Optional[str], typer.Option("--model-version", help=(
        "Score with this traffic target (e.g. churn@4) instead of the deployment's primary one."))] = None,
    probabilities: Annotated[bool, typer.Option("--probabilities/--no-probabilities", help=(
        "Add a probability_{label} column per class (classifiers).")) ] = True,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Show the job's progress until it ends.")
                      ] = True,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Score every row of a stored dataset with a deployment, as a job on the workers; the output is a
    new dataset (passthrough columns, `prediction`, `probability_{label}` per class).

    Example: microlearn deploy batch-predict churn customers-2026-11 -p customer_id -o churn-scores
    """
    from microlearn._cli_training import _fail_unless_succeeded, _follow

    with base.connect(address, token) as client:
        job = client.batch_predict(name, dataset, output=output, passthrough=passthrough or (),
                                   model_version=model_version, probabilities=probabilities)
        if not json_output:
            typer.echo(f"started {job.name}  scoring {dataset} with deployments/{name.removeprefix('deployments/')}")
        if follow and json_output:
            job.wait(raise_on_failure=False)
        elif follow:
            _follow(job)
    if json_output:
        base.print_json(job.to_dict())
    elif follow:
        base.fields([("state", f"{job.state}  {job.name}"), ("output", ", ".join(job.outputs) or "")])
    else:
        typer.echo(f"follow it: microlearn jobs events {job.name} --follow")
    if follow:
        _fail_unless_succeeded(job)


def _read_rows(path: Path) -> Any:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True)
    return pd.read_csv(path)


def predict(
    name: Annotated[str, typer.Argument(help="The deployment: NAME or deployments/NAME.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Rows to predict for: CSV, Parquet or "
                                                                            "JSON lines, one column per feature.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help=(
        "Write the input rows plus `prediction` and `probability_{label}` columns to this CSV."))] = None,
    model_version: Annotated[Optional[str], typer.Option("--model-version", help=(
        "Answer with this traffic target (e.g. churn@4) instead of the traffic split."))] = None,
    probabilities: Annotated[bool, typer.Option("--probabilities/--no-probabilities", help=(
        "Include class probabilities (classifiers).")) ] = True,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Predict for every row of FILE with a deployment; prints the predictions (or writes --output).

    Warnings (missing or extra columns, categories not seen in training) go to stderr.

    Example: microlearn predict churn new_customers.csv -o scored.csv
    """
    frame = _read_rows(file)
    with base.connect(address, token) as client:
        result = client.predict(name, frame, model_version=model_version, probabilities=probabilities)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    scored = result.to_frame()
    if output is not None:
        frame.reset_index(drop=True).join(scored).to_csv(output, index=False)
        typer.echo(f"{len(scored)} predictions by {result.model_version} written to {output}")
    elif json_output:
        base.print_json({"request_id": result.request_id, "model_version": result.model_version,
                         "latency_ms": result.latency_ms, "warnings": result.warnings,
                         "rows": scored.to_dict(orient="records")})
    else:
        base.table(list(scored.columns), scored.round(4).values.tolist(), upper=False)
        typer.echo(f"({len(scored)} rows, {result.model_version}, {result.latency_ms:.1f} ms)", err=True)
