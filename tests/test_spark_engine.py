"""SparkEngine: the generated SQL in Spark's dialect, run on Spark SQL, against DuckDB/numpy.

The SparkDatabase tests (at the end) read the tables in Spark itself (parquet folders,
DataFrames) and compare with the numpy engine on the same data loaded by load_database.

The dialect tests are plain string checks and always run. The others need pyspark (the
``spark`` extra) and a Java runtime, and skip with the reason when either is missing; they
share one local[1] session per module (starting one takes about 15 s).
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import sktve
from sktve.aggregates import AggregateFeatures
from sktve.datasets import make_synthetic_database, make_synthetic_dataset
from sktve.targets import (
    DuckDBEngine,
    SparkDatabase,
    SparkEngine,
    enumerate_paths,
    task_vectors,
    write_task_vectors,
)
from sktve.targets import sql as sqlgen
from sktve.targets.engine import engine_dialect, resolve_engine
from sktve.targets.paths import direct_edges, plan_aggregates

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_targets import _tiny_frames  # noqa: E402

WINDOWS = ["30D", "90D"]


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def synthetic_db():
    return make_synthetic_database(n_customers=60, n_orders=1500, random_state=0)


@pytest.fixture(scope="module")
def tiny_db():
    frames, schema = _tiny_frames()
    return sktve.load_database(frames, schema=schema)


@pytest.fixture(scope="module")
def spark():
    # CI sets SKTVE_REQUIRE_SPARK=1: there a missing pyspark or Java fails instead of skipping.
    missing = pytest.fail if os.environ.get("SKTVE_REQUIRE_SPARK") == "1" else pytest.skip
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing("pyspark is not installed (pip install 'sktve[spark]')")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing("no Java runtime (java not on PATH, JAVA_HOME unset): Spark cannot start")
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyspark 4.x about pandas 3
        session = (
            SparkSession.builder.master("local[1]")
            .appName("sktve-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.default.parallelism", "1")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", "1g")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture()
def engine(spark):
    eng = SparkEngine(spark)
    yield eng
    eng.close()


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| / |a| over entries where a is nonzero and both are defined."""
    ok = ~np.isnan(a) & ~np.isnan(b) & (a != 0)
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(a[ok] - b[ok]) / np.abs(a[ok])))


def assert_same_vectors(
    want: pd.DataFrame, got: pd.DataFrame, what: str, scales: pd.DataFrame | None = None
) -> float:
    """Equal to 1e-9 relative (modes exactly); returns the largest relative difference.

    Std over equal values is 0 in SQL and may keep ~1e-14 of prefix-sum rounding in
    numpy, hence an absolute slack of 1e-9 of the column's scale: its largest value in
    ``want``, or in ``scales`` (a larger frame of the same columns) when a few rows give
    no scale (a column of such rounding alone).
    """
    assert list(want.columns) == list(got.columns)
    pd.testing.assert_series_equal(want.iloc[:, 0], got.iloc[:, 0])
    pd.testing.assert_series_equal(want["cutoff"], got["cutoff"])
    worst = 0.0
    for col in want.columns[2:]:
        if want[col].dtype.kind in "fiu":
            a, b = want[col].to_numpy(float), got[col].to_numpy(float)
            c = a if scales is None else scales[col].to_numpy(float)
            scale = float(np.nanmax(np.abs(c))) if np.isfinite(c).any() else 0.0
            np.testing.assert_allclose(
                b, a, rtol=1e-9, atol=1e-9 * scale, equal_nan=True, err_msg=f"{what}: {col}"
            )
            big = np.abs(a) > 1e-9 * scale
            worst = max(worst, _max_rel(a[big], b[big]))
        else:
            w = [None if pd.isna(v) else str(v) for v in want[col]]
            g = [None if pd.isna(v) else str(v) for v in got[col]]
            assert w == g, f"{what}: {col}"
    print(f"\n{what}: max relative difference {worst:.3g} over {want.shape} values")
    return worst


