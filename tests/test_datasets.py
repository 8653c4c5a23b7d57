"""Tests of the synthetic database generator and the RelBench task helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import relbench
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import PredefinedSplit

from sktve import Database, load_database
from sktve.datasets import (
    make_synthetic_database,
    synthetic_tasks,
    task_to_xy,
    train_val_cv,
    write_relbench_folder,
    write_tasks,
)

TASKS = ["customer-churn", "customer-spend"]
SPLITS = ["train", "val", "test"]


@pytest.fixture(scope="module")
def frames_and_schema():
    return make_synthetic_database(n_customers=300, n_orders=5000, random_state=0, as_frames=True)


@pytest.fixture(scope="module")
def dataset(synthetic_path):
    return relbench.load_dataset(str(synthetic_path))


# --------------------------------------------------------------------------- schema
def test_tables_keys_and_time_columns(small_db):
    assert isinstance(small_db, Database)
    assert set(small_db.table_names) == {"customers", "products", "suppliers", "orders", "reviews"}
    expected = {
        "customers": ("customer_id", None, {}),
        "products": ("product_id", None, {"supplier_id": "suppliers"}),
        "suppliers": ("supplier_id", None, {}),
        "orders": (
            "order_id",
            "order_time",
            {"customer_id": "customers", "product_id": "products"},
        ),
        "reviews": (
            "review_id",
            "review_time",
            {"customer_id": "customers", "product_id": "products"},
        ),
    }
    for table, (pkey, time_col, fkeys) in expected.items():
        assert small_db.pkey(table) == pkey
        assert small_db.time_col(table) == time_col
        assert small_db.fkeys(table) == fkeys
        # RelBench requires keys 0..n-1 in row order.
        np.testing.assert_array_equal(
            small_db.table(table)[pkey], np.arange(small_db.num_rows(table))
        )
    for table in ("orders", "reviews"):
        assert small_db.table(table)[small_db.time_col(table)].is_monotonic_increasing
    # Foreign keys are used in both directions around customers and products.
    graph = small_db.schema_graph()
    assert ("orders", "customer_id", "in") in graph["customers"]
    assert ("reviews", "product_id", "in") in graph["products"]
    assert ("suppliers", "supplier_id", "out") in graph["products"]


def test_foreign_keys_are_all_valid(small_db):
    for fk in small_db.foreign_keys:
        positions = small_db.fkey_positions(fk.src_table, fk.fkey_col)
        assert (positions >= 0).all(), fk.name


def test_column_kinds(frames_and_schema):
    frames, _ = frames_and_schema
    customers, orders, reviews = frames["customers"], frames["orders"], frames["reviews"]
    products, suppliers = frames["products"], frames["suppliers"]
    # Nulls where planned: ~5% of ages, ~20% of discounts, none elsewhere.
    assert 0.01 < customers["age"].isna().mean() < 0.12
    assert 0.12 < orders["discount"].isna().mean() < 0.28
    assert customers.drop(columns="age").notna().all().all()
    assert orders.drop(columns="discount").notna().all().all()
    # Booleans.
    for frame, col in ((customers, "is_premium"), (orders, "returned"), (reviews, "verified")):
        assert frame[col].dtype == bool
        assert 0 < frame[col].mean() < 1
    # Categoricals: strings with few distinct values.
    for frame, col, max_card in (
        (customers, "segment", 4),
        (customers, "region", 5),
        (orders, "channel", 4),
        (products, "category", 8),
        (products, "brand", 16),
        (suppliers, "country", 8),
    ):
        values = frame[col]
        assert values.map(type).eq(str).all()
        assert 2 <= values.nunique() <= max_card
    # Short texts: several words, many distinct values.
    for frame, col in ((customers, "bio"), (products, "title"), (reviews, "comment")):
        assert frame[col].str.split().str.len().min() >= 2
        assert frame[col].nunique() > 5
    # Numbers in their ranges.
    assert customers["age"].dropna().between(18, 90).all()
    assert set(reviews["rating"].unique()) <= {1, 2, 3, 4, 5}
    assert reviews["rating"].nunique() >= 3
    assert (orders["quantity"] >= 1).all() and orders["quantity"].dtype.kind == "i"
    assert (orders["amount"] > 0).all() and (products["price"] > 0).all()
    assert suppliers["rating"].between(1, 5).all()
    # signup_date is a datetime attribute of a static table, not a time column.
    assert customers["signup_date"].dtype.kind == "M"


def test_times_span_start_end():
    frames, _ = make_synthetic_database(
        50, 800, start="2021-03-01", end="2021-08-31", random_state=1, as_frames=True
    )
    times = frames["orders"]["order_time"]
    assert times.min() >= pd.Timestamp("2021-03-01")
    assert times.max() < pd.Timestamp("2021-09-01")
    # Orders spread over the whole span, not bunched at one end.
    assert times.dt.month.nunique() == 6
    assert frames["reviews"]["review_time"].max() < pd.Timestamp("2021-09-01")
    # Customers only order after signing up.
    signup = frames["customers"]["signup_date"].to_numpy()[frames["orders"]["customer_id"]]
    assert (times.to_numpy() >= signup).all()


# --------------------------------------------------------------------------- determinism, sizes
def test_same_seed_gives_identical_frames(frames_and_schema):
    frames, schema = frames_and_schema
    again, schema_again = make_synthetic_database(300, 5000, random_state=0, as_frames=True)
    assert schema == schema_again
    for name in frames:
        pd.testing.assert_frame_equal(frames[name], again[name])


def test_different_seed_gives_different_frames(frames_and_schema):
    frames, _ = frames_and_schema
    other, _ = make_synthetic_database(300, 5000, random_state=1, as_frames=True)
    for name in ("customers", "orders"):
        assert not frames[name].equals(other[name])


def test_sizes_scale():
    frames, _ = make_synthetic_database(
        n_customers=120, n_orders=3000, n_products=40, n_suppliers=6, as_frames=True
    )
    assert len(frames["customers"]) == 120
    assert len(frames["orders"]) == 3000
    assert len(frames["products"]) == 40
    assert len(frames["suppliers"]) == 6
    assert 0.1 * 3000 < len(frames["reviews"]) < 0.45 * 3000
    big, _ = make_synthetic_database(n_customers=1000, n_orders=20000, as_frames=True)
    assert len(big["orders"]) == 20000 and len(big["customers"]) == 1000
    assert len(big["products"]) > len(frames["products"])


def test_returned_schema_is_a_copy():
    _, schema = make_synthetic_database(20, 100, as_frames=True)
    schema["orders"]["fkeys"].clear()
    _, fresh = make_synthetic_database(20, 100, as_frames=True)
    assert fresh["orders"]["fkeys"] == {"customer_id": "customers", "product_id": "products"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_customers": 0},
        {"n_orders": 0},
        {"n_products": 3},
        {"start": "2021-01-01", "end": "2021-01-03"},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        make_synthetic_database(**kwargs)


# --------------------------------------------------------------------------- RelBench folder
def test_folder_layout_and_offline_load(synthetic_path, dataset):
    assert (synthetic_path / "manifest.yaml").exists()
    for table in ("customers", "products", "suppliers", "orders", "reviews"):
        assert (synthetic_path / "db" / f"{table}.parquet").exists()
    for task in TASKS:
        for split in SPLITS:
            assert (synthetic_path / "tasks" / task / f"{split}.parquet").exists()
    assert dataset.get_task_names() == TASKS
    rdb = dataset.get_db()
    assert set(rdb.table_dict) == {"customers", "products", "suppliers", "orders", "reviews"}
    # get_db cuts at the test timestamp, and the full database extends past it.
    assert rdb.max_timestamp <= dataset.test_timestamp
    assert dataset.get_db(upto_test_timestamp=False).max_timestamp > dataset.test_timestamp
    assert dataset.val_timestamp == pd.Timestamp("2023-01-01")
    assert dataset.test_timestamp == pd.Timestamp("2023-07-01")


def test_sktve_loads_the_folder(synthetic_path):
    db = load_database(synthetic_path)
    assert db.spec["kind"] == "folder"
    assert db.test_timestamp == pd.Timestamp("2023-07-01")
    assert db.max_timestamp <= db.test_timestamp
    assert db.num_rows("customers") == 300
    assert 0 < db.num_rows("orders") < 5000  # cut at the test timestamp


@pytest.mark.parametrize("task_name", TASKS)
def test_label_tables(dataset, task_name):
    task = dataset.load_task(task_name)
    tables = {s: task.get_table(s, mask_input_cols=False).df for s in SPLITS}
    for split, df in tables.items():
        assert len(df) > 0, split
        assert list(df.columns) == ["timestamp", "customer_id", task.target_col]
        if task_name == "customer-churn":
            assert set(df["churn"].unique()) == {0, 1}, split
        else:
            assert (df["spend"] >= 0).all() and (df["spend"] > 0).any() and (df["spend"] == 0).any()
    # RelBench's split convention: train cutoffs every 30 days before val, then val, test.
    train_times = np.sort(tables["train"]["timestamp"].unique())
    assert (np.diff(train_times) == np.timedelta64(30, "D")).all()
    assert train_times.max() == np.datetime64(dataset.val_timestamp - pd.Timedelta(days=30))
    assert tables["val"]["timestamp"].min() == dataset.val_timestamp
    assert tables["val"]["timestamp"].max() <= dataset.test_timestamp - pd.Timedelta(days=30)
    assert tables["test"]["timestamp"].min() == dataset.test_timestamp
    assert tables["test"]["timestamp"].nunique() == 3


@pytest.mark.parametrize("task_name", TASKS)
def test_evaluate_on_val_and_test(dataset, task_name):
    task = dataset.load_task(task_name)
    rng = np.random.default_rng(0)
    for split in ("val", "test"):
        X, y = task_to_xy(task, split)
        pred = rng.random(len(X)) if task_name == "customer-churn" else np.full(len(X), y.mean())
        table = task.get_table(split, mask_input_cols=False)
        scores = task.evaluate(pred, table)
        assert len(scores) == 1 and np.isfinite(next(iter(scores.values())))
    # Without a target table, evaluate scores the (hidden) test split.
    X_test, _ = task_to_xy(task, "test")
    assert np.isfinite(next(iter(task.evaluate(np.zeros(len(X_test))).values())))


@pytest.mark.parametrize("task_name", TASKS)
def test_labels_equal_regenerated_sql(dataset, task_name):
    stored = dataset.load_task(task_name)
    regenerated = dataset.load_task(task_name, regenerate=True)
    full_db = regenerated.get_db(upto_test_timestamp=False)
    for split in SPLITS:
        a = stored.get_table(split, mask_input_cols=False).df.reset_index(drop=True)
        b = regenerated.get_table(split, mask_input_cols=False, db=full_db).df
        pd.testing.assert_frame_equal(a, b.reset_index(drop=True), check_dtype=False)


def test_label_semantics_match_a_pandas_recomputation(dataset):
    """Recompute val labels of both tasks from the orders table, independently of the SQL."""
    orders = dataset.get_db(upto_test_timestamp=False).table_dict["orders"].df
    churn = dataset.load_task("customer-churn").get_table("val").df
    spend = dataset.load_task("customer-spend").get_table("val").df
    window, year = pd.Timedelta(days=30), pd.Timedelta(days=365)
    for t in churn["timestamp"].unique():
        before = orders[(orders.order_time > t - year) & (orders.order_time <= t)]
        after = orders[(orders.order_time > t) & (orders.order_time <= t + window)]
        rows = churn[churn.timestamp == t].set_index("customer_id")["churn"]
        assert set(rows.index) == set(before.customer_id)
        expected = (~rows.index.isin(after.customer_id)).astype(int)
        np.testing.assert_array_equal(rows.to_numpy(), expected)
        spent = after.groupby("customer_id")["amount"].sum()
        got = spend[spend.timestamp == t].set_index("customer_id")["spend"]
        np.testing.assert_allclose(got.to_numpy(), spent.reindex(got.index).fillna(0).to_numpy())


def _history_counts(X: pd.DataFrame, orders: pd.DataFrame) -> np.ndarray:
    """Orders of each (customer, cutoff) in the 30 and 90 days up to the cutoff."""
    merged = X.reset_index().merge(orders[["customer_id", "order_time"]], on="customer_id")
    age = merged["timestamp"] - merged["order_time"]
    past = age >= pd.Timedelta(0)
    counts = (
        pd.DataFrame(
            {
                "index": merged["index"],
                "n30": past & (age <= pd.Timedelta(days=30)),
                "n90": past & (age <= pd.Timedelta(days=90)),
            }
        )
        .groupby("index")[["n30", "n90"]]
        .sum()
    )
    return np.log1p(counts.reindex(range(len(X))).fillna(0).to_numpy(dtype=float))


def test_planted_signal_makes_churn_predictable(dataset):
    task = dataset.load_task("customer-churn")
    orders = dataset.get_db().table_dict["orders"].df
    X_train, y_train = task_to_xy(task, "train")
    X_val, y_val = task_to_xy(task, "val")
    model = LogisticRegression().fit(_history_counts(X_train, orders), y_train)
    auc = roc_auc_score(y_val, model.predict_proba(_history_counts(X_val, orders))[:, 1])
    assert 0.6 < auc < 0.99


# --------------------------------------------------------------------------- helpers
def test_task_to_xy(dataset):
    task = dataset.load_task("customer-spend")
    for split in SPLITS:
        X, y = task_to_xy(task, split)
        table = task.get_table(split, mask_input_cols=False).df
        assert list(X.columns) == ["customer_id", "timestamp"]
        assert y.name == "spend" and len(X) == len(y) == len(table)
        np.testing.assert_allclose(y.to_numpy(), table["spend"].to_numpy())
        assert X.index.equals(pd.RangeIndex(len(X)))
    with pytest.raises(ValueError, match="split"):
        task_to_xy(task, "validation")


def test_train_val_cv(dataset):
    task = dataset.load_task("customer-churn")
    X, y, cv = train_val_cv(task)
    n_train, n_val = len(task_to_xy(task, "train")[0]), len(task_to_xy(task, "val")[0])
    assert len(X) == len(y) == n_train + n_val
    assert isinstance(cv, PredefinedSplit) and cv.get_n_splits() == 1
    (train_idx, val_idx),  = list(cv.split(X, y))  # fmt: skip
    np.testing.assert_array_equal(train_idx, np.arange(n_train))
    np.testing.assert_array_equal(val_idx, np.arange(n_train, n_train + n_val))
    assert X["timestamp"].iloc[val_idx].min() > X["timestamp"].iloc[train_idx].max()


def test_write_accepts_database_and_frames(tmp_path, small_db, frames_and_schema):
    kwargs = dict(name="t", val_timestamp="2023-01-01", test_timestamp="2023-07-01")
    from_db = write_relbench_folder(small_db, tmp_path / "a", **kwargs)
    from_pair = write_relbench_folder(frames_and_schema, tmp_path / "b", **kwargs)
    frames, schema = frames_and_schema
    from_dict = write_relbench_folder(frames, tmp_path / "c", schema=schema, **kwargs)
    fingerprints = {load_database(p).fingerprint for p in (from_db, from_pair, from_dict)}
    assert len(fingerprints) == 1
    assert not (from_db / "tasks").exists()


def test_write_rejects_what_relbench_cannot_load(tmp_path, frames_and_schema):
    frames, schema = frames_and_schema
    kwargs = dict(name="t", val_timestamp="2023-01-01", test_timestamp="2023-07-01")
    shuffled = dict(frames, customers=frames["customers"].iloc[::-1])
    with pytest.raises(ValueError, match="0..n-1"):
        write_relbench_folder((shuffled, schema), tmp_path / "a", **kwargs)
    orders = frames["orders"].copy()
    orders["order_time"] = orders["order_time"].to_numpy()[::-1]
    with pytest.raises(ValueError, match="sorted"):
        write_relbench_folder((dict(frames, orders=orders), schema), tmp_path / "b", **kwargs)
    with pytest.raises(ValueError, match="before"):
        write_relbench_folder(
            frames_and_schema, tmp_path / "c", name="t", val_timestamp="2023-07-01",
            test_timestamp="2023-01-01",
        )  # fmt: skip
    with pytest.raises(TypeError):
        write_relbench_folder(frames, tmp_path / "d", **kwargs)  # no schema


def test_write_tasks_adds_a_task_and_leaves_the_rest(tmp_path, small_db):
    folder = write_relbench_folder(
        small_db, tmp_path / "shop", name="t", val_timestamp="2023-01-01",
        test_timestamp="2023-07-01", tasks=synthetic_tasks(),
    )  # fmt: skip
    churn_before = pd.read_parquet(folder / "tasks" / "customer-churn" / "val.parquet")
    churn = synthetic_tasks()[0].to_dict()
    # A 60-day churn under a new name: a window twice as long churns fewer customers.
    write_tasks(folder, [churn | {"name": "churn-60d", "timedelta": "60 days"}])
    dataset = relbench.load_dataset(str(folder))
    assert dataset.get_task_names() == ["churn-60d", *TASKS]
    pd.testing.assert_frame_equal(
        churn_before, pd.read_parquet(folder / "tasks" / "customer-churn" / "val.parquet")
    )
    long = dataset.load_task("churn-60d").get_table("val", mask_input_cols=False).df
    assert len(long) > 0 and long["churn"].mean() < churn_before["churn"].mean()
    with pytest.raises(FileNotFoundError, match="manifest.yaml"):
        write_tasks(tmp_path / "nowhere", [churn])


def test_synthetic_task_manifests():
    churn, spend = synthetic_tasks(timedelta="14 days", num_eval_timestamps=2)
    assert (churn.name, churn.task_type, churn.target_col) == (
        "customer-churn",
        "binary_classification",
        "churn",
    )
    assert (spend.name, spend.task_type, spend.target_col) == (
        "customer-spend",
        "regression",
        "spend",
    )
    for manifest in (churn, spend):
        manifest.validate()
        assert manifest.timedelta == "14 days" and manifest.num_eval_timestamps == 2
        assert "{timedelta}" in manifest.sql and "timestamps" in manifest.sql
