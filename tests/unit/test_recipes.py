"""Unit tests for the data-preparation recipes (parse, validate against a schema, apply)."""

from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow as pa
import pytest

from microlearn_grpc.core.recipes import (
    CAST_TYPES,
    MAX_STEPS,
    STEP_NAMES,
    Recipe,
    RecipeError,
    apply_recipe,
    parse_recipe,
    validate_recipe,
)


def people() -> pa.Table:
    return pa.table({
        "id": [1, 2, 3, 4, 5, 6],
        "age": ["34", "17", None, "52", "41", "29"],
        "city": ["Paris", None, "Lyon", "Paris", "Nice", "Paris"],
        "country": ["FR", "FR", "DE", "DE", "IT", "DE"],
        "income": [30.0, 12.0, None, 55.0, float("nan"), 41.0],
        "notes": ["a", "b", "c", "d", "e", "f"],
    })


def steps(*lines: str) -> str:
    return "steps:\n" + "".join(f"  - {line}\n" for line in lines)


def run(recipe_text: str, table: pa.Table) -> pa.Table:
    ((name, out),) = apply_recipe(parse_recipe(recipe_text), table)
    assert name == ""
    return out


def error(recipe_text: str, table: pa.Table | None = None) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        recipe = parse_recipe(recipe_text)
        if table is not None:
            apply_recipe(recipe, table)
    return info.value


# ---------------------------------------------------------------- happy paths, one per step


def test_drop_columns():
    out = run(steps("drop_columns: [id, notes]"), people())
    assert out.column_names == ["age", "city", "country", "income"]


def test_rename_columns_keeps_order_and_allows_swap():
    t = pa.table({"a": [1], "b": [2], "c": [3]})
    out = run(steps("rename_columns: {a: b, b: a}"), t)
    assert out.column_names == ["b", "a", "c"]
    assert out.to_pydict() == {"b": [1], "a": [2], "c": [3]}


def test_cast_columns_all_types():
    t = pa.table({
        "i": ["1", "2", None], "f": ["1.5", "2", "-3"], "s": [1, 2, 3], "b": ["true", "False", "1"],
        "ts": ["2020-01-01", "2021-06-30T12:00:00", None], "d": ["2020-01-01", "2020-02-29", None],
        "c": ["x", "y", "x"], "keep": [1, 2, 3],
    })
    out = run(steps("cast_columns: {i: int64, f: float64, s: string, b: bool, ts: timestamp, d: date, c: category}"), t)
    assert out.column_names == t.column_names
    assert out.schema.field("i").type == pa.int64() and out.column("i").to_pylist() == [1, 2, None]
    assert out.column("f").to_pylist() == [1.5, 2.0, -3.0]
    assert out.column("s").to_pylist() == ["1", "2", "3"]
    assert out.column("b").to_pylist() == [True, False, True]
    assert out.column("ts").to_pylist()[1] == dt.datetime(2021, 6, 30, 12)
    assert out.column("d").to_pylist()[1] == dt.date(2020, 2, 29)
    assert pa.types.is_dictionary(out.schema.field("c").type)
    assert out.column("c").to_pylist() == ["x", "y", "x"]


def test_cast_float_nan_becomes_null_for_int():
    out = run(steps("cast_columns: {x: int64}"), pa.table({"x": [1.0, float("nan"), None]}))
    assert out.column("x").to_pylist() == [1, None, None]


def test_drop_duplicates_all_columns_and_subset():
    t = pa.table({"a": [1, 1, 2, 1, None, None], "b": ["x", "x", "y", "z", "q", "q"]})
    assert run(steps("drop_duplicates: {}"), t).to_pydict() == {"a": [1, 2, 1, None], "b": ["x", "y", "z", "q"]}
    assert run(steps("drop_duplicates:"), t).num_rows == 4
    assert run(steps("drop_duplicates: {subset: [a]}"), t).to_pydict() == {"a": [1, 2, None], "b": ["x", "y", "q"]}


def test_impute_strategies():
    t = pa.table({
        "age": [10, None, 20, 31], "income": [1.0, None, float("nan"), 4.0],
        "city": ["b", "a", None, "a"], "score": [None, 1.5, None, 2.0], "flag": [True, None, False, True],
    })
    out = run(steps("impute: {age: median, city: mode, income: mean, score: {constant: 0}, flag: mode}"), t)
    assert out.schema == t.schema  # types are kept: the integer median is rounded
    assert out.column("age").to_pylist() == [10, 20, 20, 31]
    assert out.column("income").to_pylist() == [1.0, 2.5, 2.5, 4.0]
    assert out.column("city").to_pylist() == ["b", "a", "a", "a"]
    assert out.column("score").to_pylist() == [0.0, 1.5, 0.0, 2.0]
    assert out.column("flag").to_pylist() == [True, True, False, True]


