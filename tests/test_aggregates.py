"""Tests of sktve.aggregates.AggregateFeatures (history windows before each time)."""

from __future__ import annotations

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline

import sktve
from sktve.aggregates import AggregateFeatures
from sktve.targets import enumerate_paths

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from pandas_reference import reference_aggregates  # noqa: E402
from test_targets import _perturbed, _tiny_frames  # noqa: E402

RELF1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "rel-f1"


@pytest.fixture(scope="module")
def _agg_db():
    frames, schema = _tiny_frames()
    return sktve.load_database(frames, schema=schema)


@pytest.fixture(scope="module")
def _agg_relf1():
    if not RELF1.exists():
        pytest.skip(f"rel-f1 data not found at {RELF1}")
    return sktve.load_database(str(RELF1))


def _task(keys, times, key="user_id", time="when"):
    return pd.DataFrame({key: keys, time: pd.to_datetime(times)}, index=[f"r{i}" for i in keys])


def test_values_match_reference(_agg_db):
    X = pd.DataFrame(
        {
            "user_id": [0, 0, 1, 2, 3, 0],
            "when": pd.to_datetime(
                ["2024-01-05", "2024-01-11", "2024-01-05", "2024-02-15", "2024-01-05", "2024-01-01"]
            ),
        }
    )
    agg = AggregateFeatures(
        database=_agg_db,
        entity_table="users",
        window=["5D", "30D"],
        max_columns=None,
        entity_columns=False,  # window-free features: tests/test_entity_profile.py
        recency=False,
    )
    out = agg.fit_transform(X)
    assert out.dtype == np.float32 and out.shape == (6, len(agg.get_feature_names_out()))
    paths = enumerate_paths(_agg_db, "users")
    ref = reference_aggregates(
        _agg_db,
        "users",
        X["user_id"].to_numpy(),
        X["when"].to_numpy(),
        sktve._validation.parse_windows(["5D", "30D"]),
        paths,
        direction="past",
    )
    for j, name in enumerate(agg.get_feature_names_out()):
        if "=" in name:
            source, category = name.split("=", 1)
            want = (ref[source].astype(object) == category).to_numpy(dtype=np.float32)
        else:
            want = ref[name].to_numpy(dtype=np.float32)
        np.testing.assert_allclose(out[:, j], want, rtol=1e-6, equal_nan=True, err_msg=name)
    # the row at t is included (history window is (t - w, t])
    names = agg.get_feature_names_out().tolist()
    # user 0 at 2024-01-01 has one order at exactly that instant: it counts
    assert out[5, names.index("5D|orders|*|count")] == 1


def test_drops_all_nan_and_constant_columns(_agg_db):
    X = _task([0, 1], ["2024-01-05", "2024-01-05"])
    agg = AggregateFeatures(database=_agg_db, entity_table="users", window="5D").fit(X)
    out = agg.transform(X)
    assert not np.isnan(out).all(axis=0).any()
    assert agg.dropped_constant_
    # HistGradientBoosting right after it must work (all-NaN columns crash it)
    y = np.array([0, 1] * 4)
    X8 = pd.concat([X] * 4, ignore_index=True)
    pipe = make_pipeline(
        AggregateFeatures(database=_agg_db, entity_table="users", window="5D"),
        HistGradientBoostingClassifier(max_iter=5),
    )
    pipe.fit(X8, y)
    assert pipe.predict_proba(X8).shape == (8, 2)


def test_sklearn_api(_agg_db):
    X = _task([0, 1, 2], ["2024-01-05", "2024-01-20", "2024-02-15"])
    X_before = X.copy()
    agg = AggregateFeatures(database=_agg_db, entity_table="users", window="30D")
    params = agg.get_params()
    assert params["window"] == "30D" and params["database"] is _agg_db
    cloned = clone(agg)
    assert cloned.database is _agg_db
    out = agg.fit(X).transform(X)
    pd.testing.assert_frame_equal(X, X_before)  # X never mutated
    frame = clone(agg).set_output(transform="pandas").fit(X).transform(X)
    assert list(frame.index) == list(X.index)
    assert list(frame.columns) == list(agg.get_feature_names_out())
    np.testing.assert_array_equal(frame.to_numpy(), out)
    restored = pickle.loads(pickle.dumps(agg))
    restored.database = _agg_db  # in-memory databases are re-attached by the user
    np.testing.assert_array_equal(restored.transform(X), out)


