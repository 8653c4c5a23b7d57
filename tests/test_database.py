"""Tests of the Database handle: loaders, validation, light-handle semantics, accessors."""

from __future__ import annotations

import copy
import gc
import pickle
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import relbench
from sklearn.base import BaseEstimator, clone

from sktve import Database, DatabaseNotAttachedError, load_database
from sktve.database import ForeignKey, TableSchema


def _tiny():
    """Fresh frames and schema: users <- orders -> items, orders timestamped."""
    tables = {
        "users": pd.DataFrame({"user_id": [0, 1, 2], "name": ["ann", "bob", "cy"]}),
        "items": pd.DataFrame({"item_id": [10, 11], "price": [1.5, 2.5]}),
        "orders": pd.DataFrame(
            {
                "order_id": [0, 1, 2, 3],
                "user_id": [0, 1, 1, 2],
                "item_id": [10, 11, 10, 11],
                "ts": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-02-01", "2024-03-01"]),
                "qty": [1, 2, 3, 4],
            }
        ),
    }
    schema = {
        "users": {"pkey": "user_id"},
        "items": {"pkey": "item_id", "time_col": None, "fkeys": {}},
        "orders": {
            "pkey": "order_id",
            "time_col": "ts",
            "fkeys": {"user_id": "users", "item_id": "items"},
        },
    }
    return tables, schema


class _Holder(BaseEstimator):
    """A minimal estimator with a database parameter, as sktve estimators have."""

    def __init__(self, database=None, alpha=1.0):
        self.database = database
        self.alpha = alpha


# --------------------------------------------------------------------------- loaders
def test_load_dict_with_schema():
    tables, schema = _tiny()
    db = load_database(tables, schema=schema)
    assert isinstance(db, Database)
    assert db.spec == {"kind": "in-memory"}
    assert db.table_names == ["users", "items", "orders"]
    assert db.num_rows() == 9 and db.num_rows("orders") == 4
    assert db.schema["orders"] == TableSchema(
        "order_id", "ts", {"user_id": "users", "item_id": "items"}
    )
    assert db.min_timestamp == pd.Timestamp("2024-01-01")
    assert db.max_timestamp == pd.Timestamp("2024-03-01")
    assert db.time_range("users") is None and not db.is_temporal("users")
    assert "orders" in db and list(db) == db.table_names


def test_dict_needs_schema_and_schema_needs_dict(small_db):
    tables, schema = _tiny()
    with pytest.raises(ValueError, match="needs a schema"):
        load_database(tables)
    with pytest.raises(ValueError, match="only used with a dict"):
        load_database(small_db, schema=schema)
    with pytest.raises(ValueError, match="only used with a dict"):
        load_database("/nonexistent/folder", schema=schema)


def test_schema_accepts_table_schema_objects():
    tables, schema = _tiny()
    parsed = {name: TableSchema.from_any(name, spec) for name, spec in schema.items()}
    db = load_database(tables, schema=parsed)
    assert db.fkeys("orders") == {"user_id": "users", "item_id": "items"}


@pytest.mark.parametrize("as_path", [False, True])
def test_load_synthetic_folder(synthetic_path, as_path):
    source = synthetic_path if as_path else str(synthetic_path)
    db = load_database(source)
    assert db.spec["kind"] == "folder"
    assert Path(db.spec["source"]) == synthetic_path.resolve()
    assert db.val_timestamp == pd.Timestamp("2023-01-01")
    assert db.test_timestamp == pd.Timestamp("2023-07-01")
    assert db.max_timestamp <= db.test_timestamp
    full = load_database(source, upto_test_timestamp=False)
    assert full.max_timestamp > full.test_timestamp
    assert full.num_rows("orders") == 5000 > db.num_rows("orders")


@pytest.mark.relf1
def test_load_relf1_folder(relf1_db):
    assert relf1_db.num_rows() == 74_063
    assert len(relf1_db.table_names) == 9
    assert relf1_db.val_timestamp == pd.Timestamp("2005-01-01")
    assert relf1_db.test_timestamp == pd.Timestamp("2010-01-01")
    assert relf1_db.max_timestamp <= relf1_db.test_timestamp
    assert relf1_db.time_col("drivers") is None and relf1_db.time_col("results") == "date"
    assert relf1_db.fkeys("results") == {
        "raceId": "races",
        "driverId": "drivers",
        "constructorId": "constructors",
    }


