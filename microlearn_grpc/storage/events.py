"""The event bus: one Redis Stream per job or study carrying its `JobEvent`s (state changes,
metrics, log lines), replayed from any point and then tailed live by `Stream…Events` RPCs.

Postgres stays the truth about a job's state; a stream is transport and may expire or lose its
tail, so readers take an `idle_check` that asks Postgres whether to stop waiting.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import redis.asyncio as aioredis

from microlearn.v1 import common_pb2

__all__ = ["EventBus", "is_terminal_state_change"]

log = logging.getLogger(__name__)

_STREAM_NAME = re.compile(r"[A-Za-z0-9/_.-]+")
_MAX_STREAM_NAME = 200
_ENTRY_ID = re.compile(r"(\d+)(?:-(\d+))?")
_U64 = (1 << 64) - 1
_FIELD = b"e"
_PAGE = 500
_TERMINAL_STATES = frozenset({common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED,
                              common_pb2.JOB_STATE_CANCELLED})


def is_terminal_state_change(event: common_pb2.JobEvent) -> bool:
    """True for a state change into SUCCEEDED, FAILED or CANCELLED (the last event of a job)."""
    return event.WhichOneof("payload") == "state_change" and event.state_change.state in _TERMINAL_STATES


def _check_stream(stream: str) -> None:
    if not isinstance(stream, str) or len(stream) > _MAX_STREAM_NAME or not _STREAM_NAME.fullmatch(stream):
        raise ValueError(f"invalid event stream name {stream!r}: use 1-{_MAX_STREAM_NAME} characters "
                         "from A-Z a-z 0-9 / _ . - (a resource name such as 'jobs/abc')")


def _parse_after(after: str) -> str:
    """A full entry id `MS-SEQ` from a client's resume point ('' means the beginning)."""
    if after == "":
        return "0-0"
    match = _ENTRY_ID.fullmatch(after) if isinstance(after, str) else None
    if match is None:
        raise ValueError(f"invalid event sequence {after!r}: expected a sequence from an earlier event, "
                         "such as '1700000000000-0', or empty to start from the beginning")
    ms, seq = int(match.group(1)), int(match.group(2) or 0)
    if ms > _U64 or seq > _U64 or (ms, seq) == (_U64, _U64):
        raise ValueError(f"invalid event sequence {after!r}: out of range")
    return f"{ms}-{seq}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(entry_id: bytes | str, fields: dict, event_type: Any = common_pb2.JobEvent) -> Any:
    event = event_type()
    event.ParseFromString(fields[_FIELD])
    event.sequence = _text(entry_id)
    return event


def _xread_entries(response: Any) -> list:
    """The entries of the single stream an XREAD asked for, from a RESP2 list or a RESP3 dict."""
    if not response:
        return []
    if isinstance(response, dict):  # RESP3: {key: [entries]} (redis-py wraps the entries in a list)
        (value,) = response.values()
        return value[0] if value and isinstance(value[0], list) else value
    return response[0][1]


