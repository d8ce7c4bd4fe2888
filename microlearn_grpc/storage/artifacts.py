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

from pathlib import Path
from urllib.parse import unquote, urlsplit

from microlearn_grpc.storage._artifact_base import (
    _BUCKET,
    MAX_KEY_LENGTH,
    ArtifactCorrupted,
    ArtifactError,
    ArtifactInfo,
    ArtifactNotFound,
    ArtifactStore,
    InvalidArtifactKey,
    validate_key,
    validate_prefix,
)
from microlearn_grpc.storage._local_artifacts import LocalArtifactStore
from microlearn_grpc.storage._s3_artifacts import S3ArtifactStore

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
