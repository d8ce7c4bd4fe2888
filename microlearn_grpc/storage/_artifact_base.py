"""The artifact store interface, its errors and the key rules (re-exported by artifacts.py)."""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

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
