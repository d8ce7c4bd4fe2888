"""Start `microlearn up` in a subprocess for benchmarks and read its announced address/token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil


class Platform:
    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "microlearn_grpc", "up", "--data-dir", str(data_dir),
                                      "--grpc-port", "0", "--http-port", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.values: dict[str, str] = {}
        for line in self.proc.stdout:
            key, _, value = line.rstrip("\n").partition(": ")
            self.values[key] = value
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError(f"`microlearn up` exited: {self.values}")
        self.ready_seconds = time.perf_counter() - self.started

    @property
    def address(self) -> str:
        return self.values["grpc"]

    @property
    def token(self) -> str:
        return self.values["token"]

    def server_pid(self) -> int:
        for child in psutil.Process(self.proc.pid).children():
            if "serve" in child.cmdline():
                return child.pid
        raise RuntimeError("no server child process")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)


def peak_rss_bytes(pid: int) -> int:
    """The kernel's high-water mark of the process's resident set (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found")


def env_for(platform: Platform) -> dict[str, str]:
    return {**os.environ, "MICROLEARN_ADDRESS": platform.address, "MICROLEARN_TOKEN": platform.token}
