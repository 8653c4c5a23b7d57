"""Tests of the seasonal counts (sktve._seasonal) that AggregateFeatures(seasonal=...) adds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sktve
from sktve._seasonal import N_SEASONS, parse_season
from sktve.aggregates import AggregateFeatures

SCHEMA = {
    "users": {"pkey": "user_id"},
    "orders": {"pkey": "order_id", "time_col": "ts", "fkeys": {"user_id": "users"}},
    "events": {"pkey": "event_id", "time_col": "at"},
}


def _frames():
    users = pd.DataFrame({"user_id": [0, 1]})
    orders = pd.DataFrame(
        {
            "order_id": range(7),
            "user_id": [0, 0, 0, 1, 0, 1, 1],
            "ts": pd.to_datetime(
                [
                    "2021-12-05",
                    "2021-12-20",
                    "2022-12-10",
                    "2022-06-01",
                    "2023-12-03",
                    "2023-12-04",
                    "2021-07-01",
                ]
            ),
            "amount": np.arange(7.0),
        }
    )
    # A table no entity references: the calendar of the whole database.
    events = pd.DataFrame(
        {"event_id": range(3), "at": pd.to_datetime(["2021-06-01", "2022-12-15", "2023-12-20"])}
    )
    return {"users": users, "orders": orders, "events": events}


def _db(frames=None):
    return sktve.load_database(frames or _frames(), schema=SCHEMA)


def _seasonal(X, database=None, **params):
    agg = AggregateFeatures(
        database=database or _db(), entity_table="users", window=["30D", "365D"], **params
    )
    out = agg.fit_transform(X)
    names = list(agg.get_feature_names_out())
    return pd.DataFrame(out, columns=names).filter(like="seasonal")


X = pd.DataFrame(
    {
        "user_id": [0, 1, 0, 0],
        "ts": pd.to_datetime(["2024-12-01", "2024-12-01", "2022-12-01", "2026-12-01"]),
    }
)


def _reference(frames, user, t, limit, window):
    """The definition, one row at a time: the latest N_SEASONS shifted windows that end by
    ``limit`` and start at or after the table's first row, their counts averaged."""
    season = pd.Timedelta(days=365)
    out = {}
    for table, time_col, by_user in (("orders", "ts", True), ("orders", "ts", False)):
        frame = frames[table]
        counts, k = [], 1
        while len(counts) < N_SEASONS:
            start = t - k * season
            k += 1
            if start < frame[time_col].min():
                break
            if start + window > limit:
                continue
            inside = (frame[time_col] > start) & (frame[time_col] <= start + window)
            if by_user:
                inside &= frame["user_id"] == user
            counts.append(int(inside.sum()))
        name = "seasonal_count" if by_user else "seasonal_count_all"
        out[name] = np.mean(counts) if counts else np.nan
    return out


def test_values_by_hand():
    out = _seasonal(X, seasonal=True)
    # Only windows shorter than the season get counts; every timestamped table counts
    # all its rows, and tables referencing the entity its own rows.
    assert list(out.columns) == [
        "30D|orders|seasonal_count_all",
        "30D|events|seasonal_count_all",
        "30D|orders|seasonal_count",
    ]
    # User 0 on 2024-12-01: (2023-12-02, 2024-01-01] holds two orders (one its own),
    # (2022-12-02, 2023-01-01] one (its own), (2021-12-03, 2022-01-02] two (both its own).
    np.testing.assert_allclose(out.iloc[0], [5 / 3, 2 / 3, 4 / 3])
    np.testing.assert_allclose(out.iloc[1, [0, 2]], [5 / 3, 1 / 3])
    # 2022-12-01: one season back only; two seasons back precedes the first order.
    np.testing.assert_allclose(out.iloc[2], [2, 0, 2])


def test_matches_the_definition_row_by_row():
    rng = np.random.default_rng(0)
    n = 300
    frames = _frames()
    frames["orders"] = pd.DataFrame(
        {
            "order_id": range(n),
            "user_id": rng.integers(0, 2, n),
            "ts": pd.Timestamp("2019-03-01")
            + pd.to_timedelta(rng.integers(0, 6 * 365 * 24, n), unit="h"),
            "amount": rng.normal(size=n),
        }
    )
    times = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 8 * 365, 40), unit="D")
    X_random = pd.DataFrame({"user_id": rng.integers(0, 2, 40), "ts": times})
    as_of = pd.Timestamp("2023-06-15")
    out = _seasonal(X_random, _db(frames), seasonal=True, as_of=as_of)
    for i, (user, t) in enumerate(zip(X_random["user_id"], X_random["ts"])):
        expected = _reference(frames, user, t, min(t, as_of), pd.Timedelta("30D"))
        got = out.iloc[i]
        for name, value in expected.items():
            np.testing.assert_allclose(got[f"30D|orders|{name}"], value, equal_nan=True)
    assert out.notna().any().all() and out.isna().any().any()


def test_a_row_after_the_cut_reads_nothing_after_it():
    as_of = pd.Timestamp("2025-01-01")
    out = _seasonal(X, seasonal=True, as_of=as_of)
    # 2026-12-01, cut 2025-01-01: the latest window ending by the cut is two seasons back
    # (2024-12-01 + 30 days), then three and four: 0 + 2 + 1 orders, 0 + 1 + 1 its own.
    np.testing.assert_allclose(out.iloc[3, [0, 2]], [1.0, 2 / 3])
    # Perturb everything after the cut: nothing changes, the row after it included.
    frames = _frames()
    late = frames["orders"].assign(
        order_id=lambda f: f["order_id"] + 100, ts=pd.Timestamp("2025-12-10")
    )
    frames["orders"] = pd.concat([frames["orders"], late], ignore_index=True)
    pd.testing.assert_frame_equal(_seasonal(X, _db(frames), seasonal=True, as_of=as_of), out)
    # Not vacuous: without the cut those rows do count for the row of 2026-12-01.
    plain = _seasonal(X, _db(frames), seasonal=True)
    assert plain.iloc[3, 0] != _seasonal(X, seasonal=True).iloc[3, 0]


