"""Shared pieces of the ingest pipeline: the error type, the limits, the source formats."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["IngestError", "IngestLimits", "SourceFormat", "human_bytes"]

MiB = 1 << 20
GiB = 1 << 30


class IngestError(Exception):
    """An upload that cannot be accepted.

    `kind` is ``"invalid"`` (the bytes are wrong: gRPC INVALID_ARGUMENT) or ``"limit"`` (the
    bytes are too big or too many: RESOURCE_EXHAUSTED). The message says what is wrong and
    where (line, row, column or byte offset), in words a person can act on.
    """

    KINDS = ("invalid", "limit")

    def __init__(self, kind: str, message: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"IngestError kind must be one of {self.KINDS}, not {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"IngestError({self.kind!r}, {self.message!r})"


@dataclass(frozen=True)
class IngestLimits:
    """Caps that keep one upload from exhausting the server."""

    max_upload_bytes: int = 2 * GiB  # raw bytes received, compressed or not
    max_decompressed_bytes: int = 4 * GiB
    max_columns: int = 2000
    max_compression_ratio: float = 200.0
    # Below this many decompressed bytes the ratio is not checked: a tiny gzip of a very
    # repetitive small table legitimately expands a few hundred times and harms nobody.
    ratio_check_min_bytes: int = 16 * MiB


class SourceFormat(enum.Enum):
    """The table formats an upload may be in (after any gzip/zip layer)."""

    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"

    @property
    def label(self) -> str:
        return {"csv": "CSV", "parquet": "Parquet", "jsonl": "JSON lines"}[self.value]


def human_bytes(n: int) -> str:
    """`2147483648` -> `2 GiB`, `1536` -> `1.5 KiB`, for messages."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "bytes":
                return f"{int(value)} bytes"
            return f"{value:.1f}".rstrip("0").rstrip(".") + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Restart(Exception):
    """Raised by a source when it learned the column types must change: write again from the start."""