def test_load_relbench_dataset_object(synthetic_path):
    dataset = relbench.load_dataset(str(synthetic_path))
    db = load_database(dataset)
    assert db.spec["kind"] == "folder"
    assert db.test_timestamp == dataset.test_timestamp
    assert db.fingerprint == load_database(synthetic_path).fingerprint


def test_load_relbench_database_object(synthetic_path):
    rdb = relbench.load_dataset(str(synthetic_path)).get_db()
    db = load_database(rdb)
    assert db.spec == {"kind": "relbench-database"}
    assert db.val_timestamp is None
    assert db.num_rows() == sum(len(t) for t in rdb.table_dict.values())
    assert db.fkeys("orders") == {"customer_id": "customers", "product_id": "products"}


def test_sktve_database_passes_through(small_db):
    assert load_database(small_db) is small_db


def test_bad_sources_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        load_database("./does/not/exist")
    with pytest.raises(FileNotFoundError):
        load_database(str(tmp_path / "missing" / "folder"))
    with pytest.raises(ValueError, match="manifest.yaml"):
        load_database(tmp_path)  # exists, but is no RelBench folder
    # Offline, a name that is no folder fails at the hub lookup, with a FileNotFoundError.
    with pytest.raises(FileNotFoundError):
        load_database(Path("no_such_dataset_folder"))
    with pytest.raises(TypeError, match="cannot load a database from a int"):
        load_database(3)


# --------------------------------------------------------------------------- validation
def _break(kind):
    tables, schema = _tiny()
    orders = tables["orders"]
    if kind == "unknown fkey table":
        schema["orders"]["fkeys"]["user_id"] = "people"
    elif kind == "fkey to keyless table":
        schema["items"]["pkey"] = None
        tables["items"] = tables["items"].drop(columns="item_id")
    elif kind == "missing pkey column":
        schema["orders"]["pkey"] = "id"
    elif kind == "missing time column":
        schema["orders"]["time_col"] = "when"
    elif kind == "missing fkey column":
        schema["orders"]["fkeys"]["shop_id"] = "items"
    elif kind == "duplicate pkey":
        tables["orders"] = orders.assign(order_id=[0, 1, 1, 3])
    elif kind == "null pkey":
        tables["orders"] = orders.assign(order_id=[0, 1, None, 3])
    elif kind == "unparseable time":
        tables["orders"] = orders.assign(ts=["2024-01-01", "soon", "2024-02-01", "x"])
    elif kind == "numeric time":
        tables["orders"] = orders.assign(ts=[1, 2, 3, 4])
    elif kind == "null time":
        tables["orders"] = orders.assign(ts=orders["ts"].where(orders["qty"] != 2))
    elif kind == "schema missing a table":
        del schema["items"]
    elif kind == "schema for unknown table":
        schema["shops"] = {"pkey": "shop_id"}
    elif kind == "unknown schema entry":
        schema["users"]["primary_key"] = "user_id"
    elif kind == "duplicate column names":
        tables["users"] = pd.DataFrame([[0, 1]], columns=["user_id", "user_id"])
    return tables, schema


