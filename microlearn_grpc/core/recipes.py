"""Declarative data-preparation recipes: parse (YAML or JSON), validate against a schema, apply to a table.

Pure core behind DatasetService.PrepareDataset; the grammar is in the README ("Recipes").
Error messages number steps from 1, as a person counts the YAML list; ``RecipeError.step_index`` is 0-based.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import math
import reprlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from microlearn_grpc.core._recipe_filter import BadStep as _Bad
from microlearn_grpc.core._recipe_filter import compile_filter as _compile_filter

__all__ = ["CAST_TYPES", "IMPUTE_STRATEGIES", "MAX_RECIPE_BYTES", "MAX_STEPS", "STEP_NAMES",
           "Recipe", "RecipeError", "Step", "apply_recipe", "parse_recipe", "validate_recipe"]

MAX_RECIPE_BYTES = 64 * 1024
MAX_STEPS = 200
CAST_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"), "date": pa.date32(), "category": pa.dictionary(pa.int32(), pa.string())}
IMPUTE_STRATEGIES = ("mean", "median", "mode", "constant")


class RecipeError(ValueError):
    """A recipe that cannot be parsed, does not fit the data's schema, or fails on the data."""

    def __init__(self, message: str, step_index: int | None = None, step_name: str | None = None):
        self.message, self.step_index, self.step_name = message, step_index, step_name
        if step_index is not None:
            # Shown 1-based, as a person counts the steps of the YAML list; .step_index stays 0-based.
            message = f"step {step_index + 1}" + (f" ({step_name})" if step_name else "") + f": {message}"
        super().__init__(message)


@dataclass(frozen=True)
class Step:
    """One step: its name and its canonical, JSON-ready parameters (defaults filled in; treat as read-only)."""

    name: str
    params: Any