def _given_pairs(db, cutoffs, n: int, seed: int) -> pd.DataFrame:
    """``n`` random (customer, cutoff) pairs, then their first five again (duplicates)."""
    rng = np.random.default_rng(seed)
    keys = db.table("customers")["customer_id"].to_numpy()
    pairs = pd.DataFrame({"customer_id": rng.choice(keys, n), "cutoff": rng.choice(cutoffs, n)})
    return pd.concat([pairs, pairs.iloc[:5]], ignore_index=True)


def _tied_modes(db, frame: pd.DataFrame, window: str) -> int:
    """(entity, cutoff) pairs whose orders.channel counts in the window tie at the top."""
    orders = db.table("orders")
    w = pd.Timedelta(window)
    ties = 0
    for key, cutoff in zip(frame["customer_id"], frame["cutoff"]):
        rows = orders[
            (orders["customer_id"] == key)
            & (orders["order_time"] > cutoff)
            & (orders["order_time"] <= cutoff + w)
        ]
        counts = rows["channel"].dropna().value_counts()
        ties += int(len(counts) > 1 and counts.iloc[0] == counts.iloc[1])
    return ties


# ---------------------------------------------------------------------- dialect (no Spark)
def test_quote_and_view_name():
    assert sqlgen.quote("driverId") == '"driverId"'
    assert sqlgen.quote('a"b') == '"a""b"'
    assert sqlgen.quote("driverId", "spark") == "`driverId`"
    assert sqlgen.quote("a`b", "spark") == "`a``b`"
    assert sqlgen.view_name("orders", "spark") == "`__tve_orders`"
    with pytest.raises(ValueError, match="dialect"):
        sqlgen.quote("x", "postgres")


def test_mode_expression():
    assert sqlgen.mode_expression("x.v", "spark") == "mode(x.v, true)"
    duck = sqlgen.mode_expression("x.v")
    assert duck.startswith("list_sort(") and "histogram(x.v)" in duck
    assert sqlgen.mode_expression("x.v", "duckdb") == duck


def _all_sql(db, entity, dialect):
    """Every statement the generator writes for db's paths, both join strategies."""
    paths = enumerate_paths(db, entity, max_hops=2, lookback="20D")
    plan, _ = plan_aggregates(paths, None)
    out = {}
    for path in paths:
        specs = [s for s in plan if s.path.name == path.name]
        partials = "__tve_sib0" if path.kind == "sibling" else None
        for strategy in ("entity", "cutoff"):
            sql, _ = sqlgen.path_query_sql(
                path,
                specs,
                lo=0,
                hi=86_400 * 10**9,
                strategy=strategy,
                second_temporal=path.n_hops > 1 and db.is_temporal(path.hops[1].table),
                partials=partials,
                **({} if dialect is None else {"dialect": dialect}),
            )
            out[(path.name, strategy)] = sql
        if partials:
            kw = {} if dialect is None else {"dialect": dialect}
            out[(path.name, "partials")] = sqlgen.sibling_partials_sql(
                path, 20 * 86_400 * 10**9, partials, **kw
            )
    kw = {} if dialect is None else {"dialect": dialect}
    out["first"] = sqlgen.first_time_sql(direct_edges(db, entity), **kw)
    return out


def test_default_dialect_is_duckdb(synthetic_db):
    default = _all_sql(synthetic_db, "customers", None)
    assert default == _all_sql(synthetic_db, "customers", "duckdb")
    assert any("unnest(range(__i0, __i1))" in s for s in default.values())
    assert any("CREATE OR REPLACE TEMP TABLE" in s for s in default.values())
    assert not any("`" in s for s in default.values())


def test_spark_dialect_points(synthetic_db):
    spark_sql = _all_sql(synthetic_db, "customers", "spark")
    duck = _all_sql(synthetic_db, "customers", "duckdb")
    kinds = {p.kind for p in enumerate_paths(synthetic_db, "customers", max_hops=2)}
    assert {"direct", "dimension", "sibling"} <= kinds
    for key, sql in spark_sql.items():
        assert '"' not in sql, key  # (1) identifiers in backticks
        assert "histogram" not in sql and "lambda" not in sql, key  # (2) the mode
        assert "TEMP TABLE" not in sql and "unnest" not in sql, key  # (3), (4)
        # Apart from the four points the statements are the same.
        assert sql.replace("`", '"').count("JOIN") == duck[key].count("JOIN"), key
    modes = [s for s in spark_sql.values() if "mode(" in s]
    assert modes and all(", true)" in s for s in modes)
    assert any("explode(sequence(__i0, __i1 - 1)) AS __cid" in s for s in spark_sql.values())
    partials = [s for k, s in spark_sql.items() if k[-1] == "partials"]
    assert partials and all(
        s.startswith("CREATE OR REPLACE TEMPORARY VIEW __tve_sib0 AS") for s in partials
    )
    assert "`customer_id` AS entity" in spark_sql["first"]