def test_unknown_entities_and_bad_params(_agg_db):
    X = _task([0, 99], ["2024-01-05", "2024-01-05"])
    with pytest.raises(ValueError, match="not in table"):
        AggregateFeatures(database=_agg_db, entity_table="users").fit(X)
    agg = AggregateFeatures(database=_agg_db, entity_table="users", handle_unknown="zeros")
    out = agg.fit_transform(_task([0, 1], ["2024-01-05", "2024-01-20"]))
    assert out.shape[0] == 2
    assert (agg.transform(X)[1] == 0).all()
    with pytest.raises(ValueError, match="handle_unknown"):
        AggregateFeatures(database=_agg_db, entity_table="users", handle_unknown="x").fit(X)
    with pytest.raises(ValueError, match="unknown entity table"):
        AggregateFeatures(database=_agg_db, entity_table="nope").fit(X)
    with pytest.raises(ValueError, match="positive"):
        AggregateFeatures(database=_agg_db, entity_table="users", window="0D").fit(X)
    with pytest.raises(TypeError, match="cannot load a database from a int"):
        AggregateFeatures(database=3, entity_table="users").fit(X)
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        AggregateFeatures(database="./no/such/folder", entity_table="users").fit(X)
    with pytest.raises(ValueError, match="needs a database"):
        AggregateFeatures(entity_table="users").fit(X)
    X_nat = pd.DataFrame({"user_id": [0], "when": pd.to_datetime([pd.NaT])})
    with pytest.raises(ValueError, match="NaT"):
        AggregateFeatures(database=_agg_db, entity_table="users").fit(X_nat)


