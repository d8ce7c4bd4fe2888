"""The pipeline's evaluate step: score a loaded model on a stored dataset's rows (held-out data).

Runs on a thread of the pipeline coordinator's worker, with the model the serving cache loaded and
verified, and the same input decoding as Predict, so what it measures is what a deployment would answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from microlearn_grpc import errors

MAX_ROWS = 2_000_000


def score_on(path: Path, model: Any, target: str) -> tuple[dict[str, float], int]:
    """(every metric of the model's task on the file's rows, rows scored); rows whose target is missing or a
    class the model never saw are left out."""
    import pyarrow.parquet as pq

    from microlearn_grpc.core import metrics as metric_lib
    from microlearn_grpc.core.preprocessing import _label
    from microlearn_grpc.serving import inputs

    table = pq.read_table(path)
    if target not in table.column_names:
        raise errors.FailedPrecondition(f"the evaluation data has no target column {target!r}")
    truth = table.column(target).to_pylist()
    values, rows, _ = inputs.decode_table(table.drop_columns([target]), model.schema, max_rows=MAX_ROWS,
                                          field="evaluate")
    prediction = model.predict(values, rows, probabilities=model.is_classifier)
    if model.is_classifier:
        codes = {label: i for i, label in enumerate(model.class_labels)}
        known = np.asarray([v is not None and _label(v) in codes for v in truth])
        if not known.any():
            raise errors.FailedPrecondition(f"no evaluation row has a {target!r} value the model knows")
        y = np.asarray([codes[_label(v)] for v, ok in zip(truth, known) if ok], dtype=np.int64)
        scores = metric_lib.score(model.task, y, proba=prediction.probabilities[known],
                                  n_classes=len(model.class_labels))
        return scores, int(known.sum())
    y = np.asarray([np.nan if v is None else float(v) for v in truth], dtype="float64")
    known = ~np.isnan(y)
    if not known.any():
        raise errors.FailedPrecondition(f"no evaluation row has a {target!r} value")
    return metric_lib.score(model.task, y[known], y_pred=prediction.values[known]), int(known.sum())
