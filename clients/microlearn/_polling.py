"""Waiting for a resource to reach a terminal state by polling its Get method (studies, pipelines)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

_T = TypeVar("_T")


def _expired(deadline: float | None, name: str, state: str, timeout: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError(f"{name} is still {state} after {timeout} s")


def wait_until_terminal(get: Callable[[], _T], done: Callable[[_T], bool], state: Callable[[_T], str], name: str,
                        timeout: float | None, poll: float) -> _T:
    """`get()` every `poll` s until `done(resource)`; TimeoutError (naming `state(resource)`) after `timeout` s."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        resource = get()
        if done(resource):
            return resource
        _expired(deadline, name, state(resource), timeout)
        time.sleep(poll)


async def await_terminal(get: Callable[[], Awaitable[_T]], done: Callable[[_T], bool], state: Callable[[_T], str],
                         name: str, timeout: float | None, poll: float) -> _T:
    """`wait_until_terminal` for coroutines."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        resource = await get()
        if done(resource):
            return resource
        _expired(deadline, name, state(resource), timeout)
        await asyncio.sleep(poll)
