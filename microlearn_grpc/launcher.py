"""`microlearn up`: start the embedded backends (unless configured), the services and the workers.

The services and workers run as child processes with the same `MICROLEARN_*` variables a
multi-host deployment would give them, so the embedded default exercises the scale-out code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from microlearn_grpc.bootstrap import redact
from microlearn_grpc.config import ConfigError, Settings, load_settings
from microlearn_grpc.embedded import (
    EmbeddedError,
    EmbeddedPostgres,
    EmbeddedRedis,
    free_port,
    log_tail,
    read_or_create_secret,
)


class LaunchError(RuntimeError):
    """The platform could not start; the message says which part and where its log is."""


def _say(line: str) -> None:
    print(line, flush=True)


def _load_token(settings: Settings, data_dir: Path) -> str | None:
    if settings.insecure_local:
        return None
    if settings.token:
        return settings.token
    return read_or_create_secret(data_dir / "token", nbytes=32)


def _lock(data_dir: Path):
    handle = open(data_dir / "up.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        raise LaunchError(f"another `microlearn up` is running with --data-dir {data_dir} "
                          f"(pid {handle.read().strip() or '?'}); stop it first or use another --data-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


async def _migrate(url: str) -> None:
    from microlearn_grpc.bootstrap import connect_database

    pool = await connect_database(load_settings(env={"MICROLEARN_DATABASE_URL": url}))
    await pool.close()


def _wait_grpc(address: str, token: str | None, proc: subprocess.Popen, log: Path, timeout: float = 60.0,
               since: int = 0) -> None:
    """Until the process listens (it printed `grpc: HOST:PORT` in its log after byte `since`) and the
    port answers health checks as SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LaunchError(f"the gRPC server exited with code {proc.returncode}; see {log}:\n{log_tail(log)}")
            # The process says `grpc: HOST:PORT` once it listens (with --servers N, another process may
            # answer the health check first).
            listening = _logged_since(log, since, "grpc: ")
            with contextlib.suppress(grpc.RpcError):
                if listening and stub.Check(health_pb2.HealthCheckRequest(),
                                            timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    raise LaunchError(f"the gRPC server did not become healthy within {timeout:.0f}s; see {log}")


def _logged_since(log: Path, offset: int, prefix: str) -> bool:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            return any(line.startswith(prefix.encode()) for line in handle.read().splitlines())
    except OSError:
        return False


def _wait_http(host: str, port: int, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LaunchError(f"the REST gateway exited with code {proc.returncode}; see {log}:\n{log_tail(log)}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise LaunchError(f"the REST gateway did not become healthy within {timeout:.0f}s; see {log}")


async def _ping_worker(redis_url: str, timeout: float) -> dict:
    from arq import create_pool

    from workers.settings import QUEUE_NAME, redis_settings

    pool = await create_pool(redis_settings(redis_url), default_queue_name=QUEUE_NAME)
    try:
        job = await pool.enqueue_job("ping")
        return await job.result(timeout=timeout, poll_delay=0.1)
    finally:
        await pool.aclose()


def _metrics_ports(configured: int | None, host: str, others: int) -> list[str]:
    """MICROLEARN_METRICS_PORT for the server, then each of `others` (workers, gateway): the configured
    port for the server (a free one when unset or 0), free ports for the others; `off` for all when off."""
    if configured is not None and configured < 0:
        return ["off"] * (others + 1)
    server = configured if configured else free_port(host)
    return [str(server), *(str(free_port(host)) for _ in range(others))]


class _Children:
    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.log_offsets: dict[Path, int] = {}  # each log's size when its process started (logs are appended)

    def spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as fh:
            self.log_offsets[log] = fh.tell()
            proc = subprocess.Popen([sys.executable, "-m", "microlearn_grpc", *args], env={**self.env, **(extra_env or {})},
                                    stdout=fh,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, proc, log))
        return proc, log

    def dead(self) -> tuple[str, subprocess.Popen, Path] | None:
        return next((entry for entry in self.procs if entry[1].poll() is not None), None)

    def stop(self, timeout: float = 15.0) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc, _ in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def run_up(*, data_dir: Path, grpc_port: int, http_port: int, host: str, workers: int, insecure_local: bool,
           servers: int = 1) -> int:
    started = time.monotonic()
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = load_settings(data_dir=data_dir, grpc_port=grpc_port, http_port=http_port, grpc_host=host,
                             insecure_local=insecure_local or None)
    token = _load_token(settings, data_dir)
    settings = dataclasses.replace(settings, token=token)
    settings.check_auth()
    lock = _lock(data_dir)
    stop_requested = False

    def request_stop(signum, frame):  # noqa: ARG001
        nonlocal stop_requested
        stop_requested = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    postgres = redis = None
    (data_dir / "logs").mkdir(exist_ok=True)
    env = dict(os.environ)
    children = _Children(data_dir / "logs", env)
    try:
        database_url, redis_url = settings.database_url, settings.redis_url
        if database_url is None:
            postgres = EmbeddedPostgres(data_dir / "postgres")
            database_url = postgres.start()
            _say(f"postgres: embedded 127.0.0.1:{postgres.port} (data {postgres.pgdata})")
        else:
            _say(f"postgres: {redact(database_url)}")
        if redis_url is None:
            redis = EmbeddedRedis(data_dir / "redis")
            redis_url = redis.start()
            _say(f"redis: embedded 127.0.0.1:{redis.port} (data {redis.data_dir})")
        else:
            _say(f"redis: {redact(redis_url)}")
        asyncio.run(_migrate(database_url))
        _say(f"artifacts: {settings.artifacts}")
        port = free_port(host) if grpc_port == 0 else grpc_port
        env.update({
            "MICROLEARN_DATA_DIR": str(data_dir), "MICROLEARN_DATABASE_URL": database_url,
            "MICROLEARN_REDIS_URL": redis_url, "MICROLEARN_GRPC_HOST": host, "MICROLEARN_GRPC_PORT": str(port),
            "MICROLEARN_INSECURE_LOCAL": "true" if settings.insecure_local else "false",
            "MICROLEARN_ARTIFACT_URL": settings.artifacts, "MICROLEARN_SERVER_PROCESSES": str(servers),
        })
        if token:
            env["MICROLEARN_TOKEN"] = token
        # the servers, the workers, the gateway
        metrics = _metrics_ports(settings.metrics_port, host, servers + workers)
        spawned = [children.spawn("server" if servers == 1 else f"server-{index + 1}", ["serve"],
                                  {"MICROLEARN_METRICS_PORT": metrics[index]}) for index in range(servers)]
        for index in range(workers):
            children.spawn(f"worker-{index + 1}", ["worker"], {"MICROLEARN_METRICS_PORT": metrics[servers + index]})
        for server, server_log in spawned:  # each must come up: any one of them may get a connection
            _wait_grpc(f"{host}:{port}", token, server, server_log, since=children.log_offsets[server_log])
        http = free_port(host) if http_port == 0 else http_port
        gateway, gateway_log = children.spawn("gateway", ["gateway", "--grpc-address", f"{host}:{port}",
                                                          "--host", host, "--port", str(http)],
                                              {"MICROLEARN_METRICS_PORT": metrics[-1]})
        _wait_http(host, http, gateway, gateway_log)
        try:
            info = asyncio.run(_ping_worker(redis_url, timeout=60))
        except Exception as exc:  # noqa: BLE001
            dead = children.dead()
            where = f"; see {dead[2]}:\n{log_tail(dead[2])}" if dead else ""
            raise LaunchError(f"no worker answered a ping ({type(exc).__name__}: {exc}){where}") from None
        gpus = ", ".join(info.get("gpus") or []) or "none (CPU only)"
        _say(f"worker: {workers} process(es), e.g. {info['worker_id']}; GPUs: {gpus}")
        _say(f"logs: {data_dir / 'logs'}")
        _say(f"grpc: {host}:{port}")
        _say(f"http: http://{host}:{http} (REST; OpenAPI docs at /docs)")
        if servers > 1:
            _say(f"server: {servers} processes sharing port {port}")
        if metrics[0] != "off":
            _say(f"metrics: http://{host}:{metrics[0]}/metrics (server{'s' if servers > 1 else ''}"
                 f"{' on ' + ', '.join(metrics[:servers]) if servers > 1 else ''}); workers on port(s) "
                 f"{', '.join(metrics[servers:-1]) or 'none'}; gateway on port {metrics[-1]}")
        _say(f"token: {token}" if token else "token: none (insecure-local)")
        _say(f"started in {time.monotonic() - started:.1f}s")
        _say("ready")
        while not stop_requested:
            dead = children.dead()
            if dead:
                name, proc, log = dead
                _say(f"error: {name} exited with code {proc.returncode}; see {log}; stopping")
                return 1
            time.sleep(0.2)
        _say("stopping...")
        return 0
    except (EmbeddedError, ConfigError) as exc:
        raise LaunchError(str(exc)) from None
    finally:
        children.stop()
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.close()
        if stop_requested:
            _say("stopped")
