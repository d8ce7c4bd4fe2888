"""A worker's Prometheus metrics, served on its own `/metrics` (MICROLEARN_METRICS_PORT; several
workers on one host each take a free port when the default 9100 is taken).

`microlearn_queue_depth` is read from Redis when Prometheus scrapes (jobs waiting in the arq queue,
deferred ones included); `microlearn_jobs_in_progress` and `microlearn_job_duration_seconds` (by
job kind and final state) come from `run_job`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from prometheus_client import Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from microlearn_grpc.metrics import MetricsEndpoint, endpoint_from_settings, new_registry

log = logging.getLogger(__name__)

JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0)
OUTCOMES = frozenset({"succeeded", "failed", "cancelled", "abandoned"})


class QueueDepth:
    """A collector: the arq queue's length, asked of Redis at scrape time (on the HTTP thread)."""

    def __init__(self, redis_url: str, queue_name: str) -> None:
        self._url = redis_url
        self._queue = queue_name
        self._client: Any = None

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily("microlearn_queue_depth", "Jobs waiting in the queue (including deferred "
                                 "redeliveries).", labels=["queue"])

    def describe(self):
        yield self._family()

    def collect(self):
        import redis

        family = self._family()
        try:
            if self._client is None:
                self._client = redis.Redis.from_url(self._url, socket_timeout=2, socket_connect_timeout=2)
            family.add_metric([self._queue], float(self._client.zcard(self._queue)))
        except redis.RedisError as exc:
            log.warning("metrics: cannot read the queue depth from Redis: %s", exc)
            return
        yield family


class WorkerMetrics:
    def __init__(self, redis_url: str, queue_name: str) -> None:
        self.registry = new_registry()
        self.in_progress = Gauge("microlearn_jobs_in_progress", "Jobs this worker is running, by kind.", ["kind"],
                                 registry=self.registry)
        self.durations = Histogram("microlearn_job_duration_seconds", "Time a worker spent on one delivery of a "
                                   "job, by kind and how it ended (succeeded, failed, cancelled, abandoned on a "
                                   "lost lease, error, other).", ["kind", "state"], buckets=JOB_BUCKETS,
                                   registry=self.registry)
        self.registry.register(QueueDepth(redis_url, queue_name))
        self.endpoint: MetricsEndpoint | None = None

    @contextlib.asynccontextmanager
    async def job(self, kind: str):
        """Around one run of a job; the body sets `outcome["result"]` to the runner's result string."""
        kind = kind or "unknown"
        outcome: dict[str, str] = {}
        started = time.perf_counter()
        self.in_progress.labels(kind).inc()
        try:
            yield outcome
        except BaseException:
            outcome["state"] = "error"
            raise
        finally:
            self.in_progress.labels(kind).dec()
            state = outcome.get("state") or _state(outcome.get("result", ""))
            if state is not None:
                self.durations.labels(kind, state).observe(time.perf_counter() - started)


def _state(result: str) -> str | None:
    """'succeeded: models/…' → succeeded; a delivery that did not run the job is not a duration."""
    if result.startswith(("not run", "unknown job")):
        return None
    head = result.partition(":")[0].strip().lower()
    return head if head in OUTCOMES else "other"


def start(settings: Any) -> WorkerMetrics:
    metrics = WorkerMetrics(settings.redis_url, settings.queue_name)
    metrics.endpoint = endpoint_from_settings(settings, metrics.registry)
    if metrics.endpoint is not None:
        log.info("metrics: %s", metrics.endpoint.url)
    return metrics


def stop(metrics: WorkerMetrics | None) -> None:
    if metrics is not None and metrics.endpoint is not None:
        metrics.endpoint.close()
