"""GraphFeaturizer: column kinds, frozen statistics, boundary, metadata, graph structure."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from _graph_dbs import perturb_future, random_database

from sktve import load_database
from sktve.graph import GraphFeaturizer, GraphMetadata, hashing_text_embedder


def _tiny(amounts=(1.0, 2.0, 3.0, 100.0), channels=("web", "web", "shop", None)):
    users = pd.DataFrame({"user_id": [10, 11], "country": ["fr", "de"]})
    orders = pd.DataFrame(
        {
            "order_id": [0, 1, 2, 3],
            "user_id": [10, 10, 11, 10],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-02-01", "2024-03-01"]),
            "amount": list(amounts),
            "channel": list(channels),
            "statusId": [1, 2, 1, 3],
        }
    )
    return load_database(
        {"users": users, "orders": orders},
        schema={
            "users": {"pkey": "user_id"},
            "orders": {"pkey": "order_id", "time_col": "ts", "fkeys": {"user_id": "users"}},
        },
    )


def test_column_kinds_on_synthetic(small_db):
    summary = GraphFeaturizer().fit(small_db).feature_summary()
    kinds = {(r.table, r.column): r.kind for r in summary.itertuples()}
    assert kinds[("orders", "amount")] == "numeric"
    assert kinds[("orders", "channel")] == "categorical"
    assert kinds[("orders", "returned")] == "boolean"
    assert kinds[("customers", "signup_date")] == "datetime"
    assert kinds[("customers", "bio")] == "text"
    # keys and time columns are never features
    for table in small_db.table_names:
        excluded = {small_db.pkey(table), small_db.time_col(table), *small_db.fkeys(table)}
        assert not excluded & set(summary.loc[summary.table == table, "column"])


def test_numeric_stats_use_only_rows_up_to_boundary():
    db = _tiny()
    fz = GraphFeaturizer().fit(db, boundary=pd.Timestamp("2024-02-01"))
    spec = next(s for s in fz.columns_["orders"] if s.name == "amount")
    assert spec.kind == "numeric"
    assert spec.mean == pytest.approx(2.0)  # 1, 2, 3; the 100 is after the boundary
    assert spec.std == pytest.approx(np.std([1.0, 2.0, 3.0]))
    graph = fz.transform(db)
    x = graph.x_num["orders"]
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[:3, 0], (np.array([1, 2, 3]) - 2.0) / spec.std, rtol=1e-6)
    assert x[3, 0] == pytest.approx(10.0)  # clipped
    assert (x[:, 1] == 0).all()  # no missing values


def test_missing_numeric_gets_indicator():
    db = _tiny(amounts=(1.0, np.nan, 3.0, 5.0))
    x = GraphFeaturizer().fit(db).transform(db).x_num["orders"]
    assert x[1, 0] == 0.0 and x[1, 1] == 1.0
    assert x[0, 1] == 0.0


def test_categorical_vocabulary_other_and_null():
    db = _tiny(channels=("web", "web", "shop", None))
    fz = GraphFeaturizer(max_categories=1).fit(db)
    spec = next(s for s in fz.columns_["orders"] if s.name == "channel")
    assert spec.vocabulary == ["web"] and spec.cardinality == 3
    graph = fz.transform(db)
    cat_names = graph.metadata.tables["orders"].cat_names
    codes = graph.x_cat["orders"][:, cat_names.index("channel")]
    np.testing.assert_array_equal(codes, [2, 2, 1, 0])  # web, web, other, null
    # id-like integer columns are categorical codes
    assert "statusId" in cat_names


def test_vocabulary_fitted_before_boundary_only():
    db = _tiny(channels=("web", "web", "shop", "phone"))
    fz = GraphFeaturizer().fit(db, boundary=pd.Timestamp("2024-01-31"))
    spec = next(s for s in fz.columns_["orders"] if s.name == "channel")
    assert spec.vocabulary == ["web"]


def test_text_default_and_custom_embedder(small_db):
    emb = hashing_text_embedder(["red car", "", "blue car"], dim=8)
    assert emb.shape == (3, 8) and np.allclose(emb[1], 0)
    fz = GraphFeaturizer(text_dim=4).fit(small_db)
    meta = fz.metadata_.tables["customers"]
    assert "bio" in meta.num_group_names
    bio = meta.num_group_names.index("bio")
    assert sum(g == bio for g in meta.num_groups) == 4 + 1  # 4 dims + missing indicator

    calls = []

    def embedder(texts):
        calls.append(len(texts))
        return np.ones((len(texts), 3))

    graph = GraphFeaturizer(text_embedder=embedder).fit_transform(small_db)
    assert calls
    meta = graph.metadata.tables["customers"]
    assert sum(g == meta.num_group_names.index("bio") for g in meta.num_groups) == 3 + 1


def test_bad_embedder_output_raises(small_db):
    with pytest.raises(ValueError, match="text_embedder"):
        GraphFeaturizer(text_embedder=lambda texts: np.ones(len(texts))).fit(small_db)


def test_frozen_stats_on_perturbed_database():
    db, frames, schema = random_database(3)
    cutoff = pd.Timestamp("2020-09-01")
    fz = GraphFeaturizer().fit(db, boundary=cutoff)
    before = pickle.dumps(fz.columns_)
    perturbed = load_database(perturb_future(frames, schema, cutoff, 1), schema=schema)
    g1, g2 = fz.transform(db), fz.transform(perturbed)
    assert pickle.dumps(fz.columns_) == before
    for table in db.table_names:
        times = db.time_values(table)
        past = np.ones(db.num_rows(table), bool) if times is None else times <= cutoff.value
        n = db.num_rows(table)
        np.testing.assert_array_equal(g1.x_num[table][past], g2.x_num[table][:n][past])
        np.testing.assert_array_equal(g1.x_cat[table][past], g2.x_cat[table][:n][past])
    # refitting on the perturbed database with the same boundary gives the same stats
    assert pickle.dumps(GraphFeaturizer().fit(perturbed, boundary=cutoff).columns_) == before


def test_schema_mismatch_raises(small_db):
    fz = GraphFeaturizer().fit(_tiny())
    with pytest.raises(ValueError, match="schema differs"):
        fz.transform(small_db)
    with pytest.raises(RuntimeError, match="not fitted"):
        GraphFeaturizer().transform(small_db)


def test_metadata_and_pickle(small_db):
    fz = GraphFeaturizer().fit(small_db)
    meta = fz.metadata_
    assert meta.node_types == small_db.table_names
    assert ("orders", "customer_id", "customers") in meta.edge_types
    assert ("customers", "rev_customer_id", "orders") in meta.edge_types
    assert len(meta.edge_types) == 2 * len(small_db.foreign_keys)
    assert GraphMetadata.from_dict(meta.to_dict()) == meta
    restored = pickle.loads(pickle.dumps(fz))
    g1, g2 = fz.transform(small_db), restored.transform(small_db)
    for t in small_db.table_names:
        np.testing.assert_array_equal(g1.x_num[t], g2.x_num[t])
