"""S3ArtifactStore: artifacts in an S3 bucket (AWS, MinIO, any S3 API) via aiobotocore."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from microlearn_grpc.storage._artifact_base import (  # noqa: F401
    _COPY_BUFFER, MiB, ArtifactError, ArtifactInfo, ArtifactNotFound, ArtifactStore,
    InvalidArtifactKey, _check_expected, _is_valid_key, validate_key, validate_prefix,
)
from microlearn_grpc.storage._local_artifacts import _AtomicFile, _hash_file


# --------------------------------------------------------------------------- S3


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class S3ArtifactStore(ArtifactStore):
    """Artifacts as objects under ``s3://bucket/prefix/``; SHA-256 kept as user metadata.

    The client is created on first use (and the bucket with it, if missing). Files above
    `multipart_threshold` go up in `part_size` parts read from disk, at most
    `max_concurrency` parts in memory/in flight; any failure aborts the upload so no
    partial object remains.
    """

    multipart_threshold: int = 16 * MiB
    part_size: int = 16 * MiB
    max_concurrency: int = 4
    retry_attempts: int = 5
    _METADATA_SHA256 = "sha256"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        multipart_threshold: int | None = None,
        part_size: int | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3 bucket name is empty")
        prefix = prefix.strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except InvalidArtifactKey as exc:
                raise ValueError(f"invalid S3 prefix {prefix!r}: {exc}") from None
        self._bucket = bucket
        self._prefix = prefix + "/" if prefix else ""
        self._endpoint_url = endpoint_url
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        if multipart_threshold is not None:
            self.multipart_threshold = multipart_threshold
        if part_size is not None:
            self.part_size = part_size
        if self.part_size < 5 * MiB:
            raise ValueError("S3 multipart part_size must be at least 5 MiB")
        self._client: Any = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._client_lock = asyncio.Lock()

    @property
    def description(self) -> str:
        return f"s3://{self._bucket}/{self._prefix.rstrip('/')}".rstrip("/")

    @property
    def bucket(self) -> str:
        return self._bucket

    def local_path(self, key: str) -> Path | None:
        validate_key(key)
        return None

    def _object_key(self, key: str) -> str:
        return self._prefix + validate_key(key)

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                from aiobotocore.config import AioConfig  # heavy; only stores that are used pay
                from aiobotocore.session import get_session

                config = AioConfig(
                    # Plain PUTs with Content-MD5 work on every S3-compatible server; the
                    # CRC trailers newer botocore adds by default do not.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    s3={"addressing_style": "path"} if self._endpoint_url else None,
                    retries={"max_attempts": self.retry_attempts, "mode": "standard"},
                )
                stack = contextlib.AsyncExitStack()
                try:
                    client = await stack.enter_async_context(
                        get_session().create_client(
                            "s3",
                            endpoint_url=self._endpoint_url,
                            region_name=self._region,
                            aws_access_key_id=self._access_key_id,
                            aws_secret_access_key=self._secret_access_key,
                            config=config,
                        )
                    )
                    with self._errors("bucket " + self._bucket):
                        await self._ensure_bucket(client)
                except BaseException:
                    await stack.aclose()
                    raise
                self._client, self._exit_stack = client, stack
        return self._client

    async def _ensure_bucket(self, client: Any) -> None:
        from botocore.exceptions import ClientError

        try:
            await client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("403", "AccessDenied"):
                return  # credentials may still allow object access; let real calls decide
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kwargs: dict[str, Any] = {"Bucket": self._bucket}
        if self._region and self._region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            await client.create_bucket(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ArtifactNotFound(
                    f"artifact {key!r} not found in {self.description}"
                ) from None
            raise ArtifactError(f"S3 error for {key!r} in {self.description}: {exc}") from exc
        except BotoCoreError as exc:
            raise ArtifactError(f"S3 error for {key!r} in {self.description}: {exc}") from exc

    async def put_bytes(self, key: str, data: bytes) -> ArtifactInfo:
        object_key = self._object_key(key)
        data = bytes(data)
        sha256, md5 = await asyncio.to_thread(
            lambda: (hashlib.sha256(data).hexdigest(), _md5_b64(data))
        )
        client = await self._get_client()
        with self._errors(key):
            await client.put_object(
                Bucket=self._bucket,
                Key=object_key,
                Body=data,
                ContentMD5=md5,
                Metadata={self._METADATA_SHA256: sha256},
            )
        return ArtifactInfo(key, len(data), sha256)

    async def put_file(self, key: str, path: Path) -> ArtifactInfo:
        object_key = self._object_key(key)
        path = Path(path)
        size = (await asyncio.to_thread(path.stat)).st_size
        if size <= self.multipart_threshold:
            return await self.put_bytes(key, await asyncio.to_thread(path.read_bytes))
        # Metadata must be known when the upload starts, so hash first; the upload hashes
        # again and refuses to complete if the file changed in between.
        size, sha256 = await asyncio.to_thread(_hash_file, path)
        client = await self._get_client()
        with self._errors(key):
            created = await client.create_multipart_upload(
                Bucket=self._bucket, Key=object_key, Metadata={self._METADATA_SHA256: sha256}
            )
        upload_id = created["UploadId"]
        try:
            with self._errors(key):
                parts, uploaded_sha256 = await self._upload_parts(
                    client, object_key, upload_id, path
                )
                if uploaded_sha256 != sha256:
                    raise ArtifactError(f"{path} changed while it was uploaded as {key!r}")
                await client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=object_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(
                    Bucket=self._bucket, Key=object_key, UploadId=upload_id
                )
            raise
        return ArtifactInfo(key, size, sha256)

    async def _upload_parts(
        self, client: Any, object_key: str, upload_id: str, path: Path
    ) -> tuple[list[dict[str, Any]], str]:
        slots = asyncio.Semaphore(self.max_concurrency)
        etags: dict[int, str] = {}
        digest = hashlib.sha256()

        def read_part(source: BinaryIO) -> tuple[bytes, str]:
            data = source.read(self.part_size)
            digest.update(data)
            return data, _md5_b64(data)

        async def upload(number: int, data: bytes, md5: str) -> None:
            try:
                response = await client.upload_part(
                    Bucket=self._bucket,
                    Key=object_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentMD5=md5,
                )
                etags[number] = response["ETag"]
            finally:
                slots.release()

        source = await asyncio.to_thread(open, path, "rb")
        try:
            async with asyncio.TaskGroup() as group:
                number = 0
                while True:
                    await slots.acquire()
                    data, md5 = await asyncio.to_thread(read_part, source)
                    if not data:
                        slots.release()
                        break
                    number += 1
                    group.create_task(upload(number, data, md5))
        except BaseExceptionGroup as group_error:
            # Callers (and _errors) expect the underlying error, not a group.
            leaf: BaseException = group_error
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            raise leaf from None
        finally:
            source.close()
        parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
        return parts, digest.hexdigest()

    async def _open_body(self, key: str) -> Any:
        object_key = self._object_key(key)
        client = await self._get_client()
        with self._errors(key):
            response = await client.get_object(Bucket=self._bucket, Key=object_key)
        return response["Body"]

    async def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        body = await self._open_body(key)
        async with body:
            buffer = bytearray()
            while True:
                with self._errors(key):
                    # The HTTP stream hands out whatever arrived; regroup into full chunks.
                    data = await body.read(chunk_size - len(buffer))
                if not data:
                    break
                buffer += data
                if len(buffer) >= chunk_size:
                    yield bytes(buffer)
                    buffer.clear()
            if buffer:
                yield bytes(buffer)

    async def get_bytes(self, key: str, expected_sha256: str | None = None) -> bytes:
        body = await self._open_body(key)
        async with body:
            with self._errors(key):
                data = await body.read()
        sha256 = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        _check_expected(key, sha256, expected_sha256)
        return data

    async def get_to_file(
        self, key: str, path: Path, expected_sha256: str | None = None
    ) -> ArtifactInfo:
        body = await self._open_body(key)
        async with body:
            atomic = await asyncio.to_thread(_AtomicFile, Path(path))
            try:
                while True:
                    with self._errors(key):
                        data = await body.read(_COPY_BUFFER)
                    if not data:
                        break
                    await asyncio.to_thread(atomic.write, data)
                _check_expected(key, atomic.sha256, expected_sha256)
                await asyncio.to_thread(atomic.commit)
            except BaseException:
                await asyncio.to_thread(atomic.discard)
                raise
        return ArtifactInfo(key, atomic.size, atomic.sha256)

    async def stat(self, key: str) -> ArtifactInfo:
        object_key = self._object_key(key)
        client = await self._get_client()
        with self._errors(key):
            head = await client.head_object(Bucket=self._bucket, Key=object_key)
        sha256 = head.get("Metadata", {}).get(self._METADATA_SHA256)
        if not sha256:  # written by another tool: compute it
            digest = hashlib.sha256()
            async for chunk in self.iter_chunks(key):
                digest.update(chunk)
            sha256 = digest.hexdigest()
        return ArtifactInfo(key, int(head["ContentLength"]), sha256)

    async def exists(self, key: str) -> bool:
        object_key = self._object_key(key)
        client = await self._get_client()
        try:
            with self._errors(key):
                await client.head_object(Bucket=self._bucket, Key=object_key)
        except ArtifactNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        client = await self._get_client()
        with self._errors(key):
            await client.delete_object(Bucket=self._bucket, Key=object_key)

    async def list_keys(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        client = await self._get_client()
        keys = []
        with self._errors(prefix):
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix + prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self._prefix) :]
                    if _is_valid_key(key):  # objects other tools wrote may break the rules
                        keys.append(key)
        return sorted(keys)

    async def delete_prefix(self, prefix: str) -> int:
        keys = await self.list_keys(prefix)
        client = await self._get_client()
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            with self._errors(prefix):
                response = await client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": self._prefix + k} for k in batch], "Quiet": True},
                )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise ArtifactError(
                    f"S3 refused to delete {len(response['Errors'])} objects under {prefix!r}, "
                    f"first {first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                )
        return len(keys)

    async def close(self) -> None:
        stack, self._client, self._exit_stack = self._exit_stack, None, None
        if stack is not None:
            await stack.aclose()
