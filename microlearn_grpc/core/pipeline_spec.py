"""YAML pipelines: parse and validate the text of `microlearn run pipeline.yaml` into a `PipelineSpec`.

Pure (PyYAML only; the prepare step's recipe is checked by `core.recipes`). Parsing composes the YAML into
nodes first, so every error names the line it is about and the field, as a person reads the file:
`pipeline.yaml line 7, steps[2].optimize.time_budget: must be a positive number, got "abc"`.
The grammar is in the README ("Pipelines"); `STEP_FIELDS` below is its machine form.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import yaml

__all__ = ["MAX_PIPELINE_BYTES", "STEP_KINDS", "PipelineSpec", "PipelineSpecError", "StepSpec", "attach_uploads",
           "local_paths", "parse_pipeline"]

MAX_PIPELINE_BYTES = 256 * 1024
STEP_KINDS = ("dataset", "prepare", "select", "optimize", "evaluate", "deploy")
TASKS = ("binary", "multiclass", "regression", "clustering")
_NAME_FIELD = "name"


class PipelineSpecError(ValueError):
    """An invalid pipeline; `str()` is `SOURCE line N, FIELD: MESSAGE` (line or field left out when unknown)."""

    def __init__(self, message: str, *, source: str = "pipeline.yaml", line: int | None = None, field: str = ""):
        self.message, self.source, self.line, self.field = message, source, line, field
        where = f"{source} line {line}" if line else source
        super().__init__(f"{where}, {field}: {message}" if field else f"{where}: {message}")


@dataclasses.dataclass
class StepSpec:
    kind: str
    index: int
    line: int
    params: dict[str, Any]

    @property
    def field(self) -> str:
        return f"steps[{self.index}].{self.kind}"


@dataclasses.dataclass
class PipelineSpec:
    name: str
    labels: dict[str, str]
    steps: list[StepSpec]
    source: str = "pipeline.yaml"
    lines: dict[str, int] = dataclasses.field(default_factory=dict)  # field path -> 1-based line

    def step(self, kind: str) -> StepSpec | None:
        return next((s for s in self.steps if s.kind == kind), None)

    def line_of(self, field: str) -> int | None:
        """The line of `field` or of its closest enclosing field."""
        while field:
            if field in self.lines:
                return self.lines[field]
            cut = max(field.rfind("."), field.rfind("["))
            field = field[:cut] if cut > 0 else ""
        return None

    def error(self, field: str, message: str) -> PipelineSpecError:
        return PipelineSpecError(message, source=self.source, line=self.line_of(field), field=field)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": self.labels, "source": self.source, "lines": self.lines,
                "steps": [dataclasses.asdict(s) for s in self.steps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelineSpec:
        return cls(name=data["name"], labels=dict(data["labels"]), source=data["source"], lines=dict(data["lines"]),
                   steps=[StepSpec(**s) for s in data["steps"]])


# -- typed field checkers: (value, describe) -> value, raising ValueError with the message ------------------

def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "nothing"
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {_show(value)}")
    return value.strip()


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {_show(value)}")
    return float(value)


def _count(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low:,} to {high:,}, got {_show(value)}")
        return value
    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {_show(value)}")
    return value


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"must be a list of names, like [lightgbm_classifier, logistic_regression], got "
                         f"{_show(value)}")
    return [v.strip() for v in value]


def _task(value: Any) -> str:
    if value not in TASKS:
        raise ValueError(f"must be one of {', '.join(TASKS)}, got {_show(value)}")
    return value


def _recipe_steps(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a non-empty list of recipe steps, like [{{drop_columns: [id]}}], got "
                         f"{_show(value)}")
    return value


# Each step's fields: name -> checker. `required` lists what a step must have.
STEP_FIELDS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "dataset": {"path": _text, "name": _text},
    "prepare": {"steps": _recipe_steps, "output_name": _text},
    "select": {"target": _text, "task": _task, "max_candidates": _count(1, 20), "time_budget": _positive_number,
               "ignore_columns": _names},
    "optimize": {"target": _text, "time_budget": _positive_number, "max_trials": _count(1, 100_000),
                 "metric": _text, "candidates": _names, "max_candidates": _count(1, 20), "ensemble": _flag,
                 "parallelism": _count(1, 256), "seed": _count(0, 2**62)},
    "evaluate": {"path": _text, "name": _text},
    "deploy": {"name": _text, "alias": _text, "registered_model": _text},
}
_REQUIRED = {"prepare": ("steps",), "deploy": ("name",)}
_TOP_FIELDS = ("name", "labels", "steps")


# -- parsing -----------------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self._constructor = yaml.constructor.SafeConstructor()

    def fail(self, node: yaml.Node | None, field: str, message: str) -> PipelineSpecError:
        line = node.start_mark.line + 1 if node is not None else None
        return PipelineSpecError(message, source=self.source, line=line, field=field)

    def value(self, node: yaml.Node, field: str = "") -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            raise self.fail(node, field, str(getattr(exc, "problem", None) or exc)[:200]) from None
        finally:
            self._constructor.constructed_objects.clear()

    def mapping(self, node: yaml.Node, field: str, example: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The (key, key node, value node) of a mapping node; duplicate or non-string keys are errors."""
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, field, f"must be a mapping, like {example}, got {_show(self.value(node))}")
        seen: dict[str, int] = {}
        out = []
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                raise self.fail(key_node, field, f"field names must be text, got {_show(key)}")
            if key in seen:
                raise self.fail(key_node, f"{field}.{key}" if field else key,
                                f"appears twice (first at line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
            out.append((key, key_node, value_node))
        return out

    def unknown(self, node: yaml.Node, field: str, key: str, allowed: tuple[str, ...] | list[str],
                what: str = "field") -> PipelineSpecError:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return self.fail(node, f"{field}.{key}" if field else key,
                         f"unknown {what}; expected one of {', '.join(allowed)}{hint}")

    def document(self, text: str) -> PipelineSpec:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            column = f" (column {mark.column + 1})" if mark else ""
            raise PipelineSpecError(f"YAML syntax error: {problem}{column}", source=self.source,
                                    line=mark.line + 1 if mark else None) from None
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            raise PipelineSpecError(f"not valid YAML: {str(exc)[:200]}", source=self.source) from None
        if root is None:
            raise PipelineSpecError("the pipeline is empty; it needs a `steps` list", source=self.source)
        fields = self.mapping(root, "", "{name: churn, steps: [...]}")
        name, labels, steps_node = "", {}, None
        for key, key_node, value_node in fields:
            self.lines[key] = key_node.start_mark.line + 1
            if key not in _TOP_FIELDS:
                raise self.unknown(key_node, "", key, _TOP_FIELDS)
            if key == "name":
                name = self.checked(value_node, "name", _text)
            elif key == "labels":
                labels = self.labels(value_node)
            else:
                steps_node = value_node
        if steps_node is None:
            raise PipelineSpecError("`steps` is required: a list such as [{dataset: {path: data.csv}}, "
                                    "{optimize: {time_budget: 60}}]", source=self.source, line=1, field="steps")
        steps = self.steps(steps_node)
        spec = PipelineSpec(name=name, labels=labels, steps=steps, source=self.source, lines=self.lines)
        _check_plan(spec)
        return spec

    def checked(self, node: yaml.Node, field: str, check: Callable[[Any], Any]) -> Any:
        self.lines.setdefault(field, node.start_mark.line + 1)
        try:
            return check(self.value(node, field))
        except ValueError as exc:
            raise self.fail(node, field, str(exc)) from None

    def labels(self, node: yaml.Node) -> dict[str, str]:
        out = {}
        for key, key_node, value_node in self.mapping(node, "labels", "{team: growth}"):
            value = self.value(value_node)
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise self.fail(value_node, f"labels.{key}", f"must be text, got {_show(value)}")
            out[key] = str(value)
        return out

    def steps(self, node: yaml.Node) -> list[StepSpec]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, "steps", "must be a non-empty list of steps, like [{dataset: {path: data.csv}}, "
                                           "{optimize: {time_budget: 60}}]")
        steps: list[StepSpec] = []
        for index, item in enumerate(node.value):
            field = f"steps[{index}]"
            self.lines[field] = item.start_mark.line + 1
            if isinstance(item, yaml.ScalarNode) and isinstance(self.value(item), str):
                kind, params_node, key_node = self.value(item), None, item  # `- select` alone: no settings
            else:
                entries = self.mapping(item, field, "{optimize: {time_budget: 60}}")
                if len(entries) != 1:
                    raise self.fail(item, field, f"each step is a mapping with exactly one step name ("
                                                 f"{', '.join(STEP_KINDS)}), got {len(entries)} keys")
                kind, key_node, params_node = entries[0]
            if kind not in STEP_KINDS:
                raise self.unknown(key_node, field, kind, STEP_KINDS, "step")
            field = f"{field}.{kind}"
            self.lines[field] = key_node.start_mark.line + 1
            params = {}
            if params_node is not None:
                allowed = list(STEP_FIELDS[kind])
                for key, sub_key, sub_value in self.mapping(params_node, field, _example(kind)):
                    if key not in STEP_FIELDS[kind]:
                        raise self.unknown(sub_key, field, key, allowed)
                    self.lines[f"{field}.{key}"] = sub_key.start_mark.line + 1
                    params[key] = self.checked(sub_value, f"{field}.{key}", STEP_FIELDS[kind][key])
                    if kind == "prepare" and key == "steps":
                        for i, recipe_step in enumerate(sub_value.value):
                            self.lines[f"{field}.steps[{i}]"] = recipe_step.start_mark.line + 1
            for required in _REQUIRED.get(kind, ()):
                if required not in params:
                    raise self.fail(key_node, f"{field}.{required}", "is required")
            steps.append(StepSpec(kind=kind, index=index, line=key_node.start_mark.line + 1, params=params))
        return steps