def test_impute_mode_on_dictionary_and_date_constant():
    t = pa.table({"c": pa.array(["x", None, "y", "y"]).dictionary_encode(),
                  "d": pa.array([dt.date(2020, 1, 1), None, None, None])})
    out = run(steps("impute: {c: mode, d: {constant: 2021-05-04}}"), t)
    assert out.schema == t.schema
    assert out.column("c").to_pylist() == ["x", "y", "y", "y"]
    assert out.column("d").to_pylist()[1] == dt.date(2021, 5, 4)


def test_filter_rows_string_and_expr_forms():
    t = run(steps("cast_columns: {age: int64}"), people())
    out = run(steps("filter_rows: \"age >= 18 and country != 'FR'\""), t)
    assert out.column("id").to_pylist() == [4, 5, 6]
    out2 = run(steps("filter_rows: {expr: \"age >= 18 and country != 'FR'\"}"), t)
    assert out2.column("id").to_pylist() == [4, 5, 6] and out2.schema == out.schema


@pytest.mark.parametrize("expr, ids", [
    ("country in ['DE', 'IT']", [3, 4, 5, 6]),
    ("country not in ('DE', 'IT')", [1, 2]),
    ("18 <= age < 41", [1, 6]),
    ("not (age > 30) or is_null(age)", [2, 3, 6]),
    ("age is None", [3]),
    ("age == None", [3]),
    ("age is not None and city is None", [2]),
    ("is_not_null(city) and is_null(income)", [3, 5]),  # NaN counts as null
    ("-age < -40", [4, 5]),
    ("age > -1 and True", [1, 2, 4, 5, 6]),
    ("`home town` == 'Paris'", [1, 4, 6]),
    ("col('home town') == \"Paris\" and income > 35.5", [4, 6]),
    ("id in [2, 4.0]", [2, 4]),
    ("id in []", []),
])
def test_filter_rows_grammar(expr, ids):
    t = run(steps("cast_columns: {age: int64}", "rename_columns: {city: home town}"), people())
    t = t.append_column("city", t.column("home town"))
    out = run(json.dumps({"steps": [{"filter_rows": expr}]}), t)
    assert out.column("id").to_pylist() == ids


def test_filter_rows_dates_against_string_literals_and_multiline():
    t = pa.table({"joined": pa.array([dt.datetime(2019, 5, 1), dt.datetime(2021, 1, 1), None]), "n": [1, 2, 3]})
    text = 'steps:\n  - filter_rows: >\n      joined >= "2020-01-01"\n      or n == 3\n'
    assert run(text, t).column("n").to_pylist() == [2, 3]
    assert run(steps("filter_rows: \"joined in ['2019-05-01']\""), t).column("n").to_pylist() == [1]
    utc = t.set_column(0, "joined", t.column("joined").cast(pa.timestamp("us", "UTC")))
    assert run(steps("filter_rows: \"joined < '2020-01-01'\""), utc).column("n").to_pylist() == [1]  # read as UTC
    e = error(steps("filter_rows: \"joined > 'soon'\""), t)
    assert (e.step_index, e.step_name) == (0, "filter_rows") and "'soon'" in str(e)


def test_filter_keeps_row_order_on_many_chunks():
    t = pa.Table.from_batches([pa.record_batch({"x": list(range(i, i + 1000))}) for i in range(0, 50_000, 1000)])
    out = run(steps("filter_rows: 'x >= 0'"), t)
    assert out.column("x").to_pylist() == list(range(50_000))


