"""Tests of the shared input checks: windows and task tables of (entity id, time) rows."""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from sktve import load_database
from sktve._validation import (
    parse_windows,
    raise_unknown_entities,
    resolve_task_table,
    to_naive_times,
)


@pytest.fixture(scope="module")
def db():
    """users (keys 10, 20, 30) <- orders from 2024-01-01; logs has no primary key."""
    users = pd.DataFrame({"user_id": [10, 20, 30]})
    orders = pd.DataFrame(
        {
            "order_id": [0, 1, 2],
            "user_id": [10, 20, 20],
            "ts": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
        }
    )
    logs = pd.DataFrame({"msg": ["a", "b"]})
    return load_database(
        {"users": users, "orders": orders, "logs": logs},
        schema={
            "users": {"pkey": "user_id"},
            "orders": {"pkey": "order_id", "time_col": "ts", "fkeys": {"user_id": "users"}},
            "logs": {"pkey": None},
        },
    )


def _X(ids=(20, 10, 30), times=("2024-03-01", "2024-02-01", "2024-04-01"), cols=("user_id", "t")):
    return pd.DataFrame({cols[0]: list(ids), cols[1]: pd.to_datetime(list(times))})


# --------------------------------------------------------------------------- parse_windows
@pytest.mark.parametrize(
    "window, expected",
    [
        ("30D", [pd.Timedelta(days=30)]),
        ("30 days", [pd.Timedelta(days=30)]),
        ("12h", [pd.Timedelta(hours=12)]),
        (pd.Timedelta(days=7), [pd.Timedelta(days=7)]),
        (timedelta(days=2), [pd.Timedelta(days=2)]),
        (np.timedelta64(3, "D"), [pd.Timedelta(days=3)]),
        (["7D", "90D", "7 days"], [pd.Timedelta(days=7), pd.Timedelta(days=90)]),
        (("90D", "7D"), [pd.Timedelta(days=90), pd.Timedelta(days=7)]),  # order kept
    ],
)
def test_parse_windows_valid(window, expected):
    assert parse_windows(window) == expected


@pytest.mark.parametrize(
    "window, error, message",
    [
        ("soon", ValueError, "cannot parse window 'soon'"),
        ("30", ValueError, "has no unit"),  # pandas would read 30 nanoseconds
        ("0D", ValueError, "positive"),
        ("-5D", ValueError, "positive"),
        ([], ValueError, "empty"),
        (30, TypeError, "got int 30"),
        (["7D", 1.5], TypeError, "got float"),
        (None, TypeError, "got NoneType"),
    ],
)
def test_parse_windows_invalid(window, error, message):
    with pytest.raises(error, match=message):
        parse_windows(window)


def test_parse_windows_names_the_parameter():
    with pytest.raises(ValueError, match="horizon must be a positive"):
        parse_windows("0h", name="horizon")


# --------------------------------------------------------------------------- to_naive_times
def test_to_naive_times():
    aware = pd.Series(pd.to_datetime(["2024-01-01 01:00"]).tz_localize("Europe/Paris"))
    with pytest.warns(UserWarning, match=r"times is timezone-aware \(Europe/Paris\)"):
        assert to_naive_times(aware).iloc[0] == pd.Timestamp("2024-01-01 00:00")
    strings = to_naive_times(["2024-01-01", "2024-01-02T12:00"])
    assert strings.dtype == "datetime64[ns]" and strings.iloc[1] == pd.Timestamp("2024-01-02 12:00")
    with pytest.raises(ValueError, match="numeric"):
        to_naive_times([1, 2])
    with pytest.raises(ValueError, match="not timestamps"):
        to_naive_times(["yesterday-ish"])
    # strings with different UTC offsets parse into UTC, as timezone-aware times
    with pytest.warns(UserWarning, match="timezone-aware"):
        mixed = to_naive_times(["2024-01-01T02:00+02:00", "2024-06-01T01:00+01:00"])
    assert mixed.tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-01")]


# --------------------------------------------------------------------------- resolve_task_table
def test_columns_are_inferred(db):
    rows = resolve_task_table(_X(), db, "users")
    assert (rows.entity_col, rows.time_col) == ("user_id", "t")
    np.testing.assert_array_equal(rows.keys, [20, 10, 30])
    np.testing.assert_array_equal(rows.positions, [1, 0, 2])
    assert rows.times.dtype == "datetime64[ns]"
    assert rows.times[0] == np.datetime64("2024-03-01")
    assert rows.times_ns[0] == pd.Timestamp("2024-03-01").value
    assert not rows.unknown.any()


def test_entity_column_inferred_when_it_is_the_only_other(db):
    rows = resolve_task_table(_X(cols=("uid", "when")), db, "users")
    assert (rows.entity_col, rows.time_col) == ("uid", "when")


