"""`buf curl` (what the README shows) lists every service through reflection and calls an RPC."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TOKEN

pytestmark = pytest.mark.e2e


def _buf() -> str:
    found = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    if not Path(found).exists():
        pytest.fail("buf is not installed: it comes with the dev extra (buf-bin); run ./dev setup")
    return found


def _curl(platform, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    auth = [] if token is None else ["-H", f"authorization: Bearer {token}",
                                     "--reflect-header", f"authorization: Bearer {token}"]
    return subprocess.run([_buf(), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *auth, *args],
                          capture_output=True, text=True, timeout=60)


def test_list_methods_shows_all_five_services(platform):
    result = _curl(platform, "--list-methods", f"http://{platform.address}")
    assert result.returncode == 0, result.stderr
    services = {line.split("/")[0] for line in result.stdout.split()}
    assert {f"microlearn.v1.{s}" for s in ("DatasetService", "SelectorService", "TrainerService", "HPOService",
                                           "DeployService")} <= services


def test_list_datasets_with_token(platform):
    result = _curl(platform, "-d", '{"page_size": 1}', f"http://{platform.address}/microlearn.v1.DatasetService/ListDatasets")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict)


def test_without_token_is_refused(platform):
    result = _curl(platform, "--list-methods", f"http://{platform.address}", token=None)
    assert result.returncode != 0
