"""Typed SDK errors: every failed gRPC call surfaces as one of these, never a raw RpcError.

The hierarchy, by the canonical status code the server answered with:

* MicroLearnError          - any failed call; `.code` (grpc.StatusCode), `.details` (server text)
    + InvalidArgument      - INVALID_ARGUMENT: the request (or the uploaded file, or a recipe) is malformed
    + NotFound             - NOT_FOUND: no such dataset, name or version
    + AlreadyExists        - ALREADY_EXISTS
    + FailedPrecondition   - FAILED_PRECONDITION: for example deleting a dataset still referenced
    + ResourceExhausted    - RESOURCE_EXHAUSTED: a size or rate limit was hit
    + Unauthenticated      - UNAUTHENTICATED: missing or wrong token (MICROLEARN_TOKEN)
    + PermissionDenied     - PERMISSION_DENIED
    + Unavailable          - UNAVAILABLE: the server cannot be reached (or is shutting down)
    + DeadlineExceeded     - DEADLINE_EXCEEDED: the call outlived the client's timeout
    + Cancelled            - CANCELLED
    + Unimplemented        - UNIMPLEMENTED: the server does not offer this RPC
    + Internal             - INTERNAL: a server bug; the details say what failed

Any other code (UNKNOWN, ABORTED, OUT_OF_RANGE, DATA_LOSS) raises the base class itself.
Arguments the SDK can reject without asking the server raise ValueError/TypeError instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "MicroLearnError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
]


class MicroLearnError(Exception):
    """A MicroLearn call failed; `str(err)` reads like ``"NOT_FOUND: dataset 'x' not found"``."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(f"{code.name}: {details}" if details else code.name)

    def __reduce__(self):  # keep errors picklable (multiprocessing, pytest-xdist)
        return (self.__class__, (self.code, self.details))


class InvalidArgument(MicroLearnError):
    """The request, the uploaded bytes or the recipe was rejected as malformed."""


class NotFound(MicroLearnError):
    """The named resource does not exist."""


class AlreadyExists(MicroLearnError):
    """The resource to create already exists."""


class FailedPrecondition(MicroLearnError):
    """The system is not in a state that allows the call (for example a referenced dataset)."""


class ResourceExhausted(MicroLearnError):
    """A size, quota or rate limit was hit."""


class Unauthenticated(MicroLearnError):
    """The call carried no token, or a wrong one."""


class PermissionDenied(MicroLearnError):
    """The token is valid but not allowed to do this."""


class Unavailable(MicroLearnError):
    """The server could not be reached, or is not serving right now."""


class DeadlineExceeded(MicroLearnError):
    """The call did not finish within the client's timeout."""


class Cancelled(MicroLearnError):
    """The call was cancelled."""


class Unimplemented(MicroLearnError):
    """The server does not implement this RPC."""


class Internal(MicroLearnError):
    """The server failed while handling the call."""


_BY_CODE: dict[grpc.StatusCode, type[MicroLearnError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
}


def from_rpc_error(error: grpc.RpcError) -> MicroLearnError:
    """The typed error for a failed call (sync `grpc.Call` or `grpc.aio.AioRpcError`)."""
    code_fn = getattr(error, "code", None)
    details_fn = getattr(error, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return _BY_CODE.get(code, MicroLearnError)(code, details or "")


@contextlib.contextmanager
def translate_rpc_errors() -> Iterator[None]:
    """The one place a grpc.RpcError becomes a MicroLearnError (used by both clients).

    A context manager rather than a decorator so that it also covers generators and
    coroutines: the with-block may contain `yield` or `await`.
    """
    try:
        yield
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None