class EventBus:
    """Publishes and reads `JobEvent`s on Redis Streams named `prefix + stream`.

    Every stream is capped at about `max_len` entries (approximate trimming: Redis drops whole
    internal nodes, so a stream may hold up to one node, `stream-node-max-entries`, more) and
    expires `ttl_seconds` after its last publish, so finished jobs' streams go away on their own.

    Each reader holds one pooled connection only while a command is in flight (a blocking XREAD
    holds it for up to `block_ms`); many concurrent readers need as many connections.
    """

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "microlearn:events:", max_len: int = 100_000,
                 ttl_seconds: int = 7 * 24 * 3600, event_type: Any = common_pb2.JobEvent) -> None:
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be at least 1")
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            # Events are binary protobuf; a decoding client would fail on every read.
            raise ValueError("the event bus needs a Redis client with decode_responses=False")
        self._redis = redis
        self._prefix = prefix
        self._max_len = max_len
        self._ttl = ttl_seconds
        self._event_type = event_type  # JobEvent, or StudyEvent for a study bus: any message with `sequence`/`time`

    def key(self, stream: str) -> str:
        """The Redis key of a stream (validated)."""
        _check_stream(stream)
        return self._prefix + stream

    def _stamp(self, event: Any) -> bytes:
        if not event.HasField("time"):
            event.time.GetCurrentTime()
        # The id is assigned by XADD, so the stored copy carries no sequence; reads fill it in.
        stored = type(event)()
        stored.CopyFrom(event)
        stored.ClearField("sequence")
        return stored.SerializeToString()

    async def publish(self, stream: str, event: common_pb2.JobEvent) -> str:
        """Append one event; fills in `event.time` when unset and `event.sequence` with the entry id."""
        (entry_id,) = await self.publish_many(stream, [event])
        return entry_id

    async def publish_many(self, stream: str, events: Iterable[common_pb2.JobEvent]) -> list[str]:
        """Append events in order in one round trip (MULTI/EXEC, so they land contiguously)."""
        key = self.key(stream)
        events = list(events)
        if not events:
            return []
        payloads = [self._stamp(event) for event in events]
        async with self._redis.pipeline(transaction=True) as pipe:
            for payload in payloads:
                pipe.xadd(key, {_FIELD: payload}, maxlen=self._max_len, approximate=True)
            pipe.expire(key, self._ttl)
            results = await pipe.execute()
        ids = [_text(entry_id) for entry_id in results[:-1]]
        for event, entry_id in zip(events, ids):
            event.sequence = entry_id
        return ids

    async def publish_or_warn(self, stream: str, events: Iterable[Any]) -> None:
        """`publish_many` for coordinators: a Redis hiccup is logged, not raised (events are transport;
        Postgres holds the truth, and a coordinator must not fail over a lost event)."""
        events = list(events)
        try:
            await self.publish_many(stream, events)
        except Exception:  # noqa: BLE001
            log.warning("could not publish %d event(s) to %s", len(events), stream, exc_info=True)

    async def delete(self, stream: str) -> None:
        """Drop a stream and its history (readers tailing it keep waiting until their idle_check)."""
        await self._redis.delete(self.key(stream))

    async def last_id(self, stream: str) -> str | None:
        """The sequence of the newest stored event, or None for an empty (or missing) stream."""
        entries = await self._redis.xrevrange(self.key(stream), count=1)
        return _text(entries[0][0]) if entries else None

    async def length(self, stream: str) -> int:
        """How many entries the stream holds now (0 when it does not exist)."""
        return int(await self._redis.xlen(self.key(stream)))

    async def _page_after(self, key: str, last_id: str) -> list[Any]:
        """Up to one page of stored events after `last_id`, without blocking."""
        entries = await self._redis.xrange(key, min=f"({last_id}", max="+", count=_PAGE)
        return [_decode(entry_id, fields, self._event_type) for entry_id, fields in entries]

    async def page(self, stream: str, *, after: str = "") -> list[Any]:
        """Up to one page of the events after `after` ('' for the first), without blocking: for pollers."""
        return await self._page_after(self.key(stream), _parse_after(after))

    def _block_ms(self, block_ms: int) -> int:
        # A blocking read must return before the client's own socket timeout would fire.
        timeout = self._redis.connection_pool.connection_kwargs.get("socket_timeout")
        if timeout:
            block_ms = min(block_ms, max(1, int(timeout * 1000 * 0.8)))
        return max(1, block_ms)

    def read(self, stream: str, *, after: str = "",
             terminal: Callable[[common_pb2.JobEvent], bool] | None = None, block_ms: int = 5000,
             idle_check: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[common_pb2.JobEvent]:
        """Replay the events after `after` (an earlier event's `sequence`; '' for all), then tail live.

        Stops after yielding an event for which `terminal(event)` is true, or, after a blocking read
        that found nothing, when `idle_check()` returns true (for example the job is terminal in
        Postgres but its stream expired or its last event was lost). Without either it tails until
        cancelled. Each event's `sequence` is its entry id, so `read(after=event.sequence)` resumes.
        Raises ValueError for a bad stream name or `after` at once, before iteration starts, so a
        servicer can answer INVALID_ARGUMENT before it opens its response stream.
        """
        return self._read(self.key(stream), _parse_after(after), terminal, self._block_ms(block_ms), idle_check)

    def follow(self, stream: str, *, after: str = "", terminal: Callable[[Any], bool],
               ended: Callable[[], Awaitable[bool]], replay_only: bool = False) -> AsyncIterator[Any]:
        """What a `Stream…Events` RPC sends: the history after `after`, then (unless `replay_only`) live
        events until a `terminal` one, or until `ended()` (the resource is terminal in Postgres) after a quiet
        read. Raises ValueError for a bad `after`, as `read` does."""
        async def replayed() -> bool:
            return True
        return self.read(stream, after=after, terminal=terminal, idle_check=replayed if replay_only else ended,
                         block_ms=10 if replay_only else 1000)

    async def _read(self, key: str, last_id: str, terminal: Callable[[common_pb2.JobEvent], bool] | None,
                    block: int, idle_check: Callable[[], Awaitable[bool]] | None,
                    ) -> AsyncIterator[common_pb2.JobEvent]:

        # Replay with XRANGE, then tail with XREAD from the last id seen (never `$`), so an event
        # published between the two is neither lost nor repeated. "drain" is a last replay after
        # idle_check said stop: the final event may have been written after the store was updated
        # and after our last read.
        phase = "replay"
        while True:
            if phase == "tail":
                # A cancel here (the gRPC client went away) makes redis-py drop this connection
                # and return it to the pool, which reconnects it on its next use.
                response = await self._redis.xread({key: last_id}, count=_PAGE, block=block)
                events = [_decode(entry_id, fields, self._event_type) for entry_id, fields in _xread_entries(response)]
            else:
                events = await self._page_after(key, last_id)
            for event in events:
                last_id = event.sequence
                yield event
                if terminal is not None and terminal(event):
                    return
            if phase != "tail":
                if len(events) == _PAGE:
                    continue
                if phase == "drain":
                    return
                phase = "tail"
            elif not events and idle_check is not None and await idle_check():
                phase = "drain"
