"""GPU detection and hand-out (pure: a stand-in nvidia-smi on PATH plays the driver)."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from microlearn_grpc.devices import DevicePool, Gpu, detect_gpus, parse_gpu_list


@pytest.mark.parametrize("text, expected", [("", []), ("none", []), ("auto", None), ("0,2", [0, 2]), ("1", [1])])
def test_parse_gpu_list(text, expected):
    assert parse_gpu_list(text) == expected


@pytest.mark.parametrize("text", ["gpu0", "0,0", "-1"])
def test_parse_gpu_list_refuses_nonsense(text):
    with pytest.raises(ValueError, match="MICROLEARN_GPUS"):
        parse_gpu_list(text)


@pytest.fixture()
def fake_smi(tmp_path, monkeypatch):
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 81559'\necho '1, NVIDIA H100 80GB HBM3, 81559'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_detect_reads_nvidia_smi(fake_smi):
    gpus = detect_gpus()
    assert gpus == [Gpu(0, "NVIDIA H100 80GB HBM3", 81559), Gpu(1, "NVIDIA H100 80GB HBM3", 81559)]
    assert detect_gpus([1]) == gpus[1:]
    assert detect_gpus([]) == []


def test_no_driver_means_cpu_only(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpus() == []


def test_pool_gives_each_job_its_own_device():
    async def run():
        pool = DevicePool([Gpu(0, "a", 1), Gpu(1, "b", 1)])
        first, second = pool.try_acquire(), pool.try_acquire()
        assert {first.index, second.index} == {0, 1} and pool.try_acquire() is None
        pool.release(first)
        assert pool.try_acquire() == first
        assert DevicePool([]).describe() == "none (CPU only)"
    asyncio.run(run())
