"""Unit tests of the SDK's client side against a small fake DatasetService on a real socket."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import microlearn
from microlearn import _convert
from microlearn.v1 import common_pb2, dataset_pb2, dataset_pb2_grpc, trainer_pb2, trainer_pb2_grpc


def _dataset(i: int, display_name: str = "iris", **fields) -> dataset_pb2.Dataset:
    return dataset_pb2.Dataset(
        name=f"datasets/ds{i}", id=f"ds{i}", display_name=display_name, version=i, **fields
    )


class FakeDatasets(dataset_pb2_grpc.DatasetServiceServicer):
    """Records what arrives and answers from canned data; `abort` fails every call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.metadata: list[dict[str, str]] = []
        self.abort: tuple[grpc.StatusCode, str] | None = None
        self.deduplicated = False
        self.stored = [_dataset(i) for i in range(1, 6)]
        self.get_response = _dataset(1)
        self.upload_requests: list[dataset_pb2.UploadDatasetRequest] = []

    def _enter(self, method: str, request: object, context: grpc.ServicerContext) -> None:
        self.calls.append((method, request))
        self.metadata.append(dict(context.invocation_metadata()))
        if self.abort:
            context.abort(*self.abort)

    def UploadDataset(self, request_iterator, context):
        self._enter("UploadDataset", None, context)
        self.upload_requests = list(request_iterator)
        meta = self.upload_requests[0].metadata
        data = b"".join(r.chunk for r in self.upload_requests[1:])
        if len(data) != meta.expected_size_bytes or hashlib.sha256(data).hexdigest() != meta.expected_sha256:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "size or sha256 mismatch")
        ds = _dataset(1, meta.display_name, row_count=3, column_count=2)
        return dataset_pb2.UploadDatasetResponse(dataset=ds, deduplicated=self.deduplicated)

    def GetDataset(self, request, context):
        self._enter("GetDataset", request, context)
        if request.name == "slow":
            time.sleep(1)
        return dataset_pb2.GetDatasetResponse(dataset=self.get_response)

    def _page(self, request, datasets):
        start = int(request.page_token or 0)
        end = start + request.page_size
        return datasets[start:end], (str(end) if end < len(datasets) else "")

    def ListDatasets(self, request, context):
        self._enter("ListDatasets", request, context)
        page, token = self._page(request, self.stored)
        return dataset_pb2.ListDatasetsResponse(datasets=page, next_page_token=token, total_size=len(self.stored))

    def ListDatasetVersions(self, request, context):
        self._enter("ListDatasetVersions", request, context)
        page, token = self._page(request, self.stored)
        return dataset_pb2.ListDatasetVersionsResponse(datasets=page, next_page_token=token)

    def SampleDatasetRows(self, request, context):
        self._enter("SampleDatasetRows", request, context)
        response = dataset_pb2.SampleDatasetRowsResponse(columns=["b", "a"])
        for i in range(request.row_count):
            response.rows.add().update({"a": f"x{i}", "b": None if i == 1 else float(i)})
        return response

    def DeleteDataset(self, request, context):
        self._enter("DeleteDataset", request, context)
        return dataset_pb2.DeleteDatasetResponse(name="datasets/ds1")

    def PrepareDataset(self, request, context):
        self._enter("PrepareDataset", request, context)
        if request.validate_only:
            return dataset_pb2.PrepareDatasetResponse()
        return dataset_pb2.PrepareDatasetResponse(datasets=[_dataset(7, "out-train"), _dataset(8, "out-test")])


