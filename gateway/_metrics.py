"""The gateway's Prometheus metrics: HTTP requests by method, route template and status, and their
latency, served like every process's on its own `/metrics` port (microlearn_grpc.metrics)."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def instrument(app: FastAPI, registry: CollectorRegistry) -> None:
    """Count and time every request; the route is the matched template (`/v1/datasets/{name}`), so
    arbitrary paths add no series."""
    requests = Counter("http_requests", "HTTP requests answered by the gateway, by method, route and status.",
                       ("method", "route", "status"), registry=registry)
    seconds = Histogram("http_request_duration_seconds", "Time to the response's start, by method and route.",
                        ("method", "route"), buckets=BUCKETS, registry=registry)

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            requests.labels(request.method, route, str(status)).inc()
            seconds.labels(request.method, route).observe(time.perf_counter() - started)
