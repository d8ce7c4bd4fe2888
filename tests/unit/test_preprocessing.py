"""Preprocessing from a profile: feature plans, and pipelines that take raw messy tables of any
pandas dtype backend into scikit-learn estimators, survive unseen values and pickle."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.cluster import KMeans
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import TargetEncoder

from microlearn_grpc.core.preprocessing import (
    FeaturePlan,
    PreprocessingNeeds,
    build_preprocessor,
    categorical_feature_mask,
    feature_names,
    plan_features,
)
from microlearn_grpc.core.profile import profile_table

CITIES = [f"city{i:02d}" for i in range(40)]


def messy_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A raw upload: a row index and a customer id, numbers with holes, strings with holes, yes/no
    answers, ISO dates and date-times, a 40-value category, a constant, an empty column, free text,
    and a churn target that depends on tenure and plan."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n).round(1)
    age[rng.random(n) < 0.1] = np.nan
    tenure = rng.integers(0, 60, n).astype(float)
    plan = rng.choice(np.array(["basic", "plus", "pro", None], dtype=object), n)
    churn = np.where((tenure < 20) | (plan == "basic"), "yes", "no")
    flip = rng.random(n) < 0.1
    churn[flip] = np.where(churn[flip] == "yes", "no", "yes")
    return pd.DataFrame({
        "row": np.arange(n),
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "age": age,
        "tenure": tenure,
        "plan": plan,
        "city": rng.choice(CITIES, n),
        "subscribed": rng.choice(np.array(["yes", "no", None], dtype=object), n),
        "signup": [None if i % 17 == 0 else f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
        "last_seen": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:15:00" for i in range(n)],
        "constant": "x",
        "empty": [None] * n,
        "notes": [f"customer number {i} wrote a long comment about the product" for i in range(n)],
        "churn": churn,
    })


def unseen_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows unlike anything in training: new categories, unparseable values, missing values where
    training had none, infinity."""
    new = df.head(4).copy()
    new["city"] = ["Atlantis", None, "city01", "Z"]
    new["plan"] = ["platinum", None, "basic", "pro"]
    new["subscribed"] = ["maybe", None, "YES", " n "]
    new["signup"] = ["not a date", None, "2024-05-01", "2024-05-01T10:00:00Z"]
    new["last_seen"] = [None, "yesterday", "2024-05-01T10:00:00+02:00", "2024-05-01"]
    new["tenure"] = [np.nan, np.inf, 3.0, -1.0]  # tenure has no missing values in training
    return new


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    return messy_frame()


@pytest.fixture(scope="module")
def profile(messy: pd.DataFrame) -> dict:
    return profile_table(pa.Table.from_pandas(messy))


@pytest.fixture(scope="module")
def plan(profile: dict) -> FeaturePlan:
    return plan_features(profile, "churn", task="binary")


def columns_of(preprocessor, prefix: str) -> list[int]:
    return [i for i, name in enumerate(feature_names(preprocessor)) if name.startswith(prefix)]


# -- planning ---------------------------------------------------------------------------------