def test_resolve_engine_names_and_objects():
    assert resolve_engine(None) is None
    assert resolve_engine("duckdb") is None  # the default path, unchanged
    assert isinstance(resolve_engine("spark"), SparkEngine)  # no session yet
    duck = DuckDBEngine(threads=1, memory_limit="1GB")
    assert resolve_engine(duck) is duck and engine_dialect(duck) == "duckdb"
    duck.close()
    assert engine_dialect(None) == "duckdb" and SparkEngine().dialect == "spark"
    with pytest.raises(ValueError, match="spark"):
        resolve_engine("postgres")
    with pytest.raises(TypeError, match="register"):
        resolve_engine(object())


def test_bad_engine_parameters(tiny_db):
    with pytest.raises(ValueError, match="engine"):
        task_vectors(tiny_db, "users", ["2024-01-01"], "10D", engine="postgres")
    X = pd.DataFrame({"user_id": [0, 1], "ts": pd.to_datetime(["2024-01-20"] * 2)})
    with pytest.raises(ValueError, match="engine"):
        AggregateFeatures(database=tiny_db, entity_table="users", engine="postgres").fit(X)
    agg = AggregateFeatures(database=tiny_db, entity_table="users", engine="spark")
    assert agg.get_params()["engine"] == "spark"  # stored as given


def test_spark_engine_never_pickles_its_session():
    marker = object()  # stands for a session: it cannot be pickled
    eng = SparkEngine(marker, master="local[2]", config={"spark.driver.memory": "2g"})
    back = pickle.loads(pickle.dumps(eng))
    assert back.spark is None and back.master == "local[2]"
    assert back.config == {"spark.driver.memory": "2g"} and back.dialect == "spark"
    # clone deep-copies parameters: the copy shares the session it was given.
    assert copy.deepcopy(eng).spark is marker
    agg = AggregateFeatures(database=None, entity_table="users", engine=eng)
    assert clone(agg).get_params()["engine"].spark is marker
    assert "<session>" in repr(eng)


# ---------------------------------------------------------------------- engine (Spark)
def test_register_and_execute_dtypes(engine):
    frame = pd.DataFrame(
        {
            "k": np.arange(4, dtype=np.int64),
            "f": [1.5, np.nan, 3.0, 4.0],
            "s": np.array(["b", None, "a", "b"], dtype=object),
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "t": pd.to_datetime(
                ["2024-01-01", None, "2024-01-03 12:00", "2024-02-01"], format="ISO8601"
            ),
        }
    )
    sql = (
        "SELECT k, f, s, n, t, CAST(count(f) OVER () AS BIGINT) AS c, "
        "sum(f) OVER () AS total FROM frame ORDER BY k"
    )
    engine.register("frame", frame)
    got = engine.execute([sql])
    duck = DuckDBEngine(threads=1, memory_limit="1GB")
    duck.register("frame", frame)
    want = duck.execute([sql])
    duck.close()
    for col in ("k", "f", "s", "n", "c", "total"):
        assert got[col].dtype == want[col].dtype, col
    assert got["t"].dtype.kind == "M"  # naive; Spark keeps microseconds
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert got["f"].isna().tolist() == [False, True, False, False]  # NaN read as NULL
    assert engine.execute("CREATE OR REPLACE TEMPORARY VIEW v AS SELECT 1 AS x") is None
    # Ties of the mode go to the smallest value, as in sktve's other engines.
    tie = engine.execute("SELECT mode(s, true) AS m FROM frame WHERE k <> 0")
    assert tie["m"].iloc[0] == "a"
    engine.close()
    assert not engine.session.catalog.tableExists("frame")