def _example(kind: str) -> str:
    return {"dataset": "{path: customers.csv}", "prepare": "{steps: [{drop_columns: [id]}]}",
            "select": "{target: churned}", "optimize": "{time_budget: 60, metric: roc_auc}",
            "evaluate": "{path: test.csv}", "deploy": "{name: churn, alias: production}"}[kind]


def _check_plan(spec: PipelineSpec) -> None:
    """Across steps: order, repeats, what each step needs from the ones before it."""
    seen: dict[str, StepSpec] = {}
    for step in spec.steps:
        if step.kind in seen:
            raise spec.error(step.field, f"only one {step.kind} step per pipeline (the first is at line "
                                         f"{seen[step.kind].line})")
        later = [k for k in seen if STEP_KINDS.index(k) > STEP_KINDS.index(step.kind)]
        if later:
            raise spec.error(step.field, f"steps run in the order {' → '.join(STEP_KINDS)}: {step.kind} cannot "
                                         f"come after {later[0]}")
        seen[step.kind] = step
    if spec.steps[0].kind != "dataset":
        raise spec.error(spec.steps[0].field, "the first step must be `dataset`, naming the data the pipeline "
                                              "starts from")
    dataset = spec.steps[0]
    if not {"path", "name"} & set(dataset.params):
        raise spec.error(dataset.field, "give `path` (a local CSV or Parquet file, uploaded by `microlearn run`) "
                                        "or `name` (a stored dataset: NAME, NAME@VERSION or datasets/ID)")
    evaluate = seen.get("evaluate")
    if evaluate is not None and "path" in evaluate.params and "name" in evaluate.params:
        raise spec.error(f"{evaluate.field}.name", "give `path` or `name`, not both")
    for kind in ("evaluate", "deploy"):
        if kind in seen and "optimize" not in seen:
            raise spec.error(seen[kind].field, f"{kind} needs an optimize step before it (it uses the optimize "
                                               "step's best model)")
    optimize, select = seen.get("optimize"), seen.get("select")
    if optimize is not None:
        target = optimize.params.get("target") or (select.params.get("target") if select else None)
        clustering = select is not None and select.params.get("task") == "clustering"
        if not target and not clustering and select is None:
            raise spec.error(optimize.field, "no target: set `target` (the column to predict), or add a select "
                                             "step before it (which takes the data's suggested target)")
        if select is not None and optimize.params.get("target") and select.params.get("target") and \
                optimize.params["target"] != select.params["target"]:
            raise spec.error(f"{optimize.field}.target", f"differs from the select step's target "
                                                         f"{select.params['target']!r}")
    prepare = seen.get("prepare")
    if prepare is not None:
        _check_recipe(spec, prepare)


