"""Accelerators a worker can give its jobs: found once at start, handed out one job per device.

Detection asks `nvidia-smi` (no CUDA library is loaded into the worker, so it starts fast and a
broken driver cannot crash it). `MICROLEARN_GPUS` overrides it: `none` (or empty) for CPU only,
or a comma-separated list of device indexes to use, such as `0,2`.
A job that runs on GPU `N` sees only that device (`CUDA_VISIBLE_DEVICES=N` in its process), so
inside the fit it is always `cuda:0`.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Gpu", "DevicePool", "detect_gpus", "parse_gpu_list"]


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int

    def describe(self) -> str:
        return f"cuda:{self.index} ({self.name}, {self.memory_mib} MiB)"


def parse_gpu_list(value: str) -> list[int] | None:
    """`none`/empty → [] (CPU only); `auto` → None (detect); `0,2` → [0, 2]. ValueError otherwise."""
    text = value.strip().lower()
    if text in ("", "none", "cpu"):
        return []
    if text == "auto":
        return None
    try:
        indexes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"MICROLEARN_GPUS={value!r}: expected 'auto', 'none' or device indexes like '0,1'") from None
    if any(i < 0 for i in indexes) or len(set(indexes)) != len(indexes):
        raise ValueError(f"MICROLEARN_GPUS={value!r}: device indexes must be distinct and non-negative")
    return indexes


def detect_gpus(only: list[int] | None = None, *, timeout: float = 10.0) -> list[Gpu]:
    """CUDA devices on this host, as `nvidia-smi` lists them; [] when there is none (or no driver)."""
    if only == []:
        return []
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].isdigit():
            memory = int(float(parts[2])) if parts[2].replace(".", "", 1).isdigit() else 0
            gpus.append(Gpu(int(parts[0]), parts[1], memory))
    if only is not None:
        gpus = [g for g in gpus if g.index in only]
    return gpus


class DevicePool:
    """Free GPUs of one worker: a job takes one for its whole run, or runs on the CPU when none is free."""

    def __init__(self, gpus: list[Gpu]) -> None:
        self.gpus = list(gpus)
        self._free: asyncio.Queue[Gpu] = asyncio.Queue()
        for gpu in gpus:
            self._free.put_nowait(gpu)

    def try_acquire(self) -> Gpu | None:
        try:
            return self._free.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def release(self, gpu: Gpu | None) -> None:
        if gpu is not None:
            self._free.put_nowait(gpu)

    def describe(self) -> str:
        return ", ".join(g.describe() for g in self.gpus) or "none (CPU only)"