def test_task_vectors_synthetic_match(synthetic_db, spark, monkeypatch):
    db = synthetic_db
    times = db.time_values("orders")
    cutoffs = pd.to_datetime(np.quantile(times, [0.2, 0.4, 0.6, 0.8]).astype("int64"))
    kwargs = dict(max_hops=2, max_columns=None)
    numpy_tv = task_vectors(db, "customers", cutoffs, WINDOWS, **kwargs)
    duck_sql = task_vectors(db, "customers", cutoffs, WINDOWS, backend="sql", **kwargs)
    spark_tv = task_vectors(db, "customers", cutoffs, WINDOWS, engine=SparkEngine(spark), **kwargs)
    assert {p.kind for p in enumerate_paths(db, "customers", max_hops=2)} >= {
        "direct",
        "dimension",
        "sibling",
    }
    modes = [c for c in spark_tv.columns if c.endswith("|mode")]
    assert modes and spark_tv[modes].notna().any().all()
    assert _tied_modes(db, numpy_tv, "30D") > 0  # ties exist, and are broken the same
    assert_same_vectors(numpy_tv, spark_tv, "synthetic spark vs numpy")
    assert_same_vectors(duck_sql, spark_tv, "synthetic spark vs duckdb-sql")
    # The other join order (explode(sequence(...))) on the same pairs.
    import sktve.targets.vectors as vectors

    monkeypatch.setattr(vectors, "_join_strategy", lambda *args: "cutoff")
    by_cutoff = task_vectors(db, "customers", cutoffs, "30D", engine="spark", **kwargs)
    monkeypatch.undo()
    assert_same_vectors(
        task_vectors(db, "customers", cutoffs, "30D", **kwargs),
        by_cutoff,
        "synthetic spark (cutoff join) vs numpy",
    )
    # "spark" made an engine and closed it: its views are gone from the session.
    assert not spark.catalog.tableExists("__pairs")


@pytest.mark.relf1
def test_task_vectors_relf1_match(relf1_db, spark):
    db = relf1_db
    cutoffs = pd.date_range("2000-01-01", "2008-01-01", periods=5)
    kwargs = dict(max_hops=2, max_columns=None)
    numpy_tv = task_vectors(db, "drivers", cutoffs, WINDOWS, **kwargs)
    duck_sql = task_vectors(db, "drivers", cutoffs, WINDOWS, backend="sql", **kwargs)
    spark_tv = task_vectors(db, "drivers", cutoffs, WINDOWS, engine=SparkEngine(spark), **kwargs)
    assert (spark_tv["no_activity"] == 0).sum() > 20
    assert_same_vectors(numpy_tv, spark_tv, "rel-f1 spark vs numpy")
    assert_same_vectors(duck_sql, spark_tv, "rel-f1 spark vs duckdb-sql")


def test_aggregate_features_spark_equals_default(synthetic_db, spark):
    db = synthetic_db
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "customer_id": rng.choice(db.table("customers")["customer_id"].to_numpy(), 80),
            "timestamp": pd.to_datetime(
                rng.choice(np.quantile(db.time_values("orders"), [0.4, 0.6, 0.8]), 80).astype(
                    "int64"
                )
            ),
        }
    )
    params = dict(database=db, entity_table="customers", window=WINDOWS, max_hops=2)
    default = AggregateFeatures(**params)
    on_spark = AggregateFeatures(**params, engine=SparkEngine(spark))
    want, got = default.fit_transform(X), on_spark.fit_transform(X)
    assert list(default.get_feature_names_out()) == list(on_spark.get_feature_names_out())
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(on_spark.transform(X.iloc[:10]), want[:10], rtol=1e-6, atol=1e-6)
    big = np.abs(want) > 1e-6  # float32 output: std of equal values may read 1e-8 in numpy
    worst = _max_rel(want[big].astype(float), got[big].astype(float))
    print(f"\nAggregateFeatures spark vs default: max relative difference {worst:.3g}")

    # (e) Fitted, it pickles without the session and transforms again after loading.
    blob = pickle.dumps(on_spark)
    back = pickle.loads(blob)
    assert back.engine.spark is None
    np.testing.assert_allclose(back.transform(X), want, rtol=1e-6, atol=1e-6)