def _check_recipe(spec: PipelineSpec, prepare: StepSpec) -> None:
    from microlearn_grpc.core import recipes

    try:
        recipes.parse_recipe(recipe_text(prepare))
    except recipes.RecipeError as exc:
        field = f"{prepare.field}.steps"
        if exc.step_index is not None:
            field += f"[{exc.step_index}]"
        raise spec.error(field, exc.message) from None


def recipe_text(prepare: StepSpec) -> str:
    """The prepare step's recipe as the JSON text PrepareDataset takes."""
    return json.dumps({"steps": prepare.params["steps"]}, default=str)


def parse_pipeline(text: str, source: str = "pipeline.yaml") -> PipelineSpec:
    """Parse and validate a pipeline; raises PipelineSpecError naming the line and field at fault."""
    source = (source or "pipeline.yaml").strip()[:200] or "pipeline.yaml"
    if not isinstance(text, str):
        raise PipelineSpecError(f"the pipeline must be YAML text, got {type(text).__name__}", source=source)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PIPELINE_BYTES:
        raise PipelineSpecError(f"the pipeline is larger than {MAX_PIPELINE_BYTES // 1024} KiB", source=source)
    return _Parser(source).document(text)


def local_paths(spec: PipelineSpec) -> list[tuple[StepSpec, str]]:
    """The local files the pipeline names (`path` of the dataset and evaluate steps), for the client to upload."""
    return [(s, s.params["path"]) for s in spec.steps if s.kind in ("dataset", "evaluate") and "path" in s.params]


def attach_uploads(spec: PipelineSpec, uploaded: Mapping[str, str]) -> None:
    """Point every `path` at the dataset the client uploaded for it (params `dataset`); a step naming a stored
    dataset gets its `name` there. A `path` the client did not upload is an error: the server reads no client files."""
    for step in spec.steps:
        if step.kind not in ("dataset", "evaluate"):
            continue
        path = step.params.get("path")
        if path is None:
            if "name" in step.params:
                step.params["dataset"] = step.params["name"]
            continue
        if path not in uploaded:
            raise spec.error(f"{step.field}.path", f"{path!r} is a file on the client's machine, which the server "
                                                   "cannot read: run the pipeline with `microlearn run`, which "
                                                   "uploads it first, or use `name` for a stored dataset")
        step.params["dataset"] = uploaded[path]
