"""Queue overhead: StartTraining → RUNNING latency and trivial-job throughput, next to bare arq.

    python bench/queue_overhead.py [--jobs 100] [--workers 2] [--estimator baseline_classifier]

Starts `microlearn up --workers N`, uploads a 50-row table and trains the cheapest estimator on it
(by default `baseline_classifier`, which predicts the class prior: the fit itself is microseconds, so
every millisecond measured is platform overhead). After warm-up jobs (each worker's first fit starts
its forkserver and imports the ML stack; those seconds are reported, not averaged in), three modes:

  * one at a time: submit, wait until SUCCEEDED, submit the next (an idle platform: pure overhead)
  * burst, sequential: --jobs StartTraining calls back to back from one client, then wait for all
  * burst, concurrent: --jobs StartTraining calls, --clients of them in flight at once

Latency is submit → RUNNING: from the client's time.time() just before the StartTraining call to
`jobs.started_at`, which PostgreSQL stamps (now()) in the compare-and-set that takes the lease.
Both are the host's realtime clock (one machine); the bench prints the measured offset between
Python's time.time() and PostgreSQL's clock_timestamp() with its error bound, so the reader can see
that the two ends are comparable. The RUNNING event's `time` (stamped by the worker when it
publishes) gives a second reading of the same instant. Throughput is jobs SUCCEEDED per second,
from the first submit to the last `jobs.ended_at`.

Baseline, same run, same Redis: two `arq` worker processes (this script with --arq-worker, the
same max_jobs and poll_delay as a MicroLearn worker) running a no-op function; enqueue → start
latency (bench's time.time() before enqueue_job → the function's time.time() when it starts) and
throughput (first enqueue → last function end) in the same three modes.

The phase table follows one-at-a-time jobs through their events (all stamped by the publisher,
the server or the worker) and job row timestamps, medians over the jobs, so the next engineer
sees where a trivial job's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import (Platform, clock_offset, job_milestones, percentile, training_spec,  # noqa: E402
                       upload_dataset, wait_terminal)

ARQ_QUEUE = "bench:arq-baseline"
MODES = ("one at a time", "burst, sequential submits", "burst, concurrent submits")


def tiny_csv(rows: int, seed: int = 0) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["x1,x2,x3,label"]
    for _ in range(rows):
        x = rng.normal(size=3)
        lines.append(f"{x[0]:.4f},{x[1]:.4f},{x[2]:.4f},{'yes' if x.sum() + rng.normal() > 0 else 'no'}")
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Batch:
    """One mode's jobs: when each was sent (epoch s), the rows' timestamps, the events' times."""

    sent: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    rows: dict = field(default_factory=dict)
    wall: float = 0.0  # first send → last end (or last function end, for arq)
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    failed: int = 0
    retries: int = 0

    def latencies_ms(self) -> list[float]:
        return [(self.started[j] - self.sent[j]) * 1000 for j in self.sent if j in self.started]

    def submit_ms(self) -> list[float]:
        return [(self.answered[j] - self.sent[j]) * 1000 for j in self.sent]

    @property
    def throughput(self) -> float:
        done = len(self.ended) - self.failed
        return done / self.wall if self.wall > 0 else float("nan")


# -- MicroLearn -------------------------------------------------------------------------------------------

async def submit(trainer, metadata, spec, batch: Batch) -> str:
    from microlearn.v1 import trainer_pb2

    request = trainer_pb2.StartTrainingRequest(spec=spec)
    sent = time.time()
    response = await trainer.StartTraining(request, metadata=metadata, timeout=60)
    batch.answered[response.job.job_id] = time.time()
    batch.sent[response.job.job_id] = sent
    return response.job.job_id


def worker_retries(platform: Platform) -> int:
    """arq's "retrying job" lines: a delivery that found every fit slot busy and went back to the queue."""
    return sum(path.read_text(errors="replace").count("retrying job")
               for path in (platform.data_dir / "logs").glob("worker-*.log"))