def test_rows_after_t_never_matter(_agg_db):
    boundary = pd.Timestamp("2024-01-11")
    X = _task([0, 1, 2, 0], ["2024-01-03", "2024-01-11", "2024-01-11", "2024-01-11"])
    perturbed = _perturbed(_agg_db, lambda s: s > boundary)
    kwargs = dict(entity_table="users", window=["5D", "30D"], max_columns=None)
    a = AggregateFeatures(database=_agg_db, **kwargs).fit_transform(X)
    b = AggregateFeatures(database=perturbed, **kwargs).fit_transform(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.relf1
def test_rows_after_t_never_matter_relf1(_agg_relf1):
    db = _agg_relf1
    boundary = pd.Timestamp("2000-01-01")
    drivers = np.arange(0, 857, 3)
    X = pd.DataFrame(
        {
            "driverId": np.concatenate([drivers, drivers]),
            "date": np.repeat(pd.to_datetime(["1999-06-01", "2000-01-01"]), len(drivers)),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perturbed = _perturbed(db, lambda s: s > boundary)
    kwargs = dict(entity_table="drivers", window=["30D", "365D"])
    a = AggregateFeatures(database=db, **kwargs)
    out_a = a.fit_transform(X)
    out_b = AggregateFeatures(database=perturbed, **kwargs).fit_transform(X)
    np.testing.assert_array_equal(out_a, out_b)
    assert out_a.shape[1] > 50


def _frames_without(table=None, empty=None, future=None, drop_column=None):
    """The tiny frames with a table removed, emptied, moved after every X time, or a column
    dropped."""
    frames, schema = _tiny_frames()
    if table is not None:
        del frames[table], schema[table]
    if empty is not None:
        frames[empty] = frames[empty].iloc[:0]
    if future is not None:
        frames[future] = frames[future].assign(ts=frames[future]["ts"] + pd.Timedelta("3650D"))
        if future == "orders":  # as references to an emptied table dangle (set to null)
            frames["reviews"] = frames["reviews"].assign(order_id=pd.array([pd.NA] * 5, "Int64"))
    if drop_column is not None:
        name, col = drop_column.split(".")
        frames[name] = frames[name].drop(columns=col)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # references to an emptied table dangle
        return sktve.load_database(frames, schema=schema)


def test_changed_database_gets_a_clear_error(_agg_db):
    X = _task([0, 1, 2], ["2024-01-05", "2024-01-20", "2024-02-15"])
    agg = AggregateFeatures(database=_agg_db, entity_table="users", window="30D").fit(X)
    with pytest.raises(ValueError, match=r"schema differs.*tables missing: \['reviews'\].*Refit"):
        agg.set_params(database=_frames_without(table="reviews")).transform(X)
    with pytest.raises(ValueError, match=r"lacks columns .*\['orders\.amount'\].*Refit"):
        agg.set_params(database=_frames_without(drop_column="orders.amount")).transform(X)
    # the same check as the featurizer's (one helper, one message)
    from sktve.graph import GraphFeaturizer

    with pytest.raises(ValueError, match=r"schema differs.*tables missing: \['reviews'\]"):
        GraphFeaturizer().fit(_agg_db).transform(_frames_without(table="reviews"))


@pytest.mark.parametrize("table", ["reviews", "orders"])
def test_empty_fact_table_gives_features_of_no_rows(_agg_db, table):
    X = _task([0, 1, 2, 3], ["2024-01-05", "2024-01-20", "2024-02-15", "2024-03-01"])
    empty, future = _frames_without(empty=table), _frames_without(future=table)
    kwargs = dict(entity_table="users", window=["5D", "30D"], max_columns=None)
    # an empty table reads as one whose rows all lie after every time of X (and whose
    # references, dangling, are null)
    fitted = AggregateFeatures(database=_agg_db, **kwargs).fit(X)
    on_empty = fitted.set_params(database=empty).transform(X)
    np.testing.assert_array_equal(on_empty, fitted.set_params(database=future).transform(X))
    names = fitted.get_feature_names_out().tolist()
    assert (on_empty[:, names.index(f"30D|{table}|*|count")] == 0).all()
    # and fitting on the early snapshot works too
    fit_empty = AggregateFeatures(database=empty, **kwargs)
    out = fit_empty.fit_transform(X)
    np.testing.assert_array_equal(out, fit_empty.transform(X))
    fit_future = AggregateFeatures(database=future, **kwargs)
    np.testing.assert_array_equal(out, fit_future.fit_transform(X))
    assert fit_empty.get_feature_names_out().tolist() == fit_future.get_feature_names_out().tolist()


def test_database_given_as_path(synthetic_path, monkeypatch):
    import sktve.aggregates as module

    X = pd.DataFrame({"customer_id": np.arange(30), "timestamp": pd.Timestamp("2022-06-01")})
    kwargs = dict(entity_table="customers", window="30D")
    agg = AggregateFeatures(database=str(synthetic_path), **kwargs).fit(X)
    assert isinstance(agg.database_, sktve.Database)
    assert agg.get_params()["database"] == str(synthetic_path)  # the parameter, untouched
    expected = AggregateFeatures(database=sktve.load_database(synthetic_path), **kwargs)
    np.testing.assert_array_equal(agg.transform(X), expected.fit_transform(X))
    loads = []
    original = module.load_database
    monkeypatch.setattr(
        module, "load_database", lambda *a, **k: loads.append(1) or original(*a, **k)
    )
    first = agg.transform(X)
    assert loads == []  # the fitted handle serves transform; no reload per call
    np.testing.assert_array_equal(clone(agg).fit_transform(X), first)
    restored = pickle.loads(pickle.dumps(agg))
    assert len(pickle.dumps(agg)) < 100_000  # the handle pickles without its frames
    np.testing.assert_array_equal(restored.transform(X), first)


# ---------------------------------------------------------------- as_of (declared data cut)
def _add_rows_after(db, boundary) -> sktve.Database:
    """Copy of db plus a copy of every timestamped row later than ``boundary`` (new keys)."""
    frames = {}
    for name in db.table_names:
        frame = db.table(name)
        time_col, pkey = db.time_col(name), db.pkey(name)
        if time_col is not None:
            late = frame[frame[time_col] > boundary].copy()
            if pkey is not None:
                late[pkey] = frame[pkey].max() + 1 + np.arange(len(late))
            late[time_col] = late[time_col] + pd.Timedelta("1D")
            frame = pd.concat([frame, late], ignore_index=True)
        frames[name] = frame
    schema = {name: db.schema[name] for name in db.table_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sktve.load_database(frames, schema=schema)


_CUT = pd.Timestamp("2024-01-11")
_CUT_X_TIMES = ["2024-01-03", "2024-01-20", "2024-02-15", "2024-03-01", "2024-01-11"]


def test_as_of_rows_after_the_cut_never_matter(_agg_db):
    X = _task([0, 1, 2, 3, 0], _CUT_X_TIMES)
    kwargs = dict(entity_table="users", window=["5D", "30D"], max_columns=None, as_of=_CUT)
    a = AggregateFeatures(database=_agg_db, **kwargs)
    out = a.fit_transform(X)
    future = _add_rows_after(_perturbed(_agg_db, lambda s: s > _CUT), _CUT)
    b = AggregateFeatures(database=future, **kwargs)
    # Fit freezes the same state, and every row (also those after the cut) is the same.
    np.testing.assert_array_equal(b.fit_transform(X), out)
    assert list(b.get_feature_names_out()) == list(a.get_feature_names_out())
    assert b.paths_ == a.paths_ and b._spec == a._spec
    np.testing.assert_array_equal(b.transform(X), a.transform(X))
    # Not vacuous: without the cut the future rows do change the features.
    plain = {**kwargs, "as_of": None}
    c = AggregateFeatures(database=_agg_db, **plain).fit_transform(X)
    d = AggregateFeatures(database=future, **plain).fit_transform(X)
    assert c.shape != d.shape or not np.array_equal(c, d)


def test_as_of_row_after_the_cut_equals_the_row_at_the_cut(_agg_db):
    X = _task([0, 1, 2, 3, 0], _CUT_X_TIMES)
    agg = AggregateFeatures(database=_agg_db, entity_table="users", window="30D", as_of=_CUT)
    out = agg.fit_transform(X)
    at_cut = X.assign(when=np.minimum(X["when"], _CUT))
    np.testing.assert_array_equal(agg.transform(at_cut), out)
    assert agg.as_of_ == _CUT


def test_as_of_none_or_after_every_row_is_unchanged(_agg_db):
    X = _task([0, 1, 2, 3, 0], _CUT_X_TIMES)
    kwargs = dict(entity_table="users", window=["5D", "30D"])
    none = AggregateFeatures(database=_agg_db, **kwargs)
    out = none.fit_transform(X)
    assert none.as_of_ is None
    for later in ("2024-03-01", "2030-01-01"):
        agg = AggregateFeatures(database=_agg_db, as_of=later, **kwargs)
        np.testing.assert_array_equal(agg.fit_transform(X), out)
        assert list(agg.get_feature_names_out()) == list(none.get_feature_names_out())


def test_as_of_parsing(_agg_db):
    X = _task([0, 1], ["2024-01-05", "2024-01-20"])
    aware = pd.Timestamp("2024-01-11 01:00", tz="Europe/Paris")  # UTC+1 in January
    agg = AggregateFeatures(database=_agg_db, entity_table="users", window="30D", as_of=aware)
    out = agg.fit_transform(X)
    assert agg.as_of_ == _CUT and agg.as_of_.tzinfo is None
    naive = AggregateFeatures(database=_agg_db, entity_table="users", window="30D", as_of=_CUT)
    np.testing.assert_array_equal(naive.fit_transform(X), out)
    with pytest.raises(ValueError, match="cannot parse as_of"):
        AggregateFeatures(database=_agg_db, entity_table="users", as_of="soon").fit(X)
    with pytest.raises(TypeError, match="as_of must be one timestamp"):
        AggregateFeatures(database=_agg_db, entity_table="users", as_of=[_CUT]).fit(X)


def test_integer_status_codes_become_categories_relf1(_agg_relf1):
    """results.statusId is a code (1 = finished): one-hot modes, not a mean of codes."""
    drivers = np.arange(0, 857, 5)
    X = pd.DataFrame({"driverId": drivers, "date": pd.Timestamp("2004-06-01")})
    agg = AggregateFeatures(
        database=_agg_relf1, entity_table="drivers", window="365D", max_hops=1
    ).fit(X)
    names = list(agg.get_feature_names_out())
    status = [n for n in names if "|results|statusId|" in n]
    assert "365D|results|statusId|mode=1" in status
    assert not any(n.endswith(("statusId|mean", "statusId|max")) for n in status)
    out = agg.transform(X)
    finished_mode = out[:, names.index("365D|results|statusId|mode=1")]
    assert set(np.unique(finished_mode)) <= {0.0, 1.0} and finished_mode.sum() > 0
