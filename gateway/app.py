"""The REST gateway: a FastAPI app translating HTTP+JSON to the platform's gRPC services.

`create_app` is the composition root tests call with a channel factory pointing at a real
in-process server; `run_gateway` is the one `microlearn gateway` / `microlearn up` call.
Authentication is the gRPC server's job: the caller's `Authorization` header is forwarded
as `authorization` metadata, so a missing or wrong token comes back as UNAUTHENTICATED → 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import grpc
import grpc.aio
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from gateway import _openapi
from gateway._errors import GatewayError, error_body, http_status, status_name
from gateway._upload import StatusLog, capped, multipart_file, rechunk, too_large, write
from microlearn.v1 import dataset_pb2, dataset_pb2_grpc

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "create_app", "run_gateway"]

DEFAULT_MAX_UPLOAD_BYTES = 4 << 30  # the gRPC server's default MICROLEARN_MAX_UPLOAD_BYTES
MAX_JSON_BODY_BYTES = 1 << 20
MAX_MESSAGE_BYTES = 64 << 20  # the gRPC server's message cap
HEALTH_TIMEOUT_S = 5.0

ChannelFactory = Callable[[], grpc.aio.Channel]


class _DatasetRefConvertor(Convertor[str]):
    """A dataset reference in a URL: an id, NAME, NAME@VERSION or `datasets/{id}` (slash kept)."""

    regex = r"(?:datasets/)?[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("dataset_ref", _DatasetRefConvertor())


# --------------------------------------------------------------------------------- plumbing

class _Backend:
    """The gRPC side of the gateway: one channel, opened on first use inside the serving loop."""

    def __init__(self, factory: ChannelFactory) -> None:
        self._factory = factory
        self._channel: grpc.aio.Channel | None = None
        self._datasets: dataset_pb2_grpc.DatasetServiceStub | None = None

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = self._factory()
        return self._channel

    @property
    def datasets(self) -> dataset_pb2_grpc.DatasetServiceStub:
        if self._datasets is None:
            self._datasets = dataset_pb2_grpc.DatasetServiceStub(self.channel)
        return self._datasets

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._datasets = self._channel, None, None
            await channel.close()


def backend(request: Request) -> _Backend:
    """The app's gRPC backend (for routes added next to these, such as tests')."""
    return request.app.state.backend


_bearer = HTTPBearer(auto_error=False, scheme_name="token",
                     description="The platform token (`microlearn up` prints where it is), forwarded to gRPC.")

Metadata = tuple[tuple[str, str], ...]


def forwarded_auth(request: Request,
                   _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Metadata:
    """The caller's Authorization header as gRPC metadata, verbatim: the server decides."""
    value = request.headers.get("authorization")
    return (("authorization", value),) if value else ()


Auth = Annotated[Metadata, Depends(forwarded_auth)]


class _ClientGone(Exception):
    """The HTTP client disconnected; the gRPC call has been cancelled."""


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def finish(request: Request, call: Any) -> Any:
    """Awaits a gRPC call (body already read), cancelling it if the HTTP client goes away first."""
    watcher = asyncio.create_task(_until_disconnected(request))

    def cancel_call(task: asyncio.Task) -> None:
        if not task.cancelled():
            call.cancel()

    watcher.add_done_callback(cancel_call)
    try:
        return await call
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            raise _ClientGone() from None
        raise
    finally:
        watcher.cancel()


def render(message: Message, status_code: int = 200) -> JSONResponse:
    """A protobuf message as its canonical JSON (proto field names, every field present)."""
    body = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    return JSONResponse(body, status_code=status_code)