@pytest.mark.parametrize(
    "kind, message",
    [
        ("unknown fkey table", "unknown table 'people'"),
        ("fkey to keyless table", "no primary key"),
        ("missing pkey column", "no column 'id'"),
        ("missing time column", "no column 'when'"),
        ("missing fkey column", "no column 'shop_id'"),
        ("duplicate pkey", "1 duplicated values"),
        ("null pkey", "1 null values"),
        ("unparseable time", "not timestamps"),
        ("numeric time", "numeric"),
        ("null time", "1 missing values"),
        ("schema missing a table", r"no schema for tables \['items'\]"),
        ("schema for unknown table", r"\['shops'\] that are not in the data"),
        ("unknown schema entry", "unknown entries"),
        ("duplicate column names", "duplicate column names"),
    ],
)
def test_validation_errors(kind, message):
    tables, schema = _break(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # conversions warn before they fail
        with pytest.raises(ValueError, match=message):
            load_database(tables, schema=schema)


def test_type_errors():
    tables, schema = _tiny()
    with pytest.raises(TypeError, match="not a pandas DataFrame"):
        load_database(dict(tables, users=tables["users"].to_dict()), schema=schema)
    schema["orders"]["fkeys"] = ["user_id"]
    with pytest.raises(TypeError, match="'fkeys' must map"):
        load_database(tables, schema=schema)
    with pytest.raises(ValueError, match="at least one table"):
        load_database({}, schema={})
    with pytest.raises(ValueError, match="dangling must be"):
        load_database(*_tiny(), dangling="drop")


def test_dangling_fkeys_are_nulled_with_a_warning():
    tables, schema = _tiny()
    tables["orders"] = tables["orders"].assign(user_id=[0, 7, 1, 9])
    with pytest.warns(UserWarning, match=r"orders\.user_id->users: 2"):
        db = load_database(tables, schema=schema)
    values = db.table("orders")["user_id"]
    assert values.isna().tolist() == [False, True, False, True]
    assert values.dtype == "Int64"  # still integer, now nullable
    np.testing.assert_array_equal(db.fkey_positions("orders", "user_id"), [0, -1, 1, -1])
    with pytest.raises(ValueError, match=r"orders\.user_id->users: 2"):
        load_database(tables, schema=schema, dangling="raise")


def test_mostly_dangling_fkeys_warn_loudly():
    tables, schema = _tiny()
    tables["orders"] = tables["orders"].assign(user_id=[0, 7, 8, 9])  # 3 of 4 dangle
    with pytest.warns(UserWarning) as caught:
        db = load_database(tables, schema=schema)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1  # the loud one replaces the generic one for this key
    assert messages[0].startswith("MOSTLY DANGLING FOREIGN KEY: 3 of the 4 values (75%)")
    assert "orders.user_id and users.user_id do not hold the same ids" in messages[0]
    assert "orders.user_id = 7, users.user_id = 0" in messages[0]
    assert db.table("orders")["user_id"].isna().sum() == 3
    with pytest.raises(ValueError, match=r"users: 3\).*MOSTLY DANGLING: 3 of the 4"):
        load_database(tables, schema=schema, dangling="raise")
    # half or fewer: the generic warning only (see test_dangling_fkeys_are_nulled_with_a_warning)
    tables["orders"] = tables["orders"].assign(user_id=[0, 7, 1, 9])
    with pytest.warns(UserWarning) as caught:
        load_database(tables, schema=schema)
    assert [str(w.message).startswith("foreign keys reference missing rows") for w in caught] == [
        True
    ]


@pytest.mark.parametrize("side", ["pkey", "fkey"])
def test_string_and_integer_keys_are_matched_when_exact(side):
    tables, schema = _tiny()
    users, orders = tables["users"], tables["orders"]
    if side == "pkey":  # string primary key, integer references
        tables["users"] = users.assign(user_id=users["user_id"].astype(str))
        where, target, pair = "foreign key orders.user_id", "strings", "(e.g. 0 -> '0')"
    else:  # integer primary key, string references (one null)
        tables["orders"] = orders.assign(user_id=["0", "1", None, "2"])
        where, target, pair = "foreign key orders.user_id", "numbers", "(e.g. '0' -> 0)"
    before = tables["orders"].copy()
    with pytest.warns(UserWarning) as caught:
        db = load_database(tables, schema=schema)
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"{where} holds ")
    assert "primary key users.user_id" in message
    assert f"was converted to {target} to match {pair}" in message
    expected = [0, 1, 1, 2] if side == "pkey" else [0, 1, -1, 2]
    np.testing.assert_array_equal(db.fkey_positions("orders", "user_id"), expected)
    if side == "fkey":
        assert db.table("orders")["user_id"].dtype == "Int64"
    else:
        assert db.table("orders")["user_id"].tolist() == ["0", "1", "1", "2"]
    pd.testing.assert_frame_equal(tables["orders"], before)  # the caller's frame is untouched


@pytest.mark.parametrize(
    "users_ids, order_ids",
    [
        (["u0", "u1", "u2"], [0, 1, 1, 2]),  # string keys that are not numbers
        (["00", "01", "02"], [0, 1, 1, 2]),  # zero-padded: '01' is not str(1)
        ([0, 1, 2], ["0", "1", "1", "x2"]),
        ([0, 1, 2], [0.0, 1.5, 1.0, 2.0]),  # float ids are numbers: no conversion, dangling
    ],
)
def test_string_and_integer_keys_that_do_not_convert(users_ids, order_ids):
    tables, schema = _tiny()
    tables["users"] = tables["users"].assign(user_id=users_ids)
    tables["orders"] = tables["orders"].assign(user_id=order_ids)
    if isinstance(order_ids[1], float):
        with pytest.warns(UserWarning, match=r"orders\.user_id->users: 1"):
            load_database(tables, schema=schema)
        return
    with pytest.raises(ValueError) as err:
        load_database(tables, schema=schema)
    text = str(err.value)
    assert "foreign key orders.user_id (" in text and "primary key users.user_id (" in text
    assert f"e.g. {tables['orders']['user_id'].iloc[:3].tolist()}" in text
    assert f"e.g. {users_ids}" in text
    assert "do not convert exactly" in text and "Cast one side" in text