def serve(fake, add_to_server):
    """Runs `fake` on a real server on a free port; yields (fake, address)."""
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_to_server(fake, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield fake, f"127.0.0.1:{port}"
    srv.stop(None)


@pytest.fixture(scope="module")
def server():
    """One real server per module; tests share its fake and reset it (see `fake`)."""
    yield from serve(FakeDatasets(), dataset_pb2_grpc.add_DatasetServiceServicer_to_server)


@pytest.fixture
def fake(server) -> FakeDatasets:
    server[0].reset()
    return server[0]


@pytest.fixture
def client(server, fake, monkeypatch):
    monkeypatch.delenv("MICROLEARN_TOKEN", raising=False)
    with microlearn.Client(server[1], timeout=10) as c:
        yield c


# --- package surface ---------------------------------------------------------------------------


def test_import_is_light():
    code = (
        "import sys, microlearn, microlearn.cli; "
        "heavy = [m for m in ('pandas', 'pyarrow', 'tqdm', 'numpy') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_is_exact_and_resolves():
    values = {"Client", "AsyncClient", "UploadResult", "Job", "AsyncJob", "JobEvent", "Model", "Prediction"}
    job_errors = {"JobError", "JobFailed", "JobCancelled"}
    expected = values | job_errors | {
        "MicroLearnError", "InvalidArgument", "NotFound",
        "AlreadyExists", "FailedPrecondition", "ResourceExhausted", "Unauthenticated",
        "PermissionDenied", "Unavailable", "DeadlineExceeded", "Cancelled", "Unimplemented", "Internal",
    }
    assert set(microlearn.__all__) == expected
    assert len(microlearn.__all__) == len(expected)
    for name in microlearn.__all__:
        obj = getattr(microlearn, name)
        assert obj.__module__ == "microlearn"
        if name in job_errors:
            assert issubclass(obj, microlearn.JobError)
        elif name not in values:
            assert issubclass(obj, microlearn.MicroLearnError)


# --- configuration and metadata ----------------------------------------------------------------


def test_token_is_sent_as_bearer_metadata(server, fake):
    with microlearn.Client(server[1], token="s3cret") as c:
        c.get_dataset("iris")
    assert fake.metadata[-1]["authorization"] == "Bearer s3cret"


def test_no_token_no_authorization_header(client, fake):
    client.get_dataset("iris")
    assert "authorization" not in fake.metadata[-1]


def test_address_and_token_from_environment(server, fake, monkeypatch):
    monkeypatch.setenv("MICROLEARN_ADDRESS", server[1])
    monkeypatch.setenv("MICROLEARN_TOKEN", "from-env")
    with microlearn.Client() as c:
        assert c.address == server[1]
        assert c.get_dataset("iris@1").name == "datasets/ds1"
    assert fake.metadata[-1]["authorization"] == "Bearer from-env"
    assert fake.calls[-1][1].name == "iris@1"  # refs pass through unchanged


def test_default_address(monkeypatch):
    monkeypatch.delenv("MICROLEARN_ADDRESS", raising=False)
    with microlearn.Client() as c:
        assert c.address == "127.0.0.1:50051"
        assert "token" not in repr(c)


def test_large_responses_fit_the_raised_message_limit(client, fake):
    fake.get_response = _dataset(1, description="x" * (5 << 20))  # over gRPC's default 4 MiB
    assert len(client.get_dataset("iris").description) == 5 << 20


# --- upload ---------------------------------------------------------------------------------------


def test_upload_streams_metadata_then_chunks_in_order(client, fake, tmp_path):
    data = bytes(range(256)) * 10 + b"tail"  # 2564 bytes: chunks of 1024, 1024, 516
    path = tmp_path / "iris.csv"
    path.write_bytes(data)
    result = client.upload_dataset(
        path,
        column_hints={"species": "categorical", "id": "ID"},
        format="csv",
        description="flowers",
        labels={"team": "ml", "n": 1},
        chunk_size=1024,
    )
    assert isinstance(result, microlearn.UploadResult)
    assert result.dataset.display_name == "iris" and result.deduplicated is False
    first, *chunks = fake.upload_requests
    assert first.WhichOneof("payload") == "metadata"
    meta = first.metadata
    assert meta.display_name == "iris"
    assert meta.format == dataset_pb2.DATA_FORMAT_CSV
    assert meta.expected_size_bytes == len(data)
    assert meta.expected_sha256 == hashlib.sha256(data).hexdigest()
    assert [(h.column, h.type) for h in meta.column_hints] == [
        ("species", common_pb2.COLUMN_TYPE_CATEGORICAL),
        ("id", common_pb2.COLUMN_TYPE_ID),
    ]
    assert meta.description == "flowers" and dict(meta.labels) == {"team": "ml", "n": "1"}
    assert all(r.WhichOneof("payload") == "chunk" for r in chunks)
    assert [len(r.chunk) for r in chunks] == [1024, 1024, 516]
    assert b"".join(r.chunk for r in chunks) == data


def test_upload_reports_deduplication_and_accepts_str_paths(client, fake, tmp_path):
    fake.deduplicated = True
    path = tmp_path / "sales.csv.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    result = client.upload_dataset(str(path), name="sales", progress=True)
    assert result.deduplicated is True
    assert fake.upload_requests[0].metadata.display_name == "sales"
    assert fake.upload_requests[0].metadata.format == dataset_pb2.DATA_FORMAT_UNSPECIFIED


def test_upload_dataframe_is_sent_as_parquet(client, fake):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="name"):
        client.upload_dataset(frame)
    client.upload_dataset(frame, name="frame")
    meta = fake.upload_requests[0].metadata
    data = b"".join(r.chunk for r in fake.upload_requests[1:])
    assert meta.format == dataset_pb2.DATA_FORMAT_PARQUET and data[:4] == b"PAR1"
    import io

    assert pandas.read_parquet(io.BytesIO(data)).equals(frame)


def test_upload_rejects_bad_arguments_locally(client, fake, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    with pytest.raises(ValueError, match="format"):
        client.upload_dataset(path, format="xlsx")
    with pytest.raises(ValueError, match="column type"):
        client.upload_dataset(path, column_hints={"a": "float"})
    with pytest.raises(FileNotFoundError):
        client.upload_dataset(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="chunk_size"):
        client.upload_dataset(path, chunk_size=0)
    assert fake.calls == []


def test_upload_server_rejection_maps_to_typed_error(client, fake, tmp_path):
    fake.abort = (grpc.StatusCode.INVALID_ARGUMENT, "display_name: must start with a letter")
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    with pytest.raises(microlearn.InvalidArgument, match="INVALID_ARGUMENT: display_name"):
        client.upload_dataset(path, name="_bad")


def test_local_read_error_is_reraised_not_cancelled(client, fake, tmp_path, monkeypatch):
    def broken(plan, chunk_size, on_chunk, failure):
        yield dataset_pb2.UploadDatasetRequest(metadata=plan.metadata)
        failure.error = OSError("disk went away")
        raise failure.error

    monkeypatch.setattr(_convert, "upload_requests", broken)
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    with pytest.raises(OSError, match="disk went away"):
        client.upload_dataset(path)


def test_default_name_strips_data_and_compression_suffixes():
    assert _convert.default_name(Path("data/iris.csv.gz")) == "iris"
    assert _convert.default_name(Path("sales.2024.parquet")) == "sales.2024"
    assert _convert.default_name(Path("events.jsonl")) == "events"
    assert _convert.default_name(Path("notes")) == "notes"


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, microlearn.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, microlearn.NotFound),
        (grpc.StatusCode.FAILED_PRECONDITION, microlearn.FailedPrecondition),
        (grpc.StatusCode.UNAUTHENTICATED, microlearn.Unauthenticated),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, microlearn.ResourceExhausted),
        (grpc.StatusCode.DATA_LOSS, microlearn.MicroLearnError),
    ],
)
def test_status_codes_map_to_typed_errors(client, fake, code, error_type):
    fake.abort = (code, "the details")
    with pytest.raises(microlearn.MicroLearnError) as info:
        client.get_dataset("iris")
    err = info.value
    assert type(err) is error_type
    assert err.code == code and err.details == "the details"
    assert str(err) == f"{code.name}: the details"
    assert err.__cause__ is None and err.__suppress_context__  # raised `from None`


