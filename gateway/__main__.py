"""`python -m gateway`: serve the REST gateway in front of a running MicroLearn gRPC server."""

from __future__ import annotations

import argparse
import os

from gateway.app import DEFAULT_MAX_UPLOAD_BYTES, run_gateway


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--grpc-address", default=os.environ.get("MICROLEARN_ADDRESS", "127.0.0.1:50051"),
                        help="the gRPC server (default: $MICROLEARN_ADDRESS or 127.0.0.1:50051)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port; 0 picks a free one")
    parser.add_argument("--grpc-tls", action="store_true", help="connect to the gRPC server over TLS")
    parser.add_argument("--max-upload-bytes", type=int, default=DEFAULT_MAX_UPLOAD_BYTES,
                        help="largest accepted upload body (default: 4 GiB, the server's default)")
    args = parser.parse_args(argv)
    run_gateway(args.grpc_address, args.host, args.port, insecure_grpc=not args.grpc_tls,
                max_upload_bytes=args.max_upload_bytes)


if __name__ == "__main__":
    main()
