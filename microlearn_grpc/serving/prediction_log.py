"""Sampled prediction logging: requests are buffered in memory and written to PostgreSQL in one
statement per flush, so logging never adds a database round trip to a prediction.

A flush runs every `interval` seconds or when `max_buffer` entries wait. Entries the database
refuses are dropped with a warning: a log write must never fail a prediction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from typing import Any

import numpy as np

from microlearn_grpc.serving._tasks import stop_task
from microlearn_grpc.storage.deployments_repo import DeploymentRepository, LoggedPrediction

log = logging.getLogger(__name__)

MAX_LOGGED_ROWS = 10_000  # larger requests (batches) are not logged: they would bloat the table


def jsonable_column(values: np.ndarray) -> list[Any]:
    """Plain JSON values: NaN/NaT become null, datetimes ISO strings."""
    if values.dtype.kind == "M":
        return [None if np.isnat(v) else str(v) for v in values]
    out = values.tolist()
    return [None if (isinstance(v, float) and not math.isfinite(v)) else v for v in out]


class PredictionLogger:
    def __init__(self, repo: DeploymentRepository, *, interval: float = 0.5, max_buffer: int = 1000,
                 rng: random.Random | None = None) -> None:
        self._repo = repo
        self._interval = interval
        self._max_buffer = max_buffer
        self._rng = rng or random.Random()
        self._buffer: list[LoggedPrediction] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def sampled(self, fraction: float, row_count: int) -> bool:
        if fraction <= 0 or row_count > MAX_LOGGED_ROWS:
            return False
        return fraction >= 1 or self._rng.random() < fraction

    def add(self, entry: LoggedPrediction) -> None:
        self._buffer.append(entry)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="microlearn-prediction-log")
        if len(self._buffer) >= self._max_buffer:
            self._wake.set()

    async def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            await self._repo.log_predictions(batch)
        except Exception:  # noqa: BLE001 - logging is best effort
            log.warning("could not write %d logged prediction(s)", len(batch), exc_info=True)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self.flush()