def test_import_loads_neither_sklearn_nor_pandas():
    code = ("import sys, microlearn_grpc.core.preprocessing as p; "
            "print(sorted(m for m in ('sklearn', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plan_assigns_each_column_and_drops_with_reasons(plan: FeaturePlan):
    assert plan.target == "churn" and plan.task == "binary"
    assert plan.numeric == ("age", "tenure")
    assert plan.categorical_low == ("plan",)
    assert plan.categorical_high == ("city",)
    assert plan.boolean == ("subscribed",)
    assert plan.datetime == ("signup", "last_seen")
    assert plan.text == ("notes",)
    assert plan.dropped == {"row": "id column", "customer_id": "id column", "constant": "constant",
                            "empty": "all missing", "notes": "text (not supported yet)", "churn": "target"}
    assert "churn" not in plan.features


def test_plan_splits_categoricals_at_one_hot_max(profile: dict):
    wide = plan_features(profile, "churn", one_hot_max=40)
    assert wide.categorical_low == ("plan", "city") and wide.categorical_high == ()
    narrow = plan_features(profile, "churn", one_hot_max=2)  # plan has 3 values
    assert narrow.categorical_low == () and narrow.categorical_high == ("plan", "city")


def test_plan_keeps_a_single_value_with_holes_and_honours_drop():
    df = pd.DataFrame({"flag": ["on", None] * 15, "x": np.arange(30.0) % 7, "y": [0, 1] * 15})
    plan = plan_features(profile_table(pa.Table.from_pandas(df)), "y", drop=["x"])
    assert plan.categorical_low == ("flag",)  # one value, but missing says something
    assert plan.dropped == {"x": "dropped by request", "y": "target"}


def test_plan_rejects_unknown_names(profile: dict):
    with pytest.raises(ValueError, match=r"'churned'.*'age'.*'churn'"):
        plan_features(profile, "churned")
    with pytest.raises(ValueError, match="cannot drop 'nope'"):
        plan_features(profile, "churn", drop=["nope"])
    with pytest.raises(ValueError, match="unknown task"):
        plan_features(profile, "churn", task="ranking")
    with pytest.raises(ValueError, match="clustering takes no target"):
        plan_features(profile, "churn", task="clustering")


def test_plan_round_trips_through_json(plan: FeaturePlan):
    data = json.loads(json.dumps(plan.to_dict()))
    assert FeaturePlan.from_dict(data) == plan
    assert data["categorical_high"] == ["city"]


def test_needs_read_from_an_estimator_declaration():
    class Declared:
        needs_scaling = True
        handles_missing = False

    assert PreprocessingNeeds.of(Declared) == PreprocessingNeeds(needs_scaling=True)


def test_no_usable_column_is_an_error():
    df = pd.DataFrame({"id": [f"K{i}" for i in range(30)], "y": [0, 1] * 15})
    plan = plan_features(profile_table(pa.Table.from_pandas(df)), "y")
    with pytest.raises(ValueError, match="no usable feature columns.*id: id column"):
        build_preprocessor(plan, PreprocessingNeeds())


# -- pipelines --------------------------------------------------------------------------------

@pytest.mark.parametrize("estimator, needs", [
    (LogisticRegression(max_iter=2000), PreprocessingNeeds(needs_scaling=True)),
    (RandomForestClassifier(n_estimators=30, random_state=0), PreprocessingNeeds()),
])
def test_messy_table_trains_without_cleaning_and_predicts_unseen(messy, plan, estimator, needs):
    model = make_pipeline(build_preprocessor(plan, needs), estimator).fit(messy, messy["churn"])
    assert (model.predict(messy) == messy["churn"]).mean() > 0.75
    new = unseen_rows(messy)
    matrix = model[0].transform(new)
    assert matrix.dtype == np.float64 and np.isfinite(matrix).all()
    assert set(model.predict(new)) <= {"yes", "no"}
    assert np.isfinite(model.predict_proba(new)).all()


def test_unseen_values_become_unknown_or_missing(messy, plan):
    pre = build_preprocessor(plan, PreprocessingNeeds()).fit(messy, messy["churn"])
    out = pd.DataFrame(pre.transform(unseen_rows(messy)), columns=feature_names(pre))
    onehot = out[[c for c in out if c.startswith("onehot__plan_")]]
    assert onehot.iloc[0].sum() == 0  # "platinum": no known category
    assert onehot.iloc[1]["onehot__plan___missing__"] == 1
    assert out["boolean__subscribed"].tolist()[2:] == [1.0, 0.0]  # "YES", " n "
    assert out["numeric__tenure"].iloc[0] == out["numeric__tenure"].iloc[1] == messy["tenure"].median()
    assert "numeric__missingindicator_tenure" not in out  # training had no missing tenure
    assert out["datetime__signup_missing"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert out["datetime__last_seen_hour"].tolist()[2:] == [8.0, 0.0]  # +02:00 is read in UTC
    twice = pd.concat([unseen_rows(messy), unseen_rows(messy)])  # a duplicated index
    np.testing.assert_array_equal(pre.transform(twice), np.vstack([out.to_numpy(), out.to_numpy()]))


def test_every_pandas_dtype_backend_gives_the_same_matrix(messy, plan):
    table = pa.Table.from_pandas(messy)
    frames = [table.to_pandas(), table.to_pandas(types_mapper=pd.ArrowDtype), messy.convert_dtypes()]
    pre = build_preprocessor(plan, PreprocessingNeeds()).fit(messy, messy["churn"])
    expected = pre.transform(messy)
    for frame in frames:
        np.testing.assert_allclose(pre.transform(frame), expected)
    arrow = frames[1]  # and fitting on Arrow-backed columns and target, too
    refit = build_preprocessor(plan, PreprocessingNeeds()).fit(arrow, arrow["churn"])
    np.testing.assert_allclose(refit.transform(messy), expected)


def test_scaling_only_when_the_estimator_needs_it(messy, plan):
    scaled = build_preprocessor(plan, PreprocessingNeeds(needs_scaling=True)).fit_transform(messy, messy["churn"])
    plain_pre = build_preprocessor(plan, PreprocessingNeeds())
    plain = plain_pre.fit_transform(messy, messy["churn"])
    numbers = [i for prefix in ("numeric__", "datetime__", "target__") for i in columns_of(plain_pre, prefix)]
    np.testing.assert_allclose(scaled[:, numbers].mean(axis=0), 0, atol=1e-9)
    varying = plain[:, numbers].std(axis=0) > 0  # the years are constant in this table
    np.testing.assert_allclose(scaled[:, numbers].std(axis=0)[varying], 1, atol=1e-9)
    tenure = feature_names(plain_pre).index("numeric__tenure")
    assert plain[:, tenure].mean() == pytest.approx(messy["tenure"].mean())
    assert plain[:, feature_names(plain_pre).index("datetime__signup_year")].min() == 2023
    onehot = columns_of(plain_pre, "onehot__")
    assert set(np.unique(scaled[:, onehot])) == {0.0, 1.0}  # indicators are left as 0/1


def test_native_categorical_and_missing_path_for_hist_gradient_boosting(messy, plan):
    pre = build_preprocessor(plan, PreprocessingNeeds(handles_missing=True, handles_categorical=True))
    matrix = pre.fit_transform(messy, messy["churn"])
    mask = categorical_feature_mask(pre)
    assert len(mask) == matrix.shape[1]
    assert [name for name, flag in zip(feature_names(pre), mask) if flag] == ["ordinal__plan"]
    codes = matrix[:, mask].ravel()
    assert set(codes) == {0.0, 1.0, 2.0, 3.0}  # basic, plus, pro and the missing category
    assert not any(name.startswith("onehot__") or "missingindicator" in name for name in feature_names(pre))
    assert np.isnan(matrix[:, feature_names(pre).index("numeric__age")]).any()  # left to the estimator
    model = HistGradientBoostingClassifier(categorical_features=mask, max_iter=20, random_state=0)
    model.fit(matrix, messy["churn"])
    new = pre.transform(unseen_rows(messy))
    assert np.isnan(new[0, mask]).all()  # "platinum" is unknown: missing to the estimator
    assert set(model.predict(new)) <= {"yes", "no"}


def test_native_categorical_without_native_missing_codes_unknown_as_minus_one(messy, plan):
    pre = build_preprocessor(plan, PreprocessingNeeds(handles_categorical=True)).fit(messy, messy["churn"])
    new = pre.transform(unseen_rows(messy))
    assert np.isfinite(new).all()
    assert new[0, categorical_feature_mask(pre)].tolist() == [-1.0]


def test_datetime_expansion_from_strings_dates_and_timestamps():
    stamps = pd.to_datetime(["2024-03-01 06:30", "2024-03-02 18:00", None]).tz_localize("Europe/Paris")
    df = pd.DataFrame({"day": ["2024-02-29", "2024-03-01", None], "at": stamps, "v": [1.0, 2.0, 3.0]})
    table = pa.Table.from_pandas(df).append_column("born", pa.array([pd.Timestamp("2000-01-01").date(), None,
                                                                      pd.Timestamp("2001-06-15").date()]))
    plan = plan_features(profile_table(table), None)
    assert plan.datetime == ("day", "at", "born")
    pre = build_preprocessor(plan, PreprocessingNeeds(handles_missing=True))
    for frame in (table.to_pandas(), table.to_pandas(types_mapper=pd.ArrowDtype)):
        out = pd.DataFrame(pre.fit_transform(frame), columns=feature_names(pre))
        assert [c for c in out if c.startswith("datetime__day_")] == [
            "datetime__day_year", "datetime__day_month", "datetime__day_day", "datetime__day_dayofweek",
            "datetime__day_epoch"]  # dates only: no hour
        assert out.loc[0, ["datetime__day_year", "datetime__day_month", "datetime__day_day",
                           "datetime__day_dayofweek"]].tolist() == [2024, 2, 29, 3]
        assert out.loc[0, "datetime__day_epoch"] == pd.Timestamp("2024-02-29", tz="UTC").timestamp()
        assert out["datetime__at_hour"].tolist()[:2] == [5.0, 17.0]  # Paris in winter is UTC+1
        assert np.isnan(out.loc[2, "datetime__at_epoch"])
        assert out["datetime__born_year"].tolist()[::2] == [2000.0, 2001.0]


def test_booleans_from_any_spelling():
    df = pd.DataFrame({"b": ["yes", "no", None, "yes"] * 10, "n": np.arange(40.0) % 3})
    plan = plan_features(profile_table(pa.Table.from_pandas(df)), None)
    assert plan.boolean == ("b",)
    pre = build_preprocessor(plan, PreprocessingNeeds(handles_missing=True)).fit(df)
    new = pd.DataFrame({"b": pd.array([" YES", "n", "True", "f", "maybe", None], dtype="string"), "n": 0.0})
    out = pre.transform(new)[:, feature_names(pre).index("boolean__b")]
    np.testing.assert_array_equal(out, [1, 0, 1, 0, np.nan, np.nan])
    arrow_bools = pd.DataFrame({"b": pd.array([True, None, False], dtype="boolean"), "n": 1.0})
    np.testing.assert_array_equal(pre.transform(arrow_bools)[:, 1], [1, np.nan, 0])


def test_hinted_types_convert_across_dtype_backends():
    df = pd.DataFrame({"store": pd.array([3, 7, None, 3] * 10, dtype="Int64"),
                       "amount": ["1.5", "2", None, "n/a"] * 10, "y": [0.0, 1.0] * 20})
    table = pa.Table.from_pandas(df)
    plan = plan_features(profile_table(table, {"store": "categorical", "amount": "numeric"}), "y")
    assert plan.categorical_low == ("store",) and plan.numeric == ("amount",)
    pre = build_preprocessor(plan, PreprocessingNeeds(handles_missing=True)).fit(df, df["y"])
    assert feature_names(pre) == ["numeric__amount", "onehot__store_3", "onehot__store_7",
                                  "onehot__store___missing__"]
    expected = [[1.5, 1, 0, 0], [2, 0, 1, 0], [np.nan, 0, 0, 1], [np.nan, 1, 0, 0]]
    for frame in (df, table.to_pandas(), table.to_pandas(types_mapper=pd.ArrowDtype)):  # Int64, float, Arrow
        np.testing.assert_array_equal(pre.transform(frame)[:4], expected)


def test_target_encoding_follows_the_task(messy, profile):
    regression = plan_features(profile, "age", task="regression")
    pre = build_preprocessor(regression, PreprocessingNeeds())
    known = messy[messy["age"].notna()]
    pre.fit(known, known["age"])
    assert columns_of(pre, "target__") == [feature_names(pre).index("target__city")]
    multiclass = plan_features(profile, "plan", task="multiclass")
    pre = build_preprocessor(multiclass, PreprocessingNeeds())
    labelled = messy[messy["plan"].notna()]
    pre.fit(labelled, labelled["plan"])
    assert len(columns_of(pre, "target__city")) == 3  # one column per class


def test_clustering_uses_frequency_encoding(messy, profile):
    plan = plan_features(profile, None)
    assert plan.target is None and "churn" in plan.boolean
    pre = build_preprocessor(plan, PreprocessingNeeds(needs_scaling=True))
    steps = [step for _, branch, _ in pre[-1].transformers for _, step in branch.steps]
    assert not any(isinstance(step, TargetEncoder) for step in steps)
    matrix = pre.fit_transform(messy)
    KMeans(n_clusters=3, n_init=2, random_state=0).fit(matrix)
    frequency = build_preprocessor(plan, PreprocessingNeeds()).fit(messy)
    out = frequency.transform(pd.concat([messy.head(1), unseen_rows(messy).head(1)]))
    city = feature_names(frequency).index("frequency__city_frequency")
    assert out[0, city] == pytest.approx((messy["city"] == messy["city"].iloc[0]).mean())
    assert out[1, city] == 0.0  # never seen


def test_same_seed_same_output(messy, plan):
    def fitted(seed):
        return build_preprocessor(plan, PreprocessingNeeds(), seed=seed).fit_transform(messy, messy["churn"])

    np.testing.assert_array_equal(fitted(7), fitted(7))
    assert not np.array_equal(fitted(7), fitted(8))  # the target encoding's folds follow the seed


def test_pickle_round_trip_predicts_identically(messy, plan, tmp_path):
    model = make_pipeline(build_preprocessor(plan, PreprocessingNeeds(needs_scaling=True)),
                          LogisticRegression(max_iter=2000)).fit(messy, messy["churn"])
    new = unseen_rows(messy)
    blob = pickle.dumps(model)
    np.testing.assert_array_equal(pickle.loads(blob).predict_proba(new), model.predict_proba(new))
    # The model store loads in another process, where the custom transformers are not defined yet.
    (tmp_path / "model.pkl").write_bytes(blob)
    new.to_pickle(tmp_path / "rows.pkl")
    code = textwrap.dedent(f"""
        import pickle, sys, numpy as np, pandas as pd
        model = pickle.loads(open({str(tmp_path / "model.pkl")!r}, "rb").read())
        np.save(sys.argv[1], model.predict_proba(pd.read_pickle({str(tmp_path / "rows.pkl")!r})))
    """)
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "proba.npy")], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), model.predict_proba(new))


def test_input_errors_are_clear(messy, plan):
    pre = build_preprocessor(plan, PreprocessingNeeds()).fit(messy, messy["churn"])
    with pytest.raises(ValueError, match="lacks column.*'city'"):
        pre.transform(messy.drop(columns=["city"]))
    with pytest.raises(TypeError, match="DataFrame"):
        pre.transform(messy.to_numpy())
    with pytest.raises(TypeError, match="build_preprocessor"):
        categorical_feature_mask(LogisticRegression())
