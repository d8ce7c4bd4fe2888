"""A study's greedy ensemble: built by its coordinator after the search, from the trials' stored
validation (or out-of-fold) predictions, stored and registered like any model when it beats the
best single trial.

Every trial of a study splits the same rows the same way (one seed, one validation strategy), so
their predictions are of the same rows; a trial whose rows differ (a later attempt with another
split cannot happen, but a member without probabilities can) is left out.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from microlearn_grpc.storage.artifacts import ArtifactStore
from microlearn_grpc.storage.models_repo import ModelRecord, ModelRepository, new_model_id
from microlearn_grpc.storage.studies_repo import StudyRecord, TrialRecord

log = logging.getLogger(__name__)

CANDIDATES = 12  # the top trials the selection chooses among
# Members bigger than this are left out: an ensemble carries its members, and a 250 MB one (fully grown
# extra trees on 30k rows) took 10 s to load and 4 s to predict 10k rows on 2 cores.
MAX_MEMBER_BYTES = 64 << 20


@dataclass(frozen=True)
class EnsembleOutcome:
    model_id: str | None  # None when the ensemble did not beat the best trial (or could not be built)
    score: float | None
    members: dict[str, float]  # model id -> weight
    message: str


async def build(*, pool: asyncpg.Pool, artifacts: ArtifactStore, key: bytes, work_dir: Path, study: StudyRecord,
                trials: list[TrialRecord], max_members: int) -> EnsembleOutcome:
    from microlearn_grpc.core import ensemble
    from microlearn_grpc.core import metrics as metric_lib

    spec = study.spec
    models = ModelRepository(pool)
    records: list[ModelRecord] = []
    arrays: list[dict[str, np.ndarray]] = []
    for trial in trials[:CANDIDATES]:
        record = await models.get(trial.model_id or "")
        stored = record.lineage.get("validation_predictions") if record else None
        if not stored or record.size_bytes > MAX_MEMBER_BYTES:
            continue
        with np.load(io.BytesIO(await artifacts.get_bytes(stored))) as data:
            arrays.append({name: data[name] for name in ("index", "values", "y")})
        records.append(record)
    if len(records) < 2:
        return EnsembleOutcome(None, None, {}, "fewer than two completed trials with validation predictions")
    reference = arrays[0]
    classification = spec["task"] in ("binary", "multiclass")
    keep = [i for i, a in enumerate(arrays) if np.array_equal(a["index"], reference["index"])
            and a["values"].shape == reference["values"].shape and (a["values"].ndim == 2) == classification]
    if len(keep) < 2:
        return EnsembleOutcome(None, None, {}, "the trials' validation predictions do not line up")
    records, arrays = [records[i] for i in keep], [arrays[i] for i in keep]
    y, metric = reference["y"], spec["metric"]
    n_classes = reference["values"].shape[1] if classification else None

    def score(values: np.ndarray) -> float:
        found = metric_lib.score(spec["task"], y.astype(np.int64) if classification else y,
                                 **({"proba": values} if classification else {"y_pred": values}),
                                 n_classes=n_classes, only=metric)
        value = found.get(metric)
        if value is None or not math.isfinite(value):
            return -math.inf if study_maximizes(spec) else math.inf
        return value
    chosen = await asyncio.to_thread(ensemble.select, [a["values"] for a in arrays], score,
                                     maximize=study_maximizes(spec), max_members=max_members)
    weights = {records[i].id: w for i, w in chosen.weights.items()}
    better = chosen.score > chosen.best_single if study_maximizes(spec) else chosen.score < chosen.best_single
    if len(weights) < 2 or not better:
        return EnsembleOutcome(None, chosen.score, weights,
                               f"the ensemble ({metric} {chosen.score:.5g}) does not beat the best trial "
                               f"({chosen.best_single:.5g})")
    model_id = await _store(pool, artifacts, key, work_dir, study, records, chosen, weights)
    return EnsembleOutcome(model_id, chosen.score, weights,
                           f"ensemble of {len(weights)} trials: {metric} {chosen.score:.5g} "
                           f"(best trial {chosen.best_single:.5g})")


def study_maximizes(spec: dict[str, Any]) -> bool:
    return spec["direction"] == "maximize"


async def _store(pool: asyncpg.Pool, artifacts: ArtifactStore, key: bytes, work_dir: Path, study: StudyRecord,
                 records: list[ModelRecord], chosen: Any, weights: dict[str, float]) -> str:
    from microlearn_grpc.core.model_artifact import pack, sign_file, verify_file, write_ensemble

    spec = study.spec
    by_id = {r.id: r for r in records}
    best = by_id[next(iter(sorted(weights, key=lambda m: -weights[m])))]
    model_id = new_model_id()
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{model_id}-", dir=work_dir))
    try:
        members = []
        for member_id, weight in weights.items():
            record = by_id[member_id]
            tar = scratch / f"{member_id}.tar"
            await artifacts.get_to_file(record.artifact_key, tar, expected_sha256=record.sha256)
            await asyncio.to_thread(verify_file, tar, key, record.sha256, record.hmac)
            members.append((member_id, tar, record.sha256, weight))
        layout = scratch / "model"
        await asyncio.to_thread(write_ensemble, layout, {
            "task": spec["task"], "target": spec["target"], "estimator": "ensemble",
            "feature_schema": best.feature_schema, "class_labels": best.class_labels, "seed": spec["seed"]}, members)
        packed = scratch / f"{model_id}.tar"
        await asyncio.to_thread(pack, layout, packed)
        sha256, signature = await asyncio.to_thread(sign_file, packed, key)
        artifact_key = f"models/{model_id}.tar"
        info = await artifacts.put_file(artifact_key, packed)
        record = ModelRecord(
            id=model_id, job_id=None, dataset_id=best.dataset_id, target=best.target, estimator="ensemble",
            task=best.task, hyperparameters={"members": weights}, metric=spec["metric"],
            metrics={spec["metric"]: chosen.score}, metrics_std={}, train_metrics={},
            feature_schema=best.feature_schema, class_labels=best.class_labels, format="ensemble",
            artifact_key=artifact_key, size_bytes=info.size, sha256=sha256, hmac=signature, diagnostics={},
            lineage={"dataset": best.lineage.get("dataset", ""), "dataset_id": best.dataset_id,
                     "members": [{"model": f"models/{m}", "weight": w, "estimator": by_id[m].estimator}
                                 for m, w in weights.items()], "best_single_score": chosen.best_single,
                     "seed": spec["seed"]},
            mlflow_run_id=None, iterations=0, best_iteration=0, training_row_count=best.training_row_count,
            fit_time_seconds=sum(by_id[m].fit_time_seconds for m in weights), device="cpu", study_id=study.id,
            trial_number=0, labels=study.labels)
        try:
            await ModelRepository(pool).insert(record)
        except BaseException:
            await artifacts.delete(artifact_key)
            raise
        return model_id
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
