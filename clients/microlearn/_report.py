"""A model's evaluation report, drawn with matplotlib from the plot data stored with the model: a
self-contained HTML page (every chart an embedded PNG) or one PNG sheet of all the charts.

Sections, where the model has the data: metrics, confusion matrix, ROC curve(s), precision-recall
curve(s), calibration (binary), residuals and their histogram (regression), permutation importance.
matplotlib is imported on first use only (the CLI starts without it).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["write_report"]

_MAX_FEATURES = 20  # importance bars drawn; the HTML table lists every column
_MAX_CURVES = 10  # one-vs-rest curves drawn for multiclass models

Panel = tuple[str, Callable[[Any], None]]


def write_report(model: Any, path: Path) -> Path:
    """Write `model`'s report to `path`: HTML for `.html`/`.htm`, a PNG sheet for `.png`."""
    suffix = path.suffix.lower()
    if suffix not in (".html", ".htm", ".png"):
        raise ValueError(f"{path}: a report is written as .html or .png")
    plt = _pyplot()
    panels = _panels(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        path.write_bytes(_sheet(plt, model, panels))
    else:
        path.write_text(_html(plt, model, panels), encoding="utf-8")
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display: files only
    import matplotlib.pyplot as plt

    return plt


# -- what to draw -----------------------------------------------------------------------------------------


def _panels(model: Any) -> list[Panel]:
    d = model.diagnostics or {}
    panels: list[Panel] = []
    if "confusion_matrix" in d:
        panels.append(("Confusion matrix", lambda ax: _confusion(ax, d["confusion_matrix"])))
    roc = {"": d["roc_curve"]} if "roc_curve" in d else dict(list((d.get("roc_curves") or {}).items())[:_MAX_CURVES])
    pr = {"": d["pr_curve"]} if "pr_curve" in d else dict(list((d.get("pr_curves") or {}).items())[:_MAX_CURVES])
    if roc:
        panels.append(("ROC curve", lambda ax: _curves(ax, roc, "fpr", "tpr", "false positive rate",
                                                       "true positive rate", diagonal=True)))
    if pr:
        panels.append(("Precision-recall curve", lambda ax: _curves(ax, pr, "recall", "precision", "recall",
                                                                    "precision", diagonal=False)))
    if d.get("calibration", {}).get("mean_predicted"):
        panels.append(("Calibration", lambda ax: _calibration(ax, d["calibration"])))
    if d.get("residuals", {}).get("predicted"):
        panels.append(("Residuals", lambda ax: _residuals(ax, d["residuals"])))
    if d.get("residual_histogram", {}).get("counts"):
        panels.append(("Residual histogram", lambda ax: _histogram(ax, d["residual_histogram"])))
    if model.feature_importance:
        panels.append(("Permutation importance", lambda ax: _importance(ax, model)))
    return panels


def _confusion(ax: Any, cm: dict[str, Any]) -> None:
    labels, matrix = cm["labels"], cm["matrix"]
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    top = max((max(row) for row in matrix), default=0)
    if len(labels) <= 12:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:g}", ha="center", va="center", color="white" if value > top / 2 else "black")


def _curves(ax: Any, curves: dict[str, dict], x: str, y: str, xlabel: str, ylabel: str, *, diagonal: bool) -> None:
    for name, curve in curves.items():
        ax.plot(curve[x], curve[y], label=f"class {name}" if name else None)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    if len(curves) > 1 or "" not in curves:
        ax.legend(fontsize="small")