async def run_microlearn(mode: str, n: int, clients: int, trainer, metadata, spec, pool, platform: Platform,
                         timeout: float) -> Batch:
    batch = Batch()
    retries_before = worker_retries(platform)
    if mode == MODES[0]:
        for _ in range(n):
            job_id = await submit(trainer, metadata, spec, batch)
            await wait_terminal(pool, [job_id], timeout)
    elif mode == MODES[1]:
        for _ in range(n):
            await submit(trainer, metadata, spec, batch)
    else:
        gate = asyncio.Semaphore(clients)

        async def one() -> None:
            async with gate:
                await submit(trainer, metadata, spec, batch)
        await asyncio.gather(*(one() for _ in range(n)))
    batch.rows = await wait_terminal(pool, list(batch.sent), timeout)
    await asyncio.sleep(0.3)  # let the workers write their last log lines
    batch.retries = worker_retries(platform) - retries_before
    for job_id, row in batch.rows.items():
        if row["started"] is not None:
            batch.started[job_id] = row["started"]
        batch.ended[job_id] = row["ended"]
        batch.failed += row["state"] != "SUCCEEDED"
    batch.wall = max(batch.ended.values()) - min(batch.sent.values())
    return batch


async def job_events(trainer, metadata, job_id: str) -> list:
    from microlearn.v1 import trainer_pb2

    request = trainer_pb2.StreamJobEventsRequest(name=f"jobs/{job_id}")
    return [response.event async for response in trainer.StreamJobEvents(request, metadata=metadata, timeout=30)]


def phases(batch: Batch, events: dict[str, list]) -> tuple[list[tuple[str, str, float]], list[float]]:
    """Median duration of each step of a job, from the client's send to the SUCCEEDED event; and the
    submit → RUNNING-event latencies (the second reading of the start)."""
    steps: dict[str, list[float]] = {}
    running_latency = []
    first_text = ""

    def add(name: str, value: float | None) -> None:
        if value is not None:
            steps.setdefault(name, []).append(value * 1000)

    def between(a: float | None, b: float | None) -> float | None:
        return b - a if a is not None and b is not None else None

    for job_id, stream in events.items():
        row, sent, at = batch.rows[job_id], batch.sent[job_id], job_milestones(stream)
        first_text = first_text or at.get("first_log_text", "")
        if "RUNNING" in at:
            running_latency.append((at["RUNNING"] - sent) * 1000)
        add("send → job row written (created_at)", row["created"] - sent)
        add("created_at → PENDING event", between(row["created"], at.get("PENDING")))
        add("PENDING event → lease taken (started_at)", between(at.get("PENDING"), row["started"]))
        add("started_at → RUNNING event", between(row["started"], at.get("RUNNING")))
        add("RUNNING event → first log of the fit process", between(at.get("RUNNING"), at.get("first_log")))
        add("first log → 'fitting' log", between(at.get("first_log"), at.get("fitting")))
        add("'fitting' log → job row SUCCEEDED (ended_at)", between(at.get("fitting"), row["ended"]))
        add("ended_at → SUCCEEDED event", between(row["ended"], at.get("SUCCEEDED")))
        add("StartTraining answered (client) after send", batch.answered[job_id] - sent)
        add("send → SUCCEEDED event (whole job)", between(sent, at.get("SUCCEEDED")))
    # The fit process's first log line came before the Parquet read in older versions ("reading …")
    # and after it since ("read NAME: …"); say which this run saw.
    read_first = first_text.startswith("read ")
    what = {
        "send → job row written (created_at)": "gRPC call, auth, spec validation, dataset lookup, transaction begins",
        "created_at → PENDING event": "job + dataset reference insert, commit, XADD",
        "PENDING event → lease taken (started_at)": "enqueue, arq poll, delivery, job read, PENDING→RUNNING UPDATE",
        "started_at → RUNNING event": "XADD of the RUNNING event",
        "RUNNING event → first log of the fit process":
            "work dir, dataset resolve/local copy, hand-over to a reused fit process (MLflow start_run runs "
            "meanwhile on the tracking thread)"
            + (", Parquet read" if read_first else "") + f" (first log: '{first_text[:24]}…')",
        "first log → 'fitting' log": "in the fit process: " + ("" if read_first else "Parquet read, ")
                                     + "feature plan, split",
        "'fitting' log → job row SUCCEEDED (ended_at)":
            "fit, score, diagnostics, artifact write, pack+SHA-256+HMAC, store while MLflow logs the results and "
            "closes the run (awaited), DB transaction",
        "ended_at → SUCCEEDED event": "XADD",
        "StartTraining answered (client) after send": "includes the enqueue (the RPC returns after it)",
        "send → SUCCEEDED event (whole job)": "",
    }
    return [(name, what[name], statistics.median(values)) for name, values in steps.items()], running_latency


