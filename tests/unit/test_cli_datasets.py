"""Unit tests of `microlearn datasets ...` against a small fake DatasetService on a real socket."""

from __future__ import annotations

import json
from concurrent import futures

import grpc
import pytest
import typer
from google.protobuf import json_format
from typer.testing import CliRunner

from microlearn import cli
from microlearn.v1 import common_pb2, dataset_pb2, dataset_pb2_grpc

COMMANDS = ["upload", "list", "show", "sample", "prepare", "delete"]


def _dataset(i: int, display_name: str = "churn", **fields) -> dataset_pb2.Dataset:
    ds = dataset_pb2.Dataset(
        name=f"datasets/ds{i}",
        id=f"ds{i}",
        display_name=display_name,
        version=i,
        row_count=1000 * i,
        column_count=3,
        size_bytes=2048 * i,
        **fields,
    )
    ds.create_time.FromSeconds(1_700_000_000)
    return ds


def _profiled() -> dataset_pb2.Dataset:
    ds = _dataset(2, description="monthly churn")
    profile = ds.profile
    profile.row_count, profile.column_count = 2000, 3
    profile.columns.add(
        name="age", type=common_pb2.COLUMN_TYPE_NUMERIC, missing_count=4, distinct_count=60,
        distinct_count_exact=True, numeric=dataset_pb2.NumericSummary(mean=41.5),
    )
    profile.columns.add(
        name="plan", type=common_pb2.COLUMN_TYPE_CATEGORICAL, distinct_count=3, distinct_count_exact=True,
        top_values=[dataset_pb2.ValueCount(value="basic", count=1200)], hinted=True,
    )
    profile.columns.add(name="churned", type=common_pb2.COLUMN_TYPE_BOOLEAN, distinct_count=2)
    profile.target_suggestions.add(
        column="churned", task=common_pb2.TASK_TYPE_BINARY_CLASSIFICATION, reason="two values", score=0.9
    )
    return ds