def test_pretrainer_spark_targets_pickle(synthetic_db, spark):
    db = synthetic_db
    X = pd.DataFrame(
        {
            "customer_id": db.table("customers")["customer_id"].to_numpy()[:20],
            "timestamp": pd.to_datetime(
                [np.quantile(db.time_values("orders"), 0.8).astype("int64")] * 20
            ),
        }
    )
    params = dict(
        database=db,
        entity_table="customers",
        window="30D",
        embedding_dim=8,
        fanouts=(4,),
        max_epochs=1,
        steps_per_epoch=2,
        batch_size=32,
        random_state=0,
        device="cpu",
    )
    tve = sktve.TVEPretrainer(**params, engine=SparkEngine(spark)).fit(X)
    default = sktve.TVEPretrainer(**params).fit(X)
    names = tve.target_scaler_.get_feature_names_out()
    assert list(names) == list(default.target_scaler_.get_feature_names_out())
    assert tve.n_pretrain_rows_ == default.n_pretrain_rows_
    back = pickle.loads(pickle.dumps(tve))
    assert back.engine.spark is None and back.get_params()["engine"].dialect == "spark"
    np.testing.assert_allclose(back.transform(X), tve.transform(X), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- SparkDatabase
@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory):
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("spark-native") / "shop", n_customers=60, n_orders=1500
    )


def test_spark_database_schema_errors_and_pickle(synthetic_folder, tmp_path):
    """No Spark needed: the manifest is all a SparkDatabase reads when it is made."""
    db = sktve.load_database(synthetic_folder)
    sdb = SparkDatabase(synthetic_folder)
    assert sdb.table_names == db.table_names
    assert {t: s.to_dict() for t, s in sdb.schema.items()} == {
        t: s.to_dict() for t, s in db.schema.items()
    }
    assert sdb.foreign_keys == db.foreign_keys
    assert (sdb.val_timestamp, sdb.test_timestamp) == (db.val_timestamp, db.test_timestamp)
    back = pickle.loads(pickle.dumps(sdb))
    assert back.schema == sdb.schema and back._session is None
    assert copy.deepcopy(sdb) is sdb
    with pytest.raises(KeyError, match="unknown table 'nope'"):
        sdb.pkey("nope")
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        SparkDatabase(tmp_path / "absent")
    with pytest.raises(ValueError, match="no manifest.yaml"):
        SparkDatabase(tmp_path)
    with pytest.raises(ValueError, match="needs a schema"):
        SparkDatabase({"users": "users"})
    with pytest.raises(ValueError, match="no schema for tables"):
        SparkDatabase({"users": "users"}, schema={})
    with pytest.raises(TypeError, match="pandas frames"):
        SparkDatabase({"users": pd.DataFrame()}, schema={"users": {}})
    # Without a Spark engine a SparkDatabase is refused before anything runs.
    for engine in (None, "duckdb", DuckDBEngine(threads=1, memory_limit="1GB")):
        with pytest.raises(ValueError, match="SparkEngine"):
            task_vectors(sdb, "customers", ["2022-01-01"], "30D", engine=engine)
    with pytest.raises(ValueError, match="SparkEngine"):
        write_task_vectors(tmp_path / "tv", sdb, "customers", ["2022-01-01"], "30D")


@pytest.mark.relf1
def test_spark_database_relf1_match(relf1_path, relf1_db, spark):
    """rel-f1 read by Spark from its parquet files equals the numpy engine (2 hops)."""
    sdb = SparkDatabase(relf1_path)
    engine = SparkEngine(spark)
    # The cut (upto_test_timestamp) is load_database's: the same time range per table.
    for table in sdb.table_names:
        assert sdb.time_range(table) == relf1_db.time_range(table), table
    assert SparkDatabase(relf1_path, upto_test_timestamp=False).max_timestamp > (
        relf1_db.test_timestamp
    )
    cutoffs = pd.to_datetime(["2001-04-01", "2004-06-15", "2007-08-01"])  # in season
    kwargs = dict(max_hops=2, max_columns=None)
    want = task_vectors(relf1_db, "drivers", cutoffs, WINDOWS, **kwargs)
    got = task_vectors(sdb, "drivers", cutoffs, WINDOWS, engine=engine, **kwargs)
    kinds = {p.kind for p in enumerate_paths(relf1_db, "drivers", max_hops=2)}
    assert kinds == {"direct", "dimension", "sibling"}  # every 2-hop kind rel-f1 has
    assert got.attrs == want.attrs
    assert list(got.dtypes) == list(want.dtypes)
    assert (got["no_activity"] == 0).sum() > 20
    assert_same_vectors(want, got, "rel-f1 SparkDatabase vs numpy")
    with pytest.raises(ValueError, match="unknown entity table"):
        task_vectors(sdb, "nope", cutoffs, "30D", engine=engine)
    # The call's own views are gone (other tests' engines may leave theirs).
    left = [t.name for t in spark.catalog.listTables()]
    assert not [n for n in left if n.startswith(("__tve_cut_", "__tve_part"))], left