def test_clip_outliers_iqr_and_quantile():
    t = pa.table({"x": [1.0, 2.0, 3.0, 4.0, 100.0, None, float("nan")], "n": [1, 2, 3, 4, 100, -50, None]})
    out = run(steps("clip_outliers: {columns: [x, n]}"), t)
    assert out.schema == t.schema
    x = out.column("x").to_pylist()
    assert x[:4] == [1.0, 2.0, 3.0, 4.0] and x[4] == pytest.approx(4.0 + 1.5 * 2.0) and x[5] is None
    assert math.isnan(x[6])
    n = out.column("n").to_pylist()
    assert n[:4] == [1, 2, 3, 4] and n[4] < 100 and n[5] > -50 and n[6] is None
    q = run(steps("clip_outliers: {columns: [x], method: quantile, lower: 0.0, upper: 0.5}"), t)
    assert q.column("x").to_pylist()[:5] == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_train_test_split_default_sizes_and_order():
    t = pa.table({"x": list(range(100))})
    result = apply_recipe(parse_recipe(steps("train_test_split: {}")), t)
    assert [name for name, _ in result] == ["train", "test"]
    train, test = result[0][1], result[1][1]
    assert (train.num_rows, test.num_rows) == (80, 20)
    xs_train, xs_test = train.column("x").to_pylist(), test.column("x").to_pylist()
    assert xs_train == sorted(xs_train) and xs_test == sorted(xs_test)  # original row order kept
    assert sorted(xs_train + xs_test) == list(range(100))


def test_train_test_split_is_deterministic_and_seed_dependent():
    t = pa.table({"x": list(range(200))})
    a = apply_recipe(parse_recipe(steps("train_test_split: {test_fraction: 0.3, seed: 7}")), t)
    b = apply_recipe(parse_recipe(steps("train_test_split: {test_fraction: 0.3, seed: 7}")), t)
    c = apply_recipe(parse_recipe(steps("train_test_split: {test_fraction: 0.3, seed: 8}")), t)
    assert a[1][1].equals(b[1][1]) and a[0][1].equals(b[0][1])
    assert not a[1][1].equals(c[1][1])
    assert a[1][1].num_rows == 60


def test_train_test_split_stratified():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 2 + [None] * 4 + ["d"]
    t = pa.table({"x": list(range(len(labels))), "label": labels})
    (_, train), (_, test) = apply_recipe(
        parse_recipe(steps("train_test_split: {test_fraction: 0.2, seed: 42, stratify: label}")), t)
    count = lambda tab, v: tab.column("label").to_pylist().count(v)  # noqa: E731
    assert (count(test, "a"), count(test, "b"), count(test, "c"), count(test, None)) == (10, 2, 1, 1)
    assert (count(train, "a"), count(train, "b"), count(train, "c"), count(train, None)) == (40, 8, 1, 3)
    assert count(train, "d") == 1 and count(test, "d") == 0  # a single-row class stays in train


def test_split_leaving_a_side_empty_is_an_error():
    e = error(steps("train_test_split: {}"), pa.table({"x": [1]}))
    assert (e.step_index, e.step_name) == (0, "train_test_split") and "empty" in str(e)
    e = error(steps("train_test_split: {stratify: y}"), pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]}))
    assert "test side empty" in str(e) and "single row" in str(e)


# ---------------------------------------------------------------- parse errors


@pytest.mark.parametrize("text, index, name, fragment", [
    (steps("drop_columns: id"), 0, "drop_columns", "must be a non-empty list of column names"),
    (steps("drop_columns: [id, id]"), 0, "drop_columns", "twice"),
    (steps("drop_columns: [yes]"), 0, "drop_columns", "quote the name"),
    (steps("drop_columns: [a]", "rename_columns: [a, b]"), 1, "rename_columns", "mapping like {old_name: new_name}"),
    (steps("rename_columns: {a: c, b: c}"), 0, "rename_columns", "new name 'c' is used twice"),
    (steps("cast_columns: {age: integer}"), 0, "cast_columns",
     "column 'age': unknown type 'integer'; valid types: int64"),
    (steps("drop_duplicates: {subset: []}"), 0, "drop_duplicates", "field 'subset'"),
    (steps("drop_duplicates: {keep: last}"), 0, "drop_duplicates", "unknown field 'keep'; valid fields: subset"),
    (steps("impute: {age: average}"), 0, "impute", "column 'age': unknown strategy 'average'; valid: mean, median"),
    (steps("impute: {age: {constant: null}}"), 0, "impute", "field 'constant' must be a non-null scalar"),
    (steps("filter_rows: {expression: 'a > 1'}"), 0, "filter_rows", "unknown field 'expression'"),
    (steps("filter_rows: ''"), 0, "filter_rows", "field 'expr'"),
    (steps("filter_rows: 'a >'"), 0, "filter_rows", "invalid filter expression"),
    (steps("clip_outliers: {columns: [x], method: zscore}"), 0, "clip_outliers",
     "field 'method' must be iqr or quantile"),
    (steps("clip_outliers: {columns: [x], factor: -1}"), 0, "clip_outliers", "field 'factor' must be positive"),
    (steps("clip_outliers: {columns: [x], factor: abc}"), 0, "clip_outliers", "field 'factor' must be a number"),
    (steps("clip_outliers: {columns: [x], method: quantile, lower: 0.9, upper: 0.1}"), 0, "clip_outliers",
     "0 <= lower < upper <= 1"),
    (steps("clip_outliers: {method: iqr}"), 0, "clip_outliers", "missing required field 'columns'"),
    (steps("train_test_split: {test_fraction: 1.5}"), 0, "train_test_split", "field 'test_fraction'"),
    (steps("train_test_split: {test_fraction: 0}"), 0, "train_test_split", "strictly between 0 and 1"),
    (steps("train_test_split: {seed: -1}"), 0, "train_test_split", "field 'seed'"),
    (steps("train_test_split: {seed: true}"), 0, "train_test_split", "field 'seed'"),
    (steps("train_test_split: {stratify: [a]}"), 0, "train_test_split", "field 'stratify'"),
    (steps("drop_columns: [a]", "train_test_split: {}", "drop_columns: [b]"), 1, "train_test_split", "last step"),
])
def test_parse_errors_name_step_and_field(text, index, name, fragment):
    e = error(text)
    assert (e.step_index, e.step_name) == (index, name)
    assert str(e).startswith(f"step {index + 1} ({name}): ")
    assert fragment in str(e)


