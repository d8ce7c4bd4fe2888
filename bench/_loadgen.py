"""Closed-loop load generators for the serving benchmark, each meant to run in its own process.

Every generator keeps `concurrency` requests in flight (one per simulated client: a client sends
its next request when the previous answer arrives), for `warmup` seconds unmeasured and then
`seconds` measured, and returns {"requests", "errors", "seconds", "latencies_ms" (a sample)}.

* `grpc_unary`: `DeployService.Predict`, one grpc.aio channel (its own TCP connection: gRPC would
  otherwise share one connection between channels to the same address) per client, the request
  serialised once up front (the same bytes every call, as a load generator replays them).
* `grpc_stream`: `DeployService.PredictStream`, one bidirectional stream per client.
* `http_post`: HTTP/1.1 keep-alive POSTs on raw asyncio sockets, one connection per client, the
  request bytes prepared once (what `wrk` does; a Python HTTP client library would cost the shared
  2 cores more than the server under test).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

SAMPLE = 20000  # latencies kept per run (reservoir sample)
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


class _Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.first_error = ""

    def add(self, seconds: float) -> None:
        self.requests += 1
        if len(self.latencies) < SAMPLE:
            self.latencies.append(seconds * 1000)
        else:
            slot = random.randrange(self.requests)
            if slot < SAMPLE:
                self.latencies[slot] = seconds * 1000

    def error(self, text: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or text[:300]


async def _drive(one, concurrency: int, warmup: float, seconds: float) -> dict[str, Any]:
    stats = _Stats()
    measuring = False
    stop = time.perf_counter() + warmup + seconds

    async def client(index: int) -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            try:
                await one(index)
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                if measuring:
                    stats.error(f"{type(exc).__name__}: {exc}")
                continue
            if measuring:
                stats.add(time.perf_counter() - began)

    tasks = [asyncio.ensure_future(client(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    measuring = True
    began = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    return {"requests": stats.requests, "errors": stats.errors, "seconds": elapsed,
            "latencies_ms": stats.latencies, "first_error": stats.first_error}


def grpc_unary(address: str, metadata: list[tuple[str, str]], request_bytes: bytes, concurrency: int,
               warmup: float, seconds: float, version_of: bool = False) -> dict[str, Any]:
    import grpc

    async def run() -> dict[str, Any]:
        channels = [grpc.aio.insecure_channel(address, options=OWN_CONNECTION) for _ in range(concurrency)]
        calls = [c.unary_unary("/microlearn.v1.DeployService/Predict", request_serializer=None,
                               response_deserializer=None) for c in channels]
        metadata_tuple = tuple(metadata)

        async def one(index: int) -> None:
            await calls[index % len(calls)](request_bytes, metadata=metadata_tuple, timeout=30)

        try:
            return await _drive(one, concurrency, warmup, seconds)
        finally:
            for channel in channels:
                await channel.close()

    return asyncio.run(run())


def grpc_stream(address: str, metadata: list[tuple[str, str]], request_bytes: bytes, concurrency: int,
                warmup: float, seconds: float) -> dict[str, Any]:
    """`DeployService.PredictStream`: one long-lived bidirectional stream per client, each sending its
    next request when the previous answer arrives (so the same closed loop as `grpc_unary`)."""
    import grpc

    async def run() -> dict[str, Any]:
        channels = [grpc.aio.insecure_channel(address, options=OWN_CONNECTION) for _ in range(concurrency)]
        streams = [channels[i % len(channels)].stream_stream(
            "/microlearn.v1.DeployService/PredictStream", request_serializer=None,
            response_deserializer=None)(metadata=tuple(metadata)) for i in range(concurrency)]

        async def one(index: int) -> None:
            await streams[index].write(request_bytes)
            if await streams[index].read() is grpc.aio.EOF:
                raise RuntimeError("the stream ended")

        try:
            return await _drive(one, concurrency, warmup, seconds)
        finally:
            for stream in streams:
                stream.cancel()
            for channel in channels:
                await channel.close()

    return asyncio.run(run())


def http_post(host: str, port: int, path: str, body: bytes, headers: dict[str, str], concurrency: int,
              warmup: float, seconds: float) -> dict[str, Any]:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n{head}\r\n").encode() + body

    async def run() -> dict[str, Any]:
        connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

        async def one(index: int) -> None:
            if index not in connections:
                connections[index] = await asyncio.open_connection(host, port)
            reader, writer = connections[index]
            writer.write(request)
            try:
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                payload = await reader.readexactly(length)
            except Exception:
                connections.pop(index, None)
                writer.close()
                raise
            if not status_line.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{status_line.decode().strip()} {payload[:200]!r}")

        try:
            return await _drive(one, concurrency, warmup, seconds)
        finally:
            for _, writer in connections.values():
                writer.close()

    return asyncio.run(run())