def test_spark_database_synthetic_match_and_write(synthetic_folder, spark, tmp_path, caplog):
    """The synthetic folder: active pairs, modes with ties; given pairs written to parquet,
    with each step of the plan timed and logged."""
    db = sktve.load_database(synthetic_folder)
    sdb = SparkDatabase(synthetic_folder)
    times = db.time_values("orders")
    cutoffs = pd.to_datetime(np.quantile(times, [0.3, 0.6, 0.9]).astype("int64"))
    kwargs = dict(max_hops=2, max_columns=None)
    want = task_vectors(db, "customers", cutoffs, WINDOWS, **kwargs)
    got = task_vectors(sdb, "customers", cutoffs, WINDOWS, engine=SparkEngine(spark), **kwargs)
    assert {p.kind for p in enumerate_paths(db, "customers", max_hops=2)} >= {
        "direct",
        "dimension",
        "sibling",
    }
    assert _tied_modes(db, want, "30D") > 0  # ties exist, and are broken the same
    assert list(got.dtypes) == list(want.dtypes)
    assert_same_vectors(want, got, "synthetic SparkDatabase vs numpy")

    # Given pairs (duplicates kept, in their order), written by Spark to a parquet folder.
    pairs = _given_pairs(db, cutoffs, 50, seed=0)
    want = task_vectors(db, "customers", None, WINDOWS, entities=pairs, **kwargs)
    caplog.set_level(logging.INFO, logger="sktve.targets.spark")
    info = write_task_vectors(
        tmp_path / "tv",
        sdb,
        "customers",
        None,
        WINDOWS,
        entities=pairs,
        engine=SparkEngine(spark),
        **kwargs,
    )
    back = pd.read_parquet(info["path"])
    assert info["rows"] == len(back) == len(pairs) and info["columns"] == list(want.columns)
    assert info["chunks"] >= 1 and info["paths"] == want.attrs["paths"]
    # One step for the pairs, one per table read, one per window and path, then the write.
    steps = [step for step, _ in info["step_seconds"]]
    n_parts = len(WINDOWS) * (1 + len(info["paths"]))
    assert steps[0] == "(entity, cutoff) pairs"
    assert steps[-1] == "group the parts and write the result"
    assert sum(" path " in step or " activity " in step for step in steps) == n_parts
    assert all(seconds >= 0 for _, seconds in info["step_seconds"])
    logged = [r.getMessage() for r in caplog.records if r.name == "sktve.targets.spark"]
    assert len(logged) == len(steps) and logged[-1].startswith(f"step {len(steps)} (group")
    back["cutoff"] = back["cutoff"].astype("datetime64[ns]")  # written as microseconds
    assert_same_vectors(want, back, "synthetic SparkDatabase to parquet vs numpy")
    with pytest.raises(ValueError, match="ids are not keys"):
        task_vectors(
            sdb,
            "customers",
            None,
            "30D",
            entities=pd.DataFrame({"customer_id": [-7], "cutoff": cutoffs[:1]}),
            engine=SparkEngine(spark),
        )


