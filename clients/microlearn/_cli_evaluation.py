"""The `microlearn models evaluate` and `microlearn models report` commands, and the importance and
evaluation part of `models show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from microlearn import _cli_base as base
from microlearn._cli_base import AddressOption, JsonOption, TokenOption
from microlearn._cli_training import models_app
from microlearn._jobs import JobError
from microlearn._models import Model

__all__ = ["print_evaluation"]

_SHOWN_FEATURES = 15


def print_evaluation(model: Model) -> None:
    """The latest evaluation and the permutation importance, after the rest of `models show`."""
    if model.evaluation:
        e = model.evaluation
        typer.echo("")
        base.fields([("evaluated", f"{e['row_count']:,} {e['rows']} rows of {e['dataset']} by {e['job']}, "
                                   f"{base.when(e['evaluate_time'])}"),
                     ("metrics", ", ".join(f"{k} {v:.4g}" for k, v in sorted(e["metrics"].items())))])
    if model.feature_importance:
        typer.echo("")
        shown = model.feature_importance[:_SHOWN_FEATURES]
        base.table([f"feature (importance: drop in {model.importance_metric})", "importance", "± std"],
                   [[f["feature"], f"{f['importance']:.4g}", f"{f['importance_std']:.2g}"] for f in shown],
                   right=(1, 2))
        if len(model.feature_importance) > len(shown):
            typer.echo(f"... and {len(model.feature_importance) - len(shown)} more (--json lists all)")


@models_app.command("evaluate")
def models_evaluate(
    name: Annotated[str, typer.Argument(help="The model: models/ID or ID.")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Held-out rows (NAME, NAME@VERSION or "
                                                                     "datasets/ID); default: the model's own "
                                                                     "validation or out-of-fold rows.")] = None,
    metric: Annotated[Optional[str], typer.Option("--metric", help="Metric for permutation importance (default: "
                                                                   "the model's).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the job and return at once.")] = False,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Evaluate a model in an evaluation job: metrics, plot data and permutation importance, stored with it.

    Example: microlearn models evaluate models/mdl-3f2a --dataset churn-test
    """
    with base.connect(address, token) as client:
        job = client.evaluate_model(name, dataset=dataset, metric=metric)
        if no_wait:
            base.print_json(job.to_dict()) if json_output else typer.echo(job.name)
            return
        try:
            job.wait()
        except JobError as exc:
            raise base.fail(f"{job.name} {exc.state.lower()}: {exc.reason}") from None
        model = client.get_model(name)
    if json_output:
        base.print_json(model.to_dict())
        return
    typer.echo(f"{job.name} succeeded")
    print_evaluation(model)


@models_app.command("report")
def models_report(
    name: Annotated[str, typer.Argument(help="The model: models/ID or ID.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="report.html (self-contained) or report.png.")],
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Write a model's evaluation report (metrics, confusion matrix, ROC/PR, calibration, residuals, importance).

    Example: microlearn models report models/mdl-3f2a --out report.html
    """
    if out.suffix.lower() not in (".html", ".htm", ".png"):
        raise base.fail("--out must end in .html or .png", 2)
    with base.connect(address, token) as client:
        path = client.model_report(name, out)
    typer.echo(f"wrote {path}")