def _calibration(ax: Any, cal: dict[str, Any]) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    ax.plot(cal["mean_predicted"], cal["fraction_positive"], marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("fraction of positives")
    ax.legend(fontsize="small")


def _residuals(ax: Any, r: dict[str, Any]) -> None:
    ax.scatter(r["predicted"], r["residual"], s=8, alpha=0.5)
    ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual - predicted")


def _histogram(ax: Any, h: dict[str, Any]) -> None:
    edges, counts = h["edges"], h["counts"]
    ax.bar(edges[:-1], counts, width=[b - a for a, b in zip(edges[:-1], edges[1:])], align="edge")
    ax.set_xlabel("residual")
    ax.set_ylabel("rows")


def _importance(ax: Any, model: Any) -> None:
    rows = model.feature_importance[:_MAX_FEATURES][::-1]  # largest at the top
    ax.barh([r["feature"] for r in rows], [r["importance"] for r in rows], xerr=[r["importance_std"] for r in rows])
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_xlabel(f"drop in {model.importance_metric or 'the metric'} when shuffled")


# -- output ---------------------------------------------------------------------------------------------


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _sheet(plt: Any, model: Any, panels: list[Panel]) -> bytes:
    """All the charts in one PNG, after a panel of the metrics."""
    count = len(panels) + 1
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.2 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    flat[0].axis("off")
    lines = [f"{name}: {value:.4g}" for name, value in _metric_rows(model)]
    flat[0].text(0, 1, "\n".join([_title(model), "", *lines]), va="top", family="monospace", fontsize=9)
    for ax, (title, draw) in zip(flat[1:], panels):
        ax.set_title(title)
        draw(ax)
    for ax in flat[count:]:
        ax.axis("off")
    fig.tight_layout()
    try:
        return _png(fig)
    finally:
        plt.close(fig)


def _html(plt: Any, model: Any, panels: list[Panel]) -> str:
    e = html.escape
    evaluated = model.evaluation
    source = (f"evaluated by {e(evaluated['job'])} on {e(evaluated['rows'])} rows of {e(evaluated['dataset'])} "
              f"({evaluated['row_count']:,} rows)" if evaluated else "validation (or out-of-fold) rows of its training")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(_title(model))}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child"
             "{text-align:left}img{max-width:100%}</style></head><body>",
             f"<h1>{e(_title(model))}</h1>",
             f"<p>{e(model.task)} · target <b>{e(model.target)}</b> · dataset {e(model.dataset)} · "
             f"{model.training_row_count:,} training rows · plot data from {source}</p>",
             "<h2>Metrics</h2><table><tr><th>metric</th><th>validation</th><th>± std</th><th>train</th>"
             + ("<th>evaluation</th>" if evaluated else "") + "</tr>"]
    for name, value in _metric_rows(model):
        cells = [f"{value:.4g}", _fmt(model.metrics_std.get(name)), _fmt(model.train_metrics.get(name))]
        if evaluated:
            cells.append(_fmt(evaluated["metrics"].get(name)))
        parts.append(f"<tr><td>{e(name)}{' (score)' if name == model.metric else ''}</td>"
                     + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    for title, draw in panels:
        fig, ax = plt.subplots(figsize=(7, 5) if title == "Permutation importance" else (5.5, 4.5))
        try:
            draw(ax)
            image = base64.b64encode(_png(fig)).decode("ascii")
        finally:
            plt.close(fig)
        parts.append(f"<h2>{e(title)}</h2><img alt='{e(title)}' src='data:image/png;base64,{image}'>")
        if title == "Permutation importance":
            parts.append("<table><tr><th>feature</th><th>importance</th><th>± std</th><th>repeats</th></tr>"
                         + "".join(f"<tr><td>{e(r['feature'])}</td><td>{r['importance']:.4g}</td>"
                                   f"<td>{r['importance_std']:.2g}</td><td>{r['repeats']}</td></tr>"
                                   for r in model.feature_importance) + "</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _metric_rows(model: Any) -> list[tuple[str, float]]:
    metrics = model.metrics or (model.evaluation or {}).get("metrics") or {}
    return sorted(metrics.items(), key=lambda item: (item[0] != model.metric, item[0]))


def _title(model: Any) -> str:
    return f"{model.name} — {model.estimator}"


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