def _error(http: int, status: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if http == 401 else None
    return JSONResponse(error_body(http, status, message), status_code=http, headers=headers)


async def _read_json(request: Request, message: Message) -> Message:
    """Parses a capped JSON body into `message`; unknown fields (typos) are a 400."""
    raw = bytearray()
    async for piece in capped(request.stream(), MAX_JSON_BODY_BYTES):
        raw += piece
    return parse_json_body(bytes(raw), message)


def parse_json_body(raw: bytes, message: Message) -> Message:
    """A request body (a JSON object, empty meaning `{}`) into `message`; GatewayError (400) otherwise."""
    try:
        parsed = json.loads(raw or b"{}")
        if not isinstance(parsed, dict):
            raise ValueError(f"expected a JSON object, got {type(parsed).__name__}")
        json_format.ParseDict(parsed, message, ignore_unknown_fields=False)
    except (ValueError, json_format.ParseError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid JSON body: {exc}") from None
    return message


# --------------------------------------------------------------------------------- routes

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_REF_DOC = "The dataset: an id, `datasets/{id}` (URL-encode the slash or not), `NAME` (latest) or `NAME@VERSION`."
_NOT_FOUND = {404: "No such dataset."}
Ref = Annotated[str, Path(description=_REF_DOC)]


@router.get("", summary="List dataset versions", responses=_openapi.responses(dataset_pb2.ListDatasetsResponse))
async def list_datasets(
    request: Request, auth: Auth,
    page_size: Annotated[int, Query(description="Results per page (1-1000; 0 means 50).")] = 0,
    page_token: Annotated[str, Query(description="`next_page_token` of the previous page.")] = "",
    display_name_prefix: Annotated[str, Query(description="Only names starting with this.")] = "",
    latest_only: Annotated[bool, Query(description="Only the latest version of each name.")] = False,
) -> JSONResponse:
    """Dataset versions, newest first, without profiles (get one dataset for its profile).
    Follow `next_page_token` until it is empty; `total_size` counts all matches."""
    call = backend(request).datasets.ListDatasets(dataset_pb2.ListDatasetsRequest(
        page_size=page_size, page_token=page_token, display_name_prefix=display_name_prefix,
        latest_only=latest_only), metadata=auth)
    return render(await finish(request, call))


@router.post(
    "", summary="Upload a dataset",
    responses=_openapi.responses(dataset_pb2.UploadDatasetResponse, errors={
        413: "Over the gateway's or the server's upload limits (size, decompressed size, columns)."}),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
    }}},
)
async def upload_dataset(
    request: Request, auth: Auth,
    display_name: Annotated[str, Query(description="Dataset name: 1-128 letters, digits, `.`, `_`, `-`.")],
    format: Annotated[Literal["csv", "parquet", "jsonl"] | None, Query(  # noqa: A002 - the query parameter's name
        description="File format; detected from the content when omitted.")] = None,
    description: Annotated[str, Query(description="Free-text description.")] = "",
    expected_sha256: Annotated[str, Query(description="Hex SHA-256 of the file; a mismatch rejects it.")] = "",
) -> JSONResponse:
    """Stores the body as a new version of `display_name` (CSV, Parquet or JSON lines, optionally
    gzip/zip-compressed), profiled. Send the file as the raw body (any content type but
    multipart, e.g. `curl --data-binary @iris.csv`) or as the `file` field of
    multipart/form-data (`curl -F file=@iris.csv`). The body streams through to the service in
    1 MiB chunks. Uploading the bytes of the latest version again returns it with
    `deduplicated: true`. Nothing is stored when anything fails."""
    return await _upload(request, auth, dataset_pb2.UploadDatasetMetadata(
        display_name=display_name, description=description, expected_sha256=expected_sha256,
        format=dataset_pb2.DataFormat.Value(f"DATA_FORMAT_{format.upper()}") if format else 0))