def test_unknown_step_lists_valid_steps():
    e = error(steps("drop_columns: [a]", "dropcolumns: [b]"))
    assert (e.step_index, e.step_name) == (1, "dropcolumns")
    assert all(n in str(e) for n in STEP_NAMES) and "did you mean 'drop_columns'" in str(e)


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("steps: []", "non-empty list"),
    ("steps: {drop_columns: [a]}", "non-empty list"),
    ("- drop_columns: [a]", "mapping with a 'steps' list"),
    ("steps: [{drop_columns: [a]}]\nversion: 2", "unknown top-level field 'version'"),
    ("steps: [[1]]", "exactly one step name"),
])
def test_top_level_errors(text, fragment):
    e = error(text)
    assert fragment in str(e)
    if "exactly one" in fragment:
        assert e.step_index == 0 and e.step_name is None
    else:
        assert e.step_index is None and e.step_name is None


def test_step_with_two_names_is_an_error():
    e = error("steps:\n  - drop_columns: [a]\n    rename_columns: {b: c}\n")
    assert e.step_index == 0 and "exactly one step name" in str(e)


def test_yaml_syntax_error_reports_line():
    e = error("steps:\n  - drop_columns: [a, b]\n  - impute: {age: median\n  - drop_columns: [c]\n")
    assert str(e).startswith("recipe line 4: ") and e.step_index is None


def test_duplicate_keys_are_rejected_with_line():
    e = error("steps:\n  - impute:\n      age: mean\n      age: median\n")
    assert str(e).startswith("recipe line 4: ") and "duplicate key 'age'" in str(e)
    e = error('{"steps": [{"impute": {"age": "mean", "age": "median"}}]}')
    assert "duplicate key 'age'" in str(e)


def test_size_and_step_limits():
    assert "larger than" in str(error("steps: []" + " " * (64 * 1024)))
    assert "limit is 200" in str(error(steps(*["drop_duplicates: {}"] * (MAX_STEPS + 1))))
    assert len(parse_recipe(steps(*["drop_duplicates: {}"] * MAX_STEPS)).steps) == MAX_STEPS
    assert "too deeply nested" in str(error(json.dumps({"steps": [{"filter_rows": "not " * 1000 + "a"}]})))
    with pytest.raises(RecipeError):
        parse_recipe("[" * 30000)


# ---------------------------------------------------------------- filter safety


@pytest.mark.parametrize("expr", [
    "__import__('os').system('echo hi')",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "__builtins__",
    "open('/etc/passwd')",
    "eval('1')",
    "a.b == 1",
    "a[0] == 1",
    "(lambda: 1)() == 1",
    "a + 1 > 2",
    "[x for x in a]",
    "f'{a}' == 'x'",
    "a if b else c",
    "a == b'bytes'",
    "a == ...",
    "a is 1",
    "a in b",
    "col(a) == 1",
    "is_null(a, b)",
    "a := 1",
])
def test_filter_rejects_everything_outside_the_whitelist(expr, capfd):
    e = error(json.dumps({"steps": [{"filter_rows": expr}]}))
    assert (e.step_index, e.step_name) == (0, "filter_rows")
    assert "unsupported syntax" in str(e) or "invalid filter expression" in str(e)
    assert capfd.readouterr().out == ""  # nothing was executed


