"""The one table from domain errors to gRPC status codes, applied to every servicer method."""

from __future__ import annotations

import functools
import inspect
import logging

import grpc

from microlearn_grpc import errors

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.DataLoss: grpc.StatusCode.DATA_LOSS,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}


def status_for(exc: errors.DomainError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL


def _unexpected(method: str, exc: BaseException) -> str:
    log.exception("unhandled error in %s", method)
    return f"internal error in {method} ({type(exc).__name__}); the server log has the details"


def translate_errors(fn):
    """Decorate a servicer method (unary or streaming): domain errors become status codes."""
    name = fn.__qualname__
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def stream_wrapper(self, request, context):
            try:
                async for item in fn(self, request, context):
                    yield item
            except errors.DomainError as exc:
                await context.abort(status_for(exc), str(exc))
            except (grpc.aio.AbortError, grpc.aio.UsageError):
                raise
            except Exception as exc:  # noqa: BLE001 - the client gets a code, the log the trace
                await context.abort(grpc.StatusCode.INTERNAL, _unexpected(name, exc))
        return stream_wrapper

    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            return await fn(self, request, context)
        except errors.DomainError as exc:
            await context.abort(status_for(exc), str(exc))
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as exc:  # noqa: BLE001
            await context.abort(grpc.StatusCode.INTERNAL, _unexpected(name, exc))
    return wrapper