@dataclass(frozen=True)
class Recipe:
    steps: tuple[Step, ...]

    @property
    def splits(self) -> bool:
        """True when the recipe ends with train_test_split (two outputs)."""
        return bool(self.steps) and self.steps[-1].name == "train_test_split"

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces, defaults filled in); parse_recipe reads it back unchanged."""
        doc = {"steps": [{s.name: s.params} for s in self.steps]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------- step parsers: raw YAML value -> canonical params

_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlevel = 60, 60, 2  # bounded even for YAML alias bombs


def _show(v: Any) -> str:
    text = _REPR.repr(v)
    text = text if len(text) <= 80 else text[:77] + "..."
    kind = {type(None): "null", bool: "boolean", int: "number", float: "number", list: "list", dict: "mapping"}
    return text if isinstance(v, str) else f"{kind.get(type(v), type(v).__name__)} {text}"


def _dup(items: Any) -> Any:
    """The first item seen twice, or None."""
    seen: set = set()
    return next((x for x in items if x in seen or seen.add(x)), None)


def _name(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v:
        hint = (" (YAML reads unquoted yes/no/on/off/true/false as booleans: quote the name)" if isinstance(v, bool)
                else " (quote it to use it as a name)" if isinstance(v, (int, float)) else "")
        raise _Bad(f"{what} must be a column name (a non-empty string), got {_show(v)}{hint}")
    return v


def _names(v: Any, what: str) -> list[str]:
    if not isinstance(v, list) or not v:
        raise _Bad(f"{what} must be a non-empty list of column names, got {_show(v)}")
    out = [_name(x, f"{what} item {i}") for i, x in enumerate(v)]
    if (dup := _dup(out)) is not None:
        raise _Bad(f"{what} lists column {dup!r} twice")
    return out


def _mapping(v: Any, what: str, example: str) -> dict:
    if not isinstance(v, dict) or not v:
        raise _Bad(f"{what} must be a non-empty mapping like {example}, got {_show(v)}")
    for k in v:
        _name(k, "column")
    return v


def _fields(v: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if v is None and not required:
        return {}
    if not isinstance(v, dict):
        raise _Bad(f"expected a mapping with fields {', '.join(allowed)}, got {_show(v)}")
    if (extra := next((k for k in v if k not in allowed), None)) is not None:
        raise _Bad(f"unknown field {_show(extra)}; valid fields: {', '.join(allowed)}")
    if (missing := next((k for k in required if k not in v), None)) is not None:
        raise _Bad(f"missing required field {missing!r}")
    return v


def _number(v: Any, field: str) -> float:
    try:
        number = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
    except OverflowError:
        number = math.nan
    if not math.isfinite(number):
        raise _Bad(f"field {field!r} must be a number, got {_show(v)}")
    return number


def _p_rename(v: Any) -> dict[str, str]:
    m = _mapping(v, "rename_columns", "{old_name: new_name}")
    for old, new in m.items():
        _name(new, f"new name for {old!r}")
    if (dup := _dup(m.values())) is not None:
        raise _Bad(f"new name {dup!r} is used twice")
    return dict(m)


def _p_cast(v: Any) -> dict[str, str]:
    m = _mapping(v, "cast_columns", "{column: int64}")
    for col, typ in m.items():
        if not isinstance(typ, str) or typ not in CAST_TYPES:
            raise _Bad(f"column {col!r}: unknown type {_show(typ)}; valid types: {', '.join(CAST_TYPES)}")
    return dict(m)


def _p_dedup(v: Any) -> dict:
    subset = _fields(v, ("subset",)).get("subset")
    return {"subset": None if subset is None else _names(subset, "field 'subset'")}


def _p_impute(v: Any) -> dict:
    out: dict[str, Any] = {}
    for col, s in _mapping(v, "impute", "{column: median}").items():
        if isinstance(s, str) and s in ("mean", "median", "mode"):
            out[col] = s
        elif isinstance(s, dict) and list(s) == ["constant"]:
            c = s["constant"]
            if isinstance(c, (_dt.date, _dt.datetime)):  # YAML reads unquoted dates itself
                c = c.isoformat()
            if not isinstance(c, (bool, int, float, str)) or (isinstance(c, float) and not math.isfinite(c)):
                raise _Bad(f"column {col!r}: field 'constant' must be a non-null scalar, got {_show(c)}")
            out[col] = {"constant": c}
        else:
            raise _Bad(f"column {col!r}: unknown strategy {_show(s)}; valid: mean, median, mode, {{constant: VALUE}}")
    return out


def _p_filter(v: Any) -> dict:
    if isinstance(v, dict):
        v = _fields(v, ("expr",), required=("expr",))["expr"]
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"field 'expr' must be a non-empty expression string, got {_show(v)}")
    _compile_filter(v, None)  # syntax and whitelist now; column types at validation
    return {"expr": v}


def _p_clip(v: Any) -> dict:
    d = _fields(v, ("columns", "method", "factor", "lower", "upper"), required=("columns",))
    cols, method = _names(d["columns"], "field 'columns'"), d.get("method", "iqr")
    if method == "iqr":
        if "lower" in d or "upper" in d:
            raise _Bad("fields 'lower'/'upper' only apply to method quantile")
        if (factor := _number(d.get("factor", 1.5), "factor")) <= 0:
            raise _Bad(f"field 'factor' must be positive, got {factor}")
        return {"columns": cols, "method": "iqr", "factor": factor}
    if method == "quantile":
        if "factor" in d:
            raise _Bad("field 'factor' only applies to method iqr")
        lo, hi = _number(d.get("lower", 0.01), "lower"), _number(d.get("upper", 0.99), "upper")
        if not 0 <= lo < hi <= 1:
            raise _Bad(f"fields 'lower' and 'upper' need 0 <= lower < upper <= 1, got lower={lo}, upper={hi}")
        return {"columns": cols, "method": "quantile", "lower": lo, "upper": hi}
    raise _Bad(f"field 'method' must be iqr or quantile, got {_show(method)}")


def _p_split(v: Any) -> dict:
    d = _fields(v, ("test_fraction", "seed", "stratify"))
    if not 0 < (frac := _number(d.get("test_fraction", 0.2), "test_fraction")) < 1:
        raise _Bad(f"field 'test_fraction' must be strictly between 0 and 1, got {frac}")
    seed = d.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise _Bad(f"field 'seed' must be a non-negative integer, got {_show(seed)}")
    strat = d.get("stratify")
    return {"test_fraction": frac, "seed": seed,
            "stratify": None if strat is None else _name(strat, "field 'stratify'")}



# ---------------------------------------------------------------- step appliers: (table, params, dry) -> table

def _need(table: pa.Table, col: str) -> int:
    names = table.column_names
    found = [i for i, n in enumerate(names) if n == col]
    if len(found) == 1:
        return found[0]
    if found:
        raise _Bad(f"column {col!r} is ambiguous: {len(found)} columns have that name")
    listed = ", ".join(names[:40]) + (f", ... ({len(names) - 40} more)" if len(names) > 40 else "")
    close = difflib.get_close_matches(col, names, n=1)
    raise _Bad(f"column {col!r} does not exist; columns at this step: {listed or '(none)'}"
               + (f"; did you mean {close[0]!r}?" if close else ""))


def _numeric(typ: pa.DataType) -> bool:
    return pa.types.is_integer(typ) or pa.types.is_floating(typ)


def _nan_to_null(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr) if pa.types.is_floating(arr.type) else arr


def _replace(table: pa.Table, idx: int, arr: pa.ChunkedArray) -> pa.Table:
    return table.set_column(idx, table.schema.field(idx).with_type(arr.type), arr)


def _a_drop(table: pa.Table, cols: list[str], dry: bool) -> pa.Table:
    for c in cols:
        _need(table, c)
    if len(cols) == table.num_columns:
        raise _Bad("dropping every column leaves nothing")
    return table.drop_columns(cols)


def _a_rename(table: pa.Table, mapping: dict[str, str], dry: bool) -> pa.Table:
    for old in mapping:
        _need(table, old)
    new = [mapping.get(n, n) for n in table.column_names]  # simultaneous, so {a: b, b: a} swaps
    if (dup := _dup(new)) is not None:
        raise _Bad(f"renaming would make two columns named {dup!r}")
    return table.rename_columns(new)


def _first_bad(arr: pa.Array, typ: pa.DataType) -> tuple[int, Any] | None:
    """Bisect to the first value that fails the cast (only after the whole cast has failed)."""
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            arr.slice(lo, mid - lo).cast(typ)
            lo = mid
        except (pa.ArrowException, ValueError):
            hi = mid
    try:
        arr.slice(lo, 1).cast(typ)
    except (pa.ArrowException, ValueError):
        return lo, arr[lo].as_py()
    return None


def _a_cast(table: pa.Table, casts: dict[str, str], dry: bool) -> pa.Table:
    for col, tname in casts.items():
        idx = _need(table, col)
        arr = table.column(idx)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        if tname not in ("float64", "string"):
            arr = _nan_to_null(arr)
        target = CAST_TYPES[tname] if tname != "category" else pa.string()
        if tname == "timestamp" and pa.types.is_timestamp(arr.type) and arr.type.tz:
            target = pa.timestamp("us", arr.type.tz)
        try:
            out = arr.cast(target)
        except pa.ArrowNotImplementedError:
            raise _Bad(f"column {col!r}: cannot cast {arr.type} to {tname}") from None
        except (pa.ArrowException, ValueError) as e:
            bad = _first_bad(arr.combine_chunks(), target)
            where = f": bad value {bad[1]!r:.80} at row {bad[0]}" if bad else f": {e}"
            raise _Bad(f"column {col!r}: cannot cast {arr.type} to {tname}{where}") from None
        table = _replace(table, idx, out.dictionary_encode() if tname == "category" else out)
    return table


def _a_dedup(table: pa.Table, params: dict, dry: bool) -> pa.Table:
    keys = {f"k{i}": table.column(_need(table, c)) for i, c in enumerate(params["subset"] or table.column_names)}
    keys["row"] = pa.array(np.arange(table.num_rows, dtype=np.int64))
    first = pa.table(keys).group_by([k for k in keys if k != "row"]).aggregate([("row", "min")])
    return table.take(np.sort(first.column("row_min").to_numpy()))  # keeps the first of each group, in order


def _mode(arr: pa.ChunkedArray) -> pa.Scalar | None:
    counts = pc.value_counts(arr.drop_null())
    if len(counts) == 0:
        return None
    n = counts.field("counts")
    return counts.field("values")[pc.index(n, pc.max(n)).as_py()]  # ties: the value seen first


def _a_impute(table: pa.Table, strategies: dict, dry: bool) -> pa.Table:
    for col, strat in strategies.items():
        idx = _need(table, col)
        arr = table.column(idx)
        dict_type = arr.type if pa.types.is_dictionary(arr.type) else None
        arr = _nan_to_null(arr.cast(dict_type.value_type) if dict_type else arr)
        typ = arr.type
        if strat in ("mean", "median"):
            if not _numeric(typ):
                raise _Bad(f"column {col!r}: {strat} needs a numeric column but {col!r} is {typ}; use mode or constant")
            value = pc.mean(arr).as_py() if strat == "mean" else pc.quantile(arr, q=0.5).to_pylist()[0]
            if value is not None and pa.types.is_integer(typ):
                value = math.floor(value + 0.5)  # keep the column's integer type
        else:
            value = _mode(arr) if strat == "mode" else strat["constant"]
        if value is not None:
            try:
                fill = (value if isinstance(value, pa.Scalar) else pa.scalar(value)).cast(typ)
            except (pa.ArrowException, ValueError, TypeError, OverflowError):
                raise _Bad(f"column {col!r}: fill value {value!r} does not fit the column type {typ}") from None
            arr = pc.fill_null(arr, fill)
        table = _replace(table, idx, arr.cast(dict_type) if dict_type else arr)
    return table


def _a_filter(table: pa.Table, params: dict, dry: bool) -> pa.Table:
    expr, cols = _compile_filter(params["expr"], table.schema)
    for c in cols:
        _need(table, c)
    from pyarrow import acero  # lazy: it imports pyarrow.dataset, which imports pandas (~36 MB)

    plan = acero.Declaration.from_sequence([
        acero.Declaration("table_source", acero.TableSourceNodeOptions(table)),
        acero.Declaration("filter", acero.FilterNodeOptions(expr))])
    try:
        return plan.to_table(use_threads=False)  # single-threaded keeps row order
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise _Bad(f"expression {params['expr']!r:.120} does not fit the column types: {e}") from None


def _a_clip(table: pa.Table, params: dict, dry: bool) -> pa.Table:
    for col in params["columns"]:
        idx = _need(table, col)
        arr = table.column(idx)
        if not _numeric(arr.type):
            raise _Bad(f"column {col!r}: clip_outliers needs a numeric column but {col!r} is {arr.type}")
        values = _nan_to_null(arr)
        if params["method"] == "iqr":
            q1, q3 = pc.quantile(values, q=[0.25, 0.75]).to_pylist()
            f = params["factor"]
            lo, hi = (None, None) if q1 is None else (q1 - f * (q3 - q1), q3 + f * (q3 - q1))
        else:
            lo, hi = pc.quantile(values, q=[params["lower"], params["upper"]]).to_pylist()
        if lo is None:
            continue  # no non-null values: nothing to clip
        mm = pc.min_max(values)
        lo, hi = max(lo, mm["min"].as_py()), min(hi, mm["max"].as_py())  # keeps bounds inside the type's range
        if pa.types.is_integer(arr.type):
            lo, hi = math.ceil(lo), math.floor(hi)
            lo, hi = (lo, hi) if lo <= hi else (hi, hi)
        low, high = pa.scalar(lo).cast(arr.type), pa.scalar(hi).cast(arr.type)
        # if_else leaves nulls and NaNs alone (min/max_element_wise would replace NaN)
        table = _replace(table, idx, pc.if_else(pc.less(arr, low), low, pc.if_else(pc.greater(arr, high), high, arr)))
    return table


def _a_split(table: pa.Table, params: dict, dry: bool) -> list[tuple[str, pa.Table]]:
    strat, frac, n = params["stratify"], params["test_fraction"], table.num_rows
    if strat is not None:
        _need(table, strat)
    if dry:
        return [("train", table), ("test", table)]
    groups = [np.arange(n)]
    if strat is not None:
        labels = table.column(strat)
        if pa.types.is_dictionary(labels.type):
            labels = labels.cast(labels.type.value_type)
        codes = labels.combine_chunks().dictionary_encode(null_encoding="encode").indices.to_numpy()
        groups = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1]) if n else []
    rng, train, test = np.random.default_rng(params["seed"]), [np.array([], np.int64)], [np.array([], np.int64)]
    for rows in groups:  # classes in order of first appearance; each gets round(len * frac), kept in 1..len-1
        k = max(min(max(math.floor(len(rows) * frac + 0.5), 1), len(rows) - 1), 0)
        perm = rng.permutation(rows)
        test.append(perm[:k])
        train.append(perm[k:])
    tr, te = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    if len(tr) == 0 or len(te) == 0:
        why = f"; every class of {strat!r} has a single row" if strat and n else ""
        raise _Bad(f"the split leaves the {'test' if len(te) == 0 else 'train'} side empty "
                   f"({n} rows, test_fraction {frac}){why}")
    return [("train", table.take(tr)), ("test", table.take(te))]


_STEPS: dict[str, tuple[Callable[[Any], Any], Callable[[pa.Table, Any, bool], Any]]] = {
    "drop_columns": (lambda v: _names(v, "drop_columns"), _a_drop),
    "rename_columns": (_p_rename, _a_rename),
    "cast_columns": (_p_cast, _a_cast),
    "drop_duplicates": (_p_dedup, _a_dedup),
    "impute": (_p_impute, _a_impute),
    "filter_rows": (_p_filter, _a_filter),
    "clip_outliers": (_p_clip, _a_clip),
    "train_test_split": (_p_split, _a_split),
}
STEP_NAMES = tuple(_STEPS)


# ---------------------------------------------------------------- public API

class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = None if key_node.tag == "tag:yaml.org,2002:merge" else self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float)) and key in seen:  # other keys: the base class reports them
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key if isinstance(key, (str, int, float)) else None)
        return super().construct_mapping(node, deep)


def _json_object(pairs: list[tuple[str, Any]]) -> dict:
    if _dup(k for k, _ in pairs) is not None:
        raise ValueError("duplicate key")  # falls through to YAML, which reports the line
    return dict(pairs)


def _load(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object)
    except (ValueError, RecursionError):
        pass
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where, col = (f"recipe line {mark.line + 1}", f" (column {mark.column + 1})") if mark else ("recipe", "")
        raise RecipeError(f"{where}: {e.problem or e.context or 'invalid YAML'}{col}") from None
    except (yaml.YAMLError, RecursionError, ValueError) as e:  # ValueError: e.g. an integer over 4300 digits
        raise RecipeError(f"recipe: not valid YAML or JSON: {str(e)[:200]}") from None


def parse_recipe(text: str) -> Recipe:
    """Parse a YAML or JSON recipe; every structural problem raises RecipeError naming step and field."""
    if not isinstance(text, str):
        raise RecipeError(f"recipe must be YAML or JSON text, got {type(text).__name__}")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe is larger than {MAX_RECIPE_BYTES} bytes")
    if (doc := _load(text)) is None:
        raise RecipeError("recipe is empty; expected a mapping with a 'steps' list")
    if not isinstance(doc, dict) or "steps" not in doc:
        raise RecipeError(f"recipe must be a mapping with a 'steps' list, got {_show(doc)}")
    if (extra := next((k for k in doc if k != "steps"), None)) is not None:
        raise RecipeError(f"recipe has unknown top-level field {_show(extra)}; the only field is 'steps'")
    raw = doc["steps"]
    if not isinstance(raw, list) or not raw:
        raise RecipeError(f"recipe 'steps' must be a non-empty list, got {_show(raw)}")
    if len(raw) > MAX_STEPS:
        raise RecipeError(f"recipe has {len(raw)} steps; the limit is {MAX_STEPS}")
    steps = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or len(item) != 1:
            raise RecipeError(f"each step must be a mapping with exactly one step name, like "
                              f"{{drop_columns: [a]}}; got {_show(item)}", i)
        ((name, value),) = item.items()
        if name not in _STEPS:
            close = difflib.get_close_matches(str(name), STEP_NAMES, n=1)
            raise RecipeError(f"unknown step {_show(name)}; valid steps: {', '.join(STEP_NAMES)}"
                              + (f"; did you mean {close[0]!r}?" if close else ""),
                              i, name if isinstance(name, str) else None)
        if name == "train_test_split" and i != len(raw) - 1:
            raise RecipeError(f"train_test_split must be the last step (it is step {i + 1} of {len(raw)})", i, name)
        try:
            steps.append(Step(name, _STEPS[name][0](value)))
        except _Bad as e:
            raise RecipeError(str(e), i, name) from None
    return Recipe(tuple(steps))


def _run(recipe: Recipe, table: pa.Table, dry: bool) -> list[tuple[str, pa.Table]]:
    if not isinstance(recipe, Recipe):
        raise TypeError(f"expected a Recipe, got {type(recipe).__name__}")
    for i, step in enumerate(recipe.steps):
        try:
            result = _STEPS[step.name][1](table, step.params, dry)
        except _Bad as e:
            raise RecipeError(str(e), i, step.name) from None
        except pa.ArrowException as e:
            raise RecipeError(f"{type(e).__name__}: {e}", i, step.name) from None
        if isinstance(result, list):  # train_test_split, always last
            return result
        table = result
    return [("", table)]


def validate_recipe(recipe: Recipe, schema: pa.Schema) -> pa.Schema | tuple[pa.Schema, pa.Schema]:
    """Check the recipe against a source schema without data; returns the output schema (train, test for a split).

    It runs the same step code on an empty table, so the schema it returns is the one apply_recipe produces.
    """
    out = _run(recipe, schema.empty_table(), dry=True)
    return out[0][1].schema if len(out) == 1 else (out[0][1].schema, out[1][1].schema)


def apply_recipe(recipe: Recipe, table: pa.Table) -> list[tuple[str, pa.Table]]:
    """Run the recipe: [("", table)], or [("train", t1), ("test", t2)] when it ends with train_test_split."""
    validate_recipe(recipe, table.schema)  # fail fast on schema problems before touching the data
    return _run(recipe, table, dry=False)
