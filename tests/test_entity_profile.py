"""Entity columns, ages and recency: values against pandas, time-correctness, AggregateFeatures."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import sktve
from sktve._entity_profile import entity_column_spec, entity_column_values, recency_values
from sktve.aggregates import AggregateFeatures

DAY = pd.Timedelta("1D")


def _queries(db, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, db.num_rows("customers"), n).astype(np.int64)
    low, high = db.min_timestamp, db.max_timestamp
    times = pd.to_datetime(rng.integers(low.value, high.value, n)).floor("D")
    return positions, times.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _recency_reference(db, table: str, fkey: str, positions, times_ns) -> pd.DataFrame:
    rows = db.table(table)
    owners = db.fkey_positions(table, fkey)
    stamps = db.time_values(table)
    last, first = [], []
    for p, t in zip(positions, times_ns, strict=True):  # the slow, obvious way
        seen = stamps[(owners == p) & (stamps <= t)]
        last.append((t - seen.max()) / 86_400e9 if len(seen) else np.nan)
        first.append((t - seen.min()) / 86_400e9 if len(seen) else np.nan)
    assert len(rows) == len(owners)
    return pd.DataFrame({"last": last, "first": first})


def test_recency_matches_pandas(small_db):
    positions, times = _queries(small_db, 400)
    got = recency_values(small_db, "customers", positions, times)
    assert sorted(got) == [
        "orders|days_since_first",
        "orders|days_since_last",
        "reviews|days_since_first",
        "reviews|days_since_last",
    ]
    for table in ("orders", "reviews"):
        want = _recency_reference(small_db, table, "customer_id", positions, times)
        np.testing.assert_allclose(got[f"{table}|days_since_last"], want["last"], equal_nan=True)
        np.testing.assert_allclose(got[f"{table}|days_since_first"], want["first"], equal_nan=True)
    # some queries have no history yet, some have: both branches are exercised
    assert np.isnan(got["orders|days_since_last"]).any()
    assert (got["orders|days_since_last"] >= 0).sum() > 100


def test_entity_columns_and_age(small_db):
    positions, times = _queries(small_db, 50, seed=1)
    spec = entity_column_spec(small_db, "customers", None)
    kinds = dict(spec)
    assert kinds == {
        "age": "numeric",
        "segment": "categorical",
        "region": "categorical",
        "is_premium": "boolean",
        "signup_date": "datetime",
    }  # the free-text bio and the key are left out
    got = entity_column_values(small_db, "customers", spec, positions, times)
    table = small_db.table("customers")
    signup = table["signup_date"].to_numpy(dtype="datetime64[ns]").view(np.int64)[positions]
    np.testing.assert_allclose(got["customers|signup_date|age_days"], (times - signup) / 86_400e9)
    np.testing.assert_array_equal(got["customers|age"], table["age"].to_numpy()[positions])
    assert got["customers|is_premium"].dtype == np.float64
    assert list(got["customers|segment"]) == list(table["segment"].to_numpy()[positions])


def test_timestamped_entity_row_hidden_before_its_time():
    users = pd.DataFrame(
        {
            "user_id": [0, 1],
            "joined": pd.to_datetime(["2024-01-01", "2024-03-01"]),
            "score": [1.0, 2.0],
        }
    )
    posts = pd.DataFrame({"post_id": [0], "user_id": [1], "ts": pd.to_datetime(["2024-03-05"])})
    db = sktve.load_database(
        {"users": users, "posts": posts},
        schema={
            "users": {"pkey": "user_id", "time_col": "joined"},
            "posts": {"pkey": "post_id", "time_col": "ts", "fkeys": {"user_id": "users"}},
        },
    )
    spec = entity_column_spec(db, "users", None)
    times = (
        pd.to_datetime(["2024-02-01", "2024-02-01", "2024-03-10"])
        .to_numpy(dtype="datetime64[ns]")
        .view(np.int64)
    )
    got = entity_column_values(db, "users", spec, np.array([0, 1, 1]), times)
    np.testing.assert_allclose(got["users|score"], [1.0, np.nan, 2.0])
    np.testing.assert_allclose(got["users|joined|age_days"], [31.0, np.nan, 9.0])
    recency = recency_values(db, "users", np.array([0, 1, 1]), times)
    np.testing.assert_allclose(recency["posts|days_since_last"], [np.nan, np.nan, 5.0])


def test_future_rows_never_matter(small_db):
    t = pd.Timestamp("2023-07-01")
    X = pd.DataFrame({"customer_id": np.arange(0, 300, 2), "ts": pd.to_datetime([t] * 150)})
    kwargs = dict(entity_table="customers", window="90D", include="orders|amount")
    before = AggregateFeatures(database=small_db, **kwargs).fit_transform(X)
    # add orders after t for every customer, with new values and times
    frames = {name: small_db.table(name) for name in small_db.table_names}
    orders = frames["orders"]
    extra = orders.iloc[:300].copy()
    extra["order_id"] = orders["order_id"].max() + 1 + np.arange(300)
    extra["customer_id"] = np.arange(300)
    extra["order_time"] = t + DAY * np.arange(1, 301)
    frames["orders"] = pd.concat([orders, extra], ignore_index=True)
    schema = {name: small_db.schema[name] for name in small_db.table_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grown = sktve.load_database(frames, schema=schema)
    after = AggregateFeatures(database=grown, **kwargs).fit_transform(X)
    np.testing.assert_array_equal(before, after)
    names = AggregateFeatures(database=small_db, **kwargs).fit(X).get_feature_names_out()
    assert "orders|days_since_last" in names and "customers|signup_date|age_days" in names


def test_aggregate_features_switches(small_db):
    X = pd.DataFrame({"customer_id": [0, 1, 2, 3], "ts": pd.to_datetime(["2023-06-01"] * 4)})
    base = dict(database=small_db, entity_table="customers", window="30D")
    full = AggregateFeatures(**base).fit(X).get_feature_names_out().tolist()
    bare = AggregateFeatures(**base, entity_columns=False, recency=False).fit(X)
    bare_names = bare.get_feature_names_out().tolist()
    assert not any(n.startswith("customers|") or "days_since" in n for n in bare_names)
    assert set(bare_names) < set(full)
    assert any(n.startswith("customers|region=") for n in full)  # categorical one-hot


@pytest.mark.relf1
def test_relf1_driver_age_and_recency(relf1_db):
    X = pd.DataFrame({"driverId": [0, 0], "date": pd.to_datetime(["2000-01-01", "2009-01-01"])})
    agg = AggregateFeatures(database=relf1_db, entity_table="drivers", window="365D", max_hops=1)
    frame = agg.set_output(transform="pandas").fit_transform(X)
    age = frame["drivers|dob|age_days"].to_numpy()
    assert age[1] - age[0] == pytest.approx((X["date"][1] - X["date"][0]) / DAY)
    assert {"results|days_since_last", "qualifying|days_since_first"} <= set(frame.columns)
