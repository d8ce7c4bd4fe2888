"""Artifact store: immutable, SHA-256-verified blobs under validated keys.

One interface (`ArtifactStore`), two backends (`LocalArtifactStore` for a directory,
`S3ArtifactStore` for S3/MinIO via aiobotocore), one contract suite
(tests/integration/test_artifact_store.py) that both must pass.

Errors::

    ArtifactError                 base; also wraps backend failures (S3 errors, key conflicts)
    ├── ArtifactNotFound          the key does not exist
    ├── ArtifactCorrupted         content does not match the expected SHA-256
    └── InvalidArtifactKey        (also a ValueError) the key breaks the key rules

Semantics shared by every backend:

* Keys are relative, '/'-separated segments of ``[A-Za-z0-9._-]+`` with no ``.``/``..``
  segment, at most 512 characters (`validate_key`). Prefixes for listing/deleting are
  plain string prefixes, like S3's.
* Writes are atomic: readers see the old object or the new one, never a half-written one.
  Putting an existing key replaces it atomically (identical content is a harmless no-op
  in effect). Artifacts are immutable by convention: callers use content-addressed or
  versioned keys, the store does not refuse overwrites.
* `get_*` verifies SHA-256 when `expected_sha256` is given; a mismatch raises
  `ArtifactCorrupted` and leaves no output file (an existing destination is untouched).
* A store instance belongs to one event loop; blocking file I/O runs in threads.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

__all__ = [
    "ArtifactCorrupted",
    "ArtifactError",
    "ArtifactInfo",
    "ArtifactNotFound",
    "ArtifactStore",
    "InvalidArtifactKey",
    "LocalArtifactStore",
    "MAX_KEY_LENGTH",
    "S3ArtifactStore",
    "open_artifact_store",
    "validate_key",
    "validate_prefix",
]

MiB = 1 << 20
MAX_KEY_LENGTH = 512
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_PARTIAL_SEGMENT = re.compile(r"[A-Za-z0-9._-]*")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_COPY_BUFFER = 1 * MiB
# '~' is not a key character, so temp files can never collide with or be listed as keys.
_TMP_SUFFIX = ".tmp~"
_LOCAL_TMP_DIR = ".tmp~"


@dataclass(frozen=True)
class ArtifactInfo:
    key: str
    size: int
    sha256: str  # lowercase hex


class ArtifactError(Exception):
    """Base class for artifact store failures."""


class ArtifactNotFound(ArtifactError):
    """The key does not exist in the store."""


class ArtifactCorrupted(ArtifactError):
    """The content's SHA-256 differs from the expected one."""


class InvalidArtifactKey(ArtifactError, ValueError):
    """The key (or prefix) breaks the key rules."""