def test_rows_after_t_never_matter():
    frames = _frames()
    boundary = pd.Timestamp("2022-12-01")
    shifted = frames["orders"]["ts"].where(
        frames["orders"]["ts"] <= boundary, frames["orders"]["ts"] + pd.Timedelta("3D")
    )
    perturbed = {**frames, "orders": frames["orders"].assign(ts=shifted)}
    X_at = X.assign(ts=pd.Timestamp("2022-12-01"))
    pd.testing.assert_frame_equal(
        _seasonal(X_at, _db(perturbed), seasonal=True), _seasonal(X_at, seasonal=True)
    )


def test_a_row_date_places_the_windows_after_the_cut():
    # Two rows after the cut, months apart: their windowed aggregates are the cut's, their
    # seasonal counts are those of their own calendar weeks.
    X_late = pd.DataFrame({"user_id": [0, 0], "ts": pd.to_datetime(["2025-06-10", "2025-12-10"])})
    agg = AggregateFeatures(
        database=_db(), entity_table="users", window="30D", seasonal=True, as_of="2025-01-01"
    )
    out = pd.DataFrame(agg.fit_transform(X_late), columns=agg.get_feature_names_out())
    plain = out.drop(columns=[c for c in out.columns if "seasonal" in c])
    pd.testing.assert_series_equal(plain.iloc[0], plain.iloc[1], check_names=False)
    cut = pd.Timestamp("2025-01-01")
    expected = [
        _reference(_frames(), 0, t, cut, pd.Timedelta("30D"))["seasonal_count"]
        for t in X_late["ts"]
    ]
    np.testing.assert_allclose(out["30D|orders|seasonal_count"], expected)
    assert expected[0] != expected[1]


def test_weekly_season_and_off():
    out = _seasonal(X, seasonal="7D")
    assert not any(c.startswith("365D") for c in out.columns)
    # A 30-day window is longer than a week-long season: no counts at all.
    assert out.shape[1] == 0
    # 2021-12-11: the week before holds the order of 2021-12-05, the two before none.
    X_week = pd.DataFrame({"user_id": [0, 0], "ts": pd.to_datetime(["2021-12-11", "2022-06-01"])})
    weekly = AggregateFeatures(database=_db(), entity_table="users", window="3D", seasonal="7D")
    out = pd.DataFrame(weekly.fit_transform(X_week), columns=weekly.get_feature_names_out())
    np.testing.assert_allclose(out["3D|orders|seasonal_count"], [1 / 3, 0])
    assert _seasonal(X, seasonal=False).shape[1] == 0
    assert _seasonal(X).shape[1] == 0  # off unless asked for


@pytest.mark.parametrize("bad", ["yearly", "-7D", "0D", 3.5])
def test_bad_season_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="seasonal must be"):
        AggregateFeatures(database=_db(), entity_table="users", seasonal=bad).fit(X)


def test_parse_season():
    assert parse_season(True) == pd.Timedelta(days=365)
    assert parse_season("7D") == pd.Timedelta(days=7)
    assert parse_season(None) is None and parse_season(False) is None


def test_user_frames_untouched():
    frames = _frames()
    copies = {name: frame.copy() for name, frame in frames.items()}
    X_copy = X.copy()
    _seasonal(X, _db(frames), seasonal=True, as_of="2024-01-01")
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(frame, copies[name])
    pd.testing.assert_frame_equal(X, X_copy)


@pytest.mark.relf1
def test_rows_after_the_cut_never_matter_relf1(relf1_db):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_aggregates import _add_rows_after

    cut = pd.Timestamp("2005-01-01")
    drivers = np.arange(0, 857, 5)
    X_f1 = pd.DataFrame(
        {
            "driverId": np.tile(drivers, 3),
            "date": np.repeat(
                pd.to_datetime(["2004-06-01", "2006-05-01", "2007-09-01"]), len(drivers)
            ),
        }
    )
    kwargs = dict(entity_table="drivers", window=["30D", "365D"], seasonal=True, as_of=cut)
    agg = AggregateFeatures(database=relf1_db, **kwargs)
    out = agg.fit_transform(X_f1)
    names = list(agg.get_feature_names_out())
    assert "30D|races|seasonal_count_all" in names and "30D|results|seasonal_count" in names
    # Every row after the cut doubled (copies a day later, new keys): counts would change.
    future = _add_rows_after(relf1_db, cut)
    np.testing.assert_array_equal(
        AggregateFeatures(database=future, **kwargs).fit_transform(X_f1), out
    )
    plain = {**kwargs, "as_of": None}
    before = AggregateFeatures(database=relf1_db, **plain).fit_transform(X_f1)
    after = AggregateFeatures(database=future, **plain).fit_transform(X_f1)
    assert before.shape != after.shape or not np.array_equal(before, after)
    # Rows after the cut, a season apart in date, get different calendar counts.
    races = out[:, names.index("30D|races|seasonal_count_all")]
    assert not np.array_equal(races[len(drivers) : 2 * len(drivers)], races[2 * len(drivers) :])
