"""Streaming an HTTP request body into UploadDataset without holding it: size cap, multipart, 1 MiB
chunks, and the gRPC client-stream details that go with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway._errors import UPLOAD_TOO_LARGE, GatewayError

__all__ = ["CHUNK_BYTES", "StatusLog", "capped", "multipart_file", "rechunk", "too_large", "write"]

# What the SDK sends too: big enough to keep per-message overhead low, far under the 64 MiB cap.
CHUNK_BYTES = 1 << 20

FILE_FIELD = "file"


def too_large(limit: int) -> GatewayError:
    return GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"the request body is larger than the gateway's upload limit of {limit} bytes",
                        http=UPLOAD_TOO_LARGE)


def bad_upload(message: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, message)


async def capped(body: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """Passes the body through and fails as soon as it grows past `limit` bytes."""
    total = 0
    async for piece in body:
        total += len(piece)
        if total > limit:
            raise too_large(limit)
        yield piece


async def rechunk(pieces: AsyncIterator[bytes], size: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
    """Regroups arbitrary pieces into `size`-byte chunks (the last one shorter); holds at most one chunk."""
    buffer = bytearray()
    async for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class _FilePart:
    """python-multipart callbacks that keep only the bytes of the `file` part."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.found = self.ended = self.in_file = False
        self._headers: dict[bytes, bytes] = {}
        self._field = self._value = b""

    def callbacks(self) -> dict:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end, "on_end": self._end}

    def _part_begin(self) -> None:
        self._headers = {}
        self._field = self._value = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") == FILE_FIELD.encode():
            if self.found:
                raise bad_upload(f"multipart/form-data has more than one {FILE_FIELD!r} field")
            self.found = self.in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.out.append(data[start:end])

    def _part_end(self) -> None:
        self.in_file = False

    def _end(self) -> None:
        self.ended = True


async def multipart_file(body: AsyncIterator[bytes], content_type: str) -> AsyncIterator[bytes]:
    """The content of the `file` field of a multipart/form-data body, as it streams in.

    Other fields are skipped. A body without a `file` field or cut off before its closing
    boundary fails (after the fact, which cancels the upload so nothing is stored).
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise bad_upload("multipart/form-data without a boundary parameter in Content-Type")
    part = _FilePart()
    try:
        parser = MultipartParser(boundary, part.callbacks())
    except Exception as exc:  # an absurd boundary
        raise bad_upload(f"multipart/form-data: {exc}") from None
    async for piece in body:
        try:
            parser.write(piece)
        except GatewayError:
            raise
        except Exception as exc:  # python-multipart's parse errors
            raise bad_upload(f"malformed multipart/form-data body: {exc}") from None
        for data in part.out:
            yield data
        part.out.clear()
    if not part.found:
        raise bad_upload(f"multipart/form-data body has no {FILE_FIELD!r} field")
    if not part.ended:
        raise bad_upload("multipart/form-data body ended before its closing boundary")


# ------------------------------------------------------------------ the gRPC client stream

async def write(call: Any, message: Message) -> None:
    """One message of a client stream; if the service already answered, raises its error instead."""
    try:
        await call.write(message)
    except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
        await call  # the service already answered (it rejected the upload early): raise that
        raise


_CODES = {code.value[0]: code for code in grpc.StatusCode}
_CORE_WRITE_FAILURE = "Internal error from Core"


class StatusLog:
    """Every status a streaming call settles with, to recover the one the service sent.

    When the service rejects an upload early while a write is in flight, grpc.aio (1.85) can
    report the failed write's generic INTERNAL "Internal error from Core" instead of the status the
    service sent. The call's done callback still sees the service's status when the call first
    settles, so record every status it reports and prefer the last real one.
    """

    def __init__(self, call: Any) -> None:
        self._seen: list[tuple[grpc.StatusCode, str]] = []
        call.add_done_callback(self._record)

    def _record(self, call: Any) -> None:
        status = getattr(getattr(call, "_cython_call", None), "_status", None)  # private, hence getattr
        if status is not None and status.code() in _CODES:
            self._seen.append((_CODES[status.code()], status.details() or ""))

    def from_service(self) -> tuple[grpc.StatusCode, str] | None:
        real = [s for s in self._seen if s != (grpc.StatusCode.INTERNAL, _CORE_WRITE_FAILURE)]
        return real[-1] if real else None