def test_unreachable_server_is_unavailable():
    with microlearn.Client("127.0.0.1:1", timeout=5) as c:
        with pytest.raises(microlearn.Unavailable):
            c.get_dataset("iris")


def test_timeout_maps_to_deadline_exceeded(server, fake):
    with microlearn.Client(server[1], timeout=0.1) as c:
        with pytest.raises(microlearn.DeadlineExceeded):
            c.get_dataset("slow")


# --- list / sample / delete / prepare ------------------------------------------------------------


def test_list_follows_page_tokens_lazily(client, fake):
    pages = client.list_datasets(prefix="ir", latest_only=True, page_size=2)
    assert fake.calls == []  # nothing fetched until iterated
    assert next(pages).id == "ds1"
    assert len(fake.calls) == 1
    assert [d.id for d in pages] == ["ds2", "ds3", "ds4", "ds5"]
    requests = [req for method, req in fake.calls]
    assert [r.page_token for r in requests] == ["", "2", "4"]
    assert all(r.display_name_prefix == "ir" and r.latest_only and r.page_size == 2 for r in requests)


def test_list_versions_paginates(client, fake):
    assert len(list(client.list_dataset_versions("iris", page_size=3))) == 5
    assert [r.display_name for _, r in fake.calls] == ["iris", "iris"]