async def _upload(request: Request, auth: Metadata, metadata: dataset_pb2.UploadDatasetMetadata) -> JSONResponse:
    limit: int = request.app.state.max_upload_bytes
    content_type = request.headers.get("content-type", "")
    length_header = request.headers.get("content-length")
    try:
        length = int(length_header) if length_header is not None else None
    except ValueError:
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, "Content-Length is not a number") from None
    if length is not None and length > limit:
        raise too_large(limit)
    body = capped(request.stream(), limit)
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        chunks = rechunk(multipart_file(body, content_type))
    else:
        chunks = rechunk(body)
        metadata.expected_size_bytes = length or 0
    call = backend(request).datasets.UploadDataset(metadata=auth)
    statuses = StatusLog(call)
    try:
        await write(call, dataset_pb2.UploadDatasetRequest(metadata=metadata))
        async for chunk in chunks:
            await write(call, dataset_pb2.UploadDatasetRequest(chunk=chunk))
        await call.done_writing()
        response = await finish(request, call)
    except ClientDisconnect:
        raise _ClientGone() from None
    except grpc.aio.AioRpcError as exc:
        code, details = statuses.from_service() or (exc.code(), exc.details() or "")
        raise GatewayError(code, details, http=http_status(code, upload=True)) from None
    finally:
        call.cancel()  # a no-op once the call is done; stops the service spooling a half upload
    return render(response)


@router.get("/{ref:dataset_ref}/versions", summary="List the versions of a dataset name",
            responses=_openapi.responses(dataset_pb2.ListDatasetVersionsResponse))
async def list_dataset_versions(
    request: Request, auth: Auth,
    ref: Annotated[str, Path(description="The dataset name (display name) whose versions to list.")],
    page_size: Annotated[int, Query(description="Results per page (1-1000; 0 means 50).")] = 0,
    page_token: Annotated[str, Query(description="`next_page_token` of the previous page.")] = "",
) -> JSONResponse:
    """The versions of the dataset name `ref`, newest first, without profiles."""
    call = backend(request).datasets.ListDatasetVersions(dataset_pb2.ListDatasetVersionsRequest(
        display_name=ref, page_size=page_size, page_token=page_token), metadata=auth)
    return render(await finish(request, call))


@router.get("/{ref:dataset_ref}/rows", summary="Sample rows of a dataset",
            responses=_openapi.responses(dataset_pb2.SampleDatasetRowsResponse, errors=_NOT_FOUND))
async def sample_dataset_rows(
    request: Request, auth: Auth, ref: Ref,
    row_count: Annotated[int, Query(description="How many rows (1-10,000; 0 means 10).")] = 0,
    mode: Annotated[Literal["head", "random"], Query(description="The first rows, or a uniform sample.")] = "head",
    seed: Annotated[int, Query(description="Seed for `random`, for a repeatable sample.")] = 0,
    columns: Annotated[str, Query(description="Comma-separated column names (all when empty).")] = "",
) -> JSONResponse:
    """Rows as JSON objects keyed by column (missing values are null, datetimes ISO 8601)."""
    call = backend(request).datasets.SampleDatasetRows(dataset_pb2.SampleDatasetRowsRequest(
        name=ref, row_count=row_count, mode=dataset_pb2.SampleMode.Value(f"SAMPLE_MODE_{mode.upper()}"), seed=seed,
        columns=[c.strip() for c in columns.split(",") if c.strip()]), metadata=auth)
    return render(await finish(request, call))


@router.post(
    "/{ref:dataset_ref}:prepare", summary="Prepare a dataset with a recipe",
    responses=_openapi.responses(dataset_pb2.PrepareDatasetResponse, errors=_NOT_FOUND),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "$ref": _openapi.SCHEMA_PREFIX + "microlearn.v1.PrepareDatasetRequest-name"}}}}},
)
async def prepare_dataset(request: Request, auth: Auth, ref: Ref) -> JSONResponse:
    """Applies a recipe (YAML or JSON text in `recipe`: `{steps: [...]}` with drop_columns,
    rename_columns, cast_columns, drop_duplicates, impute, filter_rows, clip_outliers,
    train_test_split) and stores the result as a new version with lineage. The recipe is
    validated against the schema first; an invalid step is a 400 naming it.
    `validate_only: true` checks without running."""
    message = await _read_json(request, dataset_pb2.PrepareDatasetRequest())
    if message.name and message.name != ref:
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"the body names dataset {message.name!r} but the URL names {ref!r}")
    message.name = ref
    call = backend(request).datasets.PrepareDataset(message, metadata=auth)
    return render(await finish(request, call))