def test_empty_tables_are_an_early_snapshot():
    tables, schema = _tiny()
    tables["visits"] = pd.DataFrame(
        {"visit_id": [0, 1], "user_id": [0, 2], "at": pd.to_datetime(["2024-05-01", "2024-06-01"])}
    )
    schema["visits"] = {"pkey": "visit_id", "time_col": "at", "fkeys": {"user_id": "users"}}
    tables["orders"] = tables["orders"].iloc[:0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        db = load_database(tables, schema=schema)
    assert db.num_rows("orders") == 0 and db.num_rows("visits") == 2
    assert db.table("orders")["ts"].dtype == "datetime64[ns]"
    assert pd.isna(db.time_range("orders")[0])
    # the empty table bounds nothing
    assert (db.min_timestamp, db.max_timestamp) == (
        pd.Timestamp("2024-05-01"),
        pd.Timestamp("2024-06-01"),
    )
    assert db.fkey_positions("orders", "user_id").shape == (0,)
    assert "empty" in db.describe()
    # an empty time column of any dtype (e.g. from pd.DataFrame(columns=...)) is no ambiguity
    tables["orders"] = pd.DataFrame(columns=["order_id", "user_id", "item_id", "ts", "qty"])
    assert load_database(tables, schema=schema).table("orders")["ts"].dtype == "datetime64[ns]"
    # an empty referenced table: every reference dangles, and the message says why
    tables["users"] = tables["users"].iloc[:0]
    with pytest.warns(UserWarning, match="reference no row of 'users', which has no rows"):
        load_database(tables, schema=schema)
    del tables["visits"], schema["visits"]
    tables["users"] = _tiny()[0]["users"]
    db = load_database(tables, schema=schema)
    with pytest.raises(ValueError, match="every timestamped table of the database is empty"):
        _ = db.min_timestamp


def test_time_errors_say_what_to_do():
    tables, schema = _tiny()
    static = {name: {**spec, "time_col": None} for name, spec in schema.items()}
    with pytest.raises(ValueError, match="no time columns.*declare the 'time_col'"):
        _ = load_database(tables, schema=static).max_timestamp
    orders = tables["orders"]
    with pytest.raises(ValueError, match=r"unit='s'"):
        load_database(dict(tables, orders=orders.assign(ts=[1, 2, 3, 4])), schema=schema)
    far = orders.assign(ts=["2024-01-01", "3000-01-01", "2024-02-01", "2024-03-01"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="outside the range sktve stores") as err:
            load_database(dict(tables, orders=far), schema=schema)
    assert not isinstance(err.value, pd.errors.OutOfBoundsDatetime)


@pytest.mark.parametrize(
    "kind, remedy",
    [
        ("duplicate column names", "rename them"),
        ("duplicate pkey", "drop the duplicated rows"),
        ("schema for unknown table", "Remove those entries"),
    ],
)
def test_errors_say_what_to_do(kind, remedy):
    with pytest.raises(ValueError, match=remedy):
        load_database(*_break(kind))
    with pytest.raises(TypeError, match=r"convert it first"):
        load_database(dict(_tiny()[0], users=[1, 2]), schema=_tiny()[1])


def test_string_time_column_is_converted_with_a_warning():
    tables, schema = _tiny()
    tables["orders"] = tables["orders"].assign(
        ts=["2024-01-01", "2024-01-05 10:00", "2024-02-01", "2024-03-01"]
    )
    with pytest.warns(UserWarning, match="converted with pandas.to_datetime"):
        db = load_database(tables, schema=schema)
    ts = db.table("orders")["ts"]
    assert ts.dtype == "datetime64[ns]"
    assert ts.iloc[1] == pd.Timestamp("2024-01-05 10:00")


def test_tz_aware_time_column_becomes_naive_utc():
    tables, schema = _tiny()
    tables["orders"] = tables["orders"].assign(
        ts=tables["orders"]["ts"].dt.tz_localize("Europe/Paris")
    )
    with pytest.warns(UserWarning, match="timezone-aware"):
        db = load_database(tables, schema=schema)
    ts = db.table("orders")["ts"]
    assert ts.dtype == "datetime64[ns]"
    assert ts.iloc[0] == pd.Timestamp("2023-12-31 23:00")  # midnight in Paris, in UTC


def test_callers_frames_are_never_modified():
    tables, schema = _tiny()
    tables["users"]["name"] = tables["users"]["name"].astype("string")
    tables["orders"] = tables["orders"].assign(
        user_id=[0, 7, 1, 2], ts=["2024-01-01", "2024-01-05", "2024-02-01", "2024-03-01"]
    )
    before = {name: frame.copy() for name, frame in tables.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = load_database(tables, schema=schema)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(frame, before[name])
    assert isinstance(tables["users"]["name"].dtype, pd.StringDtype)
    assert tables["orders"]["user_id"].tolist() == [0, 7, 1, 2]
    assert db.table("orders")["user_id"].isna().sum() == 1
    assert not pd.api.types.is_datetime64_any_dtype(tables["orders"]["ts"])


def test_pandas_string_columns_become_object():
    tables, schema = _tiny()
    tables["users"]["name"] = tables["users"]["name"].astype("string")
    tables["items"]["label"] = pd.Series(["a", "b"], dtype="str")
    db = load_database(tables, schema=schema)
    assert db.table("users")["name"].dtype == object
    assert db.table("items")["label"].dtype == object
    con = duckdb.connect()
    db.register_duckdb(con)
    got = con.sql("SELECT u.name, SUM(o.qty) AS q FROM orders o JOIN users u USING (user_id) "
                  "GROUP BY u.name ORDER BY u.name").df()  # fmt: skip
    assert got["name"].tolist() == ["ann", "bob", "cy"] and got["q"].tolist() == [1, 5, 4]


# --------------------------------------------------------------------------- light handle
def test_deepcopy_and_clone_share_the_handle(small_db):
    assert copy.deepcopy(small_db) is small_db
    assert copy.copy(small_db) is small_db
    est = _Holder(database=small_db, alpha=2.0)
    cloned = clone(est)
    assert cloned is not est and cloned.database is small_db and cloned.alpha == 2.0
    assert copy.deepcopy(est).database is small_db


def test_pickle_keeps_spec_and_fingerprint_not_frames():
    db = load_database(*_tiny())
    payload = pickle.dumps(db)
    assert len(payload) < 1500  # no frames inside
    spec, fingerprint = db.spec, db.fingerprint
    del db  # no live handle with this data is left to attach to
    gc.collect()
    restored = pickle.loads(payload)
    assert not restored.is_attached
    assert restored.spec == spec
    assert "detached" in repr(restored)
    with pytest.raises(DatabaseNotAttachedError) as err:
        _ = restored.table_names
    assert "attach" in str(err.value) and "set_params" in str(err.value)
    with pytest.raises(DatabaseNotAttachedError):
        restored.table("orders")
    # A restored handle can be pickled again and keeps the fingerprint it was saved with.
    again = pickle.loads(pickle.dumps(restored))
    assert again.attach(load_database(*_tiny())).fingerprint == fingerprint


def test_restored_handle_attaches_to_a_live_handle_with_the_same_data():
    db = load_database(*_tiny())
    restored = pickle.loads(pickle.dumps(db))
    assert not restored.is_attached
    assert restored.num_rows() == db.num_rows()  # first use finds the live handle
    assert restored.is_attached and restored.fingerprint == db.fingerprint


def test_attach_checks_the_fingerprint():
    db = load_database(*_tiny())
    restored = pickle.loads(pickle.dumps(db))
    tables, schema = _tiny()
    tables["orders"].loc[2, "qty"] = 99
    with pytest.raises(ValueError, match=r"not the same data\. Attach .*set_params"):
        restored.attach(load_database(tables, schema=schema))
    assert not restored.is_attached
    assert restored.attach(load_database(*_tiny())) is restored
    assert restored.is_attached and restored.num_rows() == 9
    assert restored.fingerprint == db.fingerprint
    with pytest.raises(TypeError):
        restored.attach(_tiny()[0])


def test_folder_handle_reloads_lazily_after_unpickle(synthetic_path):
    db = load_database(synthetic_path)
    payload = pickle.dumps(db)
    assert len(payload) < 2000
    restored = pickle.loads(payload)
    assert not restored.is_attached
    assert restored.num_rows() == db.num_rows()  # first use reloads from the folder
    assert restored.is_attached
    assert restored.fingerprint == db.fingerprint
    assert restored.test_timestamp == db.test_timestamp


def test_fingerprint_is_stable_and_content_sensitive(synthetic_path):
    assert load_database(*_tiny()).fingerprint == load_database(*_tiny()).fingerprint
    assert load_database(synthetic_path).fingerprint == load_database(synthetic_path).fingerprint
    tables, schema = _tiny()
    tables["items"].loc[1, "price"] = 2.75
    assert load_database(tables, schema=schema).fingerprint != load_database(*_tiny()).fingerprint
    tables, schema = _tiny()
    schema["orders"]["fkeys"] = {"user_id": "users"}  # same data, other schema
    assert load_database(tables, schema=schema).fingerprint != load_database(*_tiny()).fingerprint


# --------------------------------------------------------------------------- accessors
def test_schema_graph_both_directions():
    db = load_database(*_tiny())
    graph = db.schema_graph()
    assert graph["orders"] == [("users", "user_id", "out"), ("items", "item_id", "out")]
    assert graph["users"] == [("orders", "user_id", "in")]
    assert graph["items"] == [("orders", "item_id", "in")]
    assert db.foreign_keys[0] == ForeignKey("orders", "user_id", "users")
    assert db.foreign_keys[0].name == "orders.user_id->users"


def test_fkey_positions_with_nulls():
    tables, schema = _tiny()
    tables["orders"]["item_id"] = [11.0, np.nan, 10.0, np.nan]
    db = load_database(tables, schema=schema)
    positions = db.fkey_positions("orders", "item_id")
    assert positions.dtype == np.int64
    np.testing.assert_array_equal(positions, [1, -1, 0, -1])
    np.testing.assert_array_equal(db.fkey_positions("orders", "user_id"), [0, 1, 1, 2])
    with pytest.raises(KeyError, match="not a foreign key"):
        db.fkey_positions("orders", "qty")


def test_entity_positions_and_keys():
    db = load_database(*_tiny())
    np.testing.assert_array_equal(db.entity_positions("items", [11, 10, 11]), [1, 0, 1])
    with pytest.raises(ValueError, match=r"2 ids are not keys of table 'items'"):
        db.entity_positions("items", [10, 12, 13])
    assert list(db.key_index("items")) == [10, 11]
    times = db.time_values("orders")
    assert times.dtype == np.int64 and times[0] == pd.Timestamp("2024-01-01").value
    assert db.time_values("users") is None
    with pytest.raises(KeyError, match="unknown table 'shops'"):
        db.table("shops")


def test_describe_mentions_every_table(small_db):
    text = small_db.describe()
    for name in small_db.table_names:
        assert name in text
    assert "orders.customer_id -> customers" in text
    assert "5,000" in text


# --------------------------------------------------------------------------- regressions
def test_foreign_keys_after_unpickle_raise_not_attached():
    restored = pickle.loads(pickle.dumps(load_database(*_tiny())))
    with pytest.raises(DatabaseNotAttachedError):
        _ = restored.foreign_keys


def test_dangling_float_fkeys_stay_numeric():
    tables, schema = _tiny()
    tables["orders"]["user_id"] = [0.0, np.nan, 7.0, 1.0]
    with pytest.warns(UserWarning):
        db = load_database(tables, schema=schema)
    assert db.table("orders")["user_id"].dtype.kind == "f"


def test_attach_on_live_handle_rejects_other_data():
    db = load_database(*_tiny())
    tables, schema = _tiny()
    tables["orders"]["qty"] = [9, 9, 9, 9]
    with pytest.raises(ValueError, match="not the same data"):
        db.attach(load_database(tables, schema=schema))


def test_describe_lists_columns_with_roles(small_db):
    text = small_db.describe()
    assert "orders: order_id (pkey), customer_id (-> customers)" in text
    assert "order_time (time)" in text and "amount (float64)" in text
    assert "columns (" not in small_db.describe(columns=False)


def test_open_relbench_dataset_explains_a_missing_name(monkeypatch):
    from sktve.database import open_relbench_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="in the local cache: downloads are off"):
        open_relbench_dataset("rel-not-a-dataset")
