"""gRPC status codes → HTTP statuses and the JSON error body, in one place.

The body mirrors Google's REST APIs (`google.rpc.Status` as JSON)::

    {"error": {"code": 404, "status": "NOT_FOUND", "message": "<the gRPC details>"}}

Choices that differ from the plain AIP-193 table, and why:

- FAILED_PRECONDITION → 409, not 400: the request was well formed but the resource's state
  refuses it (delete while referenced), which is what 409 Conflict tells a REST client.
- RESOURCE_EXHAUSTED → 413 on the upload route, else 429: every limit UploadDataset can hit
  is a limit on the uploaded content (size, decompressed size, columns, row length), so
  retrying later will not help; elsewhere it is a quota and 429 invites a retry.
- CANCELLED → 499 (nginx's "client closed request"): only seen when the caller went away.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import grpc

__all__ = ["HTTP_STATUS", "UPLOAD_TOO_LARGE", "GatewayError", "error_body", "http_status", "status_name"]

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
}

UPLOAD_TOO_LARGE = 413


def http_status(code: grpc.StatusCode, *, upload: bool = False) -> int:
    """The HTTP status for a gRPC code; `upload` selects 413 for RESOURCE_EXHAUSTED."""
    if upload and code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return UPLOAD_TOO_LARGE
    return HTTP_STATUS.get(code, 500)


# The reverse direction, for statuses the gateway's HTTP layer produces itself (unknown route, bad query).
_CANONICAL_NAME = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                   413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
                   501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def status_name(http: int) -> str:
    """A status name for an HTTP status: the canonical code it maps from, else the HTTP phrase (405)."""
    if http in _CANONICAL_NAME:
        return _CANONICAL_NAME[http]
    try:
        return HTTPStatus(http).name
    except ValueError:
        return "UNKNOWN"


def error_body(http: int, status: str, message: str) -> dict[str, Any]:
    """The JSON error body: `{"error": {"code", "status", "message"}}`."""
    return {"error": {"code": http, "status": status, "message": message}}


class GatewayError(Exception):
    """A request the gateway itself refuses (or gives up on) before or instead of a gRPC answer.

    Carries the canonical gRPC code it stands for, so the body looks like a relayed error.
    """

    def __init__(self, code: grpc.StatusCode, message: str, *, http: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http = http if http is not None else http_status(code)