def test_list_error_surfaces_while_iterating(client, fake):
    fake.abort = (grpc.StatusCode.PERMISSION_DENIED, "nope")
    with pytest.raises(microlearn.PermissionDenied):
        list(client.list_datasets())


def test_sample_returns_dataframe_in_server_column_order(client, fake):
    pandas = pytest.importorskip("pandas")
    frame = client.sample_dataset("iris@2", 3, random=True, seed=7, columns=["b", "a"])
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == ["b", "a"] and len(frame) == 3
    assert frame["a"].tolist() == ["x0", "x1", "x2"]
    assert pandas.isna(frame["b"][1])
    request = fake.calls[-1][1]
    assert (request.name, request.row_count, request.seed) == ("iris@2", 3, 7)
    assert request.mode == dataset_pb2.SAMPLE_MODE_RANDOM and list(request.columns) == ["b", "a"]


def test_delete_passes_force(client, fake):
    assert client.delete_dataset("iris@1", force=True) == "datasets/ds1"
    request = fake.calls[-1][1]
    assert request.name == "iris@1" and request.force


def test_prepare_accepts_text_dict_and_path(client, fake, tmp_path):
    recipe = {"steps": [{"drop_columns": ["id"]}]}
    results = client.prepare_dataset("iris", recipe, output_name="out")
    assert [d.display_name for d in results] == ["out-train", "out-test"]
    request = fake.calls[-1][1]
    assert json.loads(request.recipe) == recipe and request.output_display_name == "out"

    path = tmp_path / "r.yaml"
    path.write_text("steps:\n  - drop_duplicates: {}\n")
    assert client.prepare_dataset("iris", path, validate_only=True) == []
    request = fake.calls[-1][1]
    assert request.recipe == path.read_text() and request.validate_only

    client.prepare_dataset("iris", "steps: []")
    assert fake.calls[-1][1].recipe == "steps: []"
    with pytest.raises(TypeError):
        client.prepare_dataset("iris", 42)  # type: ignore[arg-type]


# --- async client -----------------------------------------------------------------------------------


def test_async_client_mirrors_sync_client(server, fake, tmp_path):
    path = tmp_path / "iris.csv"
    data = b"a,b\n" + b"1,2\n" * 1000
    path.write_bytes(data)

    async def scenario():
        async with microlearn.AsyncClient(server[1], token="t0k") as ml:
            uploaded = await ml.upload_dataset(path, chunk_size=1000)
            listed = [d.id async for d in ml.list_datasets(page_size=2)]
            got = await ml.get_dataset("iris")
            frame = await ml.sample_dataset("iris", 2)
            deleted = await ml.delete_dataset("iris@1")
            prepared = await ml.prepare_dataset("iris", {"steps": []})
            fake.abort = (grpc.StatusCode.NOT_FOUND, "no dataset 'x'")
            with pytest.raises(microlearn.NotFound, match="no dataset 'x'"):
                await ml.get_dataset("x")
            return uploaded, listed, got, frame, deleted, prepared

    uploaded, listed, got, frame, deleted, prepared = asyncio.run(scenario())
    assert uploaded.dataset.display_name == "iris"
    assert [len(r.chunk) for r in fake.upload_requests[1:]] == [1000] * 4 + [len(data) - 4000]
    assert listed == ["ds1", "ds2", "ds3", "ds4", "ds5"]
    assert got.name == "datasets/ds1" and deleted == "datasets/ds1" and len(prepared) == 2
    assert list(frame.columns) == ["b", "a"]
    assert all(m["authorization"] == "Bearer t0k" for m in fake.metadata)