def test_spark_database_bucket_join(synthetic_folder, spark, monkeypatch):
    """The all-SQL bucket join (the "cutoff" order on a SparkDatabase, chosen when entities
    have many cutoffs): parts keyed by (cutoff, entity), no join to the pairs per part;
    active pairs, and given pairs (only those kept, duplicates in their order)."""
    import sktve.targets.vectors as vectors

    db = sktve.load_database(synthetic_folder)
    sdb = SparkDatabase(synthetic_folder)
    times = db.time_values("orders")
    cutoffs = pd.to_datetime(np.quantile(times, np.linspace(0.2, 0.9, 8)).astype("int64"))
    kwargs = dict(max_hops=2, max_columns=None)
    want = active = task_vectors(db, "customers", cutoffs, WINDOWS, **kwargs)
    chosen = []

    def by_cutoff(*args):
        chosen.append(args)
        return "cutoff"

    monkeypatch.setattr(vectors, "_join_strategy", by_cutoff)
    got = task_vectors(sdb, "customers", cutoffs, WINDOWS, engine=SparkEngine(spark), **kwargs)
    assert len(chosen) == len(WINDOWS)  # one choice per window
    assert list(got.dtypes) == list(want.dtypes)
    assert_same_vectors(want, got, "synthetic SparkDatabase, bucket join, vs numpy")

    pairs = _given_pairs(db, cutoffs, 60, seed=1)
    monkeypatch.undo()
    want = task_vectors(db, "customers", None, WINDOWS, entities=pairs, **kwargs)
    monkeypatch.setattr(vectors, "_join_strategy", by_cutoff)
    got = task_vectors(
        sdb, "customers", None, WINDOWS, entities=pairs, engine=SparkEngine(spark), **kwargs
    )
    assert len(got) == len(pairs)
    assert_same_vectors(
        want, got, "synthetic SparkDatabase, bucket join, given pairs vs numpy", scales=active
    )


def test_spark_database_of_dataframes(tiny_db, spark):
    """Spark DataFrames and session tables with a schema; pickled without them."""
    from sktve.targets.engine import _to_arrow

    frames, schema = _tiny_frames()
    sources = {name: spark.createDataFrame(_to_arrow(frame)) for name, frame in frames.items()}
    sources["users"].createOrReplaceTempView("tiny_users")
    sources["users"] = "tiny_users"  # a table of the session, by name
    sdb = SparkDatabase(sources, schema=schema)
    cutoffs = ["2024-01-01", "2024-01-05"]
    want = task_vectors(tiny_db, "users", cutoffs, ["10D", "30D"], max_columns=None)
    got = task_vectors(
        sdb, "users", cutoffs, ["10D", "30D"], engine=SparkEngine(spark), max_columns=None
    )
    assert want.loc[0, "10D|orders|channel|mode"] == "app"  # a tie, to the smallest
    assert list(got.dtypes) == list(want.dtypes)
    assert_same_vectors(want, got, "tiny SparkDatabase of DataFrames vs numpy")
    # DataFrames are not pickled; the session's table names are.
    back = pickle.loads(pickle.dumps(sdb))
    assert back._sources["users"] == "tiny_users" and back._sources["orders"] is None
    with pytest.raises(RuntimeError, match="not pickled"):
        back.frame("orders")
    assert back.frame("users").count() == len(frames["users"])
    with pytest.raises(ValueError, match="no table or view"):
        SparkDatabase({**sources, "users": "absent_view"}, schema=schema).frame("users")
    spark.catalog.dropTempView("tiny_users")


def test_views_store_parts_as_parquet_and_clean_up(spark):
    """A call's stored parts: parquet in a folder deleted at the end (local master), else
    checkpoints on the executors' disks."""
    from urllib.parse import urlparse

    from sktve.targets.spark_source import _Views

    views = _Views(spark)
    assert views.folder.startswith("file:")  # local, whatever the default file system
    folder = Path(urlparse(views.folder).path)
    stored = views.materialise(spark.range(7), "seven ids")
    assert sorted(r.id for r in stored.collect()) == list(range(7))
    assert [step for step, _ in views.step_seconds] == ["seven ids"]
    assert any(folder.rglob("*.parquet"))
    views.close()
    assert not folder.exists()

    views = _Views(spark)
    Path(urlparse(views.folder).path).rmdir()
    views.folder = None  # as on a cluster without a checkpoint directory
    assert views.materialise(spark.range(3), "three ids").count() == 3
    views.close()
