"""Event latency: worker publish → StreamJobEvents subscriber, next to raw Redis XADD → XREAD.

    python bench/event_latency.py [--iterations 500] [--repeat 3] [--rows 2000]

Starts `microlearn up --workers 1`, uploads a small seeded numeric table and trains
hist_gradient_boosting_classifier with max_iterations=--iterations (no early stopping): one metrics
event per round. Right after StartTraining returns, the bench subscribes with StreamJobEvents and
notes time.time() as each event arrives. Latency = arrival − the event's `time`, which the worker's
EventBus stamps (time.time()) just before its XADD; both are this host's realtime clock. Events
already published when the subscription started are replayed history, not live delivery, so only
events stamped after the first event arrived count. The path measured: worker XADD → Redis → the
gRPC server's blocking XREAD → protobuf → gRPC stream → this client. (A round's message travels from
the fit process to the worker before the stamp; that hop is not in the figure.)

Baseline, same run, same Redis: a publisher subprocess (this script with --xadd-publisher) XADDs as
many entries as the jobs produced events, at the jobs' mean interval between events, each carrying
its time.time() stamp, in a MULTI/EXEC with EXPIRE as the EventBus does; this process reads them with
blocking XREAD (redis-py asyncio) and takes arrival − stamp.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _platform import Platform, percentile, training_spec, upload_dataset  # noqa: E402

BASELINE_STREAM = "bench:xadd-latency"


def small_csv(rows: int, columns: int, seed: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, columns))
    y = (X @ rng.normal(size=columns) + rng.normal(size=rows) > 0).astype(int)
    header = ",".join([*(f"f{i}" for i in range(columns)), "target"])
    lines = [header, *(",".join([*(f"{v:.5f}" for v in X[r]), str(y[r])]) for r in range(rows))]
    return ("\n".join(lines) + "\n").encode()


async def follow_job(trainer, metadata, spec) -> tuple[list[float], int, float]:
    """Submit, subscribe, and return the live events' latencies (ms), all events' count, and the mean
    interval between the events' stamps (s)."""
    from microlearn.v1 import common_pb2, trainer_pb2

    response = await trainer.StartTraining(trainer_pb2.StartTrainingRequest(spec=spec), metadata=metadata, timeout=60)
    stream = trainer.StreamJobEvents(trainer_pb2.StreamJobEventsRequest(name=response.job.name), metadata=metadata,
                                     timeout=600)
    arrivals = []
    async for message in stream:
        arrivals.append((time.time(), message.event))
    first_arrival = arrivals[0][0]
    stamps = [e.time.seconds + e.time.nanos / 1e9 for _, e in arrivals]
    live = [(arrived - stamp) * 1000 for (arrived, _), stamp in zip(arrivals, stamps) if stamp > first_arrival]
    metric_stamps = [s for (_, e), s in zip(arrivals, stamps) if e.WhichOneof("payload") == "metrics"]
    interval = (metric_stamps[-1] - metric_stamps[0]) / max(1, len(metric_stamps) - 1)
    last = arrivals[-1][1]
    if last.WhichOneof("payload") != "state_change" or last.state_change.state != common_pb2.JOB_STATE_SUCCEEDED:
        raise SystemExit(f"the job did not succeed: {last}")
    return live, len(arrivals), interval


def publisher_main(redis_url: str, count: int, interval: float) -> None:
    """Baseline publisher (subprocess): XADD `count` stamped entries, `interval` seconds apart."""
    import redis

    client = redis.Redis.from_url(redis_url)
    next_at = time.perf_counter()
    for _ in range(count):
        next_at += interval
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        with client.pipeline(transaction=True) as pipe:
            pipe.xadd(BASELINE_STREAM, {b"t": repr(time.time()).encode()}, maxlen=100_000, approximate=True)
            pipe.expire(BASELINE_STREAM, 3600)
            pipe.execute()
    client.xadd(BASELINE_STREAM, {b"end": b"1"})
    client.close()


async def xread_baseline(redis_url: str, count: int, interval: float) -> list[float]:
    import subprocess

    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    await client.delete(BASELINE_STREAM)
    proc = subprocess.Popen([sys.executable, __file__, "--xadd-publisher", redis_url, str(count), str(interval)])
    latencies, last_id = [], "0-0"
    try:
        while True:
            response = await client.xread({BASELINE_STREAM: last_id}, count=500, block=1000)
            arrived = time.time()
            entries = response[0][1] if response else []
            for entry_id, fields in entries:
                last_id = entry_id
                if b"end" in fields:
                    return latencies
                latencies.append((arrived - float(fields[b"t"])) * 1000)
            if proc.poll() not in (None, 0):
                raise SystemExit(f"the baseline publisher exited with {proc.returncode}")
    finally:
        proc.wait(30)
        await client.delete(BASELINE_STREAM)
        await client.aclose()


async def measure(platform: Platform, args: argparse.Namespace) -> None:
    import grpc

    from microlearn.v1 import common_pb2, trainer_pb2_grpc

    metadata = platform.metadata()
    with grpc.insecure_channel(platform.address) as channel:
        dataset = upload_dataset(channel, metadata, f"events-{time.time_ns()}",
                                 small_csv(args.rows, args.columns, args.seed))
    spec = training_spec(dataset.name, "target", "hist_gradient_boosting_classifier", max_iterations=args.iterations,
                         task=common_pb2.TASK_TYPE_BINARY_CLASSIFICATION, seed=args.seed)
    warm = training_spec(dataset.name, "target", "hist_gradient_boosting_classifier", max_iterations=5,
                         task=common_pb2.TASK_TYPE_BINARY_CLASSIFICATION, seed=args.seed)
    live, total, intervals = [], 0, []
    async with grpc.aio.insecure_channel(platform.address) as channel:
        trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
        await follow_job(trainer, metadata, warm)  # the worker's first fit starts its forkserver
        for _ in range(args.repeat):
            latencies, count, interval = await follow_job(trainer, metadata, spec)
            live += latencies
            total += count
            intervals.append(interval)
    interval = sum(intervals) / len(intervals)
    baseline = await xread_baseline(platform.redis_url, len(live), interval)

    print()
    print(f"| event latency, publish → receive ({args.repeat} jobs × {args.iterations} rounds of "
          f"hist_gradient_boosting_classifier on {args.rows:,} × {args.columns}; {len(live)} of {total} events live, "
          f"one every {interval * 1000:.1f} ms) | MicroLearn (StreamJobEvents) | Redis XADD → XREAD | goal |")
    print("|---|---|---|---|")
    for q, goal in ((50, "< 20 ms"), (95, ""), (99, "")):
        print(f"| p{q} | {percentile(live, q):.2f} ms | {percentile(baseline, q):.2f} ms | {goal} |")
    print(f"| max | {max(live):.2f} ms | {max(baseline):.2f} ms | |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--xadd-publisher":
        publisher_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=500, help="boosting rounds per job (one event each)")
    parser.add_argument("--repeat", type=int, default=3, help="jobs to follow (default 3)")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for `microlearn up` (repeatable)")
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores", flush=True)
    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="ml-events-") as tmp:
        platform = Platform(Path(tmp), "--workers", "1", env=env or None)
        try:
            asyncio.run(measure(platform, args))
        finally:
            platform.stop()


if __name__ == "__main__":
    main()
