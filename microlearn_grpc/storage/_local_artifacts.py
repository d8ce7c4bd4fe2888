"""LocalArtifactStore: artifacts as files under a root directory, written atomically."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from microlearn_grpc.storage._artifact_base import (  # noqa: F401
    _COPY_BUFFER, _LOCAL_TMP_DIR, _SEGMENT, _TMP_SUFFIX, ArtifactError, ArtifactInfo, ArtifactNotFound, ArtifactStore,
    InvalidArtifactKey, _check_expected, _is_valid_key, validate_key, validate_prefix,
)


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