def test_filter_dunder_and_attribute_messages():
    e = error(steps("filter_rows: \"__import__('os').system('echo hi')\""))
    assert "unsupported syntax" in str(e)
    e = error(steps("filter_rows: '().__class__'"))
    assert "unsupported syntax '().__class__' (attribute access)" in str(e)


# ---------------------------------------------------------------- validation against a schema


def test_validate_tracks_renames():
    schema = people().schema
    ok = parse_recipe(steps("rename_columns: {age: years}", "cast_columns: {years: int64}", "impute: {years: median}"))
    out = validate_recipe(ok, schema)
    assert out.names == ["id", "years", "city", "country", "income", "notes"]
    assert out.field("years").type == pa.int64()
    bad = parse_recipe(steps("rename_columns: {age: years}", "impute: {age: mode}"))
    with pytest.raises(RecipeError) as info:
        validate_recipe(bad, schema)
    assert (info.value.step_index, info.value.step_name) == (1, "impute")
    assert "column 'age' does not exist; columns at this step: id, years, city" in str(info.value)


def test_validate_tracks_drops_and_casts():
    schema = people().schema
    bad = parse_recipe(steps("drop_columns: [notes]", "drop_duplicates: {subset: [notes]}"))
    with pytest.raises(RecipeError, match=r"step 2 \(drop_duplicates\): column 'notes' does not exist"):
        validate_recipe(bad, schema)
    with pytest.raises(RecipeError, match=r"step 1 \(impute\): column 'age': median needs a numeric column"):
        validate_recipe(parse_recipe(steps("impute: {age: median}")), schema)
    assert validate_recipe(parse_recipe(steps("cast_columns: {age: float64}", "impute: {age: median}")), schema)


@pytest.mark.parametrize("text, index, name, fragment", [
    (steps("impute: {agee: mean}"), 0, "impute", "column 'agee' does not exist; columns at this step: id, age"),
    (steps("impute: {city: mean}"), 0, "impute", "mean needs a numeric column"),
    (steps("impute: {income: {constant: abc}}"), 0, "impute", "fill value 'abc' does not fit the column type double"),
    (steps("impute: {id: {constant: 1.5}}"), 0, "impute", "does not fit"),
    (steps("clip_outliers: {columns: [city]}"), 0, "clip_outliers", "column 'city': clip_outliers needs a numeric"),
    (steps("filter_rows: 'agee > 3'"), 0, "filter_rows", "column 'agee' does not exist"),
    (steps("filter_rows: \"id > 'x'\""), 0, "filter_rows", "does not fit the column types"),
    (steps("filter_rows: 'id'"), 0, "filter_rows", "must evaluate to bool"),
    (steps("drop_columns: [nope]"), 0, "drop_columns", "column 'nope' does not exist"),
    (steps("drop_columns: [id, age, city, country, income, notes, tags]"), 0, "drop_columns", "every column"),
    (steps("rename_columns: {id: age}"), 0, "rename_columns", "two columns named 'age'"),
    (steps("cast_columns: {tags: int64}"), 0, "cast_columns", "column 'tags': cannot cast list<item: int64> to int64"),
    (steps("train_test_split: {stratify: labl}"), 0, "train_test_split", "column 'labl' does not exist"),
])
def test_validate_errors(text, index, name, fragment):
    schema = people().schema.append(pa.field("tags", pa.list_(pa.int64())))
    with pytest.raises(RecipeError) as info:
        validate_recipe(parse_recipe(text), schema)
    assert (info.value.step_index, info.value.step_name) == (index, name)
    assert fragment in str(info.value)


def test_validate_output_schema_matches_apply():
    text = steps("drop_columns: [notes]", "cast_columns: {age: int64, city: category}", "impute: {age: median}",
                 "filter_rows: 'age > 0'", "clip_outliers: {columns: [income]}",
                 "train_test_split: {test_fraction: 0.5, seed: 1}")
    recipe = parse_recipe(text)
    train_schema, test_schema = validate_recipe(recipe, people().schema)
    (_, train), (_, test) = apply_recipe(recipe, people())
    assert train.schema == train_schema and test.schema == test_schema
    assert validate_recipe(parse_recipe(steps("drop_columns: [notes]")), people().schema) == run(
        steps("drop_columns: [notes]"), people()).schema