def test_async_local_read_error_is_reraised(server, fake, tmp_path, monkeypatch):
    from microlearn import _aio

    async def broken(plan, chunk_size, on_chunk, failure):
        yield dataset_pb2.UploadDatasetRequest(metadata=plan.metadata)
        failure.error = OSError("disk went away")
        raise failure.error

    monkeypatch.setattr(_aio, "_upload_requests", broken)
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")

    async def scenario():
        async with microlearn.AsyncClient(server[1]) as ml:
            await ml.upload_dataset(path)

    with pytest.raises(OSError, match="disk went away"):
        asyncio.run(scenario())


def test_errors_are_picklable():
    import pickle

    err = microlearn.NotFound(grpc.StatusCode.NOT_FOUND, "gone")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is microlearn.NotFound and copy.details == "gone" and str(copy) == str(err)



# --- training: requests, events, models ---------------------------------------------------------


def _train_request(**overrides):
    from microlearn import _jobs

    arguments = dict(target="y", estimator="lightgbm_classifier", hyperparameters=None, task=None, metric=None,
                     validation=None, max_iterations=0, early_stopping=None, seed=None, use_gpu=None,
                     balance_classes=False, feature_columns=(), ignore_columns=(), experiment=None, labels=None,
                     timeout_seconds=0, request_id=None)
    return _jobs.training_request("churn@2", **{**arguments, **overrides})


def test_training_request_maps_every_argument():
    numpy = pytest.importorskip("numpy")
    request = _train_request(
        hyperparameters={"num_leaves": numpy.int64(31), "learning_rate": 0.05, "boosting": "dart", "ids": [1, None]},
        task="binary", metric="f1_macro", validation={"k_fold": 4, "stratify": False, "group_column": "customer"},
        max_iterations=300, early_stopping={"patience": 7, "min_delta": 0.001}, seed=0, use_gpu=False,
        balance_classes=True, feature_columns=["a", "b"], ignore_columns=("c",), experiment="exp",
        labels={"team": "ml", "n": 1}, timeout_seconds=60, request_id="r-1")
    spec = request.spec
    assert (spec.dataset, spec.target, spec.estimator, request.request_id) == ("churn@2", "y", "lightgbm_classifier", "r-1")
    assert spec.task == common_pb2.TASK_TYPE_BINARY_CLASSIFICATION and spec.metric == "f1_macro"
    values = spec.hyperparameters.values
    assert values["num_leaves"].number_value == 31 and values["boosting"].string_value == "dart"
    assert [v.WhichOneof("kind") for v in values["ids"].list_value.values] == ["number_value", "null_value"]
    assert spec.validation.WhichOneof("method") == "k_fold" and spec.validation.k_fold.folds == 4
    assert spec.validation.HasField("stratify") and not spec.validation.stratify
    assert spec.validation.group_column == "customer"
    assert (spec.early_stopping.enabled, spec.early_stopping.patience) == (True, 7)
    assert spec.early_stopping.min_delta == pytest.approx(0.001)
    assert spec.HasField("seed") and spec.seed == 0 and spec.HasField("use_gpu") and not spec.use_gpu
    assert list(spec.feature_columns) == ["a", "b"] and list(spec.ignore_columns) == ["c"]
    assert dict(spec.labels) == {"team": "ml", "n": "1"} and spec.experiment_name == "exp"
    assert spec.balance_classes and spec.max_iterations == 300 and spec.timeout_seconds == 60


