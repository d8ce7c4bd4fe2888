"""Bearer-token authentication for every RPC except health checks."""

from __future__ import annotations

import hmac

import grpc

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)


def _deny(message: str):
    async def deny(request_or_iterator, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
    return deny


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks `authorization: Bearer TOKEN` metadata in constant time."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        if details.method.startswith(EXEMPT_PREFIXES):
            return await continuation(details)
        supplied = next((v for k, v in (details.invocation_metadata or ()) if k == "authorization"), None)
        if supplied is not None and hmac.compare_digest(str(supplied).encode(), self._expected):
            return await continuation(details)
        handler = await continuation(details)
        if handler is None:
            return None
        message = ("missing token: send metadata 'authorization: Bearer TOKEN' (the token `microlearn up` printed, "
                   "or MICROLEARN_TOKEN)") if supplied is None else "invalid token in 'authorization' metadata"
        deny = _deny(message)
        kwargs = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(deny, **kwargs)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(deny, **kwargs)
        return grpc.unary_unary_rpc_method_handler(deny, **kwargs)
