"""EventBus against the real embedded Redis: replay, live tail, fan-out, resume, cancellation,
idle stop, trimming and expiry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from microlearn.v1 import common_pb2
from microlearn_grpc.storage.events import EventBus, is_terminal_state_change

pytestmark = pytest.mark.integration


def run(backends, body: Callable[[EventBus, aioredis.Redis], Awaitable[Any]], *, timeout: float = 10,
        client_kwargs: dict | None = None, **bus_kwargs) -> Any:
    async def main():
        client = aioredis.Redis.from_url(backends.redis_url, **(client_kwargs or {}))
        try:
            return await asyncio.wait_for(body(EventBus(client, **bus_kwargs), client), timeout)
        finally:
            await client.aclose()
    return asyncio.run(main())


def stream_name() -> str:
    return f"jobs/test-{uuid.uuid4().hex}"


def state(value: int, message: str = "") -> common_pb2.JobEvent:
    return common_pb2.JobEvent(job="jobs/x", state_change=common_pb2.JobStateChange(state=value, message=message))


def metric(step: int, progress: float = 0.0) -> common_pb2.JobEvent:
    point = common_pb2.MetricPoint(name="val_loss", value=1.0 / (step + 1), step=step)
    return common_pb2.JobEvent(job="jobs/x", progress=progress, metrics=common_pb2.MetricUpdate(points=[point]))


def log(message: str) -> common_pb2.JobEvent:
    return common_pb2.JobEvent(job="jobs/x", log=common_pb2.LogLine(level=common_pb2.LOG_LEVEL_INFO, message=message))


def job_events(steps: int = 3) -> list[common_pb2.JobEvent]:
    return ([state(common_pb2.JOB_STATE_RUNNING, "cpu")] + [metric(i, (i + 1) / steps) for i in range(steps)]
            + [log("done"), state(common_pb2.JOB_STATE_SUCCEEDED)])


async def collect(bus: EventBus, stream: str, **kwargs) -> list[common_pb2.JobEvent]:
    kwargs.setdefault("terminal", is_terminal_state_change)
    return [event async for event in bus.read(stream, **kwargs)]


def payloads(events: list[common_pb2.JobEvent]) -> list[bytes]:
    """The events without their bus-assigned fields, for comparing with what was published."""
    out = []
    for event in events:
        copy = common_pb2.JobEvent()
        copy.CopyFrom(event)
        copy.ClearField("sequence")
        copy.ClearField("time")
        out.append(copy.SerializeToString(deterministic=True))
    return out


def id_key(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


def test_publish_then_replay_keeps_order_and_fields(backends):
    stream = stream_name()
    published = job_events()
    published[1].time.FromSeconds(1_700_000_000)  # a time set by the publisher is kept

    async def body(bus, _):
        ids = [await bus.publish(stream, event) for event in published]
        return ids, await collect(bus, stream, block_ms=100)
    ids, read = run(backends, body)

    assert [id_key(i) for i in ids] == sorted(id_key(i) for i in ids) and len(set(ids)) == len(ids)
    assert [e.sequence for e in published] == ids  # filled on the caller's objects
    assert [e.sequence for e in read] == ids
    assert payloads(read) == payloads(published)
    assert all(e.HasField("time") for e in read)
    assert read[1].time.seconds == 1_700_000_000
    assert read[0].time.ToDatetime() > read[1].time.ToDatetime()
    assert read[0].state_change.message == "cpu" and read[-1].state_change.state == common_pb2.JOB_STATE_SUCCEEDED


def test_publish_many_is_one_ordered_batch(backends):
    stream = stream_name()
    published = job_events(5)

    async def body(bus, _):
        assert await bus.publish_many(stream, []) == []
        ids = await bus.publish_many(stream, published)
        return ids, await collect(bus, stream), await bus.length(stream)
    ids, read, length = run(backends, body)

    assert len(ids) == length == len(published)
    assert [e.sequence for e in read] == ids == [e.sequence for e in published]
    assert payloads(read) == payloads(published)


def test_replay_pages_through_long_streams(backends):
    stream = stream_name()
    published = [log(f"line {i}") for i in range(1234)] + [state(common_pb2.JOB_STATE_FAILED, "boom")]

    async def body(bus, _):
        await bus.publish_many(stream, published)
        return await collect(bus, stream)
    read = run(backends, body)

    assert [e.log.message for e in read[:-1]] == [f"line {i}" for i in range(1234)]
    assert read[-1].state_change.message == "boom"


async def publish_slowly(bus: EventBus, stream: str, events: list[common_pb2.JobEvent]) -> list[str]:
    ids = []
    for event in events:
        await asyncio.sleep(0.02)
        ids.append(await bus.publish(stream, event))
    return ids


def test_live_tail_receives_events_published_after_it_started(backends):
    stream = stream_name()
    published = job_events()

    async def body(bus, _):
        reader = asyncio.create_task(collect(bus, stream, block_ms=200))
        await asyncio.sleep(0.1)  # the reader is now blocked in XREAD on an empty stream
        ids = await publish_slowly(bus, stream, published)
        return ids, await reader
    ids, read = run(backends, body)

    assert [e.sequence for e in read] == ids
    assert payloads(read) == payloads(published)


def test_concurrent_readers_all_get_every_event_in_order(backends):
    stream = stream_name()
    published = job_events(10)

    async def body(bus, _):
        await bus.publish_many(stream, published[:2])  # some history to replay, the rest live
        readers = [asyncio.create_task(collect(bus, stream, block_ms=200)) for _ in range(3)]
        await asyncio.sleep(0.05)
        await publish_slowly(bus, stream, published[2:])
        return await asyncio.gather(*readers)
    results = run(backends, body)

    assert len(results) == 3
    sequences = [[e.sequence for e in read] for read in results]
    assert sequences[0] == sequences[1] == sequences[2] == [e.sequence for e in published]
    assert all(payloads(read) == payloads(published) for read in results)


def test_late_reader_after_terminal_gets_full_replay_and_stops(backends):
    stream = stream_name()
    published = job_events()

    async def body(bus, _):
        await bus.publish_many(stream, published)  # nobody is reading
        loop = asyncio.get_running_loop()
        started = loop.time()
        # A long block would show if the reader waited instead of stopping at the terminal event.
        read = await collect(bus, stream, block_ms=5000)
        return read, loop.time() - started
    read, elapsed = run(backends, body)

    assert payloads(read) == payloads(published)
    assert elapsed < 2


def test_cancelled_reader_leaves_others_and_the_pool_working(backends):
    stream = stream_name()
    published = job_events()

    async def body(bus, _):
        survivor = asyncio.create_task(collect(bus, stream, block_ms=300))
        # With max_connections=3 a connection leaked by each cancel would exhaust the pool
        # ("Too many connections") by the third round.
        for _ in range(4):
            victim = asyncio.create_task(collect(bus, stream, block_ms=5000))
            await asyncio.sleep(0.1)  # mid-XREAD BLOCK
            victim.cancel()
            with pytest.raises(asyncio.CancelledError):
                await victim
        ids = await publish_slowly(bus, stream, published)
        again = await collect(bus, stream, block_ms=300)
        return ids, await survivor, again
    ids, survivor, again = run(backends, body, client_kwargs={"max_connections": 3})

    assert [e.sequence for e in survivor] == ids
    assert [e.sequence for e in again] == ids


def test_resume_after_a_sequence_yields_only_later_events(backends):
    stream = stream_name()
    published = job_events(4)

    async def body(bus, _):
        ids = await bus.publish_many(stream, published)
        resumed = await collect(bus, stream, after=ids[2])
        short_form = await collect(bus, stream, after=ids[2].split("-")[0])  # `MS` means `MS-0`

        async def finished() -> bool:
            return True
        # Resuming after the terminal event: nothing later, and idle_check ends the wait.
        after_last = await collect(bus, stream, after=ids[-1], block_ms=50, idle_check=finished)
        return ids, resumed, short_form, after_last
    ids, resumed, short_form, after_last = run(backends, body)

    assert [e.sequence for e in resumed] == ids[3:]
    assert payloads(resumed) == payloads(published[3:])
    assert [e.sequence for e in short_form] == [i for i in ids if id_key(i) > (id_key(ids[2])[0], 0)]
    assert after_last == []


@pytest.mark.parametrize("name", ["", "jobs/a b", "jobs/é", "jobs:*", "jobs/x\n", "x" * 201])
def test_bad_stream_names_are_rejected(backends, name):
    async def body(bus, _):
        with pytest.raises(ValueError, match="invalid event stream name"):
            await bus.publish(name, log("x"))
        with pytest.raises(ValueError, match="invalid event stream name"):
            await bus.publish_many(name, [log("x")])
        with pytest.raises(ValueError, match="invalid event stream name"):
            bus.read(name)  # raised on the call, before iteration
        with pytest.raises(ValueError, match="invalid event stream name"):
            await bus.delete(name)
    run(backends, body)


def test_good_stream_names_are_accepted(backends):
    async def body(bus, _):
        for name in ["jobs/abc", "studies/s-1/trials", "a.b_c-D/9", "x" * 200]:
            await bus.publish(name, log("x"))
            await bus.delete(name)
    run(backends, body)


@pytest.mark.parametrize("after", ["abc", "1-2-3", "-1", "1-", "1-x", " 1-0", "99999999999999999999999-0"])
def test_bad_after_is_rejected_with_a_clear_message(backends, after):
    async def body(bus, _):
        with pytest.raises(ValueError, match="invalid event sequence"):
            bus.read(stream_name(), after=after)
    run(backends, body)


def test_idle_check_stops_a_reader_without_terminal_event(backends):
    stream = stream_name()

    async def body(bus, _):
        await bus.publish(stream, state(common_pb2.JOB_STATE_RUNNING))
        calls = 0

        async def job_is_terminal() -> bool:
            nonlocal calls
            calls += 1
            return calls >= 2
        read = await collect(bus, stream, block_ms=50, idle_check=job_is_terminal)
        return read, calls
    read, calls = run(backends, body)

    assert [e.state_change.state for e in read] == [common_pb2.JOB_STATE_RUNNING]
    assert calls == 2


def test_idle_stop_still_delivers_a_terminal_event_that_raced_it(backends):
    """The worker marks the job terminal in Postgres, then publishes: a reader told to stop in
    between must still deliver that last event."""
    stream = stream_name()

    async def body(bus, _):
        await bus.publish(stream, state(common_pb2.JOB_STATE_RUNNING))

        async def terminal_in_store() -> bool:
            await bus.publish(stream, state(common_pb2.JOB_STATE_CANCELLED, "by user"))
            return True
        return await collect(bus, stream, block_ms=50, idle_check=terminal_in_store)
    read = run(backends, body)

    assert [e.state_change.state for e in read] == [common_pb2.JOB_STATE_RUNNING, common_pb2.JOB_STATE_CANCELLED]


def test_idle_check_stops_a_reader_of_a_missing_stream(backends):
    async def body(bus, _):
        async def expired() -> bool:
            return True
        return await collect(bus, stream_name(), block_ms=50, idle_check=expired)
    assert run(backends, body) == []


def test_trimming_keeps_about_max_len_entries(backends):
    stream = stream_name()
    total = 600

    async def body(bus, client):
        for start in range(0, total, 50):
            await bus.publish_many(stream, [log(f"line {i}") for i in range(start, start + 50)])
        node = int((await client.config_get("stream-node-max-entries"))["stream-node-max-entries"])
        return await bus.length(stream), node, await collect(bus, stream, block_ms=50, idle_check=_true)
    length, node, read = run(backends, body, max_len=10)

    # Approximate trimming (MAXLEN ~) only drops whole radix-tree nodes, so up to one node more
    # than max_len may remain; that bound is exact, so the test does not flake.
    assert 10 <= length <= 10 + node < total
    assert len(read) == length
    assert [e.log.message for e in read] == [f"line {i}" for i in range(total - length, total)]


async def _true() -> bool:
    return True


def test_streams_expire_and_publish_refreshes_the_ttl(backends):
    stream = stream_name()

    async def body(bus, client):
        key = bus.key(stream)
        await bus.publish(stream, log("first"))
        first = await client.ttl(key)
        await client.expire(key, 5)
        await bus.publish_many(stream, [log("second"), log("third")])
        refreshed = await client.ttl(key)
        await bus.delete(stream)
        return first, refreshed, await client.exists(key)
    first, refreshed, exists = run(backends, body, ttl_seconds=120)

    assert 100 < first <= 120
    assert 100 < refreshed <= 120
    assert exists == 0


def test_terminal_predicate():
    assert is_terminal_state_change(state(common_pb2.JOB_STATE_SUCCEEDED))
    assert is_terminal_state_change(state(common_pb2.JOB_STATE_FAILED))
    assert is_terminal_state_change(state(common_pb2.JOB_STATE_CANCELLED))
    assert not is_terminal_state_change(state(common_pb2.JOB_STATE_RUNNING))
    assert not is_terminal_state_change(state(common_pb2.JOB_STATE_PENDING))
    assert not is_terminal_state_change(metric(1))
    assert not is_terminal_state_change(common_pb2.JobEvent())


def test_decoding_clients_are_refused(backends):
    async def body(_bus, client):
        decoding = aioredis.Redis.from_url(backends.redis_url, decode_responses=True)
        try:
            with pytest.raises(ValueError, match="decode_responses"):
                EventBus(decoding)
        finally:
            await decoding.aclose()
    run(backends, body)
