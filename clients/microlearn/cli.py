"""The client commands of `microlearn`: Typer apps over the SDK, mounted by the main CLI.

`datasets_app` and `estimators_app` live here; `train`, `jobs_app` and `models_app` in
`_cli_training`. Human-readable tables by default, `--json` for scripts (resources spelled as
the API returns them). Failed calls print `error: CODE: details` on stderr and exit 1; usage
errors exit 2.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from microlearn import _cli_base as base
from microlearn import _convert
from microlearn._cli_base import AddressOption, JsonOption, TaskChoice, TokenOption
from microlearn._cli_deploy import deploy_app, predict
from microlearn._cli_training import jobs_app, models_app, train
from microlearn import _cli_evaluation  # noqa: F401 - adds `models evaluate` and `models report`
from microlearn.v1 import dataset_pb2

__all__ = ["datasets_app", "deploy_app", "estimators_app", "jobs_app", "models_app", "predict", "train"]

datasets_app = typer.Typer(
    help="Upload, inspect, sample, prepare and delete datasets.",
    no_args_is_help=True,
)


class DataFormatChoice(str, enum.Enum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


# --- plumbing -------------------------------------------------------------------------------

# Looked up here when called, so tests can stand in for a terminal.
_stdin_is_interactive = base.stdin_is_interactive


def _ref(ds: dataset_pb2.Dataset) -> str:
    return f"{ds.display_name}@{ds.version}"


def _time(ds: dataset_pb2.Dataset) -> str:
    return base.when(ds.create_time.ToDatetime(tzinfo=dt.timezone.utc) if ds.HasField("create_time") else None)


def _shape(ds: dataset_pb2.Dataset) -> str:
    return f"{ds.row_count:,} rows × {ds.column_count} columns"


def _summary(ds: dataset_pb2.Dataset) -> str:
    return f"{ds.name}  {_ref(ds)}  {_shape(ds)}"


def _parse_hints(hints: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for hint in hints:
        column, sep, type_name = hint.rpartition("=")
        if not sep or not column:
            raise typer.BadParameter(f"{hint!r} is not COLUMN=TYPE", param_hint="--hint")
        if type_name.lower() not in _convert.COLUMN_TYPES:
            raise typer.BadParameter(
                f"unknown type {type_name!r} in {hint!r}; "
                f"expected one of {', '.join(_convert.COLUMN_TYPES)}",
                param_hint="--hint",
            )
        parsed[column] = type_name.lower()
    return parsed


# --- commands -------------------------------------------------------------------------------


@datasets_app.command("upload")
def upload(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV, Parquet or JSON-lines file (.gz/.zip ok)."
        ),
    ],
    name: Annotated[
        Optional[str], typer.Option("--name", help="Dataset name (default: the file name without extensions).")
    ] = None,
    format: Annotated[
        Optional[DataFormatChoice],
        typer.Option("--format", help="File format (default: detected from the content)."),
    ] = None,
    hint: Annotated[
        Optional[list[str]],
        typer.Option(
            "--hint",
            metavar="COL=TYPE",
            help="Column type hint, repeatable. TYPE: numeric, categorical, boolean, datetime, text, id.",
        ),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Free-text description.")] = "",
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Upload a table as a new version of a dataset.

    Uploading the same bytes as the latest version stores nothing and returns that version.

    Example: microlearn datasets upload churn.csv --name churn --hint zip=categorical
    """
    hints = _parse_hints(hint or [])
    with base.connect(address, token) as client:
        result = client.upload_dataset(
            file,
            name=name,
            format=format.value if format else None,
            column_hints=hints,
            description=description,
            progress=base.stderr_is_terminal(),
        )
    if json_output:
        base.print_json({"dataset": _convert.to_dict(result.dataset), "deduplicated": result.deduplicated})
        return
    line = _summary(result.dataset)
    if result.deduplicated:
        line += f"  (identical to version {result.dataset.version}, nothing new stored)"
    typer.echo(line)


