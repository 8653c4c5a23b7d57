"""Tests of the lending-library synthetic schema and the registry of synthetic schemas."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import relbench
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from sktve import Database, load_database
from sktve.datasets import (
    SYNTHETIC_SCHEMAS,
    library_tasks,
    make_library_database,
    make_library_dataset,
    make_synthetic_dataset,
    task_to_xy,
)

TABLES = {"members", "authors", "books", "loans", "fines", "reviews"}
TIME_COLS = {"loans": "loan_time", "fines": "fine_time", "reviews": "review_time"}


@pytest.fixture(scope="module")
def frames_and_schema():
    return make_library_database(n_members=300, n_loans=6000, random_state=0, as_frames=True)


@pytest.fixture(scope="module")
def library_path(tmp_path_factory):
    return make_library_dataset(
        tmp_path_factory.mktemp("library") / "lib", n_members=300, n_loans=6000
    )


@pytest.fixture(scope="module")
def dataset(library_path):
    return relbench.load_dataset(str(library_path))


def test_same_seed_gives_identical_frames(frames_and_schema):
    frames, _ = frames_and_schema
    again, _ = make_library_database(n_members=300, n_loans=6000, random_state=0, as_frames=True)
    for table in TABLES:
        pd.testing.assert_frame_equal(frames[table], again[table])
    other, _ = make_library_database(n_members=300, n_loans=6000, random_state=1, as_frames=True)
    assert not frames["loans"].equals(other["loans"])


def test_schema_keys_and_sort_order(frames_and_schema):
    frames, schema = frames_and_schema
    assert set(frames) == TABLES == set(schema)
    for table, spec in schema.items():
        frame = frames[table]
        np.testing.assert_array_equal(frame[spec["pkey"]], np.arange(len(frame)))
        assert spec["time_col"] == TIME_COLS.get(table)
        if spec["time_col"] is not None:
            assert frame[spec["time_col"]].is_monotonic_increasing
    assert len(frames["loans"]) == 6000
    assert len(frames["fines"]) > 0 and len(frames["reviews"]) > 0
    loans, fines = frames["loans"], frames["fines"]
    # A fine is for a loan of the same member, issued on its late return.
    fined = loans.iloc[fines["loan_id"].to_numpy()]
    np.testing.assert_array_equal(fined["member_id"].to_numpy(), fines["member_id"].to_numpy())
    returned = fined["loan_time"] + pd.to_timedelta(fined["days_kept"], unit="D")
    assert (fines["fine_time"].to_numpy() >= returned.to_numpy()).all()
    allowed = 21 * (1 + fined["renewed"].to_numpy())
    assert (fined["days_kept"].to_numpy() > allowed).all()
    assert loans["loan_time"].min() >= pd.Timestamp("2020-01-01")
    assert frames["reviews"]["review_time"].max() < pd.Timestamp("2024-01-01")


def test_database_loads_without_dangling_keys(frames_and_schema):
    frames, schema = frames_and_schema
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db = load_database(frames, schema=schema, dangling="raise")
    assert isinstance(db, Database)
    assert db.fkeys("fines") == {"member_id": "members", "loan_id": "loans"}
    assert db.fkeys("books") == {"author_id": "authors"}
    for fk in db.foreign_keys:
        assert (db.fkey_positions(fk.src_table, fk.fkey_col) >= 0).all(), fk.name


def test_vectorised_generation_is_fast():
    import time

    started = time.perf_counter()
    make_library_database(n_members=20_000, n_loans=200_000, random_state=0, as_frames=True)
    assert time.perf_counter() - started < 20


@pytest.mark.parametrize(
    "kwargs", [{"n_members": 0}, {"n_loans": 0}, {"n_books": 3}, {"end": "2020-01-03"}]
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        make_library_database(**{"n_members": 50, "n_loans": 500, **kwargs})


def test_tasks_load_through_relbench(dataset):
    assert [t.name for t in library_tasks()] == ["member-loans", "member-lapse"]
    loans = dataset.load_task("member-loans")
    lapse = dataset.load_task("member-lapse")
    assert loans.task_type.value == "regression"
    assert lapse.task_type.value == "binary_classification"
    for task in (loans, lapse):
        for split in ("train", "val", "test"):
            X, y = task_to_xy(task, split)
            assert len(X) > 100 and list(X.columns) == ["member_id", "timestamp"]
            assert y.notna().all()
    _, y = task_to_xy(loans, "train")
    assert (y >= 0).all() and (y == 0).any() and (y > 0).any()
    _, y = task_to_xy(lapse, "val")
    assert set(np.unique(y)) == {0, 1}
    # Labels are the window after each cutoff: recomputed here from the raw loans table.
    raw = dataset.get_db(upto_test_timestamp=False).table_dict["loans"].df
    X, y = task_to_xy(loans, "val")
    row = X.iloc[0]
    t = row["timestamp"]
    mine = raw[
        (raw["member_id"] == row["member_id"])
        & (raw["loan_time"] > t)
        & (raw["loan_time"] <= t + pd.Timedelta(days=30))
    ]
    assert y.iloc[0] == len(mine)


def test_planted_signal_history_beats_a_constant(dataset):
    """Loan counts in the past 60 and 365 days (plus membership) predict a lapse."""
    task = dataset.load_task("member-lapse")
    db = dataset.get_db(upto_test_timestamp=True)
    loans = db.table_dict["loans"].df
    members = db.table_dict["members"].df

    def features(split):
        X, y = task_to_xy(task, split)
        pairs = X.merge(loans[["member_id", "loan_time"]], on="member_id")
        pairs = pairs[pairs["loan_time"] <= pairs["timestamp"]]
        age = (pairs["timestamp"] - pairs["loan_time"]).dt.days
        out = []
        for days in (60, 365):
            recent = pairs[age <= days].groupby(["member_id", "timestamp"]).size()
            out.append(X.join(recent.rename("n"), on=["member_id", "timestamp"])["n"].fillna(0))
        last = pairs.groupby(["member_id", "timestamp"])["loan_time"].max()
        since = X["timestamp"] - X.join(last, on=["member_id", "timestamp"])["loan_time"]
        out.append(since.dt.days)
        kind = members.set_index("member_id")["membership"].astype("category").cat.codes
        out.append(X["member_id"].map(kind))
        return np.column_stack(out).astype(float), y.to_numpy()

    Z_train, y_train = features("train")
    Z_val, y_val = features("val")
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(Z_train, y_train)
    auc = roc_auc_score(y_val, model.predict_proba(Z_val)[:, 1])
    assert auc > 0.6, auc


def test_registry_lists_every_schema(tmp_path):
    assert set(SYNTHETIC_SCHEMAS) == {"ecommerce", "library", "bank"}
    assert SYNTHETIC_SCHEMAS["ecommerce"] is make_synthetic_dataset
    assert SYNTHETIC_SCHEMAS["library"] is make_library_dataset
    path = SYNTHETIC_SCHEMAS["library"](tmp_path / "lib", random_state=0, n_members=80)
    assert sorted(p.name for p in (path / "tasks").iterdir()) == ["member-lapse", "member-loans"]


def test_import_order_does_not_matter():
    import subprocess
    import sys

    code = "import sktve.synthetic_library as m; import sktve.datasets as d; " + (
        "assert d.make_library_dataset is m.make_library_dataset"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
