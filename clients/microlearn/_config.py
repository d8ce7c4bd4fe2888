"""Where the SDK connects and how it authenticates: explicit arguments, then environment, then defaults."""

from __future__ import annotations

import os

ADDRESS_ENV = "MICROLEARN_ADDRESS"
TOKEN_ENV = "MICROLEARN_TOKEN"
DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 60.0

# Matches the server's cap; the default 4 MiB receive limit is too small for large profiles.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

USER_AGENT = "microlearn-python"


def resolve_address(address: str | None) -> str:
    """The explicit address, else $MICROLEARN_ADDRESS, else 127.0.0.1:50051."""
    return address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


def resolve_token(token: str | None) -> str | None:
    """The explicit token, else $MICROLEARN_TOKEN, else None (no authorization header)."""
    return token or os.environ.get(TOKEN_ENV) or None


def channel_options() -> list[tuple[str, int | str]]:
    """Options for every channel the SDK opens."""
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.primary_user_agent", USER_AGENT),
    ]


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata sent with every call: the bearer token when one is set."""
    return (("authorization", f"Bearer {token}"),) if token else ()