# -- bare arq ---------------------------------------------------------------------------------------------

async def _noop(ctx) -> float:  # noqa: ARG001 - arq passes its context
    return time.time()


def arq_worker_main(redis_url: str, max_jobs: int, poll_delay: float) -> None:
    """A bare arq worker (subprocess of the bench) running only the no-op function."""
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    Worker(functions=[func(_noop, name="noop")], redis_settings=RedisSettings.from_dsn(redis_url),
           queue_name=ARQ_QUEUE, max_jobs=max_jobs, poll_delay=poll_delay, keep_result=300).run()


async def run_arq(mode: str, n: int, clients: int, pool) -> Batch:
    batch = Batch()
    jobs = {}

    async def enqueue() -> None:
        sent = time.time()
        job = await pool.enqueue_job("noop", _queue_name=ARQ_QUEUE)
        batch.answered[job.job_id] = time.time()
        batch.sent[job.job_id] = sent
        jobs[job.job_id] = job

    async def finish(job_id: str) -> None:
        started = await jobs[job_id].result(timeout=60, poll_delay=0.005)
        batch.started[job_id] = batch.ended[job_id] = started

    if mode == MODES[0]:
        for _ in range(n):
            await enqueue()
            await finish(next(reversed(jobs)))
    else:
        if mode == MODES[1]:
            for _ in range(n):
                await enqueue()
        else:
            gate = asyncio.Semaphore(clients)

            async def one() -> None:
                async with gate:
                    await enqueue()
            await asyncio.gather(*(one() for _ in range(n)))
        await asyncio.gather(*(finish(job_id) for job_id in jobs))
    batch.wall = max(batch.ended.values()) - min(batch.sent.values())
    return batch


