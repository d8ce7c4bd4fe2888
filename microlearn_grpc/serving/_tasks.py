"""Stopping the background tasks of the serving side (router polling, prediction log flushing)."""

from __future__ import annotations

import asyncio
import contextlib


async def stop_task(task: asyncio.Task | None) -> None:
    """Cancel a background task and wait for it; its own errors were logged where they happened."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
