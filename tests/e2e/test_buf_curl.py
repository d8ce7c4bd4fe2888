"""`buf curl` (what the README shows) lists every service through reflection and calls an RPC."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import TOKEN, buf_binary

pytestmark = pytest.mark.e2e


def _curl(platform, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    auth = [] if token is None else ["-H", f"authorization: Bearer {token}",
                                     "--reflect-header", f"authorization: Bearer {token}"]
    return subprocess.run([buf_binary(), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *auth, *args],
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
