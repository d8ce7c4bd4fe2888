"""Deployment use cases: create, read, list, update and delete deployments; predict with them;
collect feedback on logged predictions.

Writes go to PostgreSQL only; the serving side (`serving.router`) notices the bumped generation,
loads what the new routing needs and swaps it in. A deployment is created CREATING and turns
READY once a serving process has loaded every target. Predict never reads the database on the
hot path: the route table, the loaded model and its precomputed input schema are in memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from typing import Any

import numpy as np

from microlearn_grpc import errors
from microlearn_grpc.serving import inputs
from microlearn_grpc.serving.models import Prediction
from microlearn_grpc.serving.prediction_log import PredictionLogger, jsonable_column
from microlearn_grpc.serving.router import Route, Router
from microlearn_grpc.services.model_registry import MAX_DESCRIPTION, ModelRegistry, parse_version_ref
from microlearn_grpc.services.training import Page, encode_offset, offset_of, page_size_of, check_labels
from microlearn_grpc.storage.deployments_repo import (
    STATES,
    DeploymentRecord,
    DeploymentRepository,
    LoggedPrediction,
    TargetRecord,
    new_etag,
)

DEPLOYMENT_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
MAX_TARGETS = 10
MAX_REPLICAS = 64
MAX_REQUEST_ID = 128
MAX_FEEDBACK = 10_000
INLINE_ROWS = 256  # bigger batches predict in a thread, so the event loop keeps answering small ones
UPDATABLE = ("description", "traffic", "replicas", "prediction_log_fraction", "labels")


def _bad(field: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"{field}: {message}")


def deployment_id_of(name: str, field: str = "name") -> str:
    value = (name or "").strip().removeprefix("deployments/")
    if not DEPLOYMENT_ID.fullmatch(value):
        raise _bad(field, f"{name!r} is not a deployment name: 1-63 lowercase letters, digits and '-', "
                          "starting with a letter (or deployments/NAME)")
    return value


@dataclasses.dataclass(frozen=True)
class PredictInput:
    deployment: str
    request_id: str = ""
    rows: Any = None            # a ColumnarRows message
    arrow_ipc: bytes | None = None
    tensors: Any = None         # an Open Inference request's tensors (serving.tensors.TensorInput)
    model_version: str = ""
    routing_key: str = ""
    exclude_probabilities: bool = False


@dataclasses.dataclass(frozen=True)
class PredictOutput:
    request_id: str
    route: Route
    prediction: Prediction
    row_count: int
    latency_ms: float
    logged: bool
    warnings: list[str]


class DeployService:
    def __init__(self, registry: ModelRegistry, deployments: DeploymentRepository, router: Router,
                 logger: PredictionLogger, *, max_rows: int = 1_000_000, metrics: Any = None) -> None:
        self._registry = registry
        self._repo = deployments
        self._router = router
        self._logger = logger
        self._max_rows = max_rows
        self._metrics = metrics  # metrics.ServerMetrics, or None

    @property
    def registry(self) -> ModelRegistry:
        return self._registry

    def start(self) -> None:
        """Start following the database (call inside the server's event loop). Every deployment is
        loaded at once, so a restarted process serves what it served before."""
        self._router.start()

    async def close(self) -> None:
        await self._router.close()
        await self._logger.close()

    # -- deployments ------------------------------------------------------------------------------

    async def _targets(self, traffic: list[tuple[str, int]], field: str) -> tuple[list[TargetRecord], str]:
        """Check traffic targets (references exist, percentages add up, one task) → (targets, task)."""
        if not traffic:
            raise _bad(field, "at least one traffic target is required")
        if len(traffic) > MAX_TARGETS:
            raise _bad(field, f"at most {MAX_TARGETS} traffic targets")
        targets, tasks, seen = [], set(), set()
        for i, (reference, percent) in enumerate(traffic):
            ref = parse_version_ref(reference, f"{field}[{i}].model_version")
            if ref.short in seen:
                raise _bad(f"{field}[{i}].model_version", f"{ref.short} is listed twice")
            seen.add(ref.short)
            if not 0 <= percent <= 100:
                raise _bad(f"{field}[{i}].percent", f"must be 0-100, got {percent}")
            version = await self._registry.resolve(ref, f"{field}[{i}].model_version")
            tasks.add((await self._registry.model_of(version)).task)
            targets.append(TargetRecord(ref.registered_model, ref.version, ref.alias, percent))
        if len(targets) == 1:
            if targets[0].percent not in (0, 100):
                raise _bad(f"{field}[0].percent", "a single target takes all traffic: leave it 0 or set 100")
            targets = [dataclasses.replace(targets[0], percent=100)]
        elif sum(t.percent for t in targets) != 100:
            raise _bad(field, f"percentages must add up to 100, got {sum(t.percent for t in targets)}")
        if len(tasks) > 1:
            raise _bad(field, f"all targets must solve one task; these solve {', '.join(sorted(tasks))}")
        return targets, tasks.pop()

    @staticmethod
    def _settings(spec: dict[str, Any], field: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "description" in spec:
            if len(spec["description"]) > MAX_DESCRIPTION:
                raise _bad(f"{field}.description", f"at most {MAX_DESCRIPTION} characters")
            out["description"] = spec["description"]
        if "replicas" in spec:
            if not 0 <= spec["replicas"] <= MAX_REPLICAS:
                raise _bad(f"{field}.replicas", f"must be 0-{MAX_REPLICAS}, got {spec['replicas']}")
            out["replicas"] = spec["replicas"]
        if "prediction_log_fraction" in spec:
            fraction = 1.0 if spec["prediction_log_fraction"] is None else float(spec["prediction_log_fraction"])
            if not 0.0 <= fraction <= 1.0:
                raise _bad(f"{field}.prediction_log_fraction", f"must be 0-1, got {fraction}")
            out["prediction_log_fraction"] = fraction
        if "labels" in spec:
            out["labels"] = check_labels(spec["labels"], f"{field}.labels")
        return out

    async def create(self, deployment_id: str, spec: dict[str, Any], *, validate_only: bool = False,
                     ) -> DeploymentRecord | None:
        name = deployment_id_of(deployment_id, "deployment_id")
        settings = self._settings(spec, "deployment")
        targets, task = await self._targets(spec.get("traffic") or [], "deployment.traffic")
        if validate_only:
            if await self._repo.get(name) is not None:
                raise errors.AlreadyExists(f"deployment deployments/{name} already exists")
            return None
        record = DeploymentRecord(
            name=name, description=settings.get("description", ""), replicas=settings.get("replicas", 0),
            prediction_log_fraction=settings.get("prediction_log_fraction", 1.0), labels=settings.get("labels", {}),
            task=task, state="CREATING", state_message="loading models", etag=new_etag(), created_at=None,
            updated_at=None, targets=targets)
        created = await self._repo.create(record)
        self._router.kick()
        return created

    async def get(self, name: str) -> DeploymentRecord:
        record = await self._repo.get(deployment_id_of(name))
        if record is None:
            raise errors.NotFound(f"deployment deployments/{name.removeprefix('deployments/')} does not exist")
        return record

    async def list(self, *, page_size: int, page_token: str, registered_model: str, states: list[str],
                   labels: dict[str, str]) -> Page:
        from microlearn_grpc.services.model_registry import registered_name_of

        size, offset = page_size_of(page_size), offset_of(page_token)
        model = registered_name_of(registered_model, "registered_model") if registered_model else None
        bad = [s for s in states if s not in STATES]
        if bad:
            raise _bad("states", f"unknown state(s) {bad}")
        if labels:
            check_labels(labels, "labels")
        items, total = await self._repo.list(page_size=size + 1, offset=offset, registered_model=model,
                                             states=states, labels=labels or None)
        return Page(items[:size], encode_offset(offset + size) if len(items) > size else "", total)

    async def update(self, name: str, spec: dict[str, Any], mask: list[str], *, etag: str = "",
                     validate_only: bool = False) -> DeploymentRecord:
        deployment = deployment_id_of(name, "deployment.name")
        if not mask:
            raise _bad("update_mask", f"required: the fields to change ({', '.join(UPDATABLE)}, or *)")
        fields = list(UPDATABLE) if mask == ["*"] else mask
        unknown = [f for f in fields if f not in UPDATABLE]
        if unknown:
            raise _bad("update_mask", f"cannot update {', '.join(unknown)}; updatable: {', '.join(UPDATABLE)}")
        current = await self.get(deployment)
        changes = self._settings({f: spec.get(f) for f in fields if f != "traffic"}, "deployment")
        targets = None
        if "traffic" in fields:
            targets, task = await self._targets(spec.get("traffic") or [], "deployment.traffic")
            if task != current.task:
                raise _bad("deployment.traffic", f"the deployment serves a {current.task} task; these targets "
                                                 f"solve {task}")
        if validate_only:
            return current
        updated = await self._repo.update(deployment, changes, targets, etag=etag,
                                          state="UPDATING" if targets is not None else None)
        self._router.kick()
        return updated

    async def delete(self, name: str, etag: str = "") -> str:
        deployment = deployment_id_of(name)
        if not await self._repo.delete(deployment, etag):
            raise errors.NotFound(f"deployment deployments/{deployment} does not exist")
        self._router.forget(deployment)
        self._router.kick()
        return f"deployments/{deployment}"

    async def primary_model(self, record: DeploymentRecord):
        """The trained model of the target with the most traffic (its schema is the deployment's input schema)."""
        if not record.targets:
            return None
        primary = max(record.targets, key=lambda t: t.percent)
        return await self._registry.model_by_id(primary.model_id) if primary.model_id else None

    # -- predict ----------------------------------------------------------------------------------

    @property
    def serving_ready(self) -> bool:
        """True once this process has loaded the deployments it found at start."""
        return self._router.ready

    async def route_table(self, name: str, field: str = "deployment"):
        """A deployment's loaded routing (NOT_FOUND, FAILED_PRECONDITION or UNAVAILABLE when it cannot serve)."""
        return await self._table(deployment_id_of(name, field))

    def loaded_table(self, name: str):
        """A deployment's routing if this process serves it now, else None (never waits)."""
        return self._router.table(name)

    async def _table(self, name: str):
        table = self._router.table(name)
        if table is not None:
            return table
        await self._router.sync()
        table = self._router.table(name)
        if table is not None:
            return table
        record = await self._repo.get(name)
        if record is None:
            raise errors.NotFound(f"deployment deployments/{name} does not exist")
        if record.state == "FAILED" or self._router.failure(name):
            raise errors.FailedPrecondition(f"deployments/{name} cannot serve: "
                                            f"{self._router.failure(name) or record.state_message}")
        raise errors.Unavailable(f"deployments/{name} is still loading its models ({record.state}); retry shortly")

    async def predict(self, request: PredictInput, started: float | None = None) -> PredictOutput:
        started = time.perf_counter() if started is None else started
        name = deployment_id_of(request.deployment, "deployment")
        if len(request.request_id) > MAX_REQUEST_ID:
            raise _bad("request_id", f"at most {MAX_REQUEST_ID} characters")
        if len(request.routing_key) > 1024:
            raise _bad("routing_key", "at most 1024 characters")
        table = await self._table(name)
        route = table.pick(request.routing_key, request.model_version)
        try:
            values, rows, warnings, prediction = await self._predict_route(request, route.model)
        except Exception as exc:
            if self._metrics is not None:
                code = _code_name(exc) if isinstance(exc, errors.DomainError) else "INTERNAL"
                self._metrics.prediction_error(name, _version_label(route), code)
            raise
        request_id = request.request_id or uuid.uuid4().hex
        latency = (time.perf_counter() - started) * 1000
        deployment = table.deployment
        logged = self._logger.sampled(deployment.prediction_log_fraction, rows)
        if logged:
            self._logger.add(_log_entry(name, request_id, route, values, prediction, rows, latency))
        if self._metrics is not None:
            self._metrics.prediction(name, _version_label(route), rows, latency / 1000)
        return PredictOutput(request_id, route, prediction, rows, latency, logged, warnings)

    async def _predict_route(self, request: PredictInput, model: Any) -> tuple[dict[str, np.ndarray], int, list[str],
                                                                               Prediction]:
        """Decode the request's rows against the model's schema, then predict them."""
        if request.arrow_ipc is not None:
            values, rows, warnings = inputs.decode_arrow(request.arrow_ipc, model.schema, max_rows=self._max_rows)
        elif request.rows is not None:
            values, rows, warnings = inputs.decode_columns(request.rows, model.schema)
            if rows > self._max_rows:
                raise _bad("rows", f"{rows} rows; at most {self._max_rows} per request")
        elif request.tensors is not None:
            from microlearn_grpc.serving import tensors

            values, rows, warnings = tensors.decode(request.tensors, model.schema, max_rows=self._max_rows)
        else:
            raise _bad("input", "required: rows (typed columns) or arrow_ipc")
        want_proba = not request.exclude_probabilities
        try:
            if rows <= INLINE_ROWS:
                prediction = model.predict(values, rows, probabilities=want_proba)
            else:
                prediction = await asyncio.to_thread(model.predict, values, rows, probabilities=want_proba)
        except (ValueError, TypeError) as exc:
            raise errors.InvalidArgument(f"the rows could not be predicted: {exc}") from None
        return values, rows, warnings, prediction

    # -- feedback ---------------------------------------------------------------------------------

    async def feedback(self, deployment: str, entries: list[dict[str, Any]]) -> tuple[int, list[tuple[int, str]]]:
        """Store outcomes for logged predictions; returns (accepted, [(index, reason)])."""
        name = deployment_id_of(deployment, "deployment")
        if not entries:
            raise _bad("entries", "at least one entry is required")
        if len(entries) > MAX_FEEDBACK:
            raise _bad("entries", f"at most {MAX_FEEDBACK} per call, got {len(entries)}")
        await self._logger.flush()  # this process's recent predictions become matchable now
        counts = await self._repo.logged_row_counts(name, sorted({e["request_id"] for e in entries}))
        if not counts and await self._repo.get(name) is None:
            raise errors.NotFound(f"deployment deployments/{name} does not exist and has no logged predictions")
        accepted, rejected = [], []
        for i, entry in enumerate(entries):
            count = counts.get(entry["request_id"])
            if count is None:
                rejected.append((i, "no logged prediction with this request_id"))
            elif not 0 <= entry["row_index"] < count:
                rejected.append((i, f"row_index out of range (the request had {count} row(s))"))
            elif entry.get("value") is None and entry.get("label") is None:
                rejected.append((i, "no actual outcome: set value or label"))
            else:
                accepted.append((entry["request_id"], entry["row_index"], entry.get("value"), entry.get("label"),
                                 entry.get("observe_time")))
        if accepted:
            await self._repo.upsert_feedback(name, accepted)
        return len(accepted), rejected


def _version_label(route: Route) -> str:
    """NAME@N of the version a route serves: the `version` label of prediction metrics."""
    _, name, _, number = route.version.split("/")
    return f"{name}@{number}"


def _code_name(exc: errors.DomainError) -> str:
    """InvalidArgument → INVALID_ARGUMENT: the status code a domain error becomes, as a metric label."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).upper()


def _log_entry(deployment: str, request_id: str, route: Route, values: dict[str, np.ndarray],
               prediction: Prediction, rows: int, latency: float) -> LoggedPrediction:
    outputs: dict[str, Any] = {"predictions": jsonable_column(prediction.values)}
    if prediction.probabilities is not None:
        outputs["probabilities"] = {label: jsonable_column(prediction.probabilities[:, i])
                                    for i, label in enumerate(route.model.class_labels)}
    return LoggedPrediction(deployment=deployment, request_id=request_id, model_version=route.version,
                            model_id=route.model.record.id, row_count=rows,
                            inputs={k: jsonable_column(v) for k, v in values.items()}, outputs=outputs,
                            latency_ms=latency)
