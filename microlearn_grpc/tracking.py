"""MLflow tracking for jobs: one run per job, found again from the job id.

Every call is synchronous MLflow client work; workers call it on one dedicated thread
(`Tracker.call`) so the event loop keeps heartbeating and a SQLite backend sees one writer per
process. Tracking problems are logged and never fail a job: the model and the job row are the
record, MLflow is the lab notebook. `MICROLEARN_MLFLOW_TRACKING_URI=off` turns tracking off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_EXPERIMENT = "microlearn"
OFF = ("off", "none", "disabled")
_MAX_PARAM = 6000
_BATCH = 1000


class Tracker:
    """Writes runs to one MLflow tracking server (or SQLite file)."""

    def __init__(self, uri: str, artifact_root: Path | None = None) -> None:
        self.uri = uri
        self._artifact_root = artifact_root
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        self._last_timestamp = 0
        self._artifact_repos: dict[str, Any] = {}  # run id → its artifact repository, while the run is open
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="microlearn-mlflow")

    @property
    def enabled(self) -> bool:
        return self.uri.lower() not in OFF

    async def call(self, fn: Callable[..., T], *args: Any) -> T | None:
        """Run one tracking call on the tracking thread; failures are logged and give None."""
        if not self.enabled:
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except Exception:  # noqa: BLE001 - tracking never fails a job
            log.warning("MLflow call %s failed", getattr(fn, "__name__", fn), exc_info=True)
            return None

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    # -- synchronous calls (run them through `call`) ------------------------------------------------

    def client(self) -> Any:
        if self._client is None:
            import mlflow
            from mlflow.tracking import MlflowClient

            mlflow.set_tracking_uri(self.uri)
            if self.uri.startswith("sqlite:///"):
                # Several workers on one host share the file, and MLflow creates (or upgrades) its
                # schema when a client is made, without a lock: serialize that with one.
                import fcntl

                db = Path(self.uri.removeprefix("sqlite:///"))
                db.parent.mkdir(parents=True, exist_ok=True)
                with open(db.with_suffix(".lock"), "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    self._client = MlflowClient(tracking_uri=self.uri)
            else:
                self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def experiment_id(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        from mlflow.exceptions import MlflowException

        client = self.client()
        found = client.get_experiment_by_name(name)
        if found is None:
            location = None
            if self._artifact_root is not None:
                location = (self._artifact_root / name).resolve().as_uri()
            try:
                experiment_id = client.create_experiment(name, artifact_location=location)
            except MlflowException:  # another worker created it first
                found = client.get_experiment_by_name(name)
                if found is None:
                    raise
                experiment_id = found.experiment_id
        else:
            experiment_id = found.experiment_id
        self._experiments[name] = experiment_id
        return experiment_id

    def start_run(self, experiment: str, run_name: str, tags: Mapping[str, str],
                  params: Mapping[str, Any], existing_run_id: str | None = None) -> str:
        """Create the job's run (or reopen it on a later attempt) and log its params and tags."""
        from mlflow.entities import Param, RunTag

        client = self.client()
        if existing_run_id:
            client.update_run(existing_run_id, status="RUNNING")
            client.log_batch(existing_run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
            self._open_artifacts(existing_run_id, client.get_run(existing_run_id).info.artifact_uri)
            return existing_run_id
        run = client.create_run(self.experiment_id(experiment or DEFAULT_EXPERIMENT), run_name=run_name,
                                tags={k: str(v) for k, v in tags.items()})
        items = [Param(str(k), _param(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            client.log_batch(run.info.run_id, params=items[start:start + 100])
        self._open_artifacts(run.info.run_id, run.info.artifact_uri)
        return run.info.run_id

    def _open_artifacts(self, run_id: str, artifact_uri: str) -> None:
        # The client would look the run up again (a query) to find where its artifacts go: keep it.
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        self._artifact_repos[run_id] = get_artifact_repository(artifact_uri)

    def _artifacts(self, run_id: str) -> Any:
        repo = self._artifact_repos.get(run_id)
        if repo is None:  # a run this tracker did not open
            self._open_artifacts(run_id, self.client().get_run(run_id).info.artifact_uri)
            repo = self._artifact_repos[run_id]
        return repo

    def log_metrics(self, run_id: str, points: Iterable[tuple[str, float, int]],
                    later: Iterable[tuple[str, float, int]] = ()) -> None:
        """Log (name, value, step) points; `later` ones (a run's final metrics) are stamped a millisecond
        after `points`, so that they are the latest value of their metric even at an equal step."""
        from mlflow.entities import Metric

        # Strictly increasing across calls: MLflow takes a metric's latest value by (step, timestamp), and
        # a run's final metrics are logged after its per-step ones, possibly within the same millisecond.
        now = max(int(time.time() * 1000), self._last_timestamp + 1)
        self._last_timestamp = now + 1
        metrics = [Metric(_metric_key(name), float(value), now, int(step)) for name, value, step in points]
        metrics += [Metric(_metric_key(name), float(value), now + 1, int(step)) for name, value, step in later]
        client = self.client()
        for start in range(0, len(metrics), _BATCH):
            client.log_batch(run_id, metrics=metrics[start:start + _BATCH])

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self._artifacts(run_id).log_artifact(str(path), artifact_path)

    def log_dict(self, run_id: str, data: dict, name: str) -> None:
        """`data` as JSON in the file `name` (a path inside the run's artifacts)."""
        import json
        import tempfile

        folder, _, file_name = name.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="microlearn-mlflow-") as scratch:
            local = Path(scratch) / file_name
            local.write_text(json.dumps(data, indent=2))
            self._artifacts(run_id).log_artifact(str(local), folder or None)

    def end_run(self, run_id: str, status: str) -> None:
        """status: FINISHED, FAILED or KILLED."""
        self._artifact_repos.pop(run_id, None)
        self.client().set_terminated(run_id, status=status)

    def find_run(self, job_id: str) -> Any:
        """The run tagged with this job id, or None (any experiment)."""
        runs = self.client().search_runs(experiment_ids=list(self._all_experiment_ids()),
                                         filter_string=f"tags.`microlearn.job_id` = '{job_id}'", max_results=1)
        return runs[0] if runs else None

    def _all_experiment_ids(self) -> list[str]:
        return [e.experiment_id for e in self.client().search_experiments()]


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_PARAM else text[:_MAX_PARAM - 1] + "…"


def _metric_key(name: str) -> str:
    # MLflow keys allow alphanumerics, underscores, dashes, periods, spaces and slashes.
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
