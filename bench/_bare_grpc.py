"""A bare `grpc.aio` server for the serving benchmark's framework baseline: it answers
`/microlearn.v1.DeployService/Predict` with a fixed, pre-serialised PredictResponse (no auth, no
decoding, no model), so the load generator measures what the RPC framework alone costs here.

    python bench/_bare_grpc.py RESPONSE_HEX   (prints "port: N" once serving; stops on SIGTERM)
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc


async def main(response: bytes) -> None:
    async def predict(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return response

    handler = grpc.method_handlers_generic_handler("microlearn.v1.DeployService", {
        "Predict": grpc.unary_unary_rpc_method_handler(predict, request_deserializer=None, response_serializer=None)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"port: {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main(bytes.fromhex(sys.argv[1])))