def test_training_request_leaves_unset_what_the_server_defaults():
    spec = _train_request().spec
    for field in ("validation", "early_stopping", "seed", "use_gpu"):
        assert not spec.HasField(field), field
    assert spec.task == common_pb2.TASK_TYPE_UNSPECIFIED and not spec.hyperparameters.values
    assert not _train_request(early_stopping=False).spec.HasField("early_stopping")
    assert not _train_request(early_stopping={"enabled": False, "patience": 3}).spec.HasField("early_stopping")
    assert _train_request(early_stopping=True).spec.early_stopping.enabled
    assert _train_request(validation={"holdout": 0.3}).spec.validation.holdout.fraction == pytest.approx(0.3)
    assert _train_request(validation={"dataset": "churn-test"}).spec.validation.validation_dataset == "churn-test"
    only_time = _train_request(validation={"time_column": "ts"}).spec.validation
    assert only_time.WhichOneof("method") is None and only_time.time_column == "ts"


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"validation": {"holdout": 0.2, "dataset": "x"}}, ValueError, "holdout and dataset"),
        ({"validation": {"kfold": 5}}, ValueError, "unknown validation key"),
        ({"validation": 0.2}, TypeError, "validation must be a dict"),
        ({"early_stopping": {"rounds": 3}}, ValueError, "unknown early_stopping key"),
        ({"early_stopping": 5}, TypeError, "early_stopping must be"),
        ({"hyperparameters": {"f": object()}}, TypeError, "hyperparameter 'f'"),
        ({"task": "classification"}, ValueError, "task must be one of"),
        ({"feature_columns": "age"}, TypeError, "feature_columns must be a list"),
        ({"estimator": ""}, ValueError, "estimator is required"),
    ],
)
def test_training_request_rejects_bad_arguments_locally(overrides, error, match):
    with pytest.raises(error, match=match):
        _train_request(**overrides)


def test_states_and_log_levels_parse_case_insensitively():
    from microlearn import _jobs

    request = _jobs.list_jobs_request(["running", "PENDING"], "churn", None, {"a": 1}, 10)
    assert list(request.states) == [common_pb2.JOB_STATE_RUNNING, common_pb2.JOB_STATE_PENDING]
    assert dict(request.labels) == {"a": "1"} and request.dataset == "churn" and request.estimator == ""
    assert list(_jobs.list_jobs_request("failed", None, None, None, 10).states) == [common_pb2.JOB_STATE_FAILED]
    with pytest.raises(ValueError, match="unknown job state 'done'"):
        _jobs.list_jobs_request(["done"], None, None, None, 10)
    assert _jobs.events_request("jobs/j", None, True, "warning").min_log_level == common_pb2.LOG_LEVEL_WARNING
    with pytest.raises(ValueError, match="unknown log level"):
        _jobs.events_request("jobs/j", None, False, "loud")


def test_events_read_as_kinds_with_plain_values():
    state = common_pb2.JobEvent(sequence="1-0", job="jobs/j", progress=1.0, state_change=common_pb2.JobStateChange(
        state=common_pb2.JOB_STATE_FAILED, message="boom"))
    state.time.FromSeconds(1_700_000_000)
    metrics = common_pb2.JobEvent(sequence="2-0", metrics=common_pb2.MetricUpdate(points=[
        common_pb2.MetricPoint(name="train_loss", value=0.5, step=3),
        common_pb2.MetricPoint(name="val_loss", value=0.6, step=3)]))
    log = common_pb2.JobEvent(sequence="3-0", log=common_pb2.LogLine(level=common_pb2.LOG_LEVEL_WARNING, message="hm"))

    first = microlearn.JobEvent.from_proto(state)
    assert (first.kind, first.state, first.message, first.is_terminal) == ("state", "FAILED", "boom", True)
    assert first.time.isoformat() == "2023-11-14T22:13:20+00:00" and first.proto is state
    second = microlearn.JobEvent.from_proto(metrics)
    assert (second.kind, second.step, second.values) == ("metrics", 3, {"train_loss": 0.5, "val_loss": 0.6})
    assert second.time is None and not second.is_terminal
    third = microlearn.JobEvent.from_proto(log)
    assert (third.kind, third.level, third.message) == ("log", "WARNING", "hm")


