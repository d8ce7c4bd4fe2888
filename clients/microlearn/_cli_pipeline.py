"""`microlearn run pipeline.yaml` and `microlearn pipelines list|show|events|cancel` (PipelineService).

`run` checks the YAML locally (errors name the line and field, before anything is uploaded), uploads the
local files it names, starts the pipeline and, with --wait (the default), prints each step as it starts and
finishes (on stderr, so `--json` output on stdout stays parseable); it exits 1 when the pipeline does not
succeed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from microlearn import _cli_base as base
from microlearn._cli_base import AddressOption, JsonOption, TokenOption

__all__ = ["pipelines_app", "run"]

pipelines_app = typer.Typer(help="Follow, list, inspect and cancel YAML pipelines.", no_args_is_help=True)


def _step_kind(step: Any) -> str:
    from microlearn.v1 import pipeline_pb2

    return pipeline_pb2.PipelineStepKind.Name(step.kind).removeprefix("PIPELINE_STEP_KIND_").lower()


def _step_state(step: Any) -> str:
    from microlearn.v1 import pipeline_pb2

    return pipeline_pb2.PipelineStepState.Name(step.state).removeprefix("PIPELINE_STEP_STATE_")


def describe(event: Any) -> str:
    """One line for a PipelineEvent."""
    from microlearn.v1 import pipeline_pb2

    kind = event.WhichOneof("payload")
    payload = getattr(event, kind)
    if kind == "state_change":
        state = pipeline_pb2.PipelineState.Name(payload.state).removeprefix("PIPELINE_STATE_")
        return f"pipeline {state}  {payload.message}".rstrip()
    if kind == "log":
        return f"  {payload.message}"
    verb = {"step_started": "started", "step_finished": "done", "step_failed": _step_state(payload).lower()}[kind]
    detail = (payload.message or payload.error) if kind != "step_started" else f"(line {payload.line})"
    return f"[{payload.index}] {_step_kind(payload):9} {verb:9} {detail}".rstrip()


def _as_json(pipeline: Any) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(pipeline, preserving_proto_field_name=True)


def _show(pipeline: Any) -> None:
    from microlearn._pipelines import state_name

    typer.echo(f"{pipeline.name}  {pipeline.display_name}  {state_name(pipeline)}"
               + (f"  error: {pipeline.error}" if pipeline.error else ""))
    base.table(["#", "STEP", "STATE", "OUTPUTS", "MESSAGE"],
               [[s.index, _step_kind(s), _step_state(s), base.pairs(dict(s.outputs)), s.message or s.error]
                for s in pipeline.steps], right=(0,))


def run(
    file: Annotated[Path, typer.Argument(help="The pipeline's YAML file.", exists=True, dir_okay=False,
                                         readable=True)],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the pipeline until it ends and exit 1 "
                                                                "unless it succeeds.")] = True,
    validate_only: Annotated[bool, typer.Option("--validate-only", help="Only check the pipeline (local files "
                                                                        "are uploaded: the server checks them "
                                                                        "too); run nothing.")] = False,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Run a YAML pipeline (dataset → prepare → select → optimize → evaluate → deploy) on the workers.

    Example: microlearn run examples/pipeline.yaml
    """
    from microlearn._pipelines import state_name

    with base.connect(address, token) as ml:
        pipeline = ml.run_pipeline(file, validate_only=validate_only, progress=not json_output and
                                   base.stderr_is_terminal())
        if validate_only:
            if json_output:
                base.print_json(_as_json(pipeline))
            else:
                typer.echo(f"{file}: valid ({' → '.join(_step_kind(s) for s in pipeline.steps)})")
            return
        _say(f"{pipeline.name}: {' → '.join(_step_kind(s) for s in pipeline.steps)}")
        if not wait:
            if json_output:
                base.print_json(_as_json(pipeline))
            else:
                typer.echo(pipeline.name)
            return
        for event in ml.pipeline_events(pipeline.name):
            _say(describe(event))
        done = ml.get_pipeline(pipeline.name)
    if json_output:
        base.print_json(_as_json(done))
    else:
        _show(done)
    if state_name(done) != "SUCCEEDED":
        raise base.fail(f"{done.name} ended {state_name(done)}: {done.error}")


def _say(message: str) -> None:
    """Progress goes to stderr, with --json too: stdout carries only the result."""
    print(message, file=sys.stderr, flush=True)


@pipelines_app.command("list")
def pipelines_list(
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """List pipelines, newest first.

    Example: microlearn pipelines list
    """
    from microlearn._pipelines import state_name
    from microlearn.v1.pipeline_pb2 import PIPELINE_STEP_STATE_SUCCEEDED as _SUCCEEDED

    with base.connect(address, token) as ml:
        pipelines = list(ml.list_pipelines())
    if json_output:
        base.print_json([_as_json(p) for p in pipelines])
        return
    base.table(["PIPELINE", "NAME", "STATE", "STEPS DONE", "CREATED"],
               [[p.name, p.display_name, state_name(p), f"{sum(s.state == _SUCCEEDED for s in p.steps)}/{len(p.steps)}",
                 base.when(p.create_time.ToDatetime())] for p in pipelines])


@pipelines_app.command("show")
def pipelines_show(
    name: Annotated[str, typer.Argument(help="The pipeline: pipelines/ID or the id.")],
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Show a pipeline: each step's state, outputs and summary.

    Example: microlearn pipelines show pipelines/pipe-0123456789abcdef
    """
    with base.connect(address, token) as ml:
        pipeline = ml.get_pipeline(name)
    if json_output:
        base.print_json(_as_json(pipeline))
    else:
        _show(pipeline)


@pipelines_app.command("events")
def pipelines_events(
    name: Annotated[str, typer.Argument(help="The pipeline: pipelines/ID or the id.")],
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Wait for new events until the pipeline "
                                                                      "ends.")] = True,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Print a pipeline's events from the start, then (with --follow) live until it ends.

    Example: microlearn pipelines events pipelines/pipe-0123456789abcdef
    """
    with base.connect(address, token) as ml:
        for event in ml.pipeline_events(name, replay_only=not follow):
            typer.echo(f"{event.progress:5.0%}  {describe(event)}")


@pipelines_app.command("cancel")
def pipelines_cancel(
    name: Annotated[str, typer.Argument(help="The pipeline: pipelines/ID or the id.")],
    reason: Annotated[str, typer.Option("--reason", help="Recorded as the pipeline's error.")] = "",
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a pipeline: its running step (and study) stops and it ends CANCELLED.

    Example: microlearn pipelines cancel pipelines/pipe-0123456789abcdef
    """
    from microlearn._pipelines import state_name

    with base.connect(address, token) as ml:
        pipeline = ml.cancel_pipeline(name, reason)
    typer.echo(f"{pipeline.name}  {state_name(pipeline)}")
