"""Prometheus metrics: what each process measures, and the `/metrics` HTTP endpoint that serves them.

Every process builds its own registry in its composition root (nothing at import time) and serves
it on `MICROLEARN_METRICS_PORT` (default 9100; 0 = a free port; `off` = none). The endpoint
requires the same bearer token as gRPC unless the process runs in local-dev mode (insecure-local).

- gRPC server: `grpc_server_handled_total` and `grpc_server_handling_seconds` by service, method
  and status code (a server interceptor, so refused and unauthenticated calls count too);
  `microlearn_predictions_total`, `microlearn_predicted_rows_total`,
  `microlearn_prediction_latency_seconds` and `microlearn_prediction_errors_total` per deployment
  and model version (Predict, PredictStream and the Open Inference ModelInfer alike).
- worker: `microlearn_queue_depth`, `microlearn_jobs_in_progress`, and
  `microlearn_job_duration_seconds` by job kind and final state (see workers/metrics.py).
- REST gateway: `http_requests_total` and `http_request_duration_seconds` by route (gateway/_metrics.py).
- all: process CPU, memory and file descriptors, Python GC.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import inspect
import logging
import threading
import time
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_METRICS_PORT", "MetricsEndpoint", "RpcMetricsInterceptor", "ServerMetrics", "new_registry",
           "serve_metrics"]

DEFAULT_METRICS_PORT = 9100
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PREDICT_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_CANCELLED = (asyncio.CancelledError, GeneratorExit)  # the client went away


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and GC collectors every MicroLearn process exposes."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class ServerMetrics:
    """The gRPC server's metrics: RPCs, and predictions per deployment and version."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        rpc_labels = ("grpc_service", "grpc_method", "grpc_code")
        self.rpcs = Counter("grpc_server_handled", "RPCs completed, by service, method and status code.",
                            rpc_labels, registry=self.registry)
        self.rpc_seconds = Histogram("grpc_server_handling_seconds",
                                     "Time from receiving an RPC to its status, by service, method and status code.",
                                     rpc_labels, buckets=RPC_BUCKETS, registry=self.registry)
        labels = ("deployment", "version")
        self.predictions = Counter("microlearn_predictions", "Prediction requests answered, by deployment and the "
                                   "registered model version that answered.", labels, registry=self.registry)
        self.predicted_rows = Counter("microlearn_predicted_rows", "Rows predicted, by deployment and version.",
                                      labels, registry=self.registry)
        self.prediction_seconds = Histogram("microlearn_prediction_latency_seconds",
                                            "Server-side latency of a prediction request (input checks, model, "
                                            "output), by deployment and version.", labels,
                                            buckets=PREDICT_BUCKETS, registry=self.registry)
        self.prediction_errors = Counter("microlearn_prediction_errors", "Prediction requests refused or failed "
                                         "after routing, by deployment, version and status code.",
                                         (*labels, "code"), registry=self.registry)
        self.models_loaded = Gauge("microlearn_serving_models_loaded", "Models this process holds in memory.",
                                   registry=self.registry)

    def rpc(self, service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.rpcs.labels(service, method, code.name).inc()
        self.rpc_seconds.labels(service, method, code.name).observe(seconds)

    def prediction(self, deployment: str, version: str, rows: int, seconds: float) -> None:
        self.predictions.labels(deployment, version).inc()
        self.predicted_rows.labels(deployment, version).inc(rows)
        self.prediction_seconds.labels(deployment, version).observe(seconds)

    def prediction_error(self, deployment: str, version: str, code: str) -> None:
        self.prediction_errors.labels(deployment, version, code).inc()


# -- the RPC interceptor -----------------------------------------------------------------------------

def _code_of(context: Any, default: grpc.StatusCode) -> grpc.StatusCode:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return _CODES.get(code, default)
    return default


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every RPC by method and final status code. Put it first in the interceptor
    list: then it also sees the calls the token check refuses."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, tuple[Any, Any]] = {}  # method → (its handler, that handler wrapped)

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED; no label for arbitrary names
            return None
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:  # the servicer's handlers are made once: wrap once
            return cached[1]
        wrapped = self._wrap(handler, details.method)
        self._wrapped[details.method] = (handler, wrapped)  # one entry per method the server has
        return wrapped

    def _wrap(self, handler: Any, full_method: str) -> Any:
        service, _, method = full_method.lstrip("/").partition("/")
        record = self._recorder(service, method)
        kwargs = dict(request_deserializer=handler.request_deserializer,
                      response_serializer=handler.response_serializer)
        if handler.response_streaming:
            behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream
            factory = (grpc.stream_stream_rpc_method_handler if handler.request_streaming
                       else grpc.unary_stream_rpc_method_handler)
            return factory(_streaming(behavior, record), **kwargs)
        behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary
        factory = grpc.stream_unary_rpc_method_handler if handler.request_streaming else grpc.unary_unary_rpc_method_handler
        return factory(_unary(behavior, record), **kwargs)

    def _recorder(self, service: str, method: str) -> Callable[[grpc.StatusCode, float], None]:
        def record(code: grpc.StatusCode, started: float) -> None:
            self._metrics.rpc(service, method, code, time.perf_counter() - started)
        return record


class _Timed:
    """Around one RPC's handler: records its duration and the status code it ended with."""

    def __init__(self, context: Any, record: Callable[[grpc.StatusCode, float], None]) -> None:
        self._context, self._record = context, record
        self._started = time.perf_counter()

    def __enter__(self) -> _Timed:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if kind is None:
            code = _code_of(self._context, grpc.StatusCode.OK)  # OK unless the handler set another code
        elif issubclass(kind, grpc.aio.AbortError):
            code = _code_of(self._context, grpc.StatusCode.UNKNOWN)
        else:
            code = grpc.StatusCode.CANCELLED if issubclass(kind, _CANCELLED) else grpc.StatusCode.UNKNOWN
        self._record(code, self._started)


def _unary(behavior, record):
    async def wrapper(request, context):
        with _Timed(context, record):
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result
    return wrapper


def _streaming(behavior, record):
    async def wrapper(request_or_iterator, context):
        with _Timed(context, record):
            result = behavior(request_or_iterator, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            elif inspect.isawaitable(result):  # a handler that writes with context.write()
                await result
            else:
                for item in result or ():
                    yield item
    return wrapper


# -- the HTTP endpoint -------------------------------------------------------------------------------

class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def _guarded(app, token: str | None):
    """Only `GET /metrics`, and only with the bearer token when one is set."""
    expected = f"Bearer {token}".encode() if token else None

    def guarded(environ, start_response):
        if environ.get("PATH_INFO") not in ("/metrics", "/metrics/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: metrics are at /metrics\n"]
        supplied = environ.get("HTTP_AUTHORIZATION", "").encode()
        if expected is not None and not hmac.compare_digest(supplied, expected):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"send 'Authorization: Bearer TOKEN' (the platform's token)\n"]
        return app(environ, start_response)
    return guarded


@dataclasses.dataclass
class MetricsEndpoint:
    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_metrics(registry: CollectorRegistry, host: str, port: int, *, token: str | None,
                  fallback: bool = False) -> MetricsEndpoint:
    """Serve `registry` at http://host:port/metrics on a daemon thread. With `fallback` (the port is
    only the default), a port in use means a free one instead — several workers on one host."""
    app = _guarded(make_wsgi_app(registry), token)
    try:
        server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
    except OSError:
        if not fallback:
            raise OSError(f"cannot serve metrics on {host}:{port} (MICROLEARN_METRICS_PORT): address in use or "
                          "not permitted; choose another port, 0 for a free one, or off") from None
        log.warning("metrics port %s is taken on %s; serving metrics on a free port instead", port, host)
        server = make_server(host, 0, app, _Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="microlearn-metrics", daemon=True)
    thread.start()
    return MetricsEndpoint(host, server.server_port, server, thread)


def endpoint_from_settings(settings: Any, registry: CollectorRegistry, host: str | None = None,
                           ) -> MetricsEndpoint | None:
    """The process's endpoint as configured (None when MICROLEARN_METRICS_PORT=off, or when the process
    has no token and is not in local-dev mode: metrics are never served open)."""
    if settings.metrics_port is not None and settings.metrics_port < 0:
        return None
    if not settings.insecure_local and not settings.token:
        log.warning("metrics: not served: MICROLEARN_TOKEN is not set (the endpoint requires it; "
                    "MICROLEARN_METRICS_PORT=off silences this)")
        return None
    port = DEFAULT_METRICS_PORT if settings.metrics_port is None else settings.metrics_port
    return serve_metrics(registry, host or settings.grpc_host, port,
                         token=None if settings.insecure_local else settings.token,
                         fallback=settings.metrics_port is None)
