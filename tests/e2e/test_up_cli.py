"""`microlearn up` as a user runs it: start, use the CLI, Ctrl-C, start again on the same data."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "customers.csv"
MICROLEARN = [sys.executable, "-m", "microlearn_grpc"]

pytestmark = pytest.mark.e2e


class Up:
    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.proc = subprocess.Popen([*MICROLEARN, "up", "--data-dir", str(data_dir), "--grpc-port", "0",
                                      "--http-port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, prefix: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"`up` exited ({self.proc.wait()}) before {prefix!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} line within {timeout}s:\n" + "\n".join(self.lines))

    def value(self, prefix: str) -> str:
        return next(line for line in self.lines if line.startswith(prefix)).split(":", 1)[1].strip()

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(60)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return code


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MICROLEARN, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_up_cli_restart(tmp_path):
    data_dir = tmp_path / "ml"
    up = Up(data_dir)
    try:
        up.wait_for("ready")
        address, token = up.value("grpc:"), up.value("token:")
        assert len(token) > 20
        env = {**os.environ, "MICROLEARN_ADDRESS": address, "MICROLEARN_TOKEN": token}
        uploaded = cli(env, "datasets", "upload", str(SAMPLE), "--json")
        assert uploaded.returncode == 0, uploaded.stderr
        listed = cli(env, "datasets", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [d["display_name"] for d in json.loads(listed.stdout)] == ["customers"]
        shown = json.loads(cli(env, "datasets", "show", "customers", "--json").stdout)
        assert shown["row_count"] == "500" or shown["row_count"] == 500
        assert any(s["column"] == "churned" for s in shown["profile"]["target_suggestions"])
        prepared = cli(env, "datasets", "prepare", "customers", "--recipe", str(ROOT / "examples" / "clean_customers.yaml"))
        assert prepared.returncode == 0, prepared.stderr
        denied = cli({**env, "MICROLEARN_TOKEN": "wrong"}, "datasets", "list")
        assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr
        import urllib.request

        base = up.value("http:").split()[0]
        request = urllib.request.Request(f"{base}/v1/datasets/customers", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["dataset"]["display_name"] == "customers"
        import re

        server_metrics, worker_port, gateway_port = re.fullmatch(
            r"(\S+) \(server\); workers on port\(s\) (\d+).*; gateway on port (\d+)", up.value("metrics:")).groups()

        def scrape(url: str) -> str:
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read().decode()
        text = scrape(server_metrics)
        assert 'grpc_method="UploadDataset"' in text and 'grpc_code="UNAUTHENTICATED"' in text
        host = server_metrics.rsplit(":", 1)[0]
        assert "microlearn_queue_depth" in scrape(f"{host}:{worker_port}/metrics")
        assert 'http_requests_total{method="GET",route="/v1/datasets/{ref' in scrape(f"{host}:{gateway_port}/metrics")
    finally:
        code = up.interrupt()
    assert code == 0, "\n".join(up.lines)
    assert up.lines[-1] == "stopped"

    again = Up(data_dir)
    try:
        again.wait_for("ready")
        assert again.value("token:") == token, "a second `up` must reuse the first one's token"
        env = {**os.environ, "MICROLEARN_ADDRESS": again.value("grpc:"), "MICROLEARN_TOKEN": token}
        names = sorted(d["display_name"] for d in json.loads(cli(env, "datasets", "list", "--json").stdout))
        assert names == ["customers", "customers-test", "customers-train"]
    finally:
        assert again.interrupt() == 0


def test_up_refuses_second_instance_on_same_data_dir(tmp_path):
    first = Up(tmp_path / "ml", "--insecure-local")
    try:
        first.wait_for("ready")
        assert first.value("token:") == "none (insecure-local)"
        second = subprocess.run([*MICROLEARN, "up", "--data-dir", str(tmp_path / "ml"), "--grpc-port", "0"],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert second.returncode == 2 and "another `microlearn up`" in second.stderr
    finally:
        assert first.interrupt() == 0


def test_insecure_local_only_on_loopback(tmp_path):
    result = subprocess.run([*MICROLEARN, "up", "--data-dir", str(tmp_path), "--insecure-local", "--host", "0.0.0.0"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2 and "loopback" in result.stderr


def test_serve_without_backends_explains(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROLEARN_")}
    result = subprocess.run([*MICROLEARN, "serve", "--insecure-local"], env=env, capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "MICROLEARN_DATABASE_URL" in result.stderr and "microlearn up" in result.stderr


def test_up_uses_external_backends_when_configured(tmp_path, backends, monkeypatch):
    """MICROLEARN_DATABASE_URL / MICROLEARN_REDIS_URL point at servers `up` did not start."""
    monkeypatch.setenv("MICROLEARN_DATABASE_URL", backends.database_url)
    monkeypatch.setenv("MICROLEARN_REDIS_URL", backends.redis_url)
    up = Up(tmp_path / "ml", "--insecure-local")
    try:
        up.wait_for("ready")
        assert up.value("postgres:").startswith("postgresql://127.0.0.1:")
        assert "embedded" not in up.value("postgres:") and "embedded" not in up.value("redis:")
        assert "@" not in up.value("postgres:") and "@" not in up.value("redis:"), "credentials must not be printed"
        assert not (tmp_path / "ml" / "postgres").exists()
        env = {**os.environ, "MICROLEARN_ADDRESS": up.value("grpc:")}
        env.pop("MICROLEARN_TOKEN", None)
        listed = cli(env, "datasets", "list", "--json")
        assert listed.returncode == 0, listed.stderr
    finally:
        assert up.interrupt() == 0


def serve_env(tmp_path, backends) -> dict[str, str]:
    return {**os.environ, "MICROLEARN_DATABASE_URL": backends.database_url, "MICROLEARN_REDIS_URL": backends.redis_url,
            "MICROLEARN_DATA_DIR": str(tmp_path), "MICROLEARN_TOKEN": "t", "MICROLEARN_GRPC_PORT": "0"}


def start_serve(env: dict[str, str]) -> subprocess.Popen:
    """`microlearn serve --service dataset` on a free port; its first line is `grpc: HOST:PORT`."""
    return subprocess.Popen([*MICROLEARN, "serve", "--service", "dataset"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_serve_stops_gracefully_on_sigterm(tmp_path, backends):
    proc = start_serve(serve_env(tmp_path, backends))
    try:
        line = proc.stdout.readline()
        assert line.startswith("grpc: 127.0.0.1:"), line
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_serve_refuses_a_port_another_server_holds(tmp_path, backends):
    """gRPC's default SO_REUSEPORT would let a second server share the port (and half its traffic)."""
    env = serve_env(tmp_path, backends)
    first = start_serve(env)
    try:
        port = first.stdout.readline().strip().rsplit(":", 1)[1]
        second = subprocess.run([*MICROLEARN, "serve", "--service", "dataset", "--port", port], env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in second.stderr, second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0


def test_up_with_several_server_processes_sharing_the_port(tmp_path):
    up = Up(tmp_path / "ml", "--servers", "2")
    try:
        up.wait_for("ready")
        assert any(line == f"server: 2 processes sharing port {up.value('grpc:').rsplit(':', 1)[1]}"
                   for line in up.lines), up.lines
        import psutil

        servers = [p for p in psutil.Process(up.proc.pid).children() if "serve" in p.cmdline()]
        assert len(servers) == 2 and all(p.is_running() for p in servers)
        env = {**os.environ, "MICROLEARN_ADDRESS": up.value("grpc:"), "MICROLEARN_TOKEN": up.value("token:")}
        for _ in range(4):  # new connections land on either process; every one answers
            listed = cli(env, "datasets", "list", "--json")
            assert listed.returncode == 0, listed.stderr
    finally:
        assert up.interrupt() == 0
