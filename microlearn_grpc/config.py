"""Settings for every MicroLearn process, read from `MICROLEARN_*` environment variables.

One frozen `Settings` object is built per process (in its composition root) and handed down;
nothing reads the environment anywhere else. Bad values fail at start with a `ConfigError`
that names the variable and what is accepted.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_GRPC_PORT = 50051
DEFAULT_HTTP_PORT = 8080
MiB = 1 << 20
GiB = 1 << 30


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a process needs to construct its adapters (see README, "Configuration")."""

    data_dir: Path = Path(".microlearn")
    database_url: str | None = None
    redis_url: str | None = None
    artifact_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    mlflow_tracking_uri: str | None = None
    grpc_host: str = "127.0.0.1"
    grpc_port: int = DEFAULT_GRPC_PORT
    http_port: int = DEFAULT_HTTP_PORT
    metrics_port: int | None = None  # None: 9100, or a free port when taken; 0: a free port; -1: off
    token: str | None = None
    insecure_local: bool = False
    max_message_bytes: int = 64 * MiB
    max_upload_bytes: int = 4 * GiB
    max_decompressed_bytes: int = 8 * GiB
    max_columns: int = 2000
    max_compression_ratio: float = 200.0
    max_concurrent_uploads: int = 4
    server_processes: int = 1  # gRPC server processes sharing the port (SO_REUSEPORT only when > 1)
    worker_concurrency: int = 2
    model_signing_key: str | None = None
    gpus: str = "auto"
    threads_per_job: int = 0
    job_timeout_seconds: int = 24 * 3600
    job_lease_seconds: float = 30.0
    heartbeat_seconds: float = 1.0
    reconcile_interval_seconds: int = 5
    max_job_attempts: int = 3
    worker_poll_seconds: float = 0.01
    queue_name: str = "microlearn:jobs"

    @property
    def artifacts(self) -> str:
        """The artifact store URL, defaulting to a directory under the data dir."""
        return self.artifact_url or f"file://{(self.data_dir / 'artifacts').resolve()}"

    @property
    def mlflow_uri(self) -> str:
        """MLflow tracking URI; MLflow 3 wants a database backend, so default to SQLite in the data dir."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow' / 'mlflow.db').resolve()}"

    def signing_key(self) -> bytes:
        """The HMAC key model artifacts are signed with: MICROLEARN_MODEL_SIGNING_KEY, or a random key
        kept in the data dir (enough for one host; several hosts must share the variable)."""
        if self.model_signing_key:
            return self.model_signing_key.encode()
        from microlearn_grpc.embedded import read_or_create_secret

        return read_or_create_secret(self.data_dir / "model-signing-key", nbytes=32).encode()

    def job_threads(self) -> int:
        """Threads one fit may use: MICROLEARN_THREADS_PER_JOB, else the cores shared among concurrent jobs."""
        if self.threads_per_job:
            return self.threads_per_job
        return max(1, (os.cpu_count() or 1) // max(1, self.worker_concurrency))

    def require_backends(self) -> None:
        """Fail with an actionable message when a server process has no Postgres/Redis to talk to."""
        missing = [name for name, value in (("MICROLEARN_DATABASE_URL", self.database_url),
                                            ("MICROLEARN_REDIS_URL", self.redis_url)) if not value]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} not set: run `microlearn up` to start the embedded PostgreSQL and Redis, "
                "or point these variables at your servers (postgresql://user:pass@host:5432/db, redis://host:6379/0)"
            )

    def check_auth(self) -> None:
        """Refuse to run open unless explicitly in local-dev mode on a loopback address."""
        if self.insecure_local:
            if not is_loopback(self.grpc_host):
                raise ConfigError(
                    f"--insecure-local serves without a token, so it only binds to loopback; "
                    f"MICROLEARN_GRPC_HOST={self.grpc_host!r} is not a loopback address"
                )
        elif not self.token:
            raise ConfigError("MICROLEARN_TOKEN is not set: set a token (clients send it as "
                              "'authorization: Bearer TOKEN') or use --insecure-local on 127.0.0.1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _int(env: Mapping[str, str], name: str, default: int, *, low: int = 0, high: int = 1 << 62) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range ({low}..{high})")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float = 0.0,
           high: float = float(1 << 62)) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range ({low}..{high})")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true/false)")


def _metrics_port(env: Mapping[str, str]) -> int | None:
    raw = env.get("MICROLEARN_METRICS_PORT")
    if raw is not None and raw.strip().lower() == "off":
        return -1
    return _int(env, "MICROLEARN_METRICS_PORT", None, high=65535)  # type: ignore[arg-type]


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not raw.startswith(tuple(f"{s}://" for s in schemes)):
        raise ConfigError(f"{name}={raw!r} must start with one of: {', '.join(s + '://' for s in schemes)}")
    return raw


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides (from CLI flags) win."""
    env = os.environ if env is None else env
    artifact_url = env.get("MICROLEARN_ARTIFACT_URL") or None
    if artifact_url and not (artifact_url.startswith(("file://", "s3://", "/"))):
        raise ConfigError(f"MICROLEARN_ARTIFACT_URL={artifact_url!r} must be file:///abs/dir, /abs/dir or s3://bucket/prefix")
    values: dict[str, object] = dict(
        data_dir=Path(env.get("MICROLEARN_DATA_DIR") or ".microlearn"),
        database_url=_url(env, "MICROLEARN_DATABASE_URL", ("postgresql", "postgres")),
        redis_url=_url(env, "MICROLEARN_REDIS_URL", ("redis", "rediss", "unix")),
        artifact_url=artifact_url,
        s3_endpoint_url=env.get("MICROLEARN_S3_ENDPOINT_URL") or None,
        s3_region=env.get("MICROLEARN_S3_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        s3_access_key_id=env.get("MICROLEARN_S3_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY_ID") or None,
        s3_secret_access_key=env.get("MICROLEARN_S3_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_ACCESS_KEY") or None,
        mlflow_tracking_uri=env.get("MICROLEARN_MLFLOW_TRACKING_URI") or None,
        grpc_host=env.get("MICROLEARN_GRPC_HOST") or "127.0.0.1",
        grpc_port=_int(env, "MICROLEARN_GRPC_PORT", DEFAULT_GRPC_PORT, high=65535),
        http_port=_int(env, "MICROLEARN_HTTP_PORT", DEFAULT_HTTP_PORT, high=65535),
        metrics_port=_metrics_port(env),
        token=env.get("MICROLEARN_TOKEN") or None,
        insecure_local=_bool(env, "MICROLEARN_INSECURE_LOCAL", False),
        max_message_bytes=_int(env, "MICROLEARN_MAX_MESSAGE_BYTES", 64 * MiB, low=MiB, high=2 * GiB - 1),
        max_upload_bytes=_int(env, "MICROLEARN_MAX_UPLOAD_BYTES", 4 * GiB, low=1),
        max_decompressed_bytes=_int(env, "MICROLEARN_MAX_DECOMPRESSED_BYTES", 8 * GiB, low=1),
        max_columns=_int(env, "MICROLEARN_MAX_COLUMNS", 2000, low=1),
        max_concurrent_uploads=_int(env, "MICROLEARN_MAX_CONCURRENT_UPLOADS", 4, low=1, high=256),
        server_processes=_int(env, "MICROLEARN_SERVER_PROCESSES", 1, low=1, high=64),
        worker_concurrency=_int(env, "MICROLEARN_WORKER_CONCURRENCY", 2, low=1, high=256),
        model_signing_key=env.get("MICROLEARN_MODEL_SIGNING_KEY") or None,
        gpus=env.get("MICROLEARN_GPUS") or "auto",
        threads_per_job=_int(env, "MICROLEARN_THREADS_PER_JOB", 0, high=1024),
        job_timeout_seconds=_int(env, "MICROLEARN_JOB_TIMEOUT_SECONDS", 24 * 3600, low=1),
        job_lease_seconds=_float(env, "MICROLEARN_JOB_LEASE_SECONDS", 30.0, low=1.0),
        heartbeat_seconds=_float(env, "MICROLEARN_HEARTBEAT_SECONDS", 1.0, low=0.05, high=60.0),
        reconcile_interval_seconds=_int(env, "MICROLEARN_RECONCILE_INTERVAL_SECONDS", 5, low=1, high=60),
        max_job_attempts=_int(env, "MICROLEARN_MAX_JOB_ATTEMPTS", 3, low=1, high=100),
        worker_poll_seconds=_float(env, "MICROLEARN_WORKER_POLL_SECONDS", 0.01, low=0.001, high=10.0),
        queue_name=env.get("MICROLEARN_QUEUE_NAME") or "microlearn:jobs",
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(f"unknown settings: {sorted(unknown)}")
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.artifact_url and settings.artifact_url.startswith("/"):
        settings = dataclasses.replace(settings, artifact_url=f"file://{settings.artifact_url}")
    return settings
