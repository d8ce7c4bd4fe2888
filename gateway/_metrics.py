"""The gateway's Prometheus metrics: HTTP requests by method, route template and status, and their
latency, served like every process's on its own `/metrics` port (microlearn_grpc.metrics)."""

from __future__ import annotations

import time

from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def instrument(app: FastAPI, registry: CollectorRegistry) -> None:
    """Count and time every request; the route is the matched template (`/v1/datasets/{name}`), so
    arbitrary paths add no series."""
    requests = Counter("http_requests", "HTTP requests answered by the gateway, by method, route and status.",
                       ("method", "route", "status"), registry=registry)
    seconds = Histogram("http_request_duration_seconds", "Time to the response's start, by method and route.",
                        ("method", "route"), buckets=BUCKETS, registry=registry)

    app.add_middleware(_Measure, requests=requests, seconds=seconds)


class _Measure:
    """Plain ASGI (no per-request task group, unlike Starlette's BaseHTTPMiddleware): the status is
    read from the response start, the route from what the router (or `FastPredict`) left in the scope."""

    def __init__(self, app: Any, *, requests: Counter, seconds: Histogram) -> None:
        self.app = app
        self._requests = requests
        self._seconds = seconds

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("microlearn.route") or getattr(scope.get("route"), "path", "unmatched")
            self._requests.labels(scope["method"], route, str(status)).inc()
            self._seconds.labels(scope["method"], route).observe(time.perf_counter() - started)