@datasets_app.command("list")
def list_(
    prefix: Annotated[str, typer.Option("--prefix", help="Only names starting with this.")] = "",
    latest: Annotated[bool, typer.Option("--latest", help="Only the latest version of each name.")] = False,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """List dataset versions, newest first.

    Example: microlearn datasets list --prefix churn --latest
    """
    with base.connect(address, token) as client:
        datasets = list(client.list_datasets(prefix=prefix, latest_only=latest, page_size=200))
    if json_output:
        base.print_json([_convert.to_dict(ds) for ds in datasets])
        return
    if not datasets:
        typer.echo("no datasets")
        return
    base.table(
        ["name@version", "id", "rows", "columns", "size", "created"],
        [
            [_ref(ds), ds.id, f"{ds.row_count:,}", ds.column_count, base.size(ds.size_bytes), _time(ds)]
            for ds in datasets
        ],
        right=(2, 3, 4),
    )


def _column_summary(column: dataset_pb2.ColumnProfile) -> str:
    label = _convert.column_type_label(column.type)
    if column.HasField("numeric") and label == "numeric":
        return f"mean {column.numeric.mean:.6g}"
    if column.min_datetime or column.max_datetime:
        return f"{column.min_datetime} .. {column.max_datetime}"
    if column.top_values:
        top = column.top_values[0]
        return f"top {top.value} ({top.count:,})"
    return ""


def _print_dataset(ds: dataset_pb2.Dataset) -> None:
    fields: list[tuple[str, str]] = [
        ("dataset", f"{ds.name}  {_ref(ds)}"),
        ("shape", _shape(ds)),
        ("stored", f"{base.size(ds.size_bytes)} parquet" + (f", sha256 {ds.sha256[:16]}..." if ds.sha256 else "")),
        ("source", f"{_convert.format_label(ds.source_format)}, {base.size(ds.source_size_bytes)}"),
        ("created", _time(ds)),
    ]
    if ds.profile.duplicate_row_count:
        fields.append(("duplicates", f"{ds.profile.duplicate_row_count:,} rows"))
    if ds.parent:
        fields.append(("parent", f"{ds.parent} (prepared with a recipe)"))
    if ds.description:
        fields.append(("description", ds.description))
    if ds.labels:
        fields.append(("labels", ", ".join(f"{k}={v}" for k, v in sorted(ds.labels.items()))))
    base.fields(fields)

    if ds.profile.columns:
        typer.echo("")
        base.table(
            ["column", "type", "missing", "distinct", "mean / top"],
            [
                [
                    c.name,
                    _convert.column_type_label(c.type) + (" (hint)" if c.hinted else ""),
                    f"{c.missing_count:,}",
                    f"{c.distinct_count:,}" + ("" if c.distinct_count_exact else "+"),
                    _column_summary(c),
                ]
                for c in ds.profile.columns
            ],
            right=(2, 3),
        )
    suggestions = ds.profile.target_suggestions
    typer.echo("")
    if not suggestions:
        typer.echo("no target suggestions")
        return
    typer.echo("target suggestions:")
    for s in suggestions:
        typer.echo(f"  {s.column}  {_convert.task_label(s.task)}  {s.score:.2f}  {s.reason}".rstrip())


@datasets_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="datasets/ID, ID, NAME (latest) or NAME@VERSION.")],
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Show one dataset version: its details, a per-column profile and target suggestions.

    Example: microlearn datasets show churn@2
    """
    with base.connect(address, token) as client:
        ds = client.get_dataset(ref)
    if json_output:
        base.print_json(_convert.to_dict(ds))
        return
    _print_dataset(ds)


@datasets_app.command("sample")
def sample(
    ref: Annotated[str, typer.Argument(help="datasets/ID, ID, NAME (latest) or NAME@VERSION.")],
    rows: Annotated[int, typer.Option("--rows", "-n", min=1, max=10_000, help="How many rows.")] = 10,
    random: Annotated[bool, typer.Option("--random", help="Random rows instead of the first ones.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for --random (same seed, same rows).")] = 0,
    columns: Annotated[
        Optional[str], typer.Option("--columns", metavar="A,B,...", help="Only these columns.")
    ] = None,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Print the first (or random) rows of a dataset.

    Example: microlearn datasets sample churn -n 5 --random --columns age,plan
    """
    wanted = [c.strip() for c in (columns or "").split(",") if c.strip()]
    with base.connect(address, token) as client:
        response = client._sample_rows(ref, rows, random, seed, wanted)
    if json_output:
        base.print_json(_convert.to_dict(response))
        return
    records = _convert.sample_rows(response)
    # Data column names are shown as they are: case matters in them.
    base.table(list(response.columns), [[r.get(c) for c in response.columns] for r in records], upper=False)


