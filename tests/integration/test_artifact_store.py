"""Contract suite for ArtifactStore: every backend (local dir, S3 on a real moto server) passes it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from microlearn_grpc.storage.artifacts import (
    ArtifactCorrupted,
    ArtifactError,
    ArtifactInfo,
    ArtifactNotFound,
    ArtifactStore,
    InvalidArtifactKey,
    LocalArtifactStore,
    S3ArtifactStore,
    open_artifact_store,
)

MiB = 1 << 20
CREDENTIALS = {"region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing"}
StoreFactory = Callable[[], ArtifactStore]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def moto_endpoint() -> Any:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory, because an S3 client belongs to the event loop of the test's asyncio.run."""
    if request.param == "local":
        return lambda: LocalArtifactStore(tmp_path / "store")
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = f"test-{uuid.uuid4().hex[:16]}"  # a fresh bucket also exercises create-on-first-use
    return lambda: S3ArtifactStore(
        bucket,
        "runs/r1",
        endpoint_url=endpoint,
        multipart_threshold=5 * MiB,  # S3's minimum part size, so ~11 MiB takes 3 parts
        part_size=5 * MiB,
        **CREDENTIALS,
    )


def run(make_store: StoreFactory, body: Callable[[ArtifactStore], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with make_store() as store:
            return await body(store)

    return asyncio.run(main())


def boto3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=CREDENTIALS["region"],
        aws_access_key_id=CREDENTIALS["access_key_id"],
        aws_secret_access_key=CREDENTIALS["secret_access_key"],
    )


# --------------------------------------------------------------------------- contract


def test_put_get_bytes_roundtrip(make_store: StoreFactory) -> None:
    data = b"hello artifact\n" * 1000

    async def body(store: ArtifactStore) -> None:
        info = await store.put_bytes("datasets/abc/data.parquet", data)
        assert info == ArtifactInfo("datasets/abc/data.parquet", len(data), sha(data))
        assert await store.get_bytes("datasets/abc/data.parquet") == data
        assert await store.get_bytes("datasets/abc/data.parquet", expected_sha256=sha(data)) == data
        assert await store.stat("datasets/abc/data.parquet") == info

    run(make_store, body)


def test_empty_artifact(make_store: StoreFactory) -> None:
    async def body(store: ArtifactStore) -> None:
        assert await store.put_bytes("empty", b"") == ArtifactInfo("empty", 0, sha(b""))
        assert await store.get_bytes("empty") == b""
        assert [c async for c in store.iter_chunks("empty")] == []

    run(make_store, body)


def test_put_file_get_to_file_roundtrip(make_store: StoreFactory, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    dest = tmp_path / "out" / "nested" / "model.bin"

    async def body(store: ArtifactStore) -> None:
        info = await store.put_file("models/m1/model.bin", source)
        assert info == ArtifactInfo("models/m1/model.bin", len(data), sha(data))
        got = await store.get_to_file("models/m1/model.bin", dest, expected_sha256=info.sha256)
        assert got == info

    run(make_store, body)
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["model.bin"]  # no temp file left beside it


def test_put_existing_key_replaces_atomically(make_store: StoreFactory) -> None:
    async def body(store: ArtifactStore) -> None:
        await store.put_bytes("k", b"one")
        await store.put_bytes("k", b"one")  # identical content: fine
        info = await store.put_bytes("k", b"two")
        assert info.sha256 == sha(b"two")
        assert await store.get_bytes("k") == b"two"
        assert await store.list_keys() == ["k"]

    run(make_store, body)


def test_stat_and_exists(make_store: StoreFactory) -> None:
    async def body(store: ArtifactStore) -> None:
        assert not await store.exists("a/b.txt")
        await store.put_bytes("a/b.txt", b"xyz")
        assert await store.exists("a/b.txt")
        assert await store.stat("a/b.txt") == ArtifactInfo("a/b.txt", 3, sha(b"xyz"))
        assert not await store.exists("a")  # a "directory" is not a key
        with pytest.raises(ArtifactNotFound):
            await store.stat("a/missing.txt")

    run(make_store, body)


def test_missing_key_raises_not_found(make_store: StoreFactory, tmp_path: Path) -> None:
    dest = tmp_path / "dest.bin"

    async def body(store: ArtifactStore) -> None:
        with pytest.raises(ArtifactNotFound):
            await store.get_bytes("nope/x")
        with pytest.raises(ArtifactNotFound):
            await store.get_to_file("nope/x", dest)
        with pytest.raises(ArtifactNotFound):
            await anext(aiter(store.iter_chunks("nope/x")))

    run(make_store, body)
    assert not dest.exists()


def test_corrupted_expected_sha256(make_store: StoreFactory, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    wrong = sha(b"something else")

    async def body(store: ArtifactStore) -> None:
        await store.put_bytes("m/model.bin", b"real bytes")
        with pytest.raises(ArtifactCorrupted):
            await store.get_bytes("m/model.bin", expected_sha256=wrong)
        with pytest.raises(ArtifactCorrupted):
            await store.get_to_file("m/model.bin", out_dir / "model.bin", expected_sha256=wrong)

    run(make_store, body)
    assert list(out_dir.iterdir()) == []  # neither the file nor a temp file


def test_corrupted_download_keeps_existing_destination(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"previous good copy")

    async def body(store: ArtifactStore) -> None:
        await store.put_bytes("m", b"new")
        with pytest.raises(ArtifactCorrupted):
            await store.get_to_file("m", dest, expected_sha256="0" * 64)

    run(make_store, body)
    assert dest.read_bytes() == b"previous good copy"


def test_list_keys_prefix_sorted(make_store: StoreFactory) -> None:
    keys = ["b/2", "a/1", "a/10/x", "a/2", "ab", "c.txt"]

    async def body(store: ArtifactStore) -> None:
        for key in keys:
            await store.put_bytes(key, key.encode())
        assert await store.list_keys() == sorted(keys)
        assert await store.list_keys("a/") == ["a/1", "a/10/x", "a/2"]
        assert await store.list_keys("a") == ["a/1", "a/10/x", "a/2", "ab"]  # string prefix
        assert await store.list_keys("a/1") == ["a/1", "a/10/x"]
        assert await store.list_keys("zzz") == []
        with pytest.raises(InvalidArtifactKey):
            await store.list_keys("../")

    run(make_store, body)


def test_delete_is_idempotent(make_store: StoreFactory) -> None:
    async def body(store: ArtifactStore) -> None:
        await store.put_bytes("x/y", b"1")
        await store.put_bytes("x/z", b"2")
        await store.delete("x/y")
        await store.delete("x/y")
        await store.delete("never/existed")
        assert not await store.exists("x/y")
        assert await store.list_keys() == ["x/z"]

    run(make_store, body)


def test_delete_prefix(make_store: StoreFactory) -> None:
    async def body(store: ArtifactStore) -> None:
        for key in ["d/1", "d/2/a", "d/2/b", "dd", "e"]:
            await store.put_bytes(key, b".")
        assert await store.delete_prefix("d/") == 3
        assert await store.list_keys() == ["dd", "e"]
        assert await store.delete_prefix("d/") == 0
        assert await store.delete_prefix("") == 2
        assert await store.list_keys() == []

    run(make_store, body)


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", "a b", "", "x" * 600, "a/", "a/../b", "é"])
def test_invalid_keys_rejected(make_store: StoreFactory, tmp_path: Path, key: str) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"data")

    async def body(store: ArtifactStore) -> None:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.put_bytes(key, b"data"),
            lambda: store.put_file(key, source),
            lambda: store.get_bytes(key),
            lambda: store.get_to_file(key, tmp_path / "out"),
            lambda: store.stat(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
        ]
        for call in calls:
            with pytest.raises(InvalidArtifactKey):
                await call()
        with pytest.raises(InvalidArtifactKey):
            store.local_path(key)
        assert await store.list_keys() == []

    run(make_store, body)
    assert not (tmp_path / "out").exists()


def test_large_file_roundtrip(make_store: StoreFactory, tmp_path: Path) -> None:
    data = os.urandom(11 * MiB + 12345)  # above the (lowered) multipart threshold on S3
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    dest = tmp_path / "back.bin"

    async def body(store: ArtifactStore) -> None:
        info = await store.put_file("big/blob.bin", source)
        assert info == ArtifactInfo("big/blob.bin", len(data), sha(data))
        assert await store.stat("big/blob.bin") == info
        assert await store.get_to_file("big/blob.bin", dest, expected_sha256=info.sha256) == info

    run(make_store, body)
    assert dest.read_bytes() == data


def test_failing_put_leaves_nothing(make_store: StoreFactory, tmp_path: Path) -> None:
    async def body(store: ArtifactStore) -> None:
        with pytest.raises(FileNotFoundError):
            await store.put_file("ghost/file", tmp_path / "does-not-exist")
        assert not await store.exists("ghost/file")
        assert await store.list_keys() == []

    run(make_store, body)


def test_iter_chunks_streams_everything(make_store: StoreFactory) -> None:
    data = os.urandom(3 * MiB + 17)

    async def body(store: ArtifactStore) -> None:
        await store.put_bytes("stream/me", data)
        chunks = [c async for c in store.iter_chunks("stream/me", chunk_size=MiB)]
        assert b"".join(chunks) == data
        assert [len(c) for c in chunks] == [MiB, MiB, MiB, 17]
        small = [c async for c in store.iter_chunks("stream/me", chunk_size=1000)]
        assert b"".join(small) == data
        assert all(len(c) == 1000 for c in small[:-1])

    run(make_store, body)


def test_concurrent_puts(make_store: StoreFactory) -> None:
    async def body(store: ArtifactStore) -> None:
        infos = await asyncio.gather(
            *(store.put_bytes(f"many/{i:03d}", str(i).encode()) for i in range(20))
        )
        assert [i.key for i in infos] == [f"many/{i:03d}" for i in range(20)]
        assert await store.list_keys("many/") == [f"many/{i:03d}" for i in range(20)]

    run(make_store, body)


def test_description_and_local_path(make_store: StoreFactory) -> None:
    async def body(store: ArtifactStore) -> None:
        await store.put_bytes("p/q.bin", b"in place")
        path = store.local_path("p/q.bin")
        if isinstance(store, LocalArtifactStore):
            assert store.description.startswith("file:///")
            assert path is not None and path.read_bytes() == b"in place"
        else:
            assert store.description.startswith("s3://test-") and store.description.endswith("/runs/r1")
            assert path is None

    run(make_store, body)


# --------------------------------------------------------------------------- local only


def test_local_temp_files_never_listed(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)

    async def body() -> None:
        await store.put_bytes("a/real", b"1")
        # What a crash mid-write leaves behind: temp files, named so they can never be keys.
        (tmp_path / ".tmp~").mkdir(exist_ok=True)
        (tmp_path / ".tmp~" / ".real.abc.tmp~").write_bytes(b"half")
        (tmp_path / "a" / ".x.123.tmp~").write_bytes(b"half")
        assert await store.list_keys() == ["a/real"]
        assert await store.delete_prefix("") == 1

    asyncio.run(body())


def test_local_never_writes_outside_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    store = LocalArtifactStore(root)

    async def body() -> None:
        with pytest.raises(InvalidArtifactKey):
            await store.put_bytes("link/evil", b"x")
        assert await store.list_keys("link/") == []

    asyncio.run(body())
    assert list(outside.iterdir()) == []


def test_local_key_conflicting_with_directory(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)

    async def body() -> None:
        await store.put_bytes("a/b", b"1")
        with pytest.raises(ArtifactError):
            await store.put_bytes("a", b"2")
        with pytest.raises(ArtifactError):
            await store.put_bytes("a/b/c", b"3")
        assert await store.list_keys() == ["a/b"]

    asyncio.run(body())


# --------------------------------------------------------------------------- S3 only


def s3_store(endpoint: str, bucket: str, **kwargs: Any) -> S3ArtifactStore:
    return S3ArtifactStore(bucket, "pre", endpoint_url=endpoint, **CREDENTIALS, **kwargs)


def test_s3_large_file_uses_multipart_and_stores_sha256(moto_endpoint: str, tmp_path: Path) -> None:
    bucket = f"mp-{uuid.uuid4().hex[:16]}"
    data = os.urandom(11 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)

    async def body() -> None:
        async with s3_store(moto_endpoint, bucket, multipart_threshold=5 * MiB, part_size=5 * MiB) as store:
            await store.put_file("big", source)

    asyncio.run(body())
    head = boto3_client(moto_endpoint).head_object(Bucket=bucket, Key="pre/big")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["Metadata"]["sha256"] == sha(data)


def test_s3_failed_multipart_is_aborted(moto_endpoint: str, tmp_path: Path) -> None:
    bucket = f"abort-{uuid.uuid4().hex[:16]}"
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(11 * MiB))

    def fail_second_part(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2:
            raise ConnectionResetError("injected failure on part 2")

    async def body() -> None:
        async with s3_store(moto_endpoint, bucket, multipart_threshold=5 * MiB, part_size=5 * MiB) as store:
            client = await store._get_client()  # the test reaches in only to inject a fault
            client.meta.events.register("provide-client-params.s3.UploadPart", fail_second_part)
            with pytest.raises((ArtifactError, ConnectionResetError)):
                await store.put_file("big", source)
            assert not await store.exists("big")
            assert await store.list_keys() == []

    asyncio.run(body())
    assert boto3_client(moto_endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3_construction_connects_to_nothing() -> None:
    store = S3ArtifactStore("bucket", endpoint_url="http://127.0.0.1:9", **CREDENTIALS)
    assert store.description == "s3://bucket"
    asyncio.run(store.close())


def test_s3_unreachable_endpoint_raises_artifact_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def body() -> None:
        async with S3ArtifactStore("b", endpoint_url=f"http://127.0.0.1:{port}", **CREDENTIALS) as store:
            store.retry_attempts = 1
            with pytest.raises(ArtifactError):
                await store.exists("k")

    asyncio.run(body())


# --------------------------------------------------------------------------- URLs (pure)


def test_open_artifact_store_urls(tmp_path: Path) -> None:
    local = open_artifact_store(f"file://{tmp_path}")
    assert isinstance(local, LocalArtifactStore) and local.root == tmp_path.resolve()
    assert local.description == tmp_path.resolve().as_uri()
    plain = open_artifact_store(str(tmp_path / "plain"))
    assert isinstance(plain, LocalArtifactStore) and plain.root == (tmp_path / "plain").resolve()

    s3 = open_artifact_store(
        "s3://my-bucket/some/prefix/", endpoint_url="http://minio:9000", **CREDENTIALS
    )
    assert isinstance(s3, S3ArtifactStore)
    assert s3.description == "s3://my-bucket/some/prefix"
    assert s3.local_path("k") is None
    assert open_artifact_store("s3://my-bucket").description == "s3://my-bucket"


@pytest.mark.parametrize(
    "url",
    ["", "   ", "http://example.com/x", "gs://bucket/x", "s3://", "s3:///prefix",
     "s3://Bad_Bucket/x", "s3://bucket/../x", "s3://bucket/a b", "file://host/x", "s3://b1/x?y=1"],
)
def test_open_artifact_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_artifact_store(url)