def test_headline_metric_prefers_validation_loss_then_the_jobs_metric():
    from microlearn._jobs import headline_metric

    assert headline_metric({"train_loss": 1, "val_loss": 2}, "rmse") == ("val_loss", 2)
    assert headline_metric({"fold_accuracy": 0.5, "fold_roc_auc": 0.8}, "roc_auc") == ("fold_roc_auc", 0.8)
    assert headline_metric({"train_loss": 1, "val_f1": 0.7}) == ("val_f1", 0.7)
    assert headline_metric({"train_loss": 1}) == ("train_loss", 1)
    assert headline_metric({}) is None


def test_model_reads_enums_as_names_and_whole_numbers_as_ints():
    from google.protobuf import json_format, struct_pb2

    from microlearn.v1 import trainer_pb2

    message = trainer_pb2.Model(name="models/m1", id="m1", task=common_pb2.TASK_TYPE_MULTICLASS_CLASSIFICATION,
                                format=common_pb2.MODEL_FORMAT_LIGHTGBM, metric="f1_macro", metrics={"f1_macro": 0.9})
    for key, value in {"num_leaves": 31, "learning_rate": 0.1, "path": [1, 2.5]}.items():
        message.hyperparameters.values[key].CopyFrom(json_format.ParseDict(value, struct_pb2.Value()))
    message.feature_schema.columns.add(name="plan", type=common_pb2.COLUMN_TYPE_CATEGORICAL, categories=["a"])
    model = microlearn.Model.from_proto(message)
    assert (model.task, model.format, model.score) == ("multiclass", "lightgbm", 0.9)
    assert model.hyperparameters == {"num_leaves": 31, "learning_rate": 0.1, "path": [1, 2.5]}
    assert type(model.hyperparameters["num_leaves"]) is int
    assert model.feature_schema == [{"name": "plan", "type": "categorical", "physical_type": "", "categories": ["a"]}]
    assert model.create_time is None and model.to_dict()["name"] == "models/m1"
    assert "proto" not in repr(model)


def test_job_errors_are_picklable_and_read_like_the_job():
    import pickle

    err = microlearn.JobFailed("jobs/j1", "FAILED", "out of memory", job=object())
    assert str(err) == "jobs/j1 FAILED: out of memory" and isinstance(err, microlearn.JobError)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is microlearn.JobFailed and copy.reason == "out of memory" and copy.job is None


# --- model downloads: resume, verification -------------------------------------------------------


class FakeTrainer(trainer_pb2_grpc.TrainerServiceServicer):
    """Serves one artifact in 100-byte chunks (`corrupt` flips a byte after the metadata's digest),
    and one job whose event streams end early."""

    ARTIFACT = bytes(range(256)) * 4

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.corrupt = False
        self.states = [common_pb2.JOB_STATE_RUNNING]  # GetJob answers these in turn, then the last
        self.streams: list[trainer_pb2.StreamJobEventsRequest] = []
        self.hang = False

    def GetJob(self, request, context):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return trainer_pb2.GetJobResponse(job=common_pb2.Job(name="jobs/j1", job_id="j1", state=state, error="boom"))

    def StreamJobEvents(self, request, context):
        """One event per stream, as if each broke off early: the client must resume after it."""
        self.streams.append(request)
        while self.hang and context.is_active():
            time.sleep(0.01)
        number = len(self.streams)
        yield trainer_pb2.StreamJobEventsResponse(event=common_pb2.JobEvent(
            sequence=f"{number}-0", log=common_pb2.LogLine(message=f"event {number}")))

    def DownloadModel(self, request, context):
        self.offsets.append(request.offset)
        data = self.ARTIFACT
        yield trainer_pb2.DownloadModelResponse(metadata=trainer_pb2.DownloadModelMetadata(
            model=trainer_pb2.Model(name="models/m1", id="m1"), filename="m1.tar", size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(), offset=request.offset))
        if self.corrupt:
            data = data[:-1] + b"\x00"
        for start in range(request.offset, len(data), 100):
            yield trainer_pb2.DownloadModelResponse(chunk=data[start:start + 100])