def validate_key(key: str) -> str:
    """Return `key` if it is a valid artifact key, else raise `InvalidArtifactKey`."""
    if not isinstance(key, str):
        raise InvalidArtifactKey(f"artifact key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidArtifactKey("artifact key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArtifactKey(f"artifact key is longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise InvalidArtifactKey(f"artifact key must be relative: {key!r}")
    for segment in key.split("/"):
        if not segment:
            raise InvalidArtifactKey(f"artifact key has an empty segment: {key!r}")
        if segment in (".", ".."):
            raise InvalidArtifactKey(f"artifact key has a '.' or '..' segment: {key!r}")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidArtifactKey(
                f"artifact key segment {segment!r} may only use A-Z a-z 0-9 . _ -: {key!r}"
            )
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it can start a valid key ('' matches everything)."""
    if not isinstance(prefix, str):
        raise InvalidArtifactKey(f"artifact prefix must be a str, not {type(prefix).__name__}")
    if not prefix:
        return prefix
    if len(prefix) > MAX_KEY_LENGTH or prefix.startswith("/"):
        raise InvalidArtifactKey(f"invalid artifact prefix: {prefix!r}")
    head, _, tail = prefix.rpartition("/")
    try:
        if head:
            validate_key(head)
    except InvalidArtifactKey as exc:
        raise InvalidArtifactKey(f"invalid artifact prefix {prefix!r}: {exc}") from None
    if not _PARTIAL_SEGMENT.fullmatch(tail):
        raise InvalidArtifactKey(f"invalid artifact prefix: {prefix!r}")
    return prefix


def _is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidArtifactKey:
        return False
    return True


def _check_expected(key: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected.lower():
        raise ArtifactCorrupted(
            f"artifact {key!r} has sha256 {actual}, expected {expected.lower()}"
        )


class ArtifactStore(abc.ABC):
    """Where datasets and models live. See the module docstring for the contract."""

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """Where the store points, as a URL: ``file:///abs/dir`` or ``s3://bucket/prefix``."""

    @abc.abstractmethod
    async def put_file(self, key: str, path: Path) -> ArtifactInfo:
        """Copy a local file in atomically; a missing `path` raises FileNotFoundError."""

    @abc.abstractmethod
    async def put_bytes(self, key: str, data: bytes) -> ArtifactInfo: ...

    @abc.abstractmethod
    async def get_to_file(
        self, key: str, path: Path, expected_sha256: str | None = None
    ) -> ArtifactInfo:
        """Download to `path` atomically (temp file + rename), creating parent dirs."""

    @abc.abstractmethod
    async def get_bytes(self, key: str, expected_sha256: str | None = None) -> bytes: ...

    @abc.abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Stream the content in chunks of `chunk_size` (the last may be shorter).

        `ArtifactNotFound` is raised on the first iteration, not at the call.
        """

    @abc.abstractmethod
    async def stat(self, key: str) -> ArtifactInfo: ...

    @abc.abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the key; deleting a missing key is not an error."""

    @abc.abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with `prefix`; return how many were removed."""

    @abc.abstractmethod
    async def list_keys(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix` (a string prefix, like S3's), sorted."""

    @abc.abstractmethod
    def local_path(self, key: str) -> Path | None:
        """A path readers may open in place (local store), or None (remote stores)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> ArtifactStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


# --------------------------------------------------------------------------- local files


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform/filesystem allows it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _AtomicFile:
    """A hashed temp file that becomes `dest` only on `commit` (blocking; use in a thread)."""

    def __init__(self, dest: Path, tmp_dir: Path | None = None) -> None:
        self.dest = dest
        tmp_dir = tmp_dir if tmp_dir is not None else dest.parent
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp_dir / f".{dest.name[:64]}.{uuid.uuid4().hex}{_TMP_SUFFIX}"
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def copy_from(self, source: BinaryIO) -> None:
        while chunk := source.read(_COPY_BUFFER):
            self.write(chunk)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        # A concurrent delete may prune the (empty) parent between mkdir and replace.
        for attempt in range(3):
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(self.tmp, self.dest)
                break
            except FileNotFoundError:
                if attempt == 2 or not self.tmp.exists():
                    raise
        _fsync_dir(self.dest.parent)

    def discard(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    @classmethod
    @contextlib.contextmanager
    def open(cls, dest: Path, tmp_dir: Path | None = None) -> Iterator[_AtomicFile]:
        atomic = cls(dest, tmp_dir)
        try:
            yield atomic
        except BaseException:
            atomic.discard()
            raise


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_COPY_BUFFER):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class LocalArtifactStore(ArtifactStore):
    """Artifacts as files under `root`; temp files live in ``root/.tmp~`` (never listed)."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root).expanduser().resolve()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def description(self) -> str:
        return self._root.as_uri()

    def _path(self, key: str) -> Path:
        path = self._root / validate_key(key)
        # Keys cannot contain '..', but a symlink inside root could still point outside.
        if not path.resolve().is_relative_to(self._root):
            raise InvalidArtifactKey(f"artifact key {key!r} resolves outside the store root")
        return path

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    @contextlib.contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArtifactNotFound(f"artifact {key!r} not found in {self.description}") from None

    def _write(self, key: str, fill: Callable[[_AtomicFile], None]) -> ArtifactInfo:
        dest = self._path(key)
        with _AtomicFile.open(dest, self._root / _LOCAL_TMP_DIR) as atomic:
            fill(atomic)
            try:
                atomic.commit()
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                raise ArtifactError(
                    f"artifact key {key!r} conflicts with an existing key or directory "
                    f"in {self.description}"
                ) from exc
            return ArtifactInfo(key, atomic.size, atomic.sha256)

    async def put_file(self, key: str, path: Path) -> ArtifactInfo:
        def fill(atomic: _AtomicFile) -> None:
            with open(path, "rb") as source:
                atomic.copy_from(source)

        return await asyncio.to_thread(self._write, key, fill)

    async def put_bytes(self, key: str, data: bytes) -> ArtifactInfo:
        return await asyncio.to_thread(self._write, key, lambda atomic: atomic.write(data))

    def _get_to_file(self, key: str, path: Path, expected: str | None) -> ArtifactInfo:
        source_path = self._path(key)
        with self._reading(key):
            source = open(source_path, "rb")
        with source, _AtomicFile.open(Path(path)) as atomic:
            atomic.copy_from(source)
            _check_expected(key, atomic.sha256, expected)
            atomic.commit()
            return ArtifactInfo(key, atomic.size, atomic.sha256)

    async def get_to_file(
        self, key: str, path: Path, expected_sha256: str | None = None
    ) -> ArtifactInfo:
        return await asyncio.to_thread(self._get_to_file, key, path, expected_sha256)

    def _get_bytes(self, key: str, expected: str | None) -> bytes:
        path = self._path(key)
        with self._reading(key):
            data = path.read_bytes()
        _check_expected(key, hashlib.sha256(data).hexdigest(), expected)
        return data

    async def get_bytes(self, key: str, expected_sha256: str | None = None) -> bytes:
        return await asyncio.to_thread(self._get_bytes, key, expected_sha256)

    async def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        path = self._path(key)
        with self._reading(key):
            source = await asyncio.to_thread(open, path, "rb")
        try:
            while chunk := await asyncio.to_thread(source.read, chunk_size):
                yield chunk
        finally:
            source.close()

    def _stat(self, key: str) -> ArtifactInfo:
        path = self._path(key)
        with self._reading(key):
            size, sha256 = _hash_file(path)
        return ArtifactInfo(key, size, sha256)

    async def stat(self, key: str) -> ArtifactInfo:
        return await asyncio.to_thread(self._stat, key)

    async def exists(self, key: str) -> bool:
        path = self._path(key)
        return await asyncio.to_thread(path.is_file)

    def _delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except IsADirectoryError:  # a "directory" of other keys is not this key
            return False
        # Prune now-empty directories so deleted prefixes do not leave trees behind.
        parent = path.parent
        while parent != self._root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        return True

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    def _list_keys(self, prefix: str) -> list[str]:
        head = validate_prefix(prefix).rpartition("/")[0]
        start = self._root / head if head else self._root
        if not start.resolve().is_relative_to(self._root):
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(self._root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            # Skips the temp dir (and anything else that cannot be a key) without descending.
            dirnames[:] = [d for d in dirnames if _SEGMENT.fullmatch(d)]
            for name in filenames:
                key = rel_dir + name
                if key.startswith(prefix) and _is_valid_key(key):
                    keys.append(key)
        return sorted(keys)

    async def list_keys(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._list_keys, prefix)

    async def delete_prefix(self, prefix: str) -> int:
        def delete_all() -> int:
            return sum(self._delete(key) for key in self._list_keys(prefix))

        return await asyncio.to_thread(delete_all)

    async def close(self) -> None:
        return None


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


# --------------------------------------------------------------------------- factory

_URL_FORMS = "file:///absolute/dir, a plain filesystem path, or s3://bucket/optional/prefix"


def open_artifact_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> ArtifactStore:
    """Build the store a URL names; nothing is created or connected until first use."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"artifact store URL is empty; expected {_URL_FORMS}")
    if "://" not in url:
        return LocalArtifactStore(Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise ValueError(f"artifact store URL {url!r} must not have a query or fragment")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"file URL {url!r} names host {parts.netloc!r}; use file:///absolute/dir"
            )
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"file URL {url!r} needs an absolute path: file:///absolute/dir")
        return LocalArtifactStore(Path(path))
    if scheme == "s3":
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(f"S3 URL {url!r} has no valid bucket name; expected s3://bucket/prefix")
        return S3ArtifactStore(
            bucket,
            unquote(parts.path).strip("/"),
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
    raise ValueError(f"unsupported artifact store URL {url!r}; expected {_URL_FORMS}")
