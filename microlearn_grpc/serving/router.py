"""Which loaded model answers a deployment's request, kept in step with PostgreSQL.

Each serving process holds one `RouteTable` per deployment. A background task polls the serving
generation (one row, bumped by triggers on every routing change) every `poll_interval` seconds;
when it moves, the process reads every deployment, loads the models their targets resolve to,
and only then swaps in the new tables, one assignment, so a request sees the old routing or the
new, never a mix, and never a model that is still loading. A target whose model fails to load
(for example a tampered artifact) leaves the deployment's previous table serving and marks the
deployment FAILED with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import zlib

from microlearn_grpc import errors
from microlearn_grpc.serving._tasks import stop_task
from microlearn_grpc.serving.models import LoadedModel, ModelCache
from microlearn_grpc.storage.deployments_repo import DeploymentRecord, DeploymentRepository
from microlearn_grpc.storage.registry_repo import version_name

log = logging.getLogger(__name__)

__all__ = ["Route", "RouteTable", "Router", "version_number"]


@dataclasses.dataclass(frozen=True)
class Route:
    reference: str        # the target as configured, NAME@N or NAME@ALIAS
    version: str          # registeredModels/{name}/versions/{n} it resolves to now
    percent: int
    model: LoadedModel


class RouteTable:
    """A deployment's resolved targets. `pick` splits traffic by smooth weighted round robin, so
    any run of requests matches the percentages as closely as whole requests can."""

    def __init__(self, deployment: DeploymentRecord, routes: list[Route]) -> None:
        self.deployment = deployment
        self.routes = routes
        self._weights = [r.percent if len(routes) > 1 else 100 for r in routes]
        self._current = [0] * len(routes)
        self._total = sum(self._weights)

    @property
    def primary(self) -> Route:
        return max(self.routes, key=lambda r: r.percent)

    def pick(self, routing_key: str = "", model_version: str = "") -> Route:
        if model_version:
            return self.find(model_version)
        if len(self.routes) == 1:
            return self.routes[0]
        if routing_key:
            bucket = zlib.crc32(routing_key.encode()) % self._total
            for route, weight in zip(self.routes, self._weights):
                if bucket < weight:
                    return route
                bucket -= weight
        best = 0
        for i, weight in enumerate(self._weights):
            self._current[i] += weight
            if self._current[i] > self._current[best]:
                best = i
        self._current[best] -= self._total
        return self.routes[best]

    def find(self, reference: str) -> Route:
        wanted = reference.strip()
        for route in self.routes:
            if wanted in (route.reference, route.version, _long_form(route.reference)):
                return route
        if wanted.isascii() and wanted.isdigit():  # a bare version number, as Open Inference clients send it
            numbered = [r for r in self.routes if version_number(r) == int(wanted)]
            if len(numbered) == 1:
                return numbered[0]
            if numbered:
                raise errors.InvalidArgument(f"model_version: {wanted} is ambiguous in {self.deployment.resource_name}; "
                                             f"name one of {', '.join(r.reference for r in numbered)}")
        choices = ", ".join(r.reference for r in self.routes)
        raise errors.InvalidArgument(f"model_version: {reference!r} is not a traffic target of "
                                     f"{self.deployment.resource_name}; its targets are {choices}")


def version_number(route: Route) -> int:
    """The registered version number a route serves (registeredModels/NAME/versions/N → N)."""
    return int(route.version.rsplit("/", 1)[1])


def _long_form(reference: str) -> str:
    name, _, tag = reference.partition("@")
    return version_name(name, int(tag)) if tag.isdigit() else f"registeredModels/{name}/aliases/{tag}"


class Router:
    def __init__(self, deployments: DeploymentRepository, cache: ModelCache, *, poll_interval: float = 0.2) -> None:
        self._repo = deployments
        self._cache = cache
        self._poll_interval = poll_interval
        self._tables: dict[str, RouteTable] = {}
        self._failures: dict[str, str] = {}
        self._generation: int | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="microlearn-serving-router")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    def kick(self) -> None:
        """Check for changes now rather than at the next poll (this process just changed something)."""
        self._wake.set()

    def forget(self, name: str) -> None:
        """Stop serving a deployment at once (it was deleted here; other processes follow on poll)."""
        tables = dict(self._tables)
        tables.pop(name, None)
        self._tables = tables

    @property
    def ready(self) -> bool:
        """True once the first refresh has loaded every deployment there was to load."""
        return self._generation is not None

    def table(self, name: str) -> RouteTable | None:
        return self._tables.get(name)

    def failure(self, name: str) -> str | None:
        return self._failures.get(name)

    async def sync(self) -> None:
        """Bring the tables up to date with the database now (waits for a refresh in progress)."""
        generation = await self._repo.generation()
        if generation != self._generation:
            await self._refresh()

    async def _poll(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep serving what is loaded; try again next poll
                log.warning("serving: could not refresh deployments", exc_info=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()

    async def _refresh(self) -> None:
        async with self._lock:
            generation, deployments = await self._repo.snapshot()
            if generation == self._generation:
                return
            tables: dict[str, RouteTable] = {}
            failures: dict[str, str] = {}
            states: list[tuple[str, str, str]] = []
            for deployment in deployments:
                try:
                    tables[deployment.name] = await self._build(deployment)
                except errors.DomainError as exc:
                    failures[deployment.name] = str(exc)
                    previous = self._tables.get(deployment.name)
                    if previous is not None:
                        tables[deployment.name] = previous  # the last good traffic keeps serving
                    states.append((deployment.name, "FAILED",
                                   str(exc) + ("; the previous traffic keeps serving" if previous else "")))
                    continue
                if deployment.state != "READY":
                    states.append((deployment.name, "READY", ""))
            self._tables, self._failures, self._generation = tables, failures, generation
            self._cache.retain({r.model.record.id for t in tables.values() for r in t.routes})
            # Only after the swap: a client that reads READY must find the new routing serving.
            for name, state, message in states:
                await self._repo.set_state(name, state, message)

    async def _build(self, deployment: DeploymentRecord) -> RouteTable:
        missing = [t.reference for t in deployment.targets if t.model_id is None]
        if missing or not deployment.targets:
            raise errors.FailedPrecondition(f"traffic target(s) {', '.join(missing) or '(none)'} resolve to no model")
        models = await asyncio.gather(*(self._cache.get(t.model_id) for t in deployment.targets if t.model_id))
        routes = [Route(reference=t.reference, version=version_name(t.registered_model, t.resolved_version or 0),
                        percent=t.percent, model=m) for t, m in zip(deployment.targets, models)]
        return RouteTable(deployment, routes)
