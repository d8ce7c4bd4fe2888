"""The REST gateway in-process (httpx over ASGI) against a real gRPC server, and once over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest
from fastapi import Depends, Request

from gateway import _errors
from gateway._upload import multipart_file, rechunk
from gateway.app import backend, create_app, finish, forwarded_auth
from tests.conftest import TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {TOKEN}"}

SPECIES = ["setosa", "versicolor", "virginica"]
IRIS_LIKE = b"sepal_length,sepal_width,petal_length,species\n" + b"".join(
    f"{5 + (i % 7) * 0.1:.1f},{3 + (i % 5) * 0.1:.1f},{1 + (i % 11) * 0.3:.1f},{SPECIES[i % 3]}\n".encode()
    for i in range(150))


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def gateway(address: str, *, headers: dict[str, str] | None = AUTH,
                  **options) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(lambda: grpc.aio.insecure_channel(address), **options)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway",
                                     headers=headers, timeout=60) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture()
async def gw(platform) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(platform.address) as client:
        yield client


async def upload(client: httpx.AsyncClient, name: str, data: bytes = IRIS_LIKE, **params) -> httpx.Response:
    return await client.post("/v1/datasets", params={"display_name": name, **params}, content=data,
                             headers={"Content-Type": "text/csv"})


def assert_error(response: httpx.Response, http: int, status: str, *fragments: str) -> None:
    assert response.status_code == http, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (http, status), error
    for fragment in fragments:
        assert fragment in error["message"], error


# ------------------------------------------------------------------------------ datasets

async def test_upload_raw_body_then_get_by_every_kind_of_ref(gw, unique_name):
    response = await upload(gw, unique_name)
    assert response.status_code == 200, response.text
    body = response.json()
    dataset = body["dataset"]
    assert body["deduplicated"] is False
    assert (dataset["display_name"], dataset["version"]) == (unique_name, 1)
    assert (dataset["row_count"], dataset["column_count"]) == ("150", 4)  # int64 is a string in proto JSON
    assert dataset["source_format"] == "DATA_FORMAT_CSV" and dataset["name"] == f"datasets/{dataset['id']}"
    for ref in (unique_name, f"{unique_name}@1", dataset["id"], dataset["name"], "datasets%2F" + dataset["id"]):
        got = await gw.get(f"/v1/datasets/{ref}")
        assert got.status_code == 200, (ref, got.text)
        assert got.json()["dataset"]["id"] == dataset["id"]
    profile = got.json()["dataset"]["profile"]
    assert [c["name"] for c in profile["columns"]] == ["sepal_length", "sepal_width", "petal_length", "species"]
    assert profile["target_suggestions"][0]["column"] == "species"


async def test_upload_multipart_and_dedup(gw, unique_name):
    files = {"file": ("iris.csv", IRIS_LIKE, "text/csv")}
    first = await gw.post("/v1/datasets", params={"display_name": unique_name, "format": "csv"},
                          data={"note": "other fields are skipped"}, files=files)
    assert first.status_code == 200, first.text
    assert first.json()["dataset"]["row_count"] == "150"
    again = await gw.post("/v1/datasets", params={"display_name": unique_name}, files=files)
    assert again.status_code == 200 and again.json()["deduplicated"] is True
    assert again.json()["dataset"]["id"] == first.json()["dataset"]["id"]
    missing = await gw.post("/v1/datasets", params={"display_name": unique_name}, data={"other": "x"},
                            files={"notfile": ("a.csv", b"a\n1\n")})
    assert_error(missing, 400, "INVALID_ARGUMENT", "'file'")


async def test_upload_streams_a_chunked_body(gw, unique_name):
    rows = b"".join(f"{i},{i * 0.5},{'abc'[i % 3]}\n".encode() for i in range(120_000))  # ~2 MiB

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        yield b"n,x,letter\n"
        for start in range(0, len(rows), 300_001):
            yield rows[start:start + 300_001]

    response = await gw.post("/v1/datasets", params={"display_name": unique_name}, content=body())
    assert response.status_code == 200, response.text
    assert response.json()["dataset"]["row_count"] == "120000"


async def test_list_pagination_and_versions(gw, unique_name):
    for i in range(3):
        assert (await upload(gw, f"{unique_name}-{i}", IRIS_LIKE + f"1,1,1,x{i}\n".encode())).status_code == 200
    assert (await upload(gw, f"{unique_name}-0", IRIS_LIKE + b"2,2,2,new\n")).json()["dataset"]["version"] == 2
    seen, token = [], ""
    while True:
        page = (await gw.get("/v1/datasets", params={"page_size": 2, "page_token": token,
                                                     "display_name_prefix": unique_name})).json()
        assert page["total_size"] == 4 and len(page["datasets"]) <= 2
        seen += [(d["display_name"], d["version"]) for d in page["datasets"]]
        if not (token := page["next_page_token"]):
            break
    assert sorted(seen) == [(f"{unique_name}-0", 1), (f"{unique_name}-0", 2), (f"{unique_name}-1", 1),
                            (f"{unique_name}-2", 1)]
    latest = (await gw.get("/v1/datasets", params={"display_name_prefix": unique_name, "latest_only": "true"})).json()
    assert latest["total_size"] == 3
    versions = (await gw.get(f"/v1/datasets/{unique_name}-0/versions")).json()
    assert [d["version"] for d in versions["datasets"]] == [2, 1] and versions["total_size"] == 2


async def test_sample_rows(gw, unique_name):
    await upload(gw, unique_name)
    head = (await gw.get(f"/v1/datasets/{unique_name}/rows", params={"row_count": 3})).json()
    assert head["columns"] == ["sepal_length", "sepal_width", "petal_length", "species"]
    assert [r["species"] for r in head["rows"]] == ["setosa", "versicolor", "virginica"]
    params = {"row_count": 20, "mode": "random", "seed": 7, "columns": "species,petal_length"}
    first = (await gw.get(f"/v1/datasets/{unique_name}/rows", params=params)).json()
    second = (await gw.get(f"/v1/datasets/{unique_name}/rows", params=params)).json()
    assert first["columns"] == ["species", "petal_length"] and len(first["rows"]) == 20
    assert first["rows"] == second["rows"]
    bad = await gw.get(f"/v1/datasets/{unique_name}/rows", params={"mode": "sideways"})
    assert_error(bad, 400, "INVALID_ARGUMENT", "mode")


async def test_prepare_then_delete_refused_while_referenced_then_forced(gw, unique_name):
    source = (await upload(gw, unique_name, IRIS_LIKE + f"1,1,1,{unique_name}\n".encode())).json()["dataset"]
    recipe = "steps:\n  - drop_columns: [sepal_width]\n"
    check = await gw.post(f"/v1/datasets/{unique_name}:prepare", json={"recipe": recipe, "validate_only": True})
    assert check.status_code == 200 and check.json()["datasets"] == []
    prepared = await gw.post(f"/v1/datasets/{source['name']}:prepare",
                             json={"recipe": recipe, "output_display_name": f"{unique_name}-clean"})
    assert prepared.status_code == 200, prepared.text
    derived = prepared.json()["datasets"][0]
    assert derived["parent"] == source["name"] and derived["column_count"] == 3
    refused = await gw.delete(f"/v1/datasets/{unique_name}@1")
    assert_error(refused, 409, "FAILED_PRECONDITION", derived["name"], "force")
    bare = await gw.delete(f"/v1/datasets/{unique_name}")
    assert_error(bare, 400, "INVALID_ARGUMENT", "@VERSION")
    deleted = await gw.delete(f"/v1/datasets/{unique_name}@1", params={"force": "true"})
    assert deleted.status_code == 200 and deleted.json() == {"name": source["name"]}
    assert_error(await gw.get(f"/v1/datasets/{source['id']}"), 404, "NOT_FOUND")


async def test_prepare_rejects_bad_recipes_and_bodies(gw, unique_name):
    await upload(gw, unique_name)
    bad_step = await gw.post(f"/v1/datasets/{unique_name}:prepare",
                             json={"recipe": "steps:\n  - drop_columns: [species]\n  - impute: {nope: mean}\n"})
    assert_error(bad_step, 400, "INVALID_ARGUMENT", "step 2", "impute", "nope")
    typo = await gw.post(f"/v1/datasets/{unique_name}:prepare", json={"recipie": "steps: []"})
    assert_error(typo, 400, "INVALID_ARGUMENT", "recipie")
    not_json = await gw.post(f"/v1/datasets/{unique_name}:prepare", content=b"steps: [",
                             headers={"Content-Type": "application/json"})
    assert_error(not_json, 400, "INVALID_ARGUMENT", "invalid JSON body")
    a_list = await gw.post(f"/v1/datasets/{unique_name}:prepare", json=[{"recipe": "steps: []"}])
    assert_error(a_list, 400, "INVALID_ARGUMENT", "JSON object")
    other = await gw.post(f"/v1/datasets/{unique_name}:prepare", json={"name": "elsewhere", "recipe": "steps: []"})
    assert_error(other, 400, "INVALID_ARGUMENT", "elsewhere")


# -------------------------------------------------------------------------- error mapping

async def test_token_is_checked_by_the_grpc_server(platform):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        async with gateway(platform.address, headers=headers) as client:
            response = await client.get("/v1/datasets")
            assert_error(response, 401, "UNAUTHENTICATED", "token")
            assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_dataset_and_route_are_404(gw):
    assert_error(await gw.get("/v1/datasets/no-such-dataset-anywhere"), 404, "NOT_FOUND", "no-such-dataset-anywhere")
    assert_error(await gw.get("/v2/nothing"), 404, "NOT_FOUND")


async def test_bad_uploads_are_400(gw, unique_name):
    assert_error(await upload(gw, unique_name, b""), 400, "INVALID_ARGUMENT")
    assert_error(await upload(gw, "bad name!"), 400, "INVALID_ARGUMENT", "bad name!")
    assert_error(await gw.post("/v1/datasets", content=IRIS_LIKE), 400, "INVALID_ARGUMENT", "display_name")
    assert_error(await upload(gw, unique_name, format="xlsx"), 400, "INVALID_ARGUMENT", "format")
    assert_error(await upload(gw, unique_name, expected_sha256="0" * 64), 400, "INVALID_ARGUMENT", "expected_sha256")
    assert_error(await gw.get("/v1/datasets", params={"page_size": "many"}), 400, "INVALID_ARGUMENT", "page_size")
    assert_error(await gw.get(f"/v1/datasets/{unique_name}"), 404, "NOT_FOUND")  # nothing was stored


async def test_upload_limits_are_413(platform, limited_platform, gw, unique_name):
    async with gateway(platform.address, max_upload_bytes=1000) as small:
        announced = await upload(small, unique_name)  # Content-Length over the limit: refused before gRPC
        assert_error(announced, 413, "RESOURCE_EXHAUSTED", "1000 bytes")

        async def body() -> AsyncIterator[bytes]:
            for start in range(0, len(IRIS_LIKE), 500):
                yield IRIS_LIKE[start:start + 500]

        streamed = await small.post("/v1/datasets", params={"display_name": unique_name}, content=body())
        assert_error(streamed, 413, "RESOURCE_EXHAUSTED", "1000 bytes")
    assert_error(await gw.get(f"/v1/datasets/{unique_name}"), 404, "NOT_FOUND")
    async with gateway(limited_platform.address) as client:  # the server's own 2 MiB limit
        big = await upload(client, unique_name, b"a,b\n" + b"1,2\n" * (1 << 20))
        assert_error(big, 413, "RESOURCE_EXHAUSTED", "limit")


async def test_unimplemented_rpcs_are_501(platform):
    async with gateway(platform.address) as client:
        async def missing(request: Request, auth=Depends(forwarded_auth)):
            call = backend(request).channel.unary_unary("/microlearn.v1.DeployService/NotBuiltYet",
                                                        request_serializer=lambda m: m,
                                                        response_deserializer=lambda b: b)
            return await call(b"", metadata=auth)

        client.app.add_api_route("/v1/missing-x", missing)  # an RPC the server does not have
        assert_error(await client.get("/v1/missing-x"), 501, "UNIMPLEMENTED")


def test_error_table_covers_every_code():
    assert set(_errors.HTTP_STATUS) == set(grpc.StatusCode)
    expected = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 409, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
                "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
                "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503,
                "DEADLINE_EXCEEDED": 504, "DATA_LOSS": 500, "INTERNAL": 500, "UNKNOWN": 500}
    assert {code.name: _errors.http_status(code) for code in grpc.StatusCode if code.name in expected} == expected
    assert _errors.http_status(grpc.StatusCode.RESOURCE_EXHAUSTED, upload=True) == 413
    assert _errors.http_status(grpc.StatusCode.NOT_FOUND, upload=True) == 404
    assert _errors.status_name(404) == "NOT_FOUND" and _errors.status_name(405) == "METHOD_NOT_ALLOWED"


# ------------------------------------------------------------------------ health and docs

async def test_healthz_needs_no_token(platform):
    async with gateway(platform.address, headers=None) as client:
        response = await client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "SERVING"}
    async with gateway("127.0.0.1:1", headers=None) as client:  # nothing listens there
        response = await client.get("/healthz")
        assert response.status_code == 503 and response.json()["status"] == "UNREACHABLE"


async def test_unreachable_server_is_503(gw):
    async with gateway("127.0.0.1:1") as client:
        assert_error(await client.get("/v1/datasets"), 503, "UNAVAILABLE")


async def test_openapi_documents_the_routes(gw):
    spec = (await gw.get("/openapi.json")).json()
    assert {"/v1/datasets", "/v1/datasets/{ref}", "/v1/datasets/{ref}/rows", "/v1/datasets/{ref}/versions",
            "/v1/datasets/{ref}:prepare", "/healthz"} <= set(spec["paths"])
    upload_op = spec["paths"]["/v1/datasets"]["post"]
    assert upload_op["operationId"] == "upload_dataset" and upload_op["summary"]
    assert {"application/octet-stream", "multipart/form-data"} <= set(upload_op["requestBody"]["content"])
    dataset = spec["components"]["schemas"]["microlearn.v1.Dataset"]["properties"]
    assert dataset["row_count"]["format"] == "int64" and "DATA_FORMAT_CSV" in dataset["source_format"]["enum"]
    assert spec["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert (await gw.get("/docs")).status_code == 200


# ------------------------------------------------------------------- streaming internals

def asgi_scope(method: str, path: str, query: str = "", *, content_type: bytes = b"") -> dict:
    headers = [(b"authorization", f"Bearer {TOKEN}".encode())]
    if content_type:
        headers.append((b"content-type", content_type))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "root_path": "", "query_string": query.encode(),
            "client": ("127.0.0.1", 9), "server": ("gateway", 80), "headers": headers}


async def test_disconnect_while_waiting_for_the_service_cancels_the_call():
    app = create_app(lambda: grpc.aio.insecure_channel("127.0.0.1:1"))
    cancelled = []

    class PendingCall:  # stands for a slow RPC: never answers unless cancelled
        def __init__(self) -> None:
            self.future = asyncio.get_running_loop().create_future()

        def cancel(self) -> None:
            cancelled.append(True)
            self.future.cancel()

        def __await__(self):
            return self.future.__await__()

    async def slow(request: Request):
        return await finish(request, PendingCall())

    app.add_api_route("/slow", slow)
    messages = iter([{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    await app(asgi_scope("GET", "/slow"), receive, send)
    assert cancelled == [True] and sent[0]["status"] == 499


async def test_client_disconnect_cancels_the_upload(platform, gw, unique_name):
    uploads = Path(platform.settings.data_dir).resolve() / "work" / "uploads"
    app = create_app(lambda: grpc.aio.insecure_channel(platform.address))
    first_chunk = IRIS_LIKE + b"".join(f"1,2,3,row{i}\n".encode() for i in range(200_000))  # > 1 MiB
    calls = 0
    was_spooling: list[bool] = []

    def spooling() -> bool:
        return uploads.exists() and any(uploads.iterdir())

    async def receive():
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": first_chunk, "more_body": True}
        for _ in range(400):  # the service holds a spool file: the call is in flight
            if spooling():
                break
            await asyncio.sleep(0.05)
        was_spooling.append(spooling())
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    scope = asgi_scope("POST", "/v1/datasets", f"display_name={unique_name}", content_type=b"text/csv")
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    assert was_spooling == [True] and sent[0]["status"] == 499
    for _ in range(200):  # the cancelled call discards its spool
        if not spooling():
            break
        await asyncio.sleep(0.05)
    assert not spooling()
    assert_error(await gw.get(f"/v1/datasets/{unique_name}"), 404, "NOT_FOUND")


async def test_rechunk_and_multipart_parsing():
    async def pieces(*items: bytes) -> AsyncIterator[bytes]:
        for item in items:
            yield item

    chunks = [c async for c in rechunk(pieces(b"a" * 5, b"", b"b" * 7, b"c"), size=4)]
    assert chunks == [b"aaaa", b"abbb", b"bbbb", b"c"]
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n"
            b"Content-Type: text/csv\r\n\r\na,b\r\n1,2\r\n--XyZ--\r\n")
    split = [body[i:i + 7] for i in range(0, len(body), 7)]  # boundaries across pieces
    got = b"".join([c async for c in multipart_file(pieces(*split), "multipart/form-data; boundary=XyZ")])
    assert got == b"a,b\r\n1,2"
    with pytest.raises(_errors.GatewayError, match="closing boundary"):
        [c async for c in multipart_file(pieces(body[:-12]), "multipart/form-data; boundary=XyZ")]
    with pytest.raises(_errors.GatewayError, match="boundary"):
        [c async for c in multipart_file(pieces(body), "multipart/form-data")]


def test_gateway_imports_nothing_heavy():
    code = ("import sys, gateway.app, gateway.__main__; "
            "heavy = [m for m in ('torch', 'lightning', 'xgboost', 'pandas', 'pyarrow', 'numpy', 'microlearn_grpc') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------ a real socket

def test_run_gateway_serves_http_on_a_real_socket(platform, unique_name):
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "--grpc-address", platform.address, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)], daemon=True).start()
    output = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = lines.get(timeout=deadline - time.monotonic())
            assert line is not None, f"gateway exited ({proc.wait()}):\n{''.join(output)}"
            output.append(line)
            if line.startswith("http: "):
                break
        host, port = line.split(":", 1)[1].strip().rsplit(":", 1)
        assert host == "127.0.0.1"
        base = f"http://{host}:{port}"
        health = httpx.get(f"{base}/healthz", timeout=30)
        assert health.status_code == 200 and health.json() == {"status": "SERVING"}
        listed = httpx.get(f"{base}/v1/datasets", params={"page_size": 1}, headers=AUTH, timeout=30)
        assert listed.status_code == 200 and "total_size" in listed.json()
        assert httpx.get(f"{base}/v1/datasets", timeout=30).status_code == 401
        uploaded = httpx.post(f"{base}/v1/datasets", params={"display_name": unique_name}, headers=AUTH, timeout=60,
                              files={"file": ("iris.csv", IRIS_LIKE, "text/csv")})
        assert uploaded.status_code == 200 and uploaded.json()["dataset"]["row_count"] == "150", uploaded.text
        proc.send_signal(signal.SIGTERM)  # what `microlearn up` sends its children
        assert proc.wait(30) == 0, "".join(output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