def test_cast_failure_names_column_and_bad_value():
    table = pa.table({"age": ["1", "2", "x3", "4"], "city": ["1"] * 4})
    e = error(steps("cast_columns: {age: int64, city: int64}"), table)
    assert (e.step_index, e.step_name) == (0, "cast_columns")
    assert "column 'age'" in str(e) and "bad value 'x3' at row 2" in str(e)
    e = error(steps("cast_columns: {v: int64}"), pa.table({"v": [1.0, 2.5]}))
    assert "bad value 2.5 at row 1" in str(e)


# ---------------------------------------------------------------- JSON equivalence and round trip


def test_json_and_yaml_recipes_are_equivalent():
    yaml_text = steps("drop_columns: [id]", "impute: {income: mean, city: {constant: unknown}}",
                      "filter_rows: \"country != 'FR'\"", "train_test_split: {seed: 3}")
    json_text = json.dumps({"steps": [
        {"drop_columns": ["id"]}, {"impute": {"income": "mean", "city": {"constant": "unknown"}}},
        {"filter_rows": {"expr": "country != 'FR'"}}, {"train_test_split": {"seed": 3, "test_fraction": 0.2}}]})
    assert parse_recipe(yaml_text) == parse_recipe(json_text)
    assert parse_recipe(yaml_text).to_json() == parse_recipe(json_text).to_json()
    flow = "{steps: [{drop_columns: [id]}, {drop_duplicates: {}}]}"  # YAML flow style, as in the proto comment
    assert [s.name for s in parse_recipe(flow).steps] == ["drop_columns", "drop_duplicates"]


def test_to_json_round_trip_is_canonical():
    recipe = parse_recipe(steps(
        "drop_columns: [id, notes]", "rename_columns: {old: new}", "cast_columns: {b: bool, a: timestamp}",
        "drop_duplicates: {subset: [a]}", "impute: {x: mode, y: {constant: 0}, z: {constant: 2020-01-01}}",
        "filter_rows: 'a > 1'", "clip_outliers: {columns: [x], method: quantile, upper: 0.9}",
        "train_test_split: {stratify: y}"))
    text = recipe.to_json()
    again = parse_recipe(text)
    assert again == recipe and again.to_json() == text
    doc = json.loads(text)
    assert doc["steps"][6] == {"clip_outliers": {"columns": ["x"], "method": "quantile", "lower": 0.01, "upper": 0.9}}
    assert doc["steps"][7] == {"train_test_split": {"test_fraction": 0.2, "seed": 0, "stratify": "y"}}
    assert doc["steps"][4]["impute"]["z"] == {"constant": "2020-01-01"}
    assert isinstance(recipe, Recipe) and recipe.splits and set(CAST_TYPES) >= {"int64", "category"}


def test_yaml_alias_bomb_is_reported_quickly():
    # a list whose last element expands to 10**10 leaves; error messages must not walk it in full
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb = "[" + ", ".join(levels) + "]"
    for text, fragment in [
        (f"steps: [{{drop_columns: [{bomb}]}}]", "drop_columns item 0 must be a column name"),
        (f"steps: [{bomb}]", "exactly one step name"),
        (f"steps: [{{impute: {{x: {bomb}}}}}]", "unknown strategy"),
        (f"steps: [{{filter_rows: {bomb}}}]", "field 'expr'"),
        (f"steps: {bomb}", "exactly one step name"),
    ]:
        e = error(text)
        assert fragment in str(e) and len(str(e)) < 600


@pytest.mark.parametrize("text, fragment", [
    ("steps: [{drop_columns: [%s]}]" % ("1" * 5000), "not valid YAML or JSON"),
    ("steps: [{drop_columns: [!!python/object/apply:os.system [echo hi]]}]", "recipe line 1"),
    ("steps: [{drop_columns: [a]}]\n---\nmore: 1\n", "recipe line 2"),
    ("steps: [{clip_outliers: {columns: [a], factor: %d}}]" % 10**400, "field 'factor' must be a number"),
])
def test_hostile_yaml_is_a_recipe_error(text, fragment, capfd):
    assert fragment in str(error(text))
    assert capfd.readouterr().out == ""
