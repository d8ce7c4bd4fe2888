"""The production deployment shape: docker-compose.yml, the Dockerfile and the Prometheus config.

Pure checks on the parsed YAML (no Docker needed), plus `docker-compose config` when a compose
binary is on PATH so the file is also proven to parse with a real implementation.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"

MICROLEARN_SERVICES = {"grpc", "worker", "worker-gpu", "gateway"}
BACKING_SERVICES = {"postgres", "redis", "minio", "createbuckets", "mlflow", "prometheus", "grafana"}
SHARED_ENV = {
    "MICROLEARN_DATABASE_URL", "MICROLEARN_REDIS_URL", "MICROLEARN_ARTIFACT_URL", "MICROLEARN_S3_ENDPOINT_URL",
    "MICROLEARN_S3_ACCESS_KEY_ID", "MICROLEARN_S3_SECRET_ACCESS_KEY", "MICROLEARN_MLFLOW_TRACKING_URI",
    "MICROLEARN_GRPC_HOST", "MICROLEARN_TOKEN",
}
REQUIRED_TOKEN = re.compile(r"^\$\{MICROLEARN_TOKEN:\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: (None if value is None else str(value)) for key, value in env.items()}


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def test_no_legacy_version_key_and_expected_services(compose, services):
    assert "version" not in compose, "the compose spec needs no `version:` key"
    missing = (MICROLEARN_SERVICES | BACKING_SERVICES) - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_microlearn_services_are_exactly_the_ones_built_from_this_repo(services):
    built = {name for name, svc in services.items() if "build" in svc or "MICROLEARN_IMAGE" in str(svc.get("image"))}
    assert built == MICROLEARN_SERVICES


def test_roles_are_chosen_by_command(services):
    assert _command(services["grpc"])[0] == "serve"
    assert _command(services["worker"])[0] == "worker"
    assert _command(services["worker-gpu"])[0] == "worker"
    assert _command(services["gateway"])[0] == "gateway"
    assert any(str(port).endswith("50051") for port in services["grpc"]["ports"])


@pytest.mark.parametrize("name", sorted(MICROLEARN_SERVICES))
def test_every_microlearn_service_gets_the_shared_env(services, compose, name):
    env = _env(services[name])
    missing = SHARED_ENV - set(env)
    assert not missing, f"{name} lacks {sorted(missing)}"
    assert env["MICROLEARN_DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["MICROLEARN_DATABASE_URL"]
    assert env["MICROLEARN_REDIS_URL"].startswith("redis://redis:6379")
    assert env["MICROLEARN_ARTIFACT_URL"] == "s3://microlearn/artifacts"
    assert env["MICROLEARN_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["MICROLEARN_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["MICROLEARN_GRPC_HOST"] == "0.0.0.0"
    shared = compose["x-microlearn-env"]
    assert {key: env[key] for key in shared} == {key: str(value) for key, value in shared.items()}, \
        f"{name} overrides a value of the shared x-microlearn-env anchor"


@pytest.mark.parametrize("name", sorted(MICROLEARN_SERVICES))
def test_no_service_runs_in_insecure_local_mode(services, name):
    assert "MICROLEARN_INSECURE_LOCAL" not in _env(services[name])
    assert "--insecure-local" not in _command(services[name])


@pytest.mark.parametrize("name", sorted(MICROLEARN_SERVICES))
def test_token_is_required_by_interpolation(services, name):
    token = _env(services[name])["MICROLEARN_TOKEN"]
    assert REQUIRED_TOKEN.match(token), f"{name}: MICROLEARN_TOKEN must be ${{MICROLEARN_TOKEN:?message}}, got {token!r}"


def test_token_has_no_default_anywhere():
    text = COMPOSE.read_text()
    assert not re.search(r"\$\{MICROLEARN_TOKEN(:?-|\})", text), "MICROLEARN_TOKEN must never get a default"


def test_cpu_workers_scale_out_and_work_without_a_gpu(services):
    worker = services["worker"]
    assert int(worker["deploy"]["replicas"]) >= 2
    assert "profiles" not in worker, "the default `up` must start CPU workers"
    assert "resources" not in worker["deploy"], "CPU workers must not reserve devices"


def test_gpu_worker_reserves_an_nvidia_device_behind_a_profile(services):
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] and (d.get("count") == "all" or int(d["count"]) >= 1)
               for d in devices), devices


def test_optional_parts_sit_behind_profiles(services):
    assert services["gateway"]["profiles"] == ["gateway"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    default = {name for name, svc in services.items() if "profiles" not in svc}
    assert default >= {"postgres", "redis", "minio", "createbuckets", "mlflow", "grpc", "worker"}


def test_backends_have_volumes_and_healthchecks(services, compose):
    assert "postgres-data" in compose["volumes"]
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "--appendonly" in _command(services["redis"])
    for name in ("postgres", "redis", "minio", "mlflow", "grpc"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert "local/microlearn" in " ".join(_command(services["createbuckets"]))
    assert services["mlflow"]["image"].startswith("ghcr.io/mlflow/mlflow")
    mlflow = " ".join(_command(services["mlflow"]))
    assert "--backend-store-uri=postgresql" in mlflow and "--artifacts-destination=s3://mlflow" in mlflow


def test_depends_on_conditions_match_their_targets(services):
    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        if isinstance(depends, list):
            continue
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = (spec or {}).get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy; it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is a one-shot job; it must not restart"
    for name in MICROLEARN_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"


def test_prometheus_config_scrapes_the_planned_metrics_port(services):
    mount = next(v for v in services["prometheus"]["volumes"] if "prometheus.yml" in str(v))
    config_path = ROOT / mount.split(":")[0]
    config = yaml.safe_load(config_path.read_text())
    ports = {sd["port"] for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])}
    assert ports == {9100}
    names = {n for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
    assert names >= MICROLEARN_SERVICES


def test_dockerfile_one_non_root_image_with_microlearn_entrypoint():
    text = (ROOT / "Dockerfile").read_text()
    active = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert any(re.match(r"ARG PYTHON_IMAGE=python:3\.11-slim$", line) for line in active)
    assert any(line.startswith("USER ") and not line.split()[1].startswith(("root", "0")) for line in active)
    assert 'ENTRYPOINT ["microlearn"]' in active
    assert any("pip install ." in line for line in active)
    assert not any("torch" in line for line in active), "torch stays a commented hook until it is needed"
    assert "torch==2.13.0" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".git" in ignored and ".venv" in ignored


# --- a real compose implementation must accept the file ------------------------------------------

def _compose_commands() -> list[tuple[str, list[str] | None, str]]:
    """(id, argv prefix or None, skip reason)."""
    found = []
    binary = shutil.which("docker-compose")
    found.append(("docker-compose", [binary] if binary else None, "no docker-compose binary on PATH"))
    docker = shutil.which("docker")
    plugin = None
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
        plugin = [docker, "compose"] if probe.returncode == 0 else None
    found.append(("docker compose", plugin, "no `docker compose` plugin"))
    return found


COMPOSE_COMMANDS = _compose_commands()


def _run_config(prefix: list[str], tmp_path: Path, token: str | None, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MICROLEARN_TOKEN" and not k.startswith("COMPOSE_")}
    if token is not None:
        env["MICROLEARN_TOKEN"] = token
    empty_env_file = tmp_path / "empty.env"  # isolate from a developer's .env
    empty_env_file.write_text("")
    return subprocess.run([*prefix, "--env-file", str(empty_env_file), "-f", str(COMPOSE), *extra, "config", "-q"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("prefix,reason", [(p, r) for _, p, r in COMPOSE_COMMANDS],
                         ids=[name for name, _, _ in COMPOSE_COMMANDS])
def test_compose_config_parses(prefix, reason, tmp_path):
    if prefix is None:
        pytest.skip(reason)
    result = _run_config(prefix, tmp_path, "test-token")
    assert result.returncode == 0, result.stdout + result.stderr
    all_profiles = ["--profile", "gpu", "--profile", "gateway", "--profile", "monitoring"]
    result = _run_config(prefix, tmp_path, "test-token", *all_profiles)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("prefix,reason", [(p, r) for _, p, r in COMPOSE_COMMANDS],
                         ids=[name for name, _, _ in COMPOSE_COMMANDS])
def test_compose_config_refuses_to_run_without_a_token(prefix, reason, tmp_path):
    if prefix is None:
        pytest.skip(reason)
    result = _run_config(prefix, tmp_path, None)
    assert result.returncode != 0
    assert "MICROLEARN_TOKEN" in result.stdout + result.stderr
