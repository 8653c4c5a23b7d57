"""Tests of sktve.targets: paths, SQL engine results against a pandas oracle, scaler."""

from __future__ import annotations

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sktve
from sktve.targets import (
    DuckDBEngine,
    TaskVectorScaler,
    enumerate_paths,
    task_vectors,
    write_task_vectors,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from pandas_reference import reference_aggregates  # noqa: E402

RELF1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "rel-f1"
DAY = pd.Timedelta("1D")


# ---------------------------------------------------------------------- fixtures
def _tiny_frames() -> tuple[dict, dict]:
    """Hand-made database: users <- orders -> items -> suppliers; users <- reviews -> orders."""
    users = pd.DataFrame({"user_id": [0, 1, 2, 3, 4], "name": list("abcde")})
    suppliers = pd.DataFrame({"supplier_id": [0, 1], "country": ["fr", "de"]})
    items = pd.DataFrame(
        {
            "item_id": [10, 11, 12],
            "category": ["toy", "book", "toy"],
            "price": [5.0, 12.5, np.nan],
            "supplier_id": [0, 1, 1],
        }
    )
    t = pd.Timestamp("2024-01-01")
    orders = pd.DataFrame(
        {
            "order_id": range(10),
            "ts": [
                t,  # exactly at the cutoff: excluded
                t + DAY,
                t + 2 * DAY,
                t + 10 * DAY,  # exactly at t + 10D: included in the 10D window
                t + 11 * DAY,
                t + 3 * DAY,
                t + 3 * DAY,
                t - 5 * DAY,
                t + 40 * DAY,
                t + 20 * DAY,
            ],
            "user_id": [0, 0, 0, 0, 0, 1, 1, 1, 2, 1],
            "item_id": [10, 11, 10, 12, 11, 10, 11, 12, 10, 10],
            "amount": [1.0, 2.0, np.nan, 4.0, 8.0, 3.0, 3.0, 100.0, 7.0, 6.0],
            # user 0 in (t, t+10D]: "web", "app", "app", "web" -> tie, smallest is "app"
            "channel": ["zz", "web", "app", "app", "web", "web", None, "app", "web", "web"],
            "gift": [True, False, True, True, False, False, True, True, False, False],
        }
    )
    reviews = pd.DataFrame(
        {
            "review_id": range(5),
            "ts": [t + 2 * DAY, t + 4 * DAY, t + 12 * DAY, t + 4 * DAY, t + 50 * DAY],
            "user_id": [0, 0, 1, 1, 3],
            "order_id": [1, 2, 5, 6, 8],
            "stars": pd.array([5, 3, pd.NA, 1, 4], dtype="Int64"),
            "text": [f"free text number {i} that is unique" for i in range(5)],
        }
    )
    frames = {
        "users": users,
        "suppliers": suppliers,
        "items": items,
        "orders": orders,
        "reviews": reviews,
    }
    schema = {
        "users": {"pkey": "user_id"},
        "suppliers": {"pkey": "supplier_id"},
        "items": {"pkey": "item_id", "fkeys": {"supplier_id": "suppliers"}},
        "orders": {
            "pkey": "order_id",
            "time_col": "ts",
            "fkeys": {"user_id": "users", "item_id": "items"},
        },
        "reviews": {
            "pkey": "review_id",
            "time_col": "ts",
            "fkeys": {"user_id": "users", "order_id": "orders"},
        },
    }
    return frames, schema


@pytest.fixture(scope="module")
def _tiny_db():
    frames, schema = _tiny_frames()
    return sktve.load_database(frames, schema=schema)


@pytest.fixture(scope="module")
def _synthetic_db():
    datasets = pytest.importorskip("sktve.datasets")
    if not hasattr(datasets, "make_synthetic_database"):
        pytest.skip("sktve.datasets.make_synthetic_database is not available yet")
    return datasets.make_synthetic_database(n_customers=60, n_orders=1500, random_state=0)


@pytest.fixture(scope="module")
def _relf1_db():
    if not RELF1.exists():
        pytest.skip(f"rel-f1 data not found at {RELF1}")
    return sktve.load_database(str(RELF1))


def _pairs(keys, cutoffs, key="user_id") -> pd.DataFrame:
    return pd.DataFrame({key: keys, "cutoff": pd.to_datetime(cutoffs)})


def assert_matches_reference(frame: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Every aggregate column of ``frame`` equals the oracle's (modes exactly)."""
    assert "no_activity" in frame.columns
    missing = [c for c in frame.columns[2:] if c not in ref.columns]
    assert not missing, missing
    for col in frame.columns[2:]:
        got, want = frame[col], ref[col]
        if col.endswith("|mode"):
            g = [None if pd.isna(v) else str(v) for v in got]
            w = [None if pd.isna(v) else str(v) for v in want]
            assert g == w, col
        else:
            np.testing.assert_allclose(
                got.to_numpy(dtype=float),
                want.to_numpy(dtype=float),
                rtol=1e-7,
                atol=1e-7,
                equal_nan=True,
                err_msg=col,
            )


def _check_against_reference(db, entity_table, pairs, windows, **kwargs):
    key = db.pkey(entity_table)
    frame = task_vectors(
        db, entity_table, None, windows, entities=pairs, max_columns=None, **kwargs
    )
    paths = enumerate_paths(
        db,
        entity_table,
        max_hops=kwargs.get("max_hops", 2),
        lookback=kwargs.get("lookback"),
    )
    parsed = sktve._validation.parse_windows(windows)
    ref = reference_aggregates(
        db, entity_table, pairs[key].to_numpy(), pairs["cutoff"].to_numpy(), parsed, paths
    )
    assert_matches_reference(frame, ref)
    return frame


# ---------------------------------------------------------------------- paths
def test_enumerate_paths_kinds_and_names(_tiny_db):
    paths = {p.name: p for p in enumerate_paths(_tiny_db, "users")}
    assert paths["orders"].kind == "direct"
    assert paths["reviews"].kind == "direct"
    assert paths["orders->items"].kind == "dimension"
    assert paths["orders->items<-orders"].kind == "sibling"
    assert paths["orders<-reviews"].kind == "child"
    assert paths["reviews->orders"].kind == "dimension"
    assert paths["reviews->orders<-reviews"].kind == "sibling"
    # the path back to the entity itself is excluded
    assert not any(name.endswith("->users") for name in paths)
    # keys, time columns and free text are never aggregated
    cols = {c.name: c.kind for c in paths["reviews"].columns}
    assert cols == {"stars": "numeric"}
    cols = {c.name: c.kind for c in paths["orders"].columns}
    assert cols == {"amount": "numeric", "channel": "categorical", "gift": "boolean"}
    one_hop = enumerate_paths(_tiny_db, "users", max_hops=1)
    assert [p.name for p in one_hop] == ["orders", "reviews"]
    assert repr(one_hop[0])  # frozen dataclass, readable


def test_include_exclude(_tiny_db):
    paths = enumerate_paths(_tiny_db, "users", include=["orders", "orders->items"])
    assert [p.name for p in paths] == ["orders", "orders->items"]
    paths = enumerate_paths(_tiny_db, "users", exclude=["*|amount", "reviews*"], max_hops=1)
    assert [p.name for p in paths] == ["orders"]
    assert "amount" not in [c.name for c in paths[0].columns]
    frame = task_vectors(
        _tiny_db, "users", ["2024-01-01"], "10D", include=["orders|amount"], max_hops=1
    )
    assert [c for c in frame.columns if "|" in c] == [
        f"10D|orders|amount|{a}" for a in ("mean", "min", "max", "sum", "std", "count")
    ]


def test_integer_codes_are_categories_as_the_encoder_reads_them():
    """An integer column named like an id (a status code) is aggregated as categories."""
    from sktve.graph.features import GraphFeaturizer

    frames, schema = _tiny_frames()
    orders = frames["orders"].copy()
    orders["statusId"] = [1, 1, 2, 1, 3, 1, 2, 1, 1, 1]  # a code, not a quantity
    orders["quantity"] = [1, 2, 3, 1, 1, 2, 2, 1, 1, 5]  # a quantity
    frames["orders"] = orders
    db = sktve.load_database(frames, schema=schema)
    cols = {c.name: c.kind for c in enumerate_paths(db, "users", max_hops=1)[0].columns}
    assert cols["statusId"] == "categorical"
    assert cols["quantity"] == "numeric"
    featurized = {c.name: c.kind for c in GraphFeaturizer().fit(db).columns_["orders"]}
    assert featurized["statusId"] == cols["statusId"]
    assert featurized["quantity"] == cols["quantity"]
    frame = task_vectors(db, "users", ["2024-01-01"], "10D", include=["orders|statusId"])
    assert [c for c in frame.columns if "|" in c] == [
        f"10D|orders|statusId|{a}" for a in ("count", "nunique", "mode")
    ]
    # user 0 in (t, t+10D]: statuses 1, 2, 1 -> mode "1", two distinct
    row = frame.set_index("user_id").loc[0]
    assert row["10D|orders|statusId|mode"] == "1"
    assert row["10D|orders|statusId|nunique"] == 2


def test_modes_of_many_categories_over_empty_ranges():
    """The many-category path gives no mode where a whole chunk of ranges holds no value."""
    from sktve.targets import vectors

    n_cat = vectors._FEW_CATEGORIES + 10
    codes = np.array([0, 5, n_cat - 1, n_cat - 1, -1, -1], dtype=np.int32)
    a = np.array([0, 0, 4, 2, 0])
    b = np.array([0, 0, 6, 4, 3])
    nunique, mode = vectors._categorical_stats(codes, n_cat, a, b)
    np.testing.assert_array_equal(nunique, [0, 0, 0, 1, 3])
    np.testing.assert_array_equal(mode, [-1, -1, -1, n_cat - 1, 0])
    # every range empty or null: one chunk without a single value
    nunique, mode = vectors._categorical_stats(codes, n_cat, a[:3], b[:3])
    np.testing.assert_array_equal(mode, [-1, -1, -1])


# ---------------------------------------------------------------------- exact values
def test_window_boundaries_nulls_and_ties(_tiny_db):
    pairs = _pairs([0, 1, 3, 4], ["2024-01-01"] * 4)
    frame = task_vectors(_tiny_db, "users", None, "10D", entities=pairs, max_hops=1)
    row = frame.iloc[0]
    # order at t excluded, order at t + 10D included, NaN amount skipped
    assert row["10D|orders|*|count"] == 3
    assert row["10D|orders|amount|count"] == 2
    assert row["10D|orders|amount|sum"] == 6.0
    assert row["10D|orders|amount|mean"] == 3.0
    assert row["10D|orders|amount|std"] == 1.0  # population std of {2, 4}
    assert row["10D|orders|channel|mode"] == "app"  # tie web/app -> smallest
    assert row["10D|orders|channel|nunique"] == 2
    assert row["10D|orders|gift|mean"] == pytest.approx(2 / 3)
    assert row["no_activity"] == 0
    # user 1: a null channel is not counted
    assert frame.iloc[1]["10D|orders|channel|count"] == 1
    # users 3 and 4: no rows -> counts and sums 0, the rest NaN, flagged inactive
    for i in (2, 3):
        row = frame.iloc[i]
        assert row["10D|orders|*|count"] == 0 and row["10D|orders|amount|sum"] == 0
        assert np.isnan(row["10D|orders|amount|mean"])
        assert pd.isna(row["10D|orders|channel|mode"])
        assert row["no_activity"] == 1
    assert frame["no_activity"].dtype == np.int8


def test_matches_reference_tiny_two_hops_multiple_windows(_tiny_db):
    cutoffs = ["2023-12-20", "2024-01-01", "2024-01-02", "2024-01-15", "2024-02-01"]
    pairs = _pairs(np.repeat([0, 1, 2, 3, 4], 5), cutoffs * 5)
    frame = _check_against_reference(_tiny_db, "users", pairs, ["3D", "10D", "45D"])
    assert "3D|no_activity" in frame.columns and "45D|no_activity" in frame.columns
    assert frame.columns[-1] == "no_activity"
    np.testing.assert_array_equal(frame["no_activity"], frame["45D|no_activity"])
    # lookback is honoured on sibling paths
    _check_against_reference(_tiny_db, "users", pairs, "10D", lookback="2D")


def test_entities_dataframe_order_and_duplicates(_tiny_db):
    pairs = _pairs([2, 0, 2, 0], ["2024-01-01", "2024-01-01", "2024-01-01", "2023-12-01"])
    frame = task_vectors(_tiny_db, "users", None, "10D", entities=pairs, max_hops=1)
    assert frame["user_id"].tolist() == [2, 0, 2, 0]
    assert frame["cutoff"].tolist() == list(pd.to_datetime(pairs["cutoff"]))
    pd.testing.assert_series_equal(frame.iloc[0], frame.iloc[2], check_names=False)


def test_active_universe(_tiny_db):
    frame = task_vectors(_tiny_db, "users", ["2023-12-20", "2024-01-01"], "10D", max_hops=1)
    # first rows: user 1 at t-5D, user 0 at t, user 2 at t+40D, user 3 (review) at t+50D
    per_cutoff = frame.groupby("cutoff")["user_id"].apply(list).to_dict()
    assert per_cutoff[pd.Timestamp("2023-12-20")] == [1]
    assert per_cutoff[pd.Timestamp("2024-01-01")] == [0, 1]
    active = frame.set_index(["cutoff", "user_id"])["no_activity"]
    assert active[(pd.Timestamp("2024-01-01"), 0)] == 0


def test_engine_object_is_used():
    engine = DuckDBEngine(threads=1, memory_limit="1GB")
    engine.register("t", pd.DataFrame({"x": [1.0, 2.0]}))
    assert engine.execute(["SELECT sum(x) AS s FROM t"])["s"].iloc[0] == 3.0
    frames, schema = _tiny_frames()
    db = sktve.load_database(frames, schema=schema)
    a = task_vectors(db, "users", ["2024-01-01"], "10D", engine=engine)
    b = task_vectors(db, "users", ["2024-01-01"], "10D")
    pd.testing.assert_frame_equal(a, b)
    engine.close()


def test_matches_reference_synthetic(_synthetic_db):
    db = _synthetic_db
    cutoffs = pd.date_range("2020-03-01", "2023-06-01", periods=6)
    keys = db.table("customers")["customer_id"].to_numpy()[:40]
    pairs = _pairs(np.tile(keys, len(cutoffs)), np.repeat(cutoffs, len(keys)), "customer_id")
    _check_against_reference(db, "customers", pairs, ["30D", "120D"])


@pytest.mark.relf1
def test_matches_reference_relf1(_relf1_db):
    db = _relf1_db
    cutoffs = pd.date_range("1995-01-01", "2004-06-01", periods=8)
    keys = np.arange(0, 857, 7)
    pairs = _pairs(np.tile(keys, len(cutoffs)), np.repeat(cutoffs, len(keys)), "driverId")
    frame = _check_against_reference(db, "drivers", pairs, ["30D", "90D"])
    assert (frame["no_activity"] == 0).sum() > 20


# ---------------------------------------------------------------------- leakage
def _perturbed(db, predicate) -> sktve.Database:
    """Copy of db with every value of timestamped rows selected by predicate changed."""
    frames = {}
    rng = np.random.default_rng(0)
    for name in db.table_names:
        frame = db.table(name).copy()
        time_col = db.time_col(name)
        if time_col is not None:
            mask = predicate(frame[time_col]).to_numpy()
            skip = {db.pkey(name), time_col, *db.fkeys(name)}
            for col in frame.columns:
                if col in skip or not mask.any():
                    continue
                values = frame[col]
                if pd.api.types.is_bool_dtype(values.dtype):
                    frame.loc[mask, col] = ~values[mask].astype(bool)
                elif pd.api.types.is_numeric_dtype(values.dtype):
                    frame.loc[mask, col] = values[mask] * 3 + rng.integers(1, 9, int(mask.sum()))
                elif values.dtype == object:
                    frame.loc[mask, col] = "perturbed"
        frames[name] = frame
    schema = {name: db.schema[name] for name in db.table_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sktve.load_database(frames, schema=schema)


def test_rows_after_window_never_matter(_tiny_db):
    t, w = pd.Timestamp("2024-01-01"), pd.Timedelta("10D")
    perturbed = _perturbed(_tiny_db, lambda s: s > t + w)
    a = task_vectors(_tiny_db, "users", [t], w)
    b = task_vectors(perturbed, "users", [t], w)
    pd.testing.assert_frame_equal(a, b)
    # with one hop, rows before the window do not matter either
    perturbed = _perturbed(_tiny_db, lambda s: (s <= t) | (s > t + w))
    pairs = _pairs([0, 1, 2, 3, 4], [t] * 5)
    a = task_vectors(_tiny_db, "users", None, w, entities=pairs, max_hops=1)
    b = task_vectors(perturbed, "users", None, w, entities=pairs, max_hops=1)
    pd.testing.assert_frame_equal(a, b)


def test_rows_after_window_never_matter_synthetic(_synthetic_db):
    t, w = pd.Timestamp("2022-01-01"), pd.Timedelta("30D")
    perturbed = _perturbed(_synthetic_db, lambda s: s > t + w)
    cutoffs = [t - pd.Timedelta("60D"), t]
    a = task_vectors(_synthetic_db, "customers", cutoffs, w, max_columns=None)
    b = task_vectors(perturbed, "customers", cutoffs, w, max_columns=None)
    pd.testing.assert_frame_equal(a, b)


# ---------------------------------------------------------------------- caps and errors
def test_max_columns_cap_reports_drops(_tiny_db):
    with pytest.warns(UserWarning, match="max_columns=12 dropped"):
        frame = task_vectors(_tiny_db, "users", ["2024-01-01"], "10D", max_columns=12)
    aggregates = [c for c in frame.columns if "|" in c]
    assert len(aggregates) == 12
    assert frame.attrs["dropped_columns"]
    # 1-hop aggregates come first
    assert all(c.split("|")[1] in ("orders", "reviews") for c in aggregates)


def test_bad_inputs(_tiny_db):
    with pytest.raises(ValueError, match="unknown entity table"):
        task_vectors(_tiny_db, "nope", ["2024-01-01"], "10D")
    with pytest.raises(ValueError, match="positive"):
        task_vectors(_tiny_db, "users", ["2024-01-01"], "-3D")
    with pytest.raises(ValueError, match="cannot parse"):
        task_vectors(_tiny_db, "users", ["2024-01-01"], "soon")
    with pytest.raises(ValueError, match="NaT"):
        task_vectors(_tiny_db, "users", [pd.Timestamp("2024-01-01"), pd.NaT], "10D")
    with pytest.raises(
        ValueError, match="not referenced by any timestamped table.*Choose one of those"
    ):
        task_vectors(_tiny_db, "suppliers", ["2024-01-01"], "10D")
    with pytest.raises(ValueError, match="entities must"):
        task_vectors(_tiny_db, "users", ["2024-01-01"], "10D", entities="all")
    with pytest.raises(ValueError, match="missing"):
        task_vectors(_tiny_db, "users", None, "10D", entities=pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="not keys"):
        task_vectors(_tiny_db, "users", None, "10D", entities=_pairs([99], ["2024-01-01"]))
    with pytest.warns(UserWarning, match="outside the database's time range"):
        task_vectors(_tiny_db, "users", ["1990-01-01"], "10D")
    with pytest.raises(ValueError, match="max_hops"):
        enumerate_paths(_tiny_db, "users", max_hops=3)


# ---------------------------------------------------------------------- scaler
def _scaler_frame():
    return pd.DataFrame(
        {
            "id": [0, 1, 2, 3],
            "cutoff": pd.to_datetime(["2024-01-01"] * 4),
            "7D|a|x|mean": [1.0, 3.0, np.nan, 50.0],
            "7D|a|c|mode": ["u", "v", None, "w"],
            "7D|no_activity": [0, 0, 1, 1],
            "30D|a|x|sum": [2.0, 6.0, 4.0, 99.0],
            "30D|no_activity": [0, 0, 0, 1],
            "no_activity": np.array([0, 0, 0, 1], dtype=np.int8),
        }
    )


def test_scaler_fit_transform():
    frame = _scaler_frame()
    scaler = TaskVectorScaler(top_k=1).fit(frame)
    names = scaler.get_feature_names_out().tolist()
    assert names == [
        "7D|a|x|mean",
        "7D|a|c|mode=u",
        "7D|a|c|mode=other",
        "7D|no_activity",
        "30D|a|x|sum",
        "30D|no_activity",
        "no_activity",
    ]
    assert scaler.n_features_out_ == 7
    out = scaler.transform(frame)
    assert out.dtype == np.float32 and out.shape == (4, 7)
    # min-max on active rows only (row 3 is inactive, its 50.0 / 99.0 are ignored)
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(out[:, 4], [0.0, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(out[:, 1], [1, 0, 0, 0])  # "u"
    np.testing.assert_allclose(out[:, 2], [0, 1, 0, 0])  # "v" -> other, None -> zeros
    np.testing.assert_allclose(out[:, 3], [0, 0, 1, 0])
    np.testing.assert_allclose(out[3], [0, 0, 0, 0, 0, 0, 1])  # inactive: only the flag
    assert out[:, -1].tolist() == [0, 0, 0, 1]


def test_scaler_frozen_and_picklable():
    frame = _scaler_frame()
    scaler = TaskVectorScaler().fit(frame)
    shifted = frame.copy()
    shifted["30D|a|x|sum"] = shifted["30D|a|x|sum"] + 100
    out = scaler.transform(shifted)
    assert out[0, scaler.get_feature_names_out().tolist().index("30D|a|x|sum")] == 25.0
    clone = pickle.loads(pickle.dumps(scaler))
    np.testing.assert_array_equal(clone.transform(frame), scaler.transform(frame))
    with pytest.raises(ValueError, match="lacks"):
        scaler.transform(frame.drop(columns=["7D|a|x|mean"]))
    with pytest.raises(RuntimeError, match="not fitted"):
        TaskVectorScaler().transform(frame)


def test_scaler_on_task_vectors(_tiny_db):
    frame = task_vectors(_tiny_db, "users", ["2023-12-20", "2024-01-01"], ["3D", "10D"])
    scaler = TaskVectorScaler().fit(frame)
    out = scaler.transform(frame)
    assert out.shape == (len(frame), scaler.n_features_out_)
    assert np.isfinite(out).all()
    inactive = frame["no_activity"].to_numpy() == 1
    assert (out[inactive, :-1] == 0).all() and (out[inactive, -1] == 1).all()


@pytest.mark.parametrize("db_name", ["_tiny_db", "_synthetic_db"])
def test_sql_backend_matches_numpy_range_engine(db_name, request):
    """The generated SQL for every path kind computes what the fast numpy engine does."""
    db = request.getfixturevalue(db_name)
    entity = "users" if db_name == "_tiny_db" else "customers"
    times = db.time_values("orders")
    cutoffs = pd.to_datetime(np.quantile(times, [0.3, 0.5, 0.7]).astype("int64"))
    kwargs = dict(max_hops=2, lookback="20D")
    fast = task_vectors(db, entity, cutoffs, ["7D", "30D"], **kwargs)
    portable = task_vectors(db, entity, cutoffs, ["7D", "30D"], backend="sql", **kwargs)
    assert list(fast.columns) == list(portable.columns)
    kinds = {p.kind for p in enumerate_paths(db, entity, **kwargs)}
    assert {"direct", "dimension", "sibling"} <= kinds
    for col in fast.columns:
        if fast[col].dtype.kind in "fiu":
            np.testing.assert_allclose(
                fast[col].to_numpy(float),
                portable[col].to_numpy(float),
                rtol=1e-6,
                atol=1e-9,
                err_msg=col,
            )
        else:
            assert fast[col].astype(str).tolist() == portable[col].astype(str).tolist(), col


@pytest.mark.parametrize("strategy", ["entity", "cutoff", "bucket"])
def test_sql_join_strategies_match_numpy(_tiny_db, monkeypatch, strategy):
    """Each order of the windowed join (pairs by entity, cutoff-id ranges, time buckets)
    gives the numpy engine's result, rows exactly on window edges included."""
    import sktve.targets.vectors as vectors

    cutoffs = ["2023-12-20", "2024-01-01", "2024-01-02", "2024-01-15", "2024-02-01"]
    kwargs = dict(max_hops=2, lookback="20D")
    fast = task_vectors(_tiny_db, "users", cutoffs, ["1D", "7D", "30D"], **kwargs)
    monkeypatch.setattr(vectors, "_join_strategy", lambda *args: strategy)
    portable = task_vectors(
        _tiny_db, "users", cutoffs, ["1D", "7D", "30D"], backend="sql", **kwargs
    )
    pd.testing.assert_frame_equal(fast, portable, check_exact=False, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_floor_division_in_sql_is_exact(dialect):
    """Time buckets need floor division of nanoseconds, negative ones (before 1970) too."""
    from sktve.targets.sql import _floor_div

    values = [-(10**18) - 7, -86_400 * 10**9 - 1, -5, -1, 0, 1, 5, 1_700_000_000_123_456_789]
    width = 30 * 86_400 * 10**9
    expr = _floor_div("v", width, dialect)
    if dialect == "duckdb":
        import duckdb

        got = [
            duckdb.sql(f"SELECT {expr} FROM (SELECT CAST({v} AS BIGINT) AS v)").fetchall()[0][0]
            for v in values
        ]
    else:
        assert " DIV " in expr and "//" not in expr  # Spark's integer division
        got = [eval(expr.replace(" DIV ", " // ").replace("v", str(v))) for v in values]
    assert got == [v // width for v in values]


def test_unknown_backend(_tiny_db):
    with pytest.raises(ValueError, match="backend"):
        task_vectors(_tiny_db, "users", ["2024-01-10"], "7D", backend="spark")


@pytest.mark.parametrize("backend", ["auto", "sql"])
@pytest.mark.parametrize("table", ["reviews", "orders"])
def test_empty_table_reads_as_rows_after_every_window(table, backend):
    """An empty fact table (an early snapshot) gives the task vectors of a table whose
    rows all lie after every window (and whose references, dangling, are null)."""
    frames, schema = _tiny_frames()
    empty, future = dict(frames), dict(frames)
    empty[table] = frames[table].iloc[:0]
    future[table] = frames[table].assign(ts=frames[table]["ts"] + 3650 * DAY)
    if table == "orders":
        future["reviews"] = frames["reviews"].assign(order_id=pd.array([pd.NA] * 5, "Int64"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # references to the emptied table dangle
        db_empty = sktve.load_database(empty, schema=schema)
        db_future = sktve.load_database(future, schema=schema)
    cutoffs = pd.to_datetime(["2024-01-01", "2024-01-10", "2024-02-01"])
    pairs = pd.DataFrame({"user_id": np.repeat(np.arange(5), 3), "cutoff": np.tile(cutoffs, 5)})
    for entities in ("active", pairs):
        kwargs = dict(max_hops=2, backend=backend, entities=entities)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "1 cutoffs lie outside|5 cutoffs lie outside")
            a = task_vectors(db_empty, "users", cutoffs, ["7D", "30D"], **kwargs)
            b = task_vectors(db_future, "users", cutoffs, ["7D", "30D"], **kwargs)
        pd.testing.assert_frame_equal(a, b)
        counts = [c for c in a.columns if f"|{table}|*|count" in c]
        assert len(a) and (a[counts] == 0).all().all()
    assert len(a) == 15


def test_scaler_inverse_transform_back_to_units():
    frame = _scaler_frame()
    scaler = TaskVectorScaler(top_k=1).fit(frame)
    names = scaler.get_feature_names_out().tolist()
    scaled = scaler.transform(frame)
    back = scaler.inverse_transform(scaled)
    assert back.dtype == np.float64 and back.shape == scaled.shape
    active = frame["no_activity"].to_numpy() == 0
    for col in ("7D|a|x|mean", "30D|a|x|sum"):
        j = names.index(col)
        raw = frame[col].to_numpy(dtype=np.float64)
        known = active & ~np.isnan(raw)
        np.testing.assert_allclose(back[known, j], raw[known])  # active rows: exact
        assert (back[~active, j] == 0).all()  # inactive: the count/sum over no rows
    # Scores (mode one-hots, flags) pass through.
    scores = [j for j, n in enumerate(names) if "=" in n or n.endswith("no_activity")]
    np.testing.assert_array_equal(back[:, scores], scaled[:, scores])
    # A prediction of an expectation maps to the expected value: half active, z = 0.5.
    j = names.index("30D|a|x|sum")
    half = np.zeros((1, len(names)))
    half[0, j], half[0, -1] = 0.5, 0.5
    expected = 0.5 * scaler.scale_[1] + 0.5 * scaler.min_[1]
    assert scaler.inverse_transform(half)[0, j] == pytest.approx(expected)
    with pytest.raises(ValueError, match="shape"):
        scaler.inverse_transform(scaled[:, :-1])
    with pytest.raises(RuntimeError, match="not fitted"):
        TaskVectorScaler().inverse_transform(scaled)


def test_scaler_inverse_transform_on_task_vectors(_tiny_db):
    frame = task_vectors(_tiny_db, "users", ["2023-12-20", "2024-01-01"], ["3D", "10D"])
    scaler = TaskVectorScaler().fit(frame)
    back = scaler.inverse_transform(scaler.transform(frame))
    names = scaler.get_feature_names_out().tolist()
    counts = [n for n in names if n.endswith("|count")]
    assert counts
    # Counts are never missing, so they come back exactly: active rows and inactive zeros.
    for name in counts:
        np.testing.assert_allclose(back[:, names.index(name)], frame[name].to_numpy(float))


# ---------------------------------------------------------------------- chunks
def _assert_frames_close(a: pd.DataFrame, b: pd.DataFrame, rtol: float = 1e-6) -> None:
    """Same rows, columns and modes; numbers equal to floating-point rounding.

    Sibling std comes from sums of squares around a column-wide shift, which a chunk's
    rows set: where a range's values are close (std 0.03 around 20) rounding shows at up
    to ~5e-7 relative, the tolerance the SQL-vs-numpy comparison uses as well.
    """
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        if a[col].dtype.kind in "fiu":
            np.testing.assert_allclose(
                a[col].to_numpy(float), b[col].to_numpy(float), rtol=rtol, atol=1e-9, err_msg=col
            )
        elif a[col].dtype.kind == "M":
            assert (a[col].to_numpy() == b[col].to_numpy()).all(), col
        else:
            assert a[col].astype(object).where(a[col].notna(), None).tolist() == (
                b[col].astype(object).where(b[col].notna(), None).tolist()
            ), col


@pytest.mark.parametrize("backend", ["auto", "sql"])
def test_chunks_give_the_unchunked_result(_synthetic_db, backend):
    times = _synthetic_db.time_values("orders")
    cutoffs = pd.to_datetime(np.quantile(times, np.linspace(0.1, 0.9, 9)).astype("int64"))
    kwargs = dict(max_hops=2, lookback="20D", max_columns=None, backend=backend)
    whole = task_vectors(
        _synthetic_db, "customers", cutoffs, ["7D", "30D"], chunk_size=None, **kwargs
    )
    assert len(whole) > 150
    chunked = task_vectors(
        _synthetic_db, "customers", cutoffs, ["7D", "30D"], chunk_size=40, **kwargs
    )
    _assert_frames_close(whole, chunked)
    # Given pairs, shuffled and repeated, come back in their own order.
    rng = np.random.default_rng(0)
    pairs = whole[["customer_id", "cutoff"]].iloc[rng.integers(0, len(whole), 300)]
    pairs = pairs.reset_index(drop=True)
    given = task_vectors(
        _synthetic_db, "customers", None, "30D", entities=pairs, chunk_size=None, **kwargs
    )
    given_chunked = task_vectors(
        _synthetic_db, "customers", None, "30D", entities=pairs, chunk_size=35, **kwargs
    )
    _assert_frames_close(given, given_chunked)
    assert (given_chunked["customer_id"].to_numpy() == pairs["customer_id"].to_numpy()).all()


def test_row_floors_leave_out_only_rows_no_pair_reaches(_synthetic_db, monkeypatch):
    """Each chunk reads rows after its floor; reading every row gives the same result."""
    from sktve.targets import vectors

    times = _synthetic_db.time_values("orders")
    cutoffs = pd.to_datetime(np.quantile(times, [0.6, 0.7, 0.8]).astype("int64"))
    kwargs = dict(max_hops=2, lookback="20D", max_columns=None, chunk_size=None)
    kinds = {p.kind for p in enumerate_paths(_synthetic_db, "customers", max_hops=2)}
    assert {"direct", "dimension", "sibling"} <= kinds
    floored = task_vectors(_synthetic_db, "customers", cutoffs, ["7D", "30D"], **kwargs)
    floors = vectors._row_floors(
        _synthetic_db,
        enumerate_paths(_synthetic_db, "customers", max_hops=2, lookback="20D"),
        vectors.direct_edges(_synthetic_db, "customers"),
        int(cutoffs[0].value),
        [pd.Timedelta("7D"), pd.Timedelta("30D")],
        "future",
    )
    assert floors["orders"] == int((cutoffs[0] - pd.Timedelta("20D")).value)  # orders: siblings
    monkeypatch.setattr(vectors, "_row_floors", lambda *args: {})
    everything = task_vectors(_synthetic_db, "customers", cutoffs, ["7D", "30D"], **kwargs)
    _assert_frames_close(floored, everything)


def test_write_task_vectors_reads_back_as_the_frame(_synthetic_db, tmp_path):
    times = _synthetic_db.time_values("orders")
    cutoffs = pd.to_datetime(np.quantile(times, np.linspace(0.2, 0.9, 6)).astype("int64"))
    frame = task_vectors(_synthetic_db, "customers", cutoffs, ["7D", "30D"], max_hops=2)
    path = tmp_path / "tv.parquet"
    info = write_task_vectors(
        path, _synthetic_db, "customers", cutoffs, ["7D", "30D"], max_hops=2, chunk_size=50
    )
    assert info["rows"] == len(frame) and info["chunks"] == -(-len(frame) // 50)
    assert info["columns"] == list(frame.columns)
    assert info["paths"] == frame.attrs["paths"]
    import pyarrow.parquet as pq

    assert pq.ParquetFile(path).num_row_groups == info["chunks"]
    _assert_frames_close(frame, pd.read_parquet(path))
    # Given pairs are written in their order, duplicates kept.
    pairs = frame[["customer_id", "cutoff"]].iloc[::-3].reset_index(drop=True)
    pairs = pd.concat([pairs, pairs.iloc[:7]], ignore_index=True)
    write_task_vectors(path, _synthetic_db, "customers", None, "30D", entities=pairs, chunk_size=20)
    back = pd.read_parquet(path)
    _assert_frames_close(
        task_vectors(_synthetic_db, "customers", None, "30D", entities=pairs), back
    )
    with pytest.raises(ValueError, match="chunk_size"):
        write_task_vectors(path, _synthetic_db, "customers", cutoffs, "30D", chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        task_vectors(_synthetic_db, "customers", cutoffs, "30D", chunk_size=-5)


def test_buffer_pool_hands_freed_matrices_out_again():
    from sktve.targets.vectors import _BufferPool

    pool = _BufferPool()
    first = pool.take(3, 5)
    assert first.shape == (3, 5) and first.dtype == np.float64
    pool.give(first)
    # A smaller matrix reuses the freed memory; a larger one does not fit it.
    second = pool.take(2, 4)
    assert np.shares_memory(first, second)
    third = pool.take(4, 5)
    assert not np.shares_memory(first, third)
    assert pool.take(0, 7).shape == (0, 7)


def test_allocator_settings_are_restored_only_by_the_outermost_block():
    import threading

    from sktve.targets import vectors

    depths = []
    with vectors._reuse_freed_memory():
        inner = threading.Thread(target=lambda: depths.append(_nested_depth(vectors)))
        inner.start()
        inner.join()
        depths.append(vectors._allocator_depth)
    assert depths == [2, 1]
    assert vectors._allocator_depth == 0


def _nested_depth(vectors):
    with vectors._reuse_freed_memory():
        return vectors._allocator_depth


def test_float_array_marks_nan_null_without_copying():
    import pyarrow as pa

    from sktve.targets.vectors import _float_array

    values = np.array([1.5, np.nan, -2.0, np.nan, 0.0])
    array = _float_array(values)
    assert array.equals(pa.array(values, from_pandas=True))
    assert array.null_count == 2
    assert array.buffers()[1].address == values.ctypes.data
    assert _float_array(np.array([1.0, 2.0])).null_count == 0