def test_explicit_column_names(db):
    X = _X(cols=("who", "cutoff")).assign(other_time=pd.Timestamp("2024-01-01"))
    X = X.drop(columns="other_time")
    rows = resolve_task_table(X, db, "users", entity_col="who", time_col="cutoff")
    np.testing.assert_array_equal(rows.positions, [1, 0, 2])
    with pytest.raises(ValueError, match="no column 'nope'"):
        resolve_task_table(X, db, "users", entity_col="nope", time_col="cutoff")
    with pytest.raises(ValueError, match="must be different.*name the entity id column"):
        resolve_task_table(X, db, "users", entity_col="cutoff", time_col="cutoff")


def test_ambiguous_columns_raise(db):
    X = _X().assign(t2=pd.Timestamp("2024-01-01"))
    with pytest.raises(ValueError, match="pass time_col"):
        resolve_task_table(X, db, "users")
    X = _X(cols=("a", "t")).assign(b=1)
    with pytest.raises(ValueError, match="pass entity_col"):
        resolve_task_table(X, db, "users")


def test_extra_columns_raise(db):
    X = _X().assign(label=[0, 1, 0])
    with pytest.raises(ValueError, match=r"columns \['label'\].*leak"):
        resolve_task_table(X, db, "users")
    with pytest.raises(ValueError, match="leak"):
        resolve_task_table(X, db, "users", entity_col="user_id", time_col="t")


def test_empty_and_missing_values_raise(db):
    with pytest.raises(ValueError, match="X is empty"):
        resolve_task_table(_X(ids=(), times=()), db, "users")
    X = _X()
    X.loc[1, "t"] = pd.NaT
    with pytest.raises(ValueError, match="1 missing times.*drop or fill"):
        resolve_task_table(X, db, "users")
    X = _X().astype({"user_id": float})
    X.loc[0, "user_id"] = np.nan
    with pytest.raises(ValueError, match="1 missing entity ids"):
        resolve_task_table(X, db, "users")


def test_time_column_kinds(db):
    X = _X()
    X["t"] = X["t"].dt.tz_localize("America/New_York")
    with pytest.warns(UserWarning, match="timezone-aware") as caught:
        rows = resolve_task_table(X, db, "users", time_col="t")
    assert rows.times[0] == np.datetime64("2024-03-01T05:00")  # UTC, naive
    # the database's own warning, word for word after the name of the times
    users = pd.DataFrame({"user_id": [10]})
    orders = pd.DataFrame({"order_id": [0], "user_id": [10], "ts": X["t"].iloc[:1]})
    with pytest.warns(UserWarning, match="timezone-aware") as caught_db:
        load_database(
            {"users": users, "orders": orders},
            schema={
                "users": {"pkey": "user_id"},
                "orders": {"pkey": "order_id", "time_col": "ts", "fkeys": {"user_id": "users"}},
            },
        )
    x_text, db_text = str(caught[0].message), str(caught_db[0].message)
    assert x_text.startswith("X['t'] is timezone-aware")
    assert db_text.startswith("time column orders.ts is timezone-aware")
    assert x_text.split(" is ", 1)[1] == db_text.split(" is ", 1)[1]
    X = _X()
    X["t"] = ["2024-03-01", "2024-02-01", "2024-04-01"]
    rows = resolve_task_table(X, db, "users", time_col="t")
    assert rows.times[1] == np.datetime64("2024-02-01")
    X["t"] = [1, 2, 3]
    with pytest.raises(ValueError, match="numeric"):
        resolve_task_table(X, db, "users", time_col="t")


def test_unknown_ids_get_minus_one(db):
    rows = resolve_task_table(_X(ids=(20, 99, 10)), db, "users")
    np.testing.assert_array_equal(rows.positions, [1, -1, 0])
    np.testing.assert_array_equal(rows.unknown, [False, True, False])
    with pytest.raises(ValueError, match=r"1 rows of X name entities.*\[99\]"):
        raise_unknown_entities(rows, "users")
    raise_unknown_entities(resolve_task_table(_X(), db, "users"), "users")  # no error