async def arq_baseline(redis_url: str, args: argparse.Namespace, max_jobs: int, poll_delay: float) -> dict[str, Batch]:
    import subprocess

    from arq import create_pool
    from arq.connections import RedisSettings

    procs = [subprocess.Popen([sys.executable, __file__, "--arq-worker", redis_url, str(max_jobs), str(poll_delay)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(args.workers)]
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=ARQ_QUEUE)
    try:
        await run_arq(MODES[2], 4 * args.workers * max_jobs, args.clients, pool)  # warm-up: both workers polling
        return {mode: await run_arq(mode, args.one_at_a_time if mode == MODES[0] else args.jobs, args.clients, pool)
                for mode in MODES}
    finally:
        await pool.aclose()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


# -- main -------------------------------------------------------------------------------------------------

async def measure(platform: Platform, args: argparse.Namespace) -> None:
    import asyncpg
    import grpc

    from microlearn.v1 import trainer_pb2_grpc
    from microlearn_grpc.config import load_settings

    metadata = platform.metadata()
    with grpc.insecure_channel(platform.address) as channel:
        dataset = upload_dataset(channel, metadata, f"tiny-{time.time_ns()}", tiny_csv(args.rows))
    spec = training_spec(dataset.name, "label", args.estimator)
    pool = await asyncpg.create_pool(platform.database_url, min_size=1, max_size=4)
    offset, bound = await clock_offset(pool)
    async with grpc.aio.insecure_channel(platform.address) as channel:
        trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
        # Warm-up: enough concurrent jobs that every worker starts its forkserver and MLflow client.
        warm = await run_microlearn(MODES[2], args.warmup, args.clients, trainer, metadata, spec, pool, platform,
                                    args.timeout)
        workers_used = len({r["id"] for r in await pool.fetch(
            "SELECT DISTINCT worker_id AS id FROM jobs WHERE id = ANY($1::text[])", list(warm.sent))})
        results = {}
        cpu_per_job: dict[str, float] = {}
        for mode in MODES:
            n = args.one_at_a_time if mode == MODES[0] else args.jobs
            before = cpu_seconds(platform) if mode == MODES[1] else None
            results[mode] = await run_microlearn(mode, n, args.clients, trainer, metadata, spec, pool, platform,
                                                 args.timeout)
            if before is not None:
                after = cpu_seconds(platform)
                cpu_per_job = {role: (after.get(role, 0.0) - spent) * 1000 / n for role, spent in before.items()}
        single = results[MODES[0]]
        events = {job_id: await job_events(trainer, metadata, job_id) for job_id in single.sent}
    await pool.close()

    settings = load_settings(env={**os.environ, **args.extra_env})  # the workers' arq options, for the baseline
    max_jobs, poll_delay = settings.worker_concurrency + 1, settings.worker_poll_seconds
    baseline = await arq_baseline(platform.redis_url, args, max_jobs, poll_delay)

    steps, running_latency = phases(single, events)
    print()
    print(f"clock check: PostgreSQL clock_timestamp() − time.time() = {offset * 1000:+.2f} ms "
          f"(± {bound * 1000:.2f} ms round trip)")
    print(f"warm-up: {args.warmup} concurrent {args.estimator} jobs on {workers_used} of {args.workers} worker(s) "
          f"took {warm.wall:.1f} s (each worker's first fit starts its forkserver); "
          f"slowest warm-up job submit → SUCCEEDED {max(warm.ended[j] - warm.sent[j] for j in warm.ended):.2f} s")
    print()
    print(f"| metric ({args.estimator} on {args.rows} rows; {args.workers} workers; arq: no-op, {args.workers} "
          f"workers, max_jobs {max_jobs}, poll {poll_delay * 1000:g} ms) | MicroLearn | bare arq | goal |")
    print("|---|---|---|---|")
    for mode in MODES:
        ml, aq = results[mode], baseline[mode]
        goal = "< 50 ms" if mode == MODES[0] else ""
        count = f"{len(ml.sent)} jobs" + (f", {args.clients} in flight" if mode == MODES[2] else "")
        for q in (50, 95):
            print(f"| submit → RUNNING p{q}, {mode} ({count}) | {percentile(ml.latencies_ms(), q):.1f} ms | "
                  f"{percentile(aq.latencies_ms(), q):.1f} ms | {goal if q == 50 else ''} |")
    for mode in MODES:
        ml, aq = results[mode], baseline[mode]
        extra = f" ({ml.failed} failed)" if ml.failed else ""
        print(f"| throughput, {mode}: first submit → last SUCCEEDED | {ml.throughput:.1f} jobs/s{extra} | "
              f"{aq.throughput:.0f} jobs/s | ≥ 100 jobs/s |")
    for mode in MODES:
        ml, aq = results[mode], baseline[mode]
        print(f"| StartTraining / enqueue_job round trip p50 / p95, {mode} | {percentile(ml.submit_ms(), 50):.1f} / "
              f"{percentile(ml.submit_ms(), 95):.1f} ms | {percentile(aq.submit_ms(), 50):.1f} / "
              f"{percentile(aq.submit_ms(), 95):.1f} ms | |")
    print(f"| submit → RUNNING event (worker's stamp) p50, one at a time | {percentile(running_latency, 50):.1f} ms | "
          f"| |")
    for mode in MODES[1:]:
        print(f"| arq redeliveries (Retry: every fit slot busy), {mode} | {results[mode].retries} | 0 | |")
    print()
    print(f"| where a one-at-a-time {args.estimator} job's time goes ({len(events)} jobs, medians) | ms "
          "| what happens |")
    print("|---|---|---|")
    for name, what, value in steps:
        print(f"| {name} | {value:.1f} | {what} |")
    print()
    print(f"| CPU per job, {MODES[1]} ({args.jobs} jobs), by process | CPU ms |")
    print("|---|---|")
    for role, ms in sorted(cpu_per_job.items(), key=lambda item: -item[1]):
        print(f"| {role} | {ms:.1f} |")
    print(f"| all of them | {sum(cpu_per_job.values()):.1f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")


def cpu_seconds(platform: Platform) -> dict[str, float]:
    """User + system CPU seconds so far of `microlearn up`'s processes, summed by role (this bench
    process, the client, counted apart). Processes that exit in between are missed; fit processes are
    reused from job to job, so few do."""
    import psutil

    roles: dict[str, float] = {}
    me = psutil.Process()
    procs = [(me, "bench client (this process)")]
    family = {child.pid: child for child in psutil.Process(platform.proc.pid).children(recursive=True)}
    for proc in psutil.process_iter(["cmdline"]):  # PostgreSQL and Redis may have left the process tree
        with contextlib.suppress(psutil.Error):
            if str(platform.data_dir) in " ".join(proc.info["cmdline"] or ()):
                family.setdefault(proc.pid, proc)
                family.update({child.pid: child for child in proc.children(recursive=True)})
    family.pop(platform.proc.pid, None)
    procs += [(proc, "") for proc in family.values()]
    procs.append((psutil.Process(platform.proc.pid), "microlearn up (supervisor)"))
    for proc, role in procs:
        try:
            times = proc.cpu_times()
            command = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        role = role or _role(proc, command)
        roles[role] = roles.get(role, 0.0) + times.user + times.system
    return roles


def _role(proc, command: str) -> str:
    if "postgres" in command or proc.name().startswith("postgres"):
        return "PostgreSQL"
    if "redis" in command:
        return "Redis"
    if "forkserver" in command or "multiprocessing" in command:
        return "fit processes (forkserver children)"
    if " worker" in command:
        return "workers (event loop, MLflow thread)"
    if " serve" in command or " server" in command:
        return "gRPC server"
    if "gateway" in command:
        return "gateway"
    return command.split(" ", 2)[-1][:40] or proc.name()


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--arq-worker":
        arq_worker_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100, help="jobs per burst mode (default 100)")
    parser.add_argument("--one-at-a-time", type=int, default=20, help="jobs run one after another (default 20)")
    parser.add_argument("--clients", type=int, default=16, help="submits in flight in the concurrent mode")
    parser.add_argument("--workers", type=int, default=2, help="`microlearn up --workers` and bare arq workers")
    parser.add_argument("--warmup", type=int, default=8, help="concurrent jobs run first and not counted")
    parser.add_argument("--estimator", default="baseline_classifier")
    parser.add_argument("--rows", type=int, default=50, help="rows of the uploaded table")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for a batch to finish")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for `microlearn up` (repeatable), e.g. "
                             "MICROLEARN_MLFLOW_TRACKING_URI=off to see what tracking costs")
    args = parser.parse_args()
    args.extra_env = dict(item.split("=", 1) for item in args.env)
    print(f"load average at the start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="ml-queue-") as tmp:
        platform = Platform(Path(tmp), "--workers", str(args.workers), env=args.extra_env or None)
        try:
            asyncio.run(measure(platform, args))
        finally:
            platform.stop()


if __name__ == "__main__":
    main()
