"""The YAML pipeline parser: a valid pipeline's steps, and every invalid one refused with its line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from microlearn_grpc.core.pipeline_spec import (PipelineSpec, PipelineSpecError, attach_uploads, local_paths,
                                                parse_pipeline, recipe_text)

GOOD = """\
name: churn
labels: {team: growth}
steps:
  - dataset: {path: data/customers.csv, name: customers}
  - prepare:
      steps:
        - drop_columns: [customer_id]
        - train_test_split: {test_fraction: 0.2, seed: 42}
  - select: {target: churned, max_candidates: 3}
  - optimize:
      time_budget: 30
      metric: roc_auc
      candidates: [lightgbm_classifier, logistic_regression]
  - evaluate
  - deploy: {name: churn, alias: production}
"""


def test_a_valid_pipeline_parses_with_lines():
    spec = parse_pipeline(GOOD, "churn.yaml")
    assert spec.name == "churn" and spec.labels == {"team": "growth"} and spec.source == "churn.yaml"
    assert [(s.kind, s.index, s.line) for s in spec.steps] == [
        ("dataset", 0, 4), ("prepare", 1, 5), ("select", 2, 9), ("optimize", 3, 10), ("evaluate", 4, 14),
        ("deploy", 5, 15)]
    assert spec.step("optimize").params == {"time_budget": 30.0, "metric": "roc_auc",
                                            "candidates": ["lightgbm_classifier", "logistic_regression"]}
    assert spec.step("evaluate").params == {}
    assert '"drop_columns"' in recipe_text(spec.step("prepare"))
    assert PipelineSpec.from_dict(spec.to_dict()) == spec
    assert spec.line_of("steps[3].optimize.metric") == 12 and spec.line_of("steps[3].optimize.nothing") == 10


def test_local_paths_are_replaced_by_the_uploaded_datasets():
    spec = parse_pipeline(GOOD)
    assert [(s.kind, path) for s, path in local_paths(spec)] == [("dataset", "data/customers.csv")]
    with pytest.raises(PipelineSpecError, match=r"line 4, steps\[0\]\.dataset\.path: 'data/customers.csv' is a "
                                                r"file on the client's machine"):
        attach_uploads(spec, {})
    attach_uploads(spec, {"data/customers.csv": "datasets/ds-1"})
    assert spec.steps[0].params["dataset"] == "datasets/ds-1"
    stored = parse_pipeline("steps:\n  - dataset: {name: customers@2}\n")
    attach_uploads(stored, {})
    assert stored.steps[0].params["dataset"] == "customers@2"


def test_the_bundled_example_is_valid():
    example = Path(__file__).resolve().parents[2] / "examples" / "pipeline.yaml"
    spec = parse_pipeline(example.read_text(), "pipeline.yaml")
    assert [s.kind for s in spec.steps] == ["dataset", "prepare", "select", "optimize", "evaluate", "deploy"]
    assert (example.parent / spec.steps[0].params["path"]).is_file()


def _swap(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize("text, expected", [
    (_swap("time_budget: 30", 'time_budget: "abc"'),
     'pipeline.yaml line 11, steps[3].optimize.time_budget: must be a positive number, got "abc"'),
    (_swap("time_budget: 30", "time_budget: -5"), "line 11, steps[3].optimize.time_budget: must be a positive"),
    (_swap("metric: roc_auc", "metrik: roc_auc"),
     "line 12, steps[3].optimize.metrik: unknown field; expected one of"),
    (_swap("max_candidates: 3", "max_candidates: many"),
     "line 9, steps[2].select.max_candidates: must be a whole number from 1 to 20"),
    (_swap("candidates: [lightgbm_classifier, logistic_regression]", "candidates: 7"),
     "line 13, steps[3].optimize.candidates: must be a list of names"),
    (_swap("  - deploy: {name: churn, alias: production}", "  - deploy: {alias: production}"),
     "line 15, steps[5].deploy.name: is required"),
    (_swap("  - dataset: {path: data/customers.csv, name: customers}", "  - datset: {path: x.csv}"),
     "line 4, steps[0].datset: unknown step; expected one of dataset, prepare"),
    (_swap("  - select: {target: churned, max_candidates: 3}\n", "") + "  - select: {target: churned}\n",
     "steps[5].select: steps run in the order dataset → prepare → select"),
    (GOOD + "  - evaluate\n", "line 16, steps[6].evaluate: only one evaluate step per pipeline (the first is at "
                              "line 14)"),
    (_swap("train_test_split: {test_fraction: 0.2, seed: 42}", "train_test_split: {test_fraction: 2}"),
     "line 8, steps[1].prepare.steps[1]: field 'test_fraction' must be strictly between 0 and 1"),
    (_swap("- drop_columns: [customer_id]", "- drop_colums: [customer_id]"),
     "line 7, steps[1].prepare.steps[0]: unknown step 'drop_colums'"),
    (_swap("labels: {team: growth}", "labels: {team: [a]}"), "line 2, labels.team: must be text"),
    (_swap("name: churn\n", "name: churn\nowner: me\n"), "line 2, owner: unknown field; expected one of name, "
                                                          "labels, steps"),
    (_swap("labels: {team: growth}", "labels: {team: growth"), "pipeline.yaml line 3: YAML syntax error:"),
    (_swap("  - select: {target: churned, max_candidates: 3}", "  - select: {target: churned, target: x}"),
     "line 9, steps[2].select.target: appears twice"),
    (_swap("  - evaluate\n", "  - evaluate: {path: a.csv, name: b}\n"),
     "line 14, steps[4].evaluate.name: give `path` or `name`, not both"),
    ("steps:\n  - optimize: {time_budget: 5, target: y}\n",
     "line 2, steps[0].optimize: the first step must be `dataset`"),
    ("steps:\n  - dataset: {name: x}\n  - deploy: {name: y}\n",
     "line 3, steps[1].deploy: deploy needs an optimize step before it"),
    ("steps:\n  - dataset: {name: x}\n  - optimize: {time_budget: 5}\n",
     "line 3, steps[1].optimize: no target"),
    ("steps:\n  - dataset: {}\n", "line 2, steps[0].dataset: give `path`"),
    ("steps: []\n", "line 1, steps: must be a non-empty list"),
    ("name: x\n", "steps: `steps` is required"),
    ("", "pipeline.yaml: the pipeline is empty"),
    ("- a\n- b\n", "line 1: must be a mapping"),
    ("steps:\n  - {dataset: {name: x}, select: {}}\n", "line 2, steps[0]: each step is a mapping with exactly one"),
])
def test_invalid_pipelines_name_the_line_and_field(text, expected):
    with pytest.raises(PipelineSpecError) as caught:
        parse_pipeline(text)
    assert expected in str(caught.value), str(caught.value)


def test_oversized_and_non_text_pipelines_are_refused():
    with pytest.raises(PipelineSpecError, match="larger than 256 KiB"):
        parse_pipeline("#" * (257 * 1024))
    with pytest.raises(PipelineSpecError, match="must be YAML text"):
        parse_pipeline(b"steps: []")  # type: ignore[arg-type]
