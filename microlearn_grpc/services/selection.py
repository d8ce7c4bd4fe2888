"""SelectModels as a use case: resolve the dataset, validate the request, rank estimators, cache the answer.

The answer depends only on the dataset version's profile and the request, so it is cached in Redis per
dataset version + request (a dataset version is immutable; a new upload is a new version and a new key).
The cached form is the response as a proto-JSON dict, which the servicer parses back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from microlearn_grpc import errors
from microlearn_grpc.core import selection as selection_lib
from microlearn_grpc.services.datasets import DatasetService
from microlearn_grpc.services.enums import TASK_TYPES

log = logging.getLogger(__name__)

CACHE_SECONDS = 24 * 3600
MAX_CANDIDATES, DEFAULT_CANDIDATES = 50, 5
MAX_BUDGET_SECONDS = 7 * 24 * 3600


class SelectionService:
    def __init__(self, datasets: DatasetService, redis: Any) -> None:
        self._datasets = datasets
        self._redis = redis

    async def select(self, request: dict[str, Any]) -> dict[str, Any]:
        """The SelectModelsResponse for `request` (SelectModelsRequest fields, task as a name) as a proto-JSON dict."""
        max_candidates = int(request.get("max_candidates") or 0)
        if not 0 <= max_candidates <= MAX_CANDIDATES:
            raise errors.InvalidArgument(f"max_candidates must be 1-{MAX_CANDIDATES} (0 means {DEFAULT_CANDIDATES}), "
                                         f"got {max_candidates}")
        budget = int(request.get("time_budget_seconds") or 0)
        if not 0 <= budget <= MAX_BUDGET_SECONDS:
            raise errors.InvalidArgument(f"time_budget_seconds must be 0 (no budget) to {MAX_BUDGET_SECONDS}, "
                                         f"got {budget}")
        include = _estimator_ids(request.get("include_estimators") or [], "include_estimators")
        exclude = _estimator_ids(request.get("exclude_estimators") or [], "exclude_estimators")
        record = await self._datasets.resolve(request.get("dataset", ""), field="dataset")
        if not record.profile:
            raise errors.FailedPrecondition(f"dataset {record.resource_name} has no profile yet; wait until its "
                                            "upload has finished")
        profile = record.profile
        columns = [c["name"] for c in profile.get("columns") or []]
        target = (request.get("target") or "").strip()
        task = request.get("task") or ""
        if target and target not in columns:
            raise errors.InvalidArgument(f"target: column {target!r} is not in dataset {record.display_name}@"
                                         f"{record.version}; its columns are: {', '.join(columns)}")
        ignore = [str(c) for c in request.get("ignore_columns") or []]
        unknown = [c for c in ignore if c not in columns]
        if unknown:
            raise errors.InvalidArgument(f"ignore_columns: {', '.join(map(repr, unknown))} not in the dataset; its "
                                         f"columns are: {', '.join(columns)}")
        if not target and task != "clustering":
            suggestions = profile.get("target_suggestions") or []
            if not suggestions:
                raise errors.FailedPrecondition(
                    f"no target given and dataset {record.display_name}@{record.version} suggests none: name the "
                    "target column, or set task to clustering")
            target = suggestions[0]["column"] if isinstance(suggestions[0], dict) else str(suggestions[0])
        key = "microlearn:selection:" + hashlib.sha256(json.dumps(
            [record.id, target, task, max_candidates, budget, request.get("use_gpu"), include, exclude, ignore],
            sort_keys=True).encode()).hexdigest()
        cached = await self._cache_get(key)
        if cached is not None:
            return cached
        try:
            selection = selection_lib.select_models(
                profile, target or None, task=task or None, max_candidates=max_candidates or DEFAULT_CANDIDATES,
                time_budget_seconds=budget, use_gpu=bool(request.get("use_gpu")), include=tuple(include),
                exclude=tuple(exclude), ignore_columns=tuple(ignore))
        except ValueError as exc:
            raise errors.InvalidArgument(f"{'task' if task else 'target'}: {exc}") from None
        answer = to_dict(selection, record.resource_name, profile)
        await self._cache_put(key, answer)
        return answer

    async def _cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.get(key)
        except Exception:  # noqa: BLE001 - the cache is an optimization; Redis trouble must not fail the call
            log.warning("selection cache read failed", exc_info=True)
            return None
        return json.loads(raw) if raw else None

    async def _cache_put(self, key: str, answer: dict[str, Any]) -> None:
        try:
            await self._redis.set(key, json.dumps(answer), ex=CACHE_SECONDS)
        except Exception:  # noqa: BLE001
            log.warning("selection cache write failed", exc_info=True)


def _estimator_ids(names: list[str], field: str) -> list[str]:
    from microlearn_grpc.core.estimators import get_estimator

    out = []
    for name in names:
        try:
            out.append(get_estimator(str(name)).name)
        except KeyError as exc:
            raise errors.InvalidArgument(f"{field}: {exc.args[0]}") from None
    return sorted(set(out))


def _task_enum(task: str) -> str:
    from microlearn.v1 import common_pb2

    return common_pb2.TaskType.Name(TASK_TYPES[task])


def to_dict(selection: selection_lib.Selection, dataset: str, profile: dict[str, Any]) -> dict[str, Any]:
    """The SelectModelsResponse fields (proto JSON names) of a Selection."""
    d = selection.detection
    total = sum(d.class_counts.values()) or 1
    explanation: dict[str, Any] = {
        "summary": d.reason, "confidence": d.confidence,
        "alternativeTasks": [_task_enum(t) for t in d.alternatives],
    }
    column = next((c for c in profile.get("columns") or [] if c["name"] == selection.target), None)
    if column is not None:
        rows, missing = int(profile.get("row_count") or 0), int(column.get("missing_count") or 0)
        explanation.update(targetType="COLUMN_TYPE_" + column["type"].upper(),
                           targetPhysicalType=column.get("physical_type") or "",
                           targetDistinctCount=str(column.get("distinct_count") or 0),
                           targetMissingCount=str(missing), rowCount=str(rows - missing))
    else:
        explanation["rowCount"] = str(profile.get("row_count") or 0)
    if d.class_counts:
        explanation["classDistribution"] = [{"label": label, "count": str(n), "fraction": n / total}
                                            for label, n in d.class_counts.items()]
        explanation["imbalanceRatio"] = d.imbalance_ratio or 1.0
        explanation["minorityClass"] = min(d.class_counts, key=d.class_counts.get)
    validation = selection.validation
    return {
        "dataset": dataset, "target": selection.target, "task": _task_enum(selection.task),
        "explanation": explanation, "recommendedMetric": selection.metric,
        "metricDirection": "OPTIMIZATION_DIRECTION_" + selection.direction.upper(),
        "recommendedValidation": ({"kFold": {"folds": validation["folds"]}} if validation["method"] == "k_fold"
                                  else {"holdout": {"fraction": validation["fraction"]}}),
        "candidates": [{
            "estimator": c.estimator.name, "displayName": c.estimator.display_name,
            "family": "ESTIMATOR_FAMILY_" + c.estimator.family.upper(), "rank": c.rank, "score": c.score,
            "reason": c.reason, "defaultHyperparameters": {"values": c.default_hyperparameters},
            "searchSpace": c.search_space.to_dict(), "relativeCost": c.relative_cost,
            "estimatedFitSeconds": c.estimated_fit_seconds, "usesGpu": c.uses_gpu,
            "supportsEarlyStopping": c.estimator.supports_early_stopping,
            "supportsIterationProgress": c.estimator.supports_iteration_progress,
        } for c in selection.candidates],
        "excluded": [{"estimator": name, "reason": reason} for name, reason in selection.excluded],
        "featureColumns": list(selection.feature_columns),
        "warnings": [{"code": "SELECTION_WARNING_CODE_" + w.code, "level": "LOG_LEVEL_" + w.level,
                      "message": w.message, "columns": list(w.columns), "suggestion": w.suggestion}
                     for w in selection.warnings],
    }