class FakeDatasets(dataset_pb2_grpc.DatasetServiceServicer):
    """Answers from canned data, records requests; `abort` fails every call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.metadata: list[dict[str, str]] = []
        self.abort: tuple[grpc.StatusCode, str] | None = None
        self.deduplicated = False
        self.upload_metadata: dataset_pb2.UploadDatasetMetadata | None = None

    def _enter(self, method, request, context):
        self.calls.append((method, request))
        self.metadata.append(dict(context.invocation_metadata()))
        if self.abort:
            context.abort(*self.abort)

    def UploadDataset(self, request_iterator, context):
        self._enter("UploadDataset", None, context)
        requests = list(request_iterator)
        self.upload_metadata = requests[0].metadata
        ds = _dataset(2, self.upload_metadata.display_name)
        return dataset_pb2.UploadDatasetResponse(dataset=ds, deduplicated=self.deduplicated)

    def GetDataset(self, request, context):
        self._enter("GetDataset", request, context)
        return dataset_pb2.GetDatasetResponse(dataset=_profiled())

    def ListDatasets(self, request, context):
        self._enter("ListDatasets", request, context)
        # Two per page whatever was asked, so the CLI must follow tokens.
        start = int(request.page_token or 0)
        stored = [_dataset(i) for i in range(1, 6)]
        token = str(start + 2) if start + 2 < len(stored) else ""
        return dataset_pb2.ListDatasetsResponse(datasets=stored[start : start + 2], next_page_token=token)

    def SampleDatasetRows(self, request, context):
        self._enter("SampleDatasetRows", request, context)
        response = dataset_pb2.SampleDatasetRowsResponse(columns=["age", "plan"])
        response.rows.add().update({"age": 31.0, "plan": "basic"})
        response.rows.add().update({"age": None, "plan": "pro"})
        return response

    def DeleteDataset(self, request, context):
        self._enter("DeleteDataset", request, context)
        return dataset_pb2.DeleteDatasetResponse(name="datasets/ds2")

    def PrepareDataset(self, request, context):
        self._enter("PrepareDataset", request, context)
        if request.validate_only:
            return dataset_pb2.PrepareDatasetResponse()
        return dataset_pb2.PrepareDatasetResponse(datasets=[_dataset(3, "churn-clean")])


@pytest.fixture(scope="module")
def server():
    fake = FakeDatasets()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    dataset_pb2_grpc.add_DatasetServiceServicer_to_server(fake, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield fake, f"127.0.0.1:{port}"
    srv.stop(None)


@pytest.fixture
def fake(server):
    server[0].reset()
    return server[0]


@pytest.fixture
def invoke(server, fake, monkeypatch):
    """Runs `datasets ARGS...` on an app that mounts `datasets_app` like the main CLI does."""
    monkeypatch.delenv("MICROLEARN_TOKEN", raising=False)
    monkeypatch.delenv("MICROLEARN_ADDRESS", raising=False)
    app = typer.Typer()
    app.add_typer(cli.datasets_app, name="datasets")
    runner = CliRunner()

    def run(*args: str, address: str | None = server[1], **kwargs):
        extra = ["--address", address] if address else []
        return runner.invoke(app, ["datasets", *args, *extra], **kwargs)

    return run


def test_every_command_has_help_with_an_example(invoke):
    for command in COMMANDS:
        result = invoke(command, "--help", address=None)
        assert result.exit_code == 0, result.output
        assert "Example" in result.output and "--address" in result.output


def test_upload_prints_summary_and_sends_hints(invoke, fake, tmp_path):
    path = tmp_path / "churn.csv"
    path.write_text("age,plan\n31,basic\n")
    result = invoke("upload", str(path), "--hint", "plan=categorical", "--hint", "a=b=ID",
                    "--format", "csv", "--description", "d")
    assert result.exit_code == 0, result.output
    assert "datasets/ds2" in result.stdout and "churn@2" in result.stdout
    assert "2,000 rows × 3 columns" in result.stdout and "identical" not in result.stdout
    meta = fake.upload_metadata
    assert meta.display_name == "churn" and meta.format == dataset_pb2.DATA_FORMAT_CSV
    assert [(h.column, h.type) for h in meta.column_hints] == [
        ("plan", common_pb2.COLUMN_TYPE_CATEGORICAL),
        ("a=b", common_pb2.COLUMN_TYPE_ID),
    ]


def test_upload_deduplicated_and_json(invoke, fake, tmp_path):
    fake.deduplicated = True
    path = tmp_path / "churn.csv"
    path.write_text("age\n1\n")
    result = invoke("upload", str(path), "--name", "other")
    assert "(identical to version 2, nothing new stored)" in result.stdout
    result = invoke("upload", str(path), "--json")
    data = json.loads(result.stdout)
    assert data["deduplicated"] is True and data["dataset"]["name"] == "datasets/ds2"
    assert data["dataset"]["display_name"] == "churn"  # proto field names, not camelCase


def test_upload_usage_errors_exit_2(invoke, fake, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    assert invoke("upload", str(path), "--hint", "a=float").exit_code == 2
    assert invoke("upload", str(path), "--hint", "nonsense").exit_code == 2
    assert invoke("upload", str(path), "--format", "xlsx").exit_code == 2
    assert invoke("upload", str(tmp_path / "missing.csv")).exit_code == 2
    assert fake.calls == []


def test_list_table_follows_pages(invoke, fake):
    result = invoke("list", "--prefix", "ch", "--latest")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME@VERSION", "ID", "ROWS", "COLUMNS", "SIZE", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == [f"churn@{i}" for i in range(1, 6)]
    assert "2023-11-14 22:13 UTC" in lines[1] and "2.0 KiB" in lines[1]
    requests = [r for _, r in fake.calls]
    assert [r.page_token for r in requests] == ["", "2", "4"]
    assert requests[0].display_name_prefix == "ch" and requests[0].latest_only


def test_list_json_is_an_array(invoke):
    data = json.loads(invoke("list", "--json").stdout)
    assert isinstance(data, list) and [d["id"] for d in data] == ["ds1", "ds2", "ds3", "ds4", "ds5"]


def test_show_prints_profile_and_suggestions(invoke, fake):
    result = invoke("show", "churn@2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "datasets/ds2  churn@2" in out and "monthly churn" in out
    assert "mean 41.5" in out and "top basic (1,200)" in out and "categorical (hint)" in out
    assert "target suggestions:" in out and "churned  binary_classification  0.90  two values" in out
    assert fake.calls[-1][1].name == "churn@2"


def test_show_json_is_the_api_resource(invoke):
    data = json.loads(invoke("show", "churn", "--json").stdout)
    assert data == json_format.MessageToDict(_profiled(), preserving_proto_field_name=True)


def test_sample_table_and_json(invoke, fake):
    result = invoke("sample", "churn", "-n", "2", "--random", "--seed", "3", "--columns", "age, plan")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["age", "plan"]
    assert lines[1].split() == ["31", "basic"] and lines[2].split() == ["null", "pro"]
    request = fake.calls[-1][1]
    assert request.row_count == 2 and request.mode == dataset_pb2.SAMPLE_MODE_RANDOM
    assert request.seed == 3 and list(request.columns) == ["age", "plan"]
    data = json.loads(invoke("sample", "churn", "--json").stdout)
    assert data["columns"] == ["age", "plan"] and data["rows"][1] == {"age": None, "plan": "pro"}


def test_prepare_sends_recipe_file(invoke, fake, tmp_path):
    recipe = tmp_path / "clean.yaml"
    recipe.write_text("steps:\n  - drop_duplicates: {}\n")
    result = invoke("prepare", "churn@1", "--recipe", str(recipe), "--output", "churn-clean")
    assert result.exit_code == 0, result.output
    assert "churn-clean@3" in result.stdout
    request = fake.calls[-1][1]
    assert request.recipe == recipe.read_text() and request.output_display_name == "churn-clean"

    result = invoke("prepare", "churn@1", "--recipe", str(recipe), "--validate-only")
    assert "is valid" in result.stdout and fake.calls[-1][1].validate_only
    assert json.loads(invoke("prepare", "churn", "--recipe", str(recipe), "--json").stdout)[0]["id"] == "ds3"


def test_delete_refuses_without_yes_on_non_interactive_stdin(invoke, fake):
    result = invoke("delete", "churn@1")
    assert result.exit_code == 1
    assert "--yes" in result.stderr and "stdin is not a terminal" in result.stderr
    assert fake.calls == []


def test_delete_with_yes(invoke, fake):
    result = invoke("delete", "churn@1", "--yes", "--force")
    assert result.exit_code == 0, result.output
    assert "deleted datasets/ds2" in result.stdout
    request = fake.calls[-1][1]
    assert request.name == "churn@1" and request.force


@pytest.mark.parametrize(("answer", "deleted"), [("y\n", True), ("n\n", False)])
def test_delete_asks_on_a_terminal(invoke, fake, monkeypatch, answer, deleted):
    monkeypatch.setattr(cli, "_stdin_is_interactive", lambda: True)
    result = invoke("delete", "churn@2", input=answer)
    assert "Delete churn@2 (datasets/ds2" in result.output
    assert (result.exit_code == 0) is deleted
    assert ("DeleteDataset" in [m for m, _ in fake.calls]) is deleted


def test_server_error_prints_code_and_details(invoke, fake):
    fake.abort = (grpc.StatusCode.NOT_FOUND, "dataset 'nope' not found")
    result = invoke("show", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: NOT_FOUND: dataset 'nope' not found"
    assert result.stdout == ""


def test_unauthenticated_hints_at_token(invoke, fake):
    fake.abort = (grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
    result = invoke("list")
    assert result.exit_code == 1
    assert "error: UNAUTHENTICATED: missing bearer token" in result.stderr
    assert "MICROLEARN_TOKEN" in result.stderr


def test_unreachable_server_message(invoke):
    result = invoke("list", address="127.0.0.1:1")
    assert result.exit_code == 1
    assert "cannot reach MicroLearn at 127.0.0.1:1: is `microlearn up` running?" in result.stderr


def test_address_and_token_from_environment(invoke, server, fake):
    result = invoke("list", address=None, env={"MICROLEARN_ADDRESS": server[1], "MICROLEARN_TOKEN": "tok"})
    assert result.exit_code == 0, result.output
    assert fake.metadata[0]["authorization"] == "Bearer tok"
    result = invoke("list", "--token", "flag")
    assert fake.metadata[-1]["authorization"] == "Bearer flag"