@router.get("/{ref:dataset_ref}", summary="Get a dataset version with its profile",
            description="One dataset version with its full profile (column types, statistics, target "
                        "suggestions). " + _REF_DOC,
            responses=_openapi.responses(dataset_pb2.GetDatasetResponse, errors=_NOT_FOUND))
async def get_dataset(request: Request, auth: Auth, ref: Ref) -> JSONResponse:
    call = backend(request).datasets.GetDataset(dataset_pb2.GetDatasetRequest(name=ref), metadata=auth)
    return render(await finish(request, call))


@router.delete("/{ref:dataset_ref}", summary="Delete a dataset version",
               responses=_openapi.responses(dataset_pb2.DeleteDatasetResponse, errors={
                   **_NOT_FOUND, 409: "Still referenced (by a derived dataset, a job, a model)."}))
async def delete_dataset(
    request: Request, auth: Auth, ref: Ref,
    force: Annotated[bool, Query(description="Delete even while referenced (references dangle).")] = False,
) -> JSONResponse:
    """Deletes one version and its stored data: `ref` is an id, `datasets/{id}` or `NAME@VERSION`
    (a bare NAME is refused). Refused with 409 while something references it, unless `force`."""
    call = backend(request).datasets.DeleteDataset(dataset_pb2.DeleteDatasetRequest(name=ref, force=force),
                                                   metadata=auth)
    return render(await finish(request, call))


_DOCUMENTED = (dataset_pb2.UploadDatasetResponse, dataset_pb2.GetDatasetResponse, dataset_pb2.ListDatasetsResponse,
               dataset_pb2.ListDatasetVersionsResponse, dataset_pb2.SampleDatasetRowsResponse,
               dataset_pb2.DeleteDatasetResponse, dataset_pb2.PrepareDatasetResponse)

health_router = APIRouter(tags=["health"])


@health_router.get("/healthz", summary="Is the platform serving?", responses={
    200: {"description": "The gRPC server answers SERVING.",
          "content": {"application/json": {"example": {"status": "SERVING"}}}},
    503: {"description": "The gRPC server is unreachable or not serving."}})
async def healthz(request: Request) -> JSONResponse:
    """The gRPC server's standard health check (`grpc.health.v1`), relayed; no token needed."""
    stub = health_pb2_grpc.HealthStub(backend(request).channel)
    try:
        response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        return JSONResponse({"status": "UNREACHABLE", "message": exc.details() or exc.code().name}, status_code=503)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return JSONResponse({"status": name}, status_code=200 if response.status == response.SERVING else 503)


# ------------------------------------------------------------------------------ the app

