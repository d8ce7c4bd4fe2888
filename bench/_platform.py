"""Start `microlearn up` in a subprocess for benchmarks and read its announced address/token; plus
the helpers the training benchmarks share (upload, specs, job rows, clock check, event milestones)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


class Platform:
    """`microlearn up` in a subprocess. `env` adds variables (MICROLEARN_THREADS_PER_JOB, …) to the
    inherited environment, which `up` hands on to the server and its workers."""

    def __init__(self, data_dir: Path, *extra: str, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "microlearn_grpc", "up", "--data-dir", str(data_dir),
                                      "--grpc-port", "0", "--http-port", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=None if env is None else {**os.environ, **env})
        self.values: dict[str, str] = {}
        for line in self.proc.stdout:
            key, _, value = line.rstrip("\n").partition(": ")
            self.values[key] = value
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError(f"`microlearn up` exited: {self.values}")
        self.ready_seconds = time.perf_counter() - self.started

    @property
    def address(self) -> str:
        return self.values["grpc"]

    @property
    def token(self) -> str:
        return self.values["token"]

    @property
    def database_url(self) -> str:
        """The PostgreSQL URL the services use (the embedded server's, or MICROLEARN_DATABASE_URL)."""
        return self._backend_url("postgres", "postgresql://microlearn:{password}@{address}/microlearn")

    @property
    def redis_url(self) -> str:
        """The Redis URL the services and workers use (the embedded server's, or MICROLEARN_REDIS_URL)."""
        return self._backend_url("redis", "redis://:{password}@{address}/0")

    def _backend_url(self, name: str, template: str) -> str:
        # `up` prints "postgres: embedded 127.0.0.1:PORT (data …)" and keeps the password in the data dir;
        # an external server's URL is printed redacted, so take it from the environment instead.
        announced = self.values[name]
        if not announced.startswith("embedded "):
            return os.environ[f"MICROLEARN_{'DATABASE' if name == 'postgres' else 'REDIS'}_URL"]
        address = announced.split()[1]
        password = (self.data_dir / name / "password").read_text().strip()
        return template.format(password=password, address=address)

    def metadata(self) -> list[tuple[str, str]]:
        """gRPC call metadata carrying the token."""
        return [("authorization", f"Bearer {self.token}")]

    def server_pid(self) -> int:
        for child in psutil.Process(self.proc.pid).children():
            if "serve" in child.cmdline():
                return child.pid
        raise RuntimeError("no server child process")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)


def peak_rss_bytes(pid: int) -> int:
    """The kernel's high-water mark of the process's resident set (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found")


def env_for(platform: Platform) -> dict[str, str]:
    return {**os.environ, "MICROLEARN_ADDRESS": platform.address, "MICROLEARN_TOKEN": platform.token}


# -- shared by the training benchmarks ------------------------------------------------------------------

def upload_dataset(channel: Any, metadata: Sequence[tuple[str, str]], name: str, data: bytes, fmt: str = "csv",
                   chunk: int = 1 << 20) -> Any:
    """Upload CSV or Parquet bytes with DatasetService.UploadDataset (metadata first, then chunks); the Dataset."""
    from microlearn.v1 import dataset_pb2, dataset_pb2_grpc

    formats = {"csv": dataset_pb2.DATA_FORMAT_CSV, "parquet": dataset_pb2.DATA_FORMAT_PARQUET}

    def requests():
        yield dataset_pb2.UploadDatasetRequest(metadata=dataset_pb2.UploadDatasetMetadata(
            display_name=name, format=formats[fmt], expected_size_bytes=len(data)))
        for start in range(0, len(data), chunk):
            yield dataset_pb2.UploadDatasetRequest(chunk=data[start:start + chunk])

    return dataset_pb2_grpc.DatasetServiceStub(channel).UploadDataset(requests(), metadata=metadata,
                                                                       timeout=600).dataset


def training_spec(dataset: str, target: str, estimator: str, *, hyperparameters: Mapping[str, Any] | None = None,
                  **fields: Any) -> Any:
    """A TrainingSpec message; `hyperparameters` values become google.protobuf.Value."""
    from google.protobuf import json_format, struct_pb2

    from microlearn.v1 import trainer_pb2

    spec = trainer_pb2.TrainingSpec(dataset=dataset, target=target, estimator=estimator, **fields)
    for key, value in (hyperparameters or {}).items():
        spec.hyperparameters.values[key].CopyFrom(json_format.ParseDict(value, struct_pb2.Value()))
    return spec


async def job_rows(pool: Any, job_ids: Sequence[str]) -> dict[str, Any]:
    """The jobs' rows (state and timestamps as epoch seconds) by id."""
    rows = await pool.fetch(
        "SELECT id, state, error, extract(epoch FROM created_at)::float8 AS created,"
        " extract(epoch FROM started_at)::float8 AS started, extract(epoch FROM ended_at)::float8 AS ended"
        " FROM jobs WHERE id = ANY($1::text[])", list(job_ids))
    return {row["id"]: row for row in rows}


async def wait_terminal(pool: Any, job_ids: Sequence[str], timeout: float, poll: float = 0.02) -> dict[str, Any]:
    """Poll Postgres until every job is SUCCEEDED/FAILED/CANCELLED; their rows. TimeoutError otherwise."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        done = await pool.fetchval("SELECT count(*) FROM jobs WHERE id = ANY($1::text[]) AND state = ANY($2::text[])",
                                   list(job_ids), list(TERMINAL_STATES))
        if done == len(job_ids):
            return await job_rows(pool, job_ids)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(job_ids) - done} of {len(job_ids)} job(s) not finished after {timeout:.0f} s")
        await asyncio.sleep(poll)


async def clock_offset(pool: Any, rounds: int = 20) -> tuple[float, float]:
    """PostgreSQL's clock_timestamp() minus this process's time.time(), in seconds, from the round trip
    with the smallest delay (the midpoint estimate), and that round trip's length: the error bound."""
    best = (float("inf"), 0.0)
    for _ in range(rounds):
        before = time.time()
        server = await pool.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
        after = time.time()
        best = min(best, (after - before, server - (before + after) / 2))
    return best[1], best[0]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def event_time(event: Any) -> float:
    """An event's `time` (stamped by its publisher) as epoch seconds."""
    return event.time.seconds + event.time.nanos / 1e9


def job_milestones(events: Sequence[Any]) -> dict[str, Any]:
    """The publish times of a training job's landmark events: each state (PENDING, RUNNING, SUCCEEDED…),
    "first_log" (the fit process's first log line) with "first_log_text", "fitting" (the log line sent
    as the estimator's fit starts) and "rounds" (every metrics event carrying a train/val loss)."""
    from microlearn.v1 import common_pb2

    marks: dict[str, Any] = {"rounds": []}
    for event in events:
        at, kind = event_time(event), event.WhichOneof("payload")
        if kind == "state_change":
            marks.setdefault(common_pb2.JobState.Name(event.state_change.state).removeprefix("JOB_STATE_"), at)
        elif kind == "log" and "RUNNING" in marks:
            if "first_log" not in marks:
                marks["first_log"], marks["first_log_text"] = at, event.log.message
            if event.log.message.startswith("fitting "):
                marks.setdefault("fitting", at)
        elif kind == "metrics" and any(p.name in ("train_loss", "val_loss") for p in event.metrics.points):
            marks["rounds"].append(at)
    return marks
