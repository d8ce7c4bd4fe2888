"""Shared fixtures: the embedded PostgreSQL and Redis the product itself starts, and real gRPC
servers on real sockets running in a background thread's event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TOKEN = "test-token-123"


@dataclasses.dataclass
class Backends:
    database_url: str
    redis_url: str
    root: Path


@pytest.fixture(scope="session")
def backends() -> Iterator[Backends]:
    from microlearn_grpc.embedded import EmbeddedPostgres, EmbeddedRedis

    # Not under pytest's basetemp: each pytest session resets /tmp/pytest-of-USER to mode 0700,
    # which (as root) locks out the unprivileged user PostgreSQL runs as in a concurrent session.
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="microlearn-test-backends-"))
    postgres = EmbeddedPostgres(root / "postgres")
    redis = EmbeddedRedis(root / "redis")
    try:
        yield Backends(postgres.start(), redis.start(), root)
    finally:
        redis.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


class ServerThread:
    """A MicroLearn gRPC server (the production `start_server`) on its own loop in a thread."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self.container = None
        self.port = 0

    def run(self, coro, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, services=None) -> None:
        from microlearn_grpc import bootstrap
        from microlearn_grpc.server import start_server

        async def _start():
            self.container = await bootstrap.build(self.settings)
            self.server, self.port, _ = await start_server(self.settings, self.container, services, port=0)
        self.run(_start())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        async def _stop():
            await self.server.stop(grace=1)
            await self.container.close()
        try:
            self.run(_stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def make_settings(backends: Backends, data_dir: Path, **overrides):
    from microlearn_grpc.config import load_settings

    return load_settings(env={}, data_dir=data_dir.resolve(), database_url=backends.database_url, redis_url=backends.redis_url,
                         token=TOKEN, grpc_port=0, **overrides)


@pytest.fixture(scope="session")
def platform(backends, tmp_path_factory) -> Iterator[ServerThread]:
    server = ServerThread(make_settings(backends, tmp_path_factory.mktemp("platform")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def limited_platform(backends, platform, tmp_path_factory) -> Iterator[ServerThread]:
    """A second server on the same database with small limits, for the RESOURCE_EXHAUSTED paths. Like any
    second server of one platform it shares the first's artifact store and signing key (its deployment
    router loads the same models)."""
    shared = platform.settings
    server = ServerThread(make_settings(backends, tmp_path_factory.mktemp("limited"), max_upload_bytes=2 << 20,
                                        max_decompressed_bytes=4 << 20, max_columns=50, artifact_url=shared.artifacts,
                                        model_signing_key=shared.signing_key().decode()))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def unique_name(request) -> str:
    import uuid

    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:6]}"


def buf_binary() -> str:
    """The `buf` CLI from the dev extra (buf-bin), next to this interpreter."""
    import shutil
    import sys

    found = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    if not Path(found).exists():
        pytest.fail("buf is not installed: it comes with the dev extra (buf-bin); run ./dev setup")
    return found


def sql(backends: Backends, query: str, *args: Any) -> list[dict]:
    """Run one query on a fresh connection (tests inspect the database directly)."""
    import asyncpg

    async def _run():
        conn = await asyncpg.connect(backends.database_url)
        try:
            return [dict(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()
    return asyncio.run(_run())


class WorkerProcesses:
    """`microlearn worker` processes (real arq workers, as a user starts them) sharing the
    platform's data dir, so they read its datasets and sign models with its key."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[Any] = []

    def start(self, count: int = 1, **extra_env: str) -> list[Any]:
        import os
        import subprocess
        import sys

        started = []
        for _ in range(count):
            log = (self.log_dir / f"worker-{len(self.procs)}.log").open("wb")
            proc = subprocess.Popen([sys.executable, "-m", "microlearn_grpc", "worker"],
                                    env={**os.environ, **self.env, **extra_env}, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append(proc)
            started.append(proc)
        return started

    def stop(self, proc: Any) -> None:
        import os
        import signal
        import subprocess

        if proc.poll() is None:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.log_dir.glob("worker-*.log")))


# Short leases so the lost-worker path runs in seconds (the defaults are 30 s / 1 s / 5 s).
WORKER_ENV = {"MICROLEARN_JOB_LEASE_SECONDS": "4", "MICROLEARN_HEARTBEAT_SECONDS": "0.5",
              "MICROLEARN_RECONCILE_INTERVAL_SECONDS": "1", "MICROLEARN_WORKER_CONCURRENCY": "2",
              "MICROLEARN_THREADS_PER_JOB": "1", "MICROLEARN_GPUS": "none"}


@pytest.fixture(scope="session")
def worker_env(backends, platform) -> dict[str, str]:
    settings = platform.settings
    return {"MICROLEARN_DATABASE_URL": backends.database_url, "MICROLEARN_REDIS_URL": backends.redis_url,
            "MICROLEARN_DATA_DIR": str(settings.data_dir), "MICROLEARN_TOKEN": TOKEN, **WORKER_ENV}


@pytest.fixture(scope="session")
def workers(worker_env, tmp_path_factory) -> Iterator[WorkerProcesses]:
    """Two worker processes serving the `platform` fixture's server."""
    pool = WorkerProcesses(worker_env, tmp_path_factory.mktemp("worker-logs"))
    pool.start(2)
    yield pool
    pool.stop_all()
