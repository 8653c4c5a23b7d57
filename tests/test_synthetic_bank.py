"""Tests of the bank synthetic schema: tables, tasks, planted signal, and the estimators on it.

The schema has what the other two lack (an entity table with a time column, a
self-referencing foreign key, a task table two hops from the entity), so the estimators'
time-correctness is checked on it here too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import relbench
from _perturb import perturb_after, with_fitted_state
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from sktve import AggregateFeatures, Database, TVEClassifier, TVEPretrainer, load_database
from sktve.datasets import (
    SYNTHETIC_SCHEMAS,
    bank_tasks,
    make_bank_database,
    make_bank_dataset,
    task_to_xy,
)

TABLES = {"branches", "accounts", "merchants", "transactions", "disputes", "logins"}
# A small pre-training budget: the estimator tests check wiring and time-correctness.
PRETRAIN = dict(window="30D", embedding_dim=8, fanouts=(6, 3), max_epochs=1, steps_per_epoch=2)
TIME_COLS = {
    "accounts": "opened_at",
    "transactions": "tx_time",
    "disputes": "dispute_time",
    "logins": "login_time",
}


@pytest.fixture(scope="module")
def frames_and_schema():
    return make_bank_database(n_accounts=300, n_transactions=6000, random_state=0, as_frames=True)


@pytest.fixture(scope="module")
def bank_path(tmp_path_factory):
    return make_bank_dataset(tmp_path_factory.mktemp("bank") / "bank")


@pytest.fixture(scope="module")
def dataset(bank_path):
    return relbench.load_dataset(str(bank_path))


def test_same_seed_gives_identical_frames(frames_and_schema):
    frames, _ = frames_and_schema
    again, _ = make_bank_database(
        n_accounts=300, n_transactions=6000, random_state=0, as_frames=True
    )
    for table in TABLES:
        pd.testing.assert_frame_equal(frames[table], again[table])
    other, _ = make_bank_database(
        n_accounts=300, n_transactions=6000, random_state=1, as_frames=True
    )
    assert not frames["transactions"].equals(other["transactions"])


def test_schema_keys_sort_order_and_relations(frames_and_schema):
    frames, schema = frames_and_schema
    assert set(frames) == TABLES == set(schema)
    for table, spec in schema.items():
        frame = frames[table]
        np.testing.assert_array_equal(frame[spec["pkey"]], np.arange(len(frame)))
        assert spec["time_col"] == TIME_COLS.get(table)
        if spec["time_col"] is not None:
            assert frame[spec["time_col"]].is_monotonic_increasing
    accounts, tx = frames["accounts"], frames["transactions"]
    disputes, logins = frames["disputes"], frames["logins"]
    # Takeover payments after the end are dropped; the rest are exactly as asked.
    assert 5900 <= len(tx) <= 6000
    assert tx["tx_time"].min() >= pd.Timestamp("2020-01-01")
    assert logins["login_time"].max() < pd.Timestamp("2024-01-01")
    # A referrer opened before the account it referred; most accounts were not referred.
    referred = accounts["referrer_id"].notna()
    assert 0.5 < 1 - referred.mean() < 0.7
    ids = accounts.loc[referred, "account_id"].to_numpy()
    assert (accounts.loc[referred, "referrer_id"].to_numpy(dtype=np.int64) < ids).all()
    # Nobody pays or logs in before their account opens.
    opened = accounts["opened_at"].to_numpy()
    assert (tx["tx_time"].to_numpy() >= opened[tx["account_id"].to_numpy()]).all()
    assert (logins["login_time"].to_numpy() >= opened[logins["account_id"].to_numpy()]).all()
    # A dispute follows its payment, at most one per payment, all three causes present.
    assert disputes["tx_id"].is_unique
    paid = tx["tx_time"].to_numpy()[disputes["tx_id"].to_numpy()]
    assert (disputes["dispute_time"].to_numpy() > paid).all()
    assert set(disputes["reason"]) == {"fraud", "not received", "wrong amount"}
    fraud = tx.iloc[disputes.loc[disputes["reason"] == "fraud", "tx_id"].to_numpy()]
    assert (fraud["channel"] == "online").all()
    assert 0.05 < (~logins["success"]).mean() < 0.2


def test_database_loads_without_dangling_keys(frames_and_schema):
    frames, schema = frames_and_schema
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db = load_database(frames, schema=schema, dangling="raise")
    assert isinstance(db, Database)
    assert db.fkeys("accounts") == {"branch_id": "branches", "referrer_id": "accounts"}
    assert db.fkeys("disputes") == {"tx_id": "transactions"}
    positions = db.fkey_positions("accounts", "referrer_id")
    np.testing.assert_array_equal(positions < 0, frames["accounts"]["referrer_id"].isna())
    for fk in db.foreign_keys:
        if fk.fkey_col != "referrer_id":
            assert (db.fkey_positions(fk.src_table, fk.fkey_col) >= 0).all(), fk.name


@pytest.mark.parametrize(
    "kwargs",
    [{"n_accounts": 0}, {"n_transactions": 5}, {"n_merchants": 3}, {"end": "2020-01-03"}],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        make_bank_database(**{"n_accounts": 50, "n_transactions": 500, **kwargs})


def test_tasks_load_through_relbench(dataset):
    assert [t.name for t in bank_tasks()] == ["account-dispute", "account-outflow"]
    dispute = dataset.load_task("account-dispute")
    outflow = dataset.load_task("account-outflow")
    assert dispute.task_type.value == "binary_classification"
    assert outflow.task_type.value == "regression"
    for task in (dispute, outflow):
        for split in ("train", "val", "test"):
            X, y = task_to_xy(task, split)
            assert len(X) > 100 and list(X.columns) == ["account_id", "timestamp"]
            assert y.notna().all()
    _, y = task_to_xy(outflow, "train")
    assert (y >= 0).all() and (y == 0).any() and (y > 0).any()
    # Dispute labels join two hops (disputes -> transactions -> accounts): recomputed here
    # from the raw tables for every val row.
    raw = dataset.get_db(upto_test_timestamp=False).table_dict
    tx, disputes = raw["transactions"].df, raw["disputes"].df
    filed = disputes.merge(tx[["tx_id", "account_id"]], on="tx_id")
    X, y = task_to_xy(dispute, "val")
    assert set(np.unique(y)) == {0, 1}
    pairs = X.merge(filed[["account_id", "dispute_time"]], on="account_id")
    window = (pairs["dispute_time"] > pairs["timestamp"]) & (
        pairs["dispute_time"] <= pairs["timestamp"] + pd.Timedelta(days=30)
    )
    hit = pairs[window].groupby(["account_id", "timestamp"]).size()
    mine = X.join(hit.rename("n"), on=["account_id", "timestamp"])["n"].fillna(0) > 0
    np.testing.assert_array_equal(mine.to_numpy(), y.to_numpy() == 1)


def test_planted_signal_history_beats_a_constant(dataset):
    """Past disputes (two hops), recent failed logins and recent payments predict a dispute."""
    task = dataset.load_task("account-dispute")
    db = dataset.get_db(upto_test_timestamp=True).table_dict
    tx, logins = db["transactions"].df, db["logins"].df
    filed = db["disputes"].df.merge(tx[["tx_id", "account_id"]], on="tx_id")

    def count(X, events, time_col, days):
        pairs = X.merge(events[["account_id", time_col]], on="account_id")
        age = pairs["timestamp"] - pairs[time_col]
        pairs = pairs[(age >= pd.Timedelta(0)) & (age <= pd.Timedelta(days=days))]
        n = pairs.groupby(["account_id", "timestamp"]).size().rename("n")
        return X.join(n, on=["account_id", "timestamp"])["n"].fillna(0).to_numpy()

    def features(split):
        X, y = task_to_xy(task, split)
        failed = logins[~logins["success"]]
        columns = [
            count(X, filed, "dispute_time", 3650),
            count(X, failed, "login_time", 14),
            count(X, tx, "tx_time", 30),
        ]
        return np.column_stack(columns).astype(float), y.to_numpy()

    Z_train, y_train = features("train")
    Z_val, y_val = features("val")
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(Z_train, y_train)
    auc = roc_auc_score(y_val, model.predict_proba(Z_val)[:, 1])
    assert auc > 0.65, auc


@pytest.fixture(scope="module")
def small_bank():
    return make_bank_database(n_accounts=120, n_transactions=2500, random_state=2, as_frames=True)


@pytest.fixture(scope="module")
def bank_rows(small_bank):
    # Accounts opened by each cutoff, as the tasks' rows would be.
    accounts = small_bank[0]["accounts"]
    times = pd.date_range("2021-06-01", periods=4, freq="60D")
    rows = [
        pd.DataFrame(
            {"account_id": accounts.loc[accounts["opened_at"] <= t, "account_id"], "timestamp": t}
        )
        for t in times
    ]
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("make", ["pretrainer", "aggregates"])
def test_estimators_are_time_correct_on_the_bank(small_bank, bank_rows, make):
    frames, schema = small_bank
    db = load_database(frames, schema=schema)
    if make == "pretrainer":
        est = TVEPretrainer(
            database=db, entity_table="accounts", batch_size=64, random_state=0, **PRETRAIN
        )
    else:
        est = AggregateFeatures(
            database=db, entity_table="accounts", window=["30D", "365D"], max_hops=2
        )
    Z = est.fit(bank_rows).transform(bank_rows)
    assert Z.shape[0] == len(bank_rows)
    # Embeddings are finite; aggregates keep NaN where there is nothing to aggregate.
    assert make == "aggregates" or np.isfinite(Z).all()
    # Every row later than the latest cutoff changed (accounts opened later included).
    boundary = bank_rows["timestamp"].max()
    perturbed = load_database(perturb_after(frames, schema, boundary), schema=schema)
    if make == "pretrainer":
        # The same fitted state must give the same embeddings.
        other = with_fitted_state(est, database=perturbed)
        np.testing.assert_array_equal(other.transform(bank_rows), Z)
    else:
        # Aggregates learn nothing past the rows' times: fitted anew, the same features.
        other = clone(est).set_params(database=perturbed)
        np.testing.assert_array_equal(other.fit(bank_rows).transform(bank_rows), Z)


def test_finetuned_network_is_time_correct_on_the_bank(small_bank, bank_rows):
    # Fine-tuning from TVE with the aggregates as side features, through the referrer key
    # and the accounts' own times: rows after every time of X change no prediction, and
    # rows after that time plus the pre-training window change nothing fitted.
    frames, schema = small_bank
    y = (bank_rows["account_id"].to_numpy() % 2).astype(int)  # wiring, not accuracy
    params = dict(
        entity_table="accounts",
        pretrainer=TVEPretrainer(**PRETRAIN),
        side_features=AggregateFeatures(window="90D", max_hops=1),
        max_epochs=2,
        steps_per_epoch=3,
        batch_size=64,
        hidden_dim=8,
        random_state=0,
    )
    fitted = TVEClassifier(database=load_database(frames, schema=schema), **params)
    proba = fitted.fit(bank_rows, y).predict_proba(bank_rows)
    boundary = bank_rows["timestamp"].max()
    late = load_database(perturb_after(frames, schema, boundary), schema=schema)
    other = with_fitted_state(fitted, database=late)
    other._fitted_database_param = None
    np.testing.assert_array_equal(other.predict_proba(bank_rows), proba)
    later = perturb_after(frames, schema, boundary + pd.Timedelta("30D"))
    refitted = TVEClassifier(database=load_database(later, schema=schema), **params)
    refitted.fit(bank_rows, y)
    assert refitted.encoder_state_ == fitted.encoder_state_
    assert refitted.head_state_ == fitted.head_state_


def test_registry_lists_the_bank(tmp_path):
    assert SYNTHETIC_SCHEMAS["bank"] is make_bank_dataset
    path = SYNTHETIC_SCHEMAS["bank"](tmp_path / "bank", random_state=0, n_accounts=80)
    assert sorted(p.name for p in (path / "tasks").iterdir()) == [
        "account-dispute",
        "account-outflow",
    ]


def test_docstring_examples_run():
    import doctest

    import sktve.synthetic_bank

    assert doctest.testmod(sktve.synthetic_bank).failed == 0