def test_float_ids_are_matched_when_integral(db):
    rows = resolve_task_table(_X().astype({"user_id": float}), db, "users")
    np.testing.assert_array_equal(rows.positions, [1, 0, 2])
    with pytest.raises(ValueError, match="non-integer ids"):
        resolve_task_table(_X(ids=(20.5, 10, 30)), db, "users")


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
@pytest.mark.parametrize("container", ["array", "object array", "frame"])
def test_numeric_times_are_refused_everywhere(db, unit, container):
    epoch = pd.Timestamp("2024-03-01").value // {"s": 10**9, "ms": 10**6, "ns": 1}[unit]
    if container == "frame":
        X = pd.DataFrame({"user_id": [20, 30], "t": [epoch, epoch + 1]})
    else:
        X = np.array(
            [[20, epoch], [30, epoch + 1]], dtype=object if "object" in container else None
        )
    with pytest.raises(ValueError, match=r"numeric.*pd\.to_datetime\(values, unit='s'\)") as err:
        resolve_task_table(X, db, "users", time_col="t" if container == "frame" else None)
    assert not isinstance(err.value, pd.errors.OutOfBoundsDatetime)
    if container == "frame":  # without time_col, inference says the same
        with pytest.raises(ValueError, match=r"no datetime column.*unit='s'"):
            resolve_task_table(X, db, "users")


def test_two_column_arrays(db):
    for times in (
        [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-01 01:00")],
        [np.datetime64("2024-03-01"), np.datetime64("2024-03-01T01:00")],
        ["2024-03-01", "2024-03-01 01:00"],
    ):
        X = np.empty((2, 2), dtype=object)
        X[:, 0], X[:, 1] = [20, 30], times
        rows = resolve_task_table(X, db, "users")
        assert (rows.entity_col, rows.time_col) == ("user_id", "time")
        np.testing.assert_array_equal(rows.positions, [1, 2])
        assert rows.times[1] == np.datetime64("2024-03-01T01:00")
    with pytest.raises(ValueError, match="outside the range sktve stores") as err:
        resolve_task_table(np.array([[20, "3000-01-01"]], dtype=object), db, "users")
    assert not isinstance(err.value, pd.errors.OutOfBoundsDatetime)
    with pytest.raises(ValueError, match=r"shape \(n_rows, 2\)"):
        resolve_task_table(np.zeros((3, 3)), db, "users")
    with pytest.raises(ValueError, match=r"shape \(n_rows, 2\)"):
        resolve_task_table(np.zeros(3), db, "users")


def test_string_ids_against_integer_keys(db):
    X = _X().astype({"user_id": str})
    with pytest.warns(UserWarning) as caught:
        rows = resolve_task_table(X, db, "users")
    np.testing.assert_array_equal(rows.positions, [1, 0, 2])
    np.testing.assert_array_equal(rows.keys, [20, 10, 30])
    (message,) = [str(w.message) for w in caught]
    assert message.startswith("X['user_id'] holds strings")
    assert "users.user_id holds numbers (int64)" in message
    assert "converted to numbers to match (e.g. '20' -> 20)" in message
    with pytest.raises(ValueError) as err:
        resolve_task_table(_X(ids=("u20", "10", "30")), db, "users")
    text = str(err.value)
    assert "X['user_id'] (" in text and "users.user_id (int64, e.g. [10, 20, 30])" in text
    assert "e.g. ['u20', '10', '30']" in text and "Cast one side" in text


def test_integer_ids_against_string_keys():
    users = pd.DataFrame({"user_id": ["10", "20"]})
    orders = pd.DataFrame(
        {"order_id": [0], "user_id": ["10"], "ts": pd.to_datetime(["2024-01-01"])}
    )
    schema = {
        "users": {"pkey": "user_id"},
        "orders": {"pkey": "order_id", "time_col": "ts", "fkeys": {"user_id": "users"}},
    }
    db = load_database({"users": users, "orders": orders}, schema=schema)
    X = _X(ids=(20, 10), times=("2024-03-01", "2024-03-01"))
    with pytest.warns(UserWarning, match=r"converted to strings to match \(e.g. 20 -> '20'\)"):
        rows = resolve_task_table(X, db, "users")
    np.testing.assert_array_equal(rows.positions, [1, 0])
    text_keys = load_database(
        {"users": pd.DataFrame({"user_id": ["a", "b"]}), "orders": orders.assign(user_id="a")},
        schema=schema,
    )
    with pytest.raises(ValueError, match=r"users\.user_id \(.*e\.g\. \['a', 'b'\]\).*Cast"):
        resolve_task_table(X, text_keys, "users")


def test_warning_for_times_before_the_database_starts(db):
    X = _X(times=("2023-06-01", "2024-02-01", "2023-01-01"))
    with pytest.warns(UserWarning, match="2 rows of X have times before the database starts"):
        resolve_task_table(X, db, "users")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_task_table(X, db, "users", warn_before_start=False)
        resolve_task_table(_X(), db, "users")  # all after the start: no warning


def test_entity_table_needs_a_primary_key(db):
    with pytest.raises(ValueError, match="has no primary key"):
        resolve_task_table(_X(), db, "logs")
    with pytest.raises(KeyError, match="unknown table"):
        resolve_task_table(_X(), db, "shops")