def create_app(channel_factory: ChannelFactory, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> FastAPI:
    """The gateway app. `channel_factory` is called once, on first use, inside the serving loop;
    the channel is closed when the app shuts down (ASGI lifespan)."""
    if max_upload_bytes < 1:
        raise ValueError("max_upload_bytes must be positive")
    gateway_backend = _Backend(channel_factory)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway_backend.close()

    app = FastAPI(
        title="MicroLearn REST gateway", version="v1", lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
        description="HTTP+JSON over MicroLearn's gRPC services. Bodies are the services' protobuf messages in "
                    "canonical JSON (proto field names; 64-bit integers as strings; enums by name). Errors are "
                    '`{"error": {"code", "status", "message"}}` with the gRPC status mapped to HTTP '
                    "(NOT_FOUND→404, INVALID_ARGUMENT→400, FAILED_PRECONDITION→409, UNIMPLEMENTED→501, ...). "
                    "Send the platform token as `Authorization: Bearer TOKEN`; the gRPC server checks it.",
        openapi_tags=[{"name": "datasets", "description": "Upload, inspect, prepare and delete datasets."},
                      {"name": "selection", "description": "Task detection, candidate models, the estimator registry."},
                      {"name": "jobs", "description": "Training jobs: start, follow (SSE), cancel."},
                      {"name": "models", "description": "Trained models: list, inspect, compare, delete."},
                      {"name": "studies", "description": "Hyperparameter studies: start, follow (SSE), stop."},
                      {"name": "pipelines", "description": "YAML pipelines: run, follow (SSE), cancel."},
                      {"name": "serving", "description": "Model versions, aliases, deployments, predict."},
                      {"name": "health", "description": "Liveness of the platform behind the gateway."}],
    )
    app.state.backend = gateway_backend
    app.state.max_upload_bytes = max_upload_bytes
    from gateway._fast_predict import FastPredict

    app.add_middleware(FastPredict, backend=gateway_backend, max_body=MAX_JSON_BODY_BYTES)
    app.include_router(router)
    from gateway._ml_routes import ROUTERS  # here: that module imports this one

    for ml_router in ROUTERS:  # selection, jobs, models, studies, serving
        app.include_router(ml_router)
    from gateway._pipeline_routes import pipelines

    app.include_router(pipelines)
    app.include_router(health_router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi.build_openapi(
                app, _DOCUMENTED, bodies=((dataset_pb2.PrepareDatasetRequest, ("name",)),))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(grpc.aio.AioRpcError)
    async def on_rpc_error(_: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return _error(http_status(exc.code()), exc.code().name, exc.details() or "")

    @app.exception_handler(GatewayError)
    async def on_gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        return _error(exc.http, exc.code.name, exc.message)

    @app.exception_handler(_ClientGone)
    async def on_client_gone(_: Request, __: _ClientGone) -> JSONResponse:
        return _error(499, "CANCELLED", "the client closed the request; the call was cancelled")

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
                             for e in exc.errors())
        return _error(400, "INVALID_ARGUMENT", problems)

    @app.exception_handler(HTTPException)
    async def on_http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, status_name(exc.status_code), str(exc.detail))

    @app.exception_handler(Exception)
    async def on_bug(_: Request, __: Exception) -> JSONResponse:  # logged by the server; details stay there
        return _error(500, "INTERNAL", "internal error in the gateway")

    return app


# ------------------------------------------------------------------------------ serving

def grpc_channel(grpc_address: str, *, insecure: bool = True) -> grpc.aio.Channel:
    """A channel to the platform with the server's 64 MiB message limits (TLS unless `insecure`)."""
    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.primary_user_agent", "microlearn-gateway")]
    if insecure:
        return grpc.aio.insecure_channel(grpc_address, options=options)
    return grpc.aio.secure_channel(grpc_address, grpc.ssl_channel_credentials(), options=options)


def run_gateway(grpc_address: str, host: str = "127.0.0.1", port: int = 8080, *, insecure_grpc: bool = True,
                max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, metrics_settings: Any = None) -> None:
    """Serves the gateway until SIGINT/SIGTERM; prints `http: HOST:PORT` once listening (port 0 picks one)."""
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound_host, bound_port = self.servers[0].sockets[0].getsockname()[:2]
                print(f"http: {bound_host}:{bound_port}", flush=True)

    app = create_app(lambda: grpc_channel(grpc_address, insecure=insecure_grpc), max_upload_bytes=max_upload_bytes)
    endpoint = None
    if metrics_settings is not None:  # /metrics on its own port (MICROLEARN_METRICS_PORT), like every process
        from gateway._metrics import instrument
        from microlearn_grpc.metrics import endpoint_from_settings, new_registry

        registry = new_registry()
        instrument(app, registry)
        endpoint = endpoint_from_settings(metrics_settings, registry, host)
        print(f"metrics: {endpoint.url if endpoint else 'off'}", flush=True)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning",
                            lifespan="on", proxy_headers=False, server_header=False)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal under the previous
    # handler; make SIGTERM (what `microlearn up` sends its children) a KeyboardInterrupt too, so
    # either one ends here with a normal return instead of killing the process.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            _Server(config).run()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if endpoint is not None:
            endpoint.close()
