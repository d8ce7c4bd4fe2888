"""A study's refit (`spec.refit`): after the search and the ensemble, the best trial's configuration is
trained again on every row (training and validation) as one more training job, and its model becomes
the study's result.

It runs inside the study's time budget: the coordinator stops the search `reserve()` seconds earlier
to leave time for it, and the refit starts only when what is left covers the best trial's own time
scaled to the larger row count; it gets the deadline as its `stop_at` (iterative estimators stop there
and keep their rounds) and a timeout just past it, and is cancelled if it is still running at the
deadline. Whenever it cannot run or does not succeed the study says why in a log event and keeps the
best trial's model: the study never overruns for it.

The refit model carries the best trial's validation figures (it has no rows of its own left out) and
names that trial's model in its lineage (`refit_of`); its iteration count is the trial's best one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from typing import Any

from microlearn_grpc.services import study_events
from microlearn_grpc.storage.models_repo import ModelRepository
from workers.training import LeaseLost

_POLL_SECONDS = 0.25
_OVERHEAD_SECONDS = 1.0  # a training job's own cost beyond its fit: queue, data read, artifact, model row


def applies(spec: dict[str, Any]) -> bool:
    """Whether a refit would train on rows the trials did not: only holdout trials leave rows out (k-fold
    trials are refit on every row already; a validation dataset is not part of the training data)."""
    validation = spec.get("validation") or {}
    return bool(spec.get("refit")) and validation.get("method", "holdout") != "kfold" \
        and not validation.get("validation_dataset")


def reserve(spec: dict[str, Any], durations: list[float]) -> float:
    """Seconds kept for the refit at the end of a time budget: a typical trial scaled to every row, at most
    a quarter of the budget."""
    budget = spec["budget"]["time_budget_seconds"]
    if not budget or not applies(spec):
        return 0.0
    typical = statistics.median(durations) if durations else 0.05 * budget
    return min(0.25 * budget, _scale(spec) * typical + _OVERHEAD_SECONDS)


def _scale(spec: dict[str, Any]) -> float:
    return 1.0 / (1.0 - float((spec.get("validation") or {}).get("fraction") or 0.2))


async def refit(coordinator: Any) -> str | None:
    """Run the refit for a finished search; the refit model's id, or None (the reason published)."""
    from microlearn_grpc.core.estimators import get_estimator

    c = coordinator
    spec, best = c.spec, c.best
    if not applies(spec):
        await _say(c, "INFO", "no refit: the trials validated with k-fold (or on a validation dataset), so the best "
                              "trial's model was already trained on every training row")
        return None
    source = await ModelRepository(c.r._pool).get(best.model_id or "")
    if source is None:
        await _say(c, "WARNING", f"no refit: the best trial's model models/{best.model_id} is gone")
        return None
    took = (best.ended_at - best.started_at).total_seconds() if best.started_at and best.ended_at else 0.0
    need = _scale(spec) * took + _OVERHEAD_SECONDS
    left = c.deadline - 0.2 - time.time() if c.deadline is not None else math.inf
    if left < need:
        await _say(c, "WARNING", f"no refit: {max(left, 0):.1f} s of the time budget left, and refitting "
                                 f"{best.estimator} on every row should take about {need:.1f} s; the best trial's "
                                 "model stays the result")
        return None
    training = c.r._studies._training
    trial = c.r._studies.trial_spec(spec, best.estimator, best.params, 0 if math.isinf(left) else math.ceil(left) + 1)
    if get_estimator(best.estimator).iterations_param and (source.best_iteration or source.iterations):
        trial["max_iterations"] = int(source.best_iteration or source.iterations)  # the rounds that scored best
    trial["early_stopping"] = None  # nothing is held out to stop on
    extra = {"all_rows": True, "refit_of": source.id, "mlflow_parent_run_id": c.study.mlflow_run_id or ""}
    if c.deadline is not None:
        extra["stop_at"] = c.deadline - 0.3
    try:
        job, _ = await training.start(trial, f"{c.study.id}-refit", kind="training", study_id=c.study.id, extra=extra)
    except Exception as exc:  # noqa: BLE001 - the best trial's model still stands
        await _say(c, "WARNING", f"no refit: it could not be started: {exc}")
        return None
    await _say(c, "INFO", f"refitting trial {best.number} ({best.estimator}) on every row: {job.resource_name}")
    while not job.is_terminal:
        if c.lease.lost:
            raise LeaseLost(c.lease.lost)
        if c.deadline is not None and time.time() >= c.deadline - 0.1:
            with contextlib.suppress(Exception):
                await c.r._jobs.request_cancel(job.id, f"study {c.study.id}: time budget spent")
            await _say(c, "WARNING", "the refit did not finish within the time budget and was cancelled; the best "
                                     "trial's model stays the result")
            return None
        await asyncio.sleep(_POLL_SECONDS)
        job = await c.r._jobs.get(job.id) or job
    if job.state != "SUCCEEDED" or not job.outputs:
        await _say(c, "WARNING", f"the refit {job.state.lower()}: {job.error or 'no model'}; the best trial's model "
                                 "stays the result")
        return None
    return job.outputs[0].removeprefix("models/")


async def _say(c: Any, level: str, message: str) -> None:
    await c.publish(study_events.log_event(c.study.id, level, message))