@pytest.fixture
def trainer():
    yield from serve(FakeTrainer(), trainer_pb2_grpc.add_TrainerServiceServicer_to_server)


def test_download_resumes_from_the_part_files_size(trainer, tmp_path):
    fake, address = trainer
    target = tmp_path / "model.tar"
    target.with_name("model.tar.part").write_bytes(FakeTrainer.ARTIFACT[:300])
    with microlearn.Client(address) as ml:
        assert ml.download_model("models/m1", target) == target
    assert target.read_bytes() == FakeTrainer.ARTIFACT and fake.offsets == [300]
    assert not list(tmp_path.glob("*.part"))


def test_download_into_a_directory_finds_its_part_file_by_the_servers_name(trainer, tmp_path):
    fake, address = trainer
    (tmp_path / "m1.tar.part").write_bytes(FakeTrainer.ARTIFACT[:500])

    async def scenario():
        async with microlearn.AsyncClient(address) as ml:
            return await ml.download_model("m1", tmp_path)

    assert asyncio.run(scenario()) == tmp_path / "m1.tar"
    assert (tmp_path / "m1.tar").read_bytes() == FakeTrainer.ARTIFACT
    assert fake.offsets == [0, 500]  # learns the name, then reopens where the part file ends


def test_download_starts_over_when_a_resumed_part_does_not_match(trainer, tmp_path):
    fake, address = trainer
    target = tmp_path / "model.tar"
    target.with_name("model.tar.part").write_bytes(b"\xff" * 300)
    with microlearn.Client(address) as ml:
        ml.download_model("m1", target)
    assert target.read_bytes() == FakeTrainer.ARTIFACT and fake.offsets == [300, 0]


def test_download_of_corrupt_bytes_raises_data_loss_and_leaves_nothing(trainer, tmp_path):
    fake, address = trainer
    fake.corrupt = True
    with microlearn.Client(address) as ml:
        with pytest.raises(microlearn.MicroLearnError, match="corrupt") as info:
            ml.download_model("m1", tmp_path / "model.tar")
    assert info.value.code == grpc.StatusCode.DATA_LOSS
    assert list(tmp_path.iterdir()) == []


# --- waiting for a job ---------------------------------------------------------------------------


def test_wait_resumes_a_broken_stream_after_the_last_event_then_raises(trainer):
    fake, address = trainer
    fake.states = [common_pb2.JOB_STATE_RUNNING, common_pb2.JOB_STATE_RUNNING, common_pb2.JOB_STATE_FAILED]
    with microlearn.Client(address) as ml:
        job = ml.get_job("j1")
        with pytest.raises(microlearn.JobFailed, match="jobs/j1 FAILED: boom") as info:
            job.wait()
    assert info.value.job is job and job.state == "FAILED"
    assert [r.after_sequence for r in fake.streams] == ["", "1-0"]
    assert all(r.min_log_level == common_pb2.LOG_LEVEL_ERROR for r in fake.streams)


def test_wait_times_out_with_the_refreshed_state(trainer):
    fake, address = trainer
    fake.hang = True

    async def scenario():
        async with microlearn.AsyncClient(address) as ml:
            job = await ml.get_job("j1")
            with pytest.raises(TimeoutError, match="jobs/j1 is still RUNNING after 0.2 s"):
                await job.wait(timeout=0.2)

    with microlearn.Client(address) as ml:
        with pytest.raises(TimeoutError, match="jobs/j1 is still RUNNING after 0.2 s"):
            ml.get_job("j1").wait(timeout=0.2)
    asyncio.run(scenario())