@datasets_app.command("prepare")
def prepare(
    ref: Annotated[str, typer.Argument(help="The source: datasets/ID, ID, NAME or NAME@VERSION.")],
    recipe: Annotated[
        Path,
        typer.Option(
            "--recipe", exists=True, dir_okay=False, readable=True, help="Recipe file, YAML or JSON."
        ),
    ],
    output: Annotated[
        Optional[str], typer.Option("--output", help="Name for the result (default: the source's name, as its next version).")
    ] = None,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Check the recipe against the source; store nothing.")
    ] = False,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Apply a cleaning recipe and store the result as a new dataset version.

    A recipe ending in train_test_split stores OUTPUT-train and OUTPUT-test.

    Example: microlearn datasets prepare churn@1 --recipe clean.yaml --output churn-clean
    """
    with base.connect(address, token) as client:
        datasets = client.prepare_dataset(ref, recipe, output_name=output, validate_only=validate_only)
    if json_output:
        base.print_json([_convert.to_dict(ds) for ds in datasets])
        return
    if validate_only:
        typer.echo(f"recipe {recipe} is valid for {ref}")
        return
    for ds in datasets:
        typer.echo(_summary(ds))


@datasets_app.command("delete")
def delete(
    ref: Annotated[str, typer.Argument(help="One version: datasets/ID, ID or NAME@VERSION.")],
    force: Annotated[
        bool, typer.Option("--force", help="Delete even if other resources still reference it.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Delete one dataset version and its stored data.

    Asks for confirmation unless --yes; without a terminal, --yes is required.

    Example: microlearn datasets delete churn@1 --yes
    """
    if not yes and not _stdin_is_interactive():
        raise base.fail(f"refusing to delete {ref} without confirmation: stdin is not a terminal; pass --yes")
    with base.connect(address, token) as client:
        if not yes:
            ds = client.get_dataset(ref)
            typer.confirm(
                f"Delete {_ref(ds)} ({ds.name}, {_shape(ds)})"
                + (" even if referenced" if force else "")
                + "? This cannot be undone.",
                abort=True,
            )
        deleted = client.delete_dataset(ref, force=force)
    typer.echo(f"deleted {deleted}")


# --- estimators ----------------------------------------------------------------------------

estimators_app = typer.Typer(
    help="The estimator registry: what can be trained, for which tasks, with which search space.",
    no_args_is_help=True,
)


@estimators_app.command("list")
def estimators_list(
    task: Annotated[Optional[TaskChoice], typer.Option("--task", help="Only estimators for this task.")] = None,
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """List the estimators the platform can train, cheapest first.

    Example: microlearn estimators list --task binary
    """
    with base.connect(address, token) as client:
        found = client.list_estimators(task.value if task else None)
    if json_output:
        base.print_json([_convert.to_dict(e) for e in found])
        return
    base.table(
        ["id", "family", "tasks", "cost", "progress", "gpu", "library"],
        [
            [e.estimator_id, _enum_suffix(e.DESCRIPTOR.fields_by_name["family"], e.family),
             ",".join(_enum_suffix(e.DESCRIPTOR.fields_by_name["supported_tasks"], t) for t in e.supported_tasks),
             f"{e.relative_cost:g}", "yes" if e.supports_iteration_progress else "", "yes" if e.supports_gpu else "",
             e.library]
            for e in found
        ],
        right=(3,),
    )


@estimators_app.command("show")
def estimators_show(
    name: Annotated[str, typer.Argument(help="Estimator id, e.g. random_forest_classifier.")],
    json_output: JsonOption = False,
    address: AddressOption = None,
    token: TokenOption = None,
) -> None:
    """Show one estimator: description, defaults and search space.

    Example: microlearn estimators show hist_gradient_boosting_classifier --json
    """
    with base.connect(address, token) as client:
        found = client.get_estimator(name)
    data = _convert.to_dict(found)
    if json_output:
        base.print_json(data)
        return
    typer.echo(f"{found.estimator_id}  ({found.display_name}, {found.library})")
    typer.echo(found.description)
    typer.echo("")
    rows = []
    for spec in data.get("search_space", {}).get("parameters", []):
        kind = next(k for k in spec if k.endswith("_distribution"))
        rows.append([spec["name"], kind.removesuffix("_distribution"), json.dumps(spec[kind]),
                     json.dumps(spec.get("default_value"))])
    base.table(["parameter", "kind", "range", "default"], rows)


def _enum_suffix(field, number: int) -> str:
    name = field.enum_type.values_by_number[number].name
    for prefix in ("ESTIMATOR_FAMILY_", "TASK_TYPE_"):
        name = name.removeprefix(prefix)
    return name.lower().removesuffix("_classification")
