import io
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from _perturb import perturb_after as _perturb_after
from _perturb import with_fitted_state
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import Pipeline

from sktve import TVEPretrainer, load_database
from sktve.datasets import make_synthetic_database
from sktve.pretrainer import default_cutoffs, infer_window

FAST = dict(
    entity_table="customers",
    window="30D",
    embedding_dim=16,
    fanouts=(8, 4),
    max_epochs=2,
    steps_per_epoch=3,
    batch_size=64,
    random_state=0,
)


@pytest.fixture(scope="module")
def frames():
    return make_synthetic_database(n_customers=120, n_orders=3000, random_state=1, as_frames=True)


@pytest.fixture(scope="module")
def db(frames):
    return load_database(frames[0], schema=frames[1])


@pytest.fixture(scope="module")
def X():
    times = pd.date_range("2021-03-01", periods=6, freq="30D")
    ids = np.arange(40)
    grid = pd.MultiIndex.from_product([times, ids], names=["timestamp", "customer_id"])
    return grid.to_frame(index=False)[["customer_id", "timestamp"]]


@pytest.fixture(scope="module")
def fitted(db, X):
    return TVEPretrainer(database=db, **FAST).fit(X)


def _add_rows_after(frames, schema, boundary):
    """Append a copy of every timestamped row later than ``boundary``, a day later, new keys."""
    out = {}
    for name, frame in frames.items():
        time_col = schema[name].get("time_col")
        if time_col is not None:
            late = frame[frame[time_col] > boundary].copy()
            pkey = schema[name].get("pkey")
            if pkey is not None:
                late[pkey] = frame[pkey].max() + 1 + np.arange(len(late))
            late[time_col] = late[time_col] + pd.Timedelta("1D")
            frame = pd.concat([frame, late], ignore_index=True)
        out[name] = frame
    return out


def test_infer_window_and_default_cutoffs():
    times = pd.date_range("2020-01-01", periods=5, freq="30D").to_numpy()
    assert infer_window(np.concatenate([times, times])) == pd.Timedelta("30D")
    with pytest.raises(ValueError, match="single distinct timestamp"):
        infer_window(times[:1])
    cutoffs = default_cutoffs(times, pd.Timedelta("30D"), pd.Timestamp("2019-10-01"))
    assert pd.DatetimeIndex(cutoffs[-5:]).equals(pd.DatetimeIndex(times))
    assert pd.Timestamp(cutoffs[0]) >= pd.Timestamp("2019-10-01")
    assert np.all(np.diff(cutoffs) == np.timedelta64(30, "D"))


def test_fit_transform_shapes_dtype_and_names(fitted, X):
    Z = fitted.transform(X)
    assert Z.shape == (len(X), 16) and Z.dtype == np.float32
    assert np.isfinite(Z).all() and Z.std(axis=0).max() > 0
    assert list(fitted.get_feature_names_out()) == [f"tvepretrainer{i}" for i in range(16)]
    assert fitted.n_features_in_ == 2
    assert len(fitted.history_) >= 1 and {"train_loss", "holdout_loss"} <= set(fitted.history_[0])
    assert fitted.boundary_ == X["timestamp"].max()
    assert pd.Timestamp(fitted.cutoffs_.max()) <= X["timestamp"].max()


def test_set_output_pandas_keeps_index(db, X):
    X_indexed = X.set_index(pd.Index(np.arange(len(X)) * 10 + 5))
    est = TVEPretrainer(database=db, **FAST).set_output(transform="pandas")
    out = est.fit_transform(X_indexed)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(X_indexed.index)
    assert list(out.columns) == list(est.get_feature_names_out())


def test_deterministic_given_random_state_and_row_independent(fitted, db, X):
    again = TVEPretrainer(database=db, **FAST).fit(X)
    np.testing.assert_array_equal(fitted.transform(X), again.transform(X))
    Z = fitted.transform(X)
    subset = X.iloc[[7, 3, 150]]
    np.testing.assert_allclose(fitted.transform(subset), Z[[7, 3, 150]], rtol=1e-5, atol=1e-6)


def test_transform_ignores_rows_after_each_time(fitted, frames, X):
    tables, schema = frames
    boundary = X["timestamp"].max()
    perturbed = load_database(_perturb_after(tables, schema, boundary), schema=schema)
    before = fitted.transform(X)
    # Same fitted state, other database: only rows at or before each row's time may matter.
    est = with_fitted_state(fitted, database=perturbed)
    np.testing.assert_array_equal(est.transform(X), before)


def test_fit_ignores_rows_after_boundary_plus_window(frames, X, db):
    tables, schema = frames
    boundary = X["timestamp"].max() + pd.Timedelta("30D")
    perturbed = load_database(_perturb_after(tables, schema, boundary), schema=schema)
    a = TVEPretrainer(database=db, **FAST).fit(X)
    b = TVEPretrainer(database=perturbed, **FAST).fit(X)
    assert a.encoder_state_ == b.encoder_state_
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_fit_sees_rows_inside_the_window(frames, X, db):
    # The converse: the targets do depend on the window after the last cutoff.
    tables, schema = frames
    boundary = X["timestamp"].max() - pd.Timedelta("60D")
    perturbed = load_database(_perturb_after(tables, schema, boundary), schema=schema)
    a = TVEPretrainer(database=db, **FAST).fit(X)
    b = TVEPretrainer(database=perturbed, **FAST).fit(X)
    assert a.encoder_state_ != b.encoder_state_


def test_untrained_encoder_differs_from_trained(fitted, db, X):
    untrained = TVEPretrainer(database=db, **{**FAST, "max_epochs": 0}).fit(X)
    assert untrained.history_ == [] and untrained.n_steps_ == 0
    assert not np.allclose(untrained.transform(X), fitted.transform(X))


def test_persistence_identical_and_database_not_pickled(fitted, db, X, tmp_path):
    path = tmp_path / "tve.joblib"
    joblib.dump(fitted, path)
    assert path.stat().st_size < 5_000_000
    loaded = joblib.load(path)
    # In this process the fitted database is alive, so the loaded model finds it again.
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    reloaded = pickle.loads(pickle.dumps(fitted))
    reloaded.set_params(database=db)
    np.testing.assert_array_equal(reloaded.transform(X), fitted.transform(X))


def test_loading_without_the_database_says_how_to_attach(frames, X, tmp_path):
    script = f"""
import joblib, pandas as pd
from sktve import DatabaseNotAttachedError
model = joblib.load({str(tmp_path / "m.joblib")!r})
X = pd.read_pickle({str(tmp_path / "X.pkl")!r})
try:
    model.transform(X)
except DatabaseNotAttachedError as err:
    print("ERROR", err)
"""
    tables, schema = frames
    est = TVEPretrainer(database=load_database(tables, schema=schema), **FAST).fit(X)
    joblib.dump(est, tmp_path / "m.joblib")
    X.to_pickle(tmp_path / "X.pkl")
    # A fresh process has no live handle with this data: the error says what to do.
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "ERROR" in out.stdout, out.stderr
    assert "attach" in out.stdout and "set_params(database=" in out.stdout


def test_weights_are_saved_as_safe_tensors(fitted):
    import torch

    state = torch.load(io.BytesIO(fitted.encoder_state_), weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_clone_shares_database(fitted):
    assert clone(fitted).database is fitted.database


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda X: X[["customer_id"]], "prediction time"),
        (lambda X: X.assign(label=1), "besides the entity column"),
        (lambda X: X.iloc[:0], "empty"),
        (lambda X: X.assign(timestamp=pd.NaT), "time"),
        (lambda X: X.assign(timestamp=pd.Timestamp("1990-01-01")), "has activity.*hold its keys"),
    ],
)
def test_bad_input_errors(db, X, bad, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # times before the data start
        with pytest.raises(ValueError, match=message):
            TVEPretrainer(database=db, **FAST).fit(bad(X))


def test_unknown_entities_policy(fitted, X):
    X_bad = X.iloc[:5].copy()
    X_bad.loc[X_bad.index[0], "customer_id"] = 99_999
    with pytest.raises(ValueError, match="not in table 'customers'"):
        fitted.transform(X_bad)
    zeros = with_fitted_state(fitted, handle_unknown="zeros")
    Z = zeros.transform(X_bad)
    assert (Z[0] == 0).all() and np.abs(Z[1:]).sum() > 0


@pytest.mark.parametrize(
    "params, message",
    [
        ({"database": None}, "needs a database"),
        ({"entity_table": "nope"}, "unknown entity_table"),
        ({"fanouts": ()}, "fanouts"),
        ({"temporal_strategy": "recent"}, "temporal_strategy"),
        ({"mask_rate": 1.5}, "mask_rate"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"handle_unknown": "ignore"}, "handle_unknown"),
        ({"window": "-3D"}, "positive"),
        ({"cutoffs": ["2030-01-01"]}, "past the last time"),
        ({"as_of": "not a date"}, "cannot parse as_of"),
        ({"as_of": pd.NaT}, "not a time"),
        ({"output": "vector"}, "output must be one of"),
    ],
)
def test_bad_parameters(db, X, params, message):
    with pytest.raises(ValueError, match=message):
        TVEPretrainer(**{**FAST, "database": db, **params}).fit(X)


def test_window_longer_than_data_warns(db, X):
    with pytest.warns(UserWarning, match="longer than the data"):
        TVEPretrainer(database=db, **{**FAST, "window": "3000D", "max_epochs": 0}).fit(X)


def test_does_not_mutate_X(fitted, X):
    before = X.copy()
    fitted.transform(X)
    pd.testing.assert_frame_equal(X, before)


def test_pipeline_gridsearch_with_memory_pretrains_once(db, X, tmp_path, pretrain_calls):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, len(X))
    pipe = Pipeline(
        [
            ("tve", TVEPretrainer(database=db, **FAST, memory=str(tmp_path / "cache"))),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    fold = np.where(X["timestamp"] < X["timestamp"].max(), -1, 0)
    grid = {"tve__mask_rate": [0.0, 0.15], "clf__C": [0.1, 1.0, 10.0]}
    search = GridSearchCV(pipe, grid, cv=PredefinedSplit(fold), scoring="roc_auc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    # One pre-training per mask_rate on the training fold (the 3 values of C share it), and
    # one for the refit of the best setting on all rows.
    assert len(pretrain_calls) == 3
    assert search.best_params_["tve__mask_rate"] in (0.0, 0.15)
    assert search.predict_proba(X).shape == (len(X), 2)


@pytest.mark.parametrize("head", ["logistic", "hgb", "hgb-regressor", "lightgbm", "skorch"])
def test_pipeline_with_each_head(db, X, head, tmp_path_factory):
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from sktve.heads import SkorchMLPClassifier

    heads = {
        "logistic": LogisticRegression(max_iter=500),
        "hgb": HistGradientBoostingClassifier(max_iter=20),
        "hgb-regressor": HistGradientBoostingRegressor(max_iter=20),
        "lightgbm": LGBMClassifier(n_estimators=20, verbose=-1),
        "skorch": SkorchMLPClassifier(max_epochs=3),
    }
    rng = np.random.default_rng(0)
    y = rng.normal(size=len(X)) if head == "hgb-regressor" else rng.integers(0, 2, len(X))
    cache = tmp_path_factory.getbasetemp() / "shared-tve-cache"
    pipe = Pipeline(
        [("tve", TVEPretrainer(database=db, **FAST, memory=str(cache))), ("head", heads[head])]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X, y)
    pred = pipe.predict(X)
    assert pred.shape == (len(X),)
    if head != "hgb-regressor":
        assert set(np.unique(pred)) <= {0, 1}


def test_path_weights_equalise_blocks():
    from sktve.pretrainer import path_weights

    names = np.array(
        [
            "30D|results|points|mean",
            "30D|results|points|max",
            "30D|results|status|mode=1",
            "30D|results|status|mode=other",
            "30D|results->races|year|max",
            "7D|no_activity",
            "no_activity",
        ]
    )
    w = path_weights(names)
    assert w.dtype == np.float32
    np.testing.assert_allclose(w[:4], 0.5)  # 4 columns: squared weights sum to 1
    np.testing.assert_allclose(w[4:], 1.0)


def test_balance_inactive_keeps_all_active_rows():
    from sktve.pretrainer import _balance_inactive

    inactive = np.array([True] * 90 + [False] * 10)
    keep = _balance_inactive(inactive, 2.0, np.random.default_rng(0))
    assert keep[90:].all() and keep[:90].sum() == 20
    assert _balance_inactive(inactive, None, np.random.default_rng(0)).all()


def test_database_given_as_path_is_loaded_once(synthetic_path, monkeypatch):
    import sktve.pretrainer as module

    task_X = pd.DataFrame({"customer_id": np.arange(30), "timestamp": pd.Timestamp("2022-06-01")})
    est = TVEPretrainer(database=str(synthetic_path), **{**FAST, "max_epochs": 0}).fit(task_X)
    loads = []
    original = module.load_database
    monkeypatch.setattr(
        module, "load_database", lambda *a, **k: loads.append(1) or original(*a, **k)
    )
    first = est.transform(task_X)
    np.testing.assert_array_equal(est.transform(task_X), first)
    assert loads == []  # the fitted handle serves transform; no reload per call


def test_transform_against_a_database_with_an_empty_table(frames, db):
    """An early snapshot (reviews empty) embeds as the same data with every review later."""
    tables, schema = frames
    X = pd.DataFrame({"customer_id": np.arange(40), "timestamp": pd.Timestamp("2021-06-01")})
    est = TVEPretrainer(database=db, **FAST).fit(X)
    reviews = tables["reviews"]
    later = reviews.assign(review_time=reviews["review_time"] + pd.Timedelta("3650D"))
    empty_db = load_database(dict(tables, reviews=reviews.iloc[:0]), schema=schema)
    later_db = load_database(dict(tables, reviews=later), schema=schema)
    on_empty = est.set_params(database=empty_db).transform(X)
    np.testing.assert_array_equal(on_empty, est.set_params(database=later_db).transform(X))
    assert np.isfinite(on_empty).all()


# ---------------------------------------------------------------- as_of (declared data cut)
AS_OF = pd.Timestamp("2021-05-15")


@pytest.fixture(scope="module")
def fitted_as_of(db, X):
    return TVEPretrainer(database=db, as_of=AS_OF, **FAST).fit(X)


def test_as_of_clamps_boundary_and_cutoffs(fitted_as_of, db, X):
    assert (X["timestamp"] > AS_OF).any()  # X runs past the cut
    assert fitted_as_of.as_of_ == AS_OF and fitted_as_of.boundary_ == AS_OF
    assert pd.Timestamp(fitted_as_of.cutoffs_.max()) == AS_OF
    # Given cutoffs after the cut collapse onto it.
    given = pd.to_datetime(["2021-03-01", "2021-06-29", "2021-07-29"])
    est = TVEPretrainer(
        database=db, **{**FAST, "max_epochs": 0, "as_of": AS_OF, "cutoffs": given}
    ).fit(X)
    assert pd.DatetimeIndex(est.cutoffs_).equals(pd.DatetimeIndex(["2021-03-01", AS_OF]))


def test_as_of_transform_ignores_rows_after_the_cut(fitted_as_of, frames, X):
    tables, schema = frames
    future = _add_rows_after(_perturb_after(tables, schema, AS_OF), schema, AS_OF)
    est = with_fitted_state(fitted_as_of, database=load_database(future, schema=schema))
    # Every row of X, also those later than the cut, sees nothing after as_of.
    np.testing.assert_array_equal(est.transform(X), fitted_as_of.transform(X))


def test_as_of_fit_ignores_rows_after_the_cut_plus_window(fitted_as_of, frames, X):
    tables, schema = frames
    horizon = AS_OF + pd.Timedelta("30D")
    future = _add_rows_after(_perturb_after(tables, schema, horizon), schema, horizon)
    b = TVEPretrainer(database=load_database(future, schema=schema), as_of=AS_OF, **FAST).fit(X)
    assert b.encoder_state_ == fitted_as_of.encoder_state_
    assert b.head_state_ == fitted_as_of.head_state_
    np.testing.assert_array_equal(b.cutoffs_, fitted_as_of.cutoffs_)
    assert [h["train_loss"] for h in b.history_] == [h["train_loss"] for h in fitted_as_of.history_]
    np.testing.assert_array_equal(b.transform(X), fitted_as_of.transform(X))


def test_as_of_row_after_the_cut_is_embedded_at_the_cut(fitted_as_of, fitted, X):
    late = X[X["timestamp"] > AS_OF]
    at_cut = late.assign(timestamp=AS_OF)
    np.testing.assert_array_equal(fitted_as_of.transform(late), fitted_as_of.transform(at_cut))
    # Not vacuous: without the cut, the same rows see their own (later) past.
    assert not np.array_equal(fitted.transform(late), fitted.transform(at_cut))


def test_as_of_none_or_after_every_row_is_unchanged(fitted, db, X):
    assert fitted.as_of_ is None
    later = TVEPretrainer(database=db, as_of="2030-01-01", **FAST).fit(X)
    assert later.encoder_state_ == fitted.encoder_state_
    np.testing.assert_array_equal(later.cutoffs_, fitted.cutoffs_)
    np.testing.assert_array_equal(later.transform(X), fitted.transform(X))


def test_as_of_timezone_aware_is_naive_utc_and_type_checked(db, X):
    fast = {**FAST, "max_epochs": 0}
    aware = pd.Timestamp("2021-05-15 02:00", tz="Europe/Paris")  # UTC+2 in May
    est = TVEPretrainer(database=db, as_of=aware, **fast).fit(X)
    assert est.as_of_ == AS_OF and est.as_of_.tzinfo is None
    with pytest.raises(TypeError, match="as_of must be one timestamp"):
        TVEPretrainer(database=db, as_of=20210515, **fast).fit(X)


# ---------------------------------------------------------------- pretrain_until
# X's last time is 2021-07-29; with the 30-day window the default reads up to 2021-08-28,
# and pretrain_until adds the cutoffs 2021-08-28 and 2021-09-27 (read up to 2021-10-27).
UNTIL = pd.Timestamp("2021-10-30")


@pytest.fixture(scope="module")
def fitted_until(db, X):
    return TVEPretrainer(database=db, pretrain_until=UNTIL, **FAST).fit(X)


def test_pretrain_until_adds_cutoffs_whose_windows_end_by_it(fitted_until, fitted, X):
    last = X["timestamp"].max()
    added = pd.DatetimeIndex(fitted_until.cutoffs_[len(fitted.cutoffs_) :])
    # One window apart after X's last time, the last one's window ending by pretrain_until.
    assert list(added) == [last + pd.Timedelta("30D"), last + pd.Timedelta("60D")]
    assert added[-1] + pd.Timedelta("30D") <= UNTIL < added[-1] + pd.Timedelta("60D")
    np.testing.assert_array_equal(fitted_until.cutoffs_[: len(fitted.cutoffs_)], fitted.cutoffs_)
    assert fitted_until.boundary_ == added[-1]
    assert fitted_until.encoder_state_ != fitted.encoder_state_


def test_pretrain_until_fit_reads_nothing_after_it(fitted_until, frames, X):
    tables, schema = frames
    future = _add_rows_after(_perturb_after(tables, schema, UNTIL), schema, UNTIL)
    b = TVEPretrainer(
        database=load_database(future, schema=schema), pretrain_until=UNTIL, **FAST
    ).fit(X)
    assert b.encoder_state_ == fitted_until.encoder_state_
    assert [h["train_loss"] for h in b.history_] == [h["train_loss"] for h in fitted_until.history_]
    np.testing.assert_array_equal(b.transform(X), fitted_until.transform(X))


def test_pretrain_until_fit_reads_up_to_it(fitted_until, frames, X):
    # The converse: rows between the default horizon and pretrain_until are read.
    tables, schema = frames
    horizon = X["timestamp"].max() + pd.Timedelta("30D")
    perturbed = _perturb_after(tables, schema, horizon)
    b = TVEPretrainer(
        database=load_database(perturbed, schema=schema), pretrain_until=UNTIL, **FAST
    ).fit(X)
    assert b.encoder_state_ != fitted_until.encoder_state_


def test_pretrain_until_matches_rows_at_the_added_times(fitted_until, db, X):
    # The same as fitting on X plus rows at the added cutoffs: only X's times enter.
    extra = pd.DataFrame(
        {"customer_id": 0, "timestamp": pd.DatetimeIndex(fitted_until.cutoffs_[-2:])}
    )
    b = TVEPretrainer(database=db, **FAST).fit(pd.concat([X, extra], ignore_index=True))
    assert b.encoder_state_ == fitted_until.encoder_state_


def test_pretrain_until_past_the_data_adds_no_empty_windows(db, X):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cutoffs outside the time range" warning
        est = TVEPretrainer(
            database=db, pretrain_until="2031-01-01", **{**FAST, "max_epochs": 0}
        ).fit(X)
    assert est.cutoffs_.max() < np.datetime64(db.max_timestamp)
    assert est.cutoffs_.max() + np.timedelta64(30, "D") >= np.datetime64(db.max_timestamp)


def test_pretrain_until_lets_given_cutoffs_run_to_its_last_cutoff(db, X):
    given = pd.to_datetime(["2021-03-01", "2021-09-27"])  # the second is after X's last time
    fast = {**FAST, "max_epochs": 0, "cutoffs": given}
    with pytest.raises(ValueError, match="past the last time in X"):
        TVEPretrainer(database=db, **fast).fit(X)
    est = TVEPretrainer(database=db, pretrain_until=UNTIL, **fast).fit(X)
    assert pd.DatetimeIndex(est.cutoffs_).equals(given)


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"pretrain_until": "2021-08-01"}, ValueError, "before the training rows' horizon"),
        (
            {"pretrain_until": "2021-10-30", "as_of": "2021-09-01"},
            ValueError,
            "lies after as_of",
        ),
        ({"pretrain_until": 20211020}, TypeError, "pretrain_until must be one timestamp"),
        ({"pretrain_until": "someday"}, ValueError, "cannot parse pretrain_until"),
    ],
)
def test_pretrain_until_bad_values(db, X, params, error, message):
    with pytest.raises(error, match=message):
        TVEPretrainer(database=db, **{**FAST, "max_epochs": 0, **params}).fit(X)


# ---------------------------------------------------------------- output (task vectors)
def _with_output(fitted, output):
    """The fitted estimator with another ``output`` (no refit: the map is fitted state)."""
    est = with_fitted_state(fitted, output=output)
    est._n_features_out = fitted._n_features_out
    return est


def test_output_task_vector_and_both_shapes_names_dtype(fitted, X):
    targets = fitted.target_scaler_.get_feature_names_out()
    embedding = fitted.transform(X)
    vector = _with_output(fitted, "task_vector").transform(X)
    both = _with_output(fitted, "both").transform(X)
    assert vector.shape == (len(X), len(targets)) and vector.dtype == np.float32
    assert both.dtype == np.float32 and np.isfinite(vector).all()
    np.testing.assert_array_equal(both, np.hstack([embedding, vector]))
    names = list(_with_output(fitted, "task_vector").get_feature_names_out())
    assert names == [f"next {n}" for n in targets]
    assert "next 30D|orders|*|count" in names and names[-1] == "next no_activity"
    embedding_names = list(fitted.get_feature_names_out())
    assert not set(names) & set(embedding_names)
    assert list(_with_output(fitted, "both").get_feature_names_out()) == embedding_names + names
    frame = _with_output(fitted, "task_vector").set_output(transform="pandas").transform(X)
    assert list(frame.columns) == names and frame.index.equals(X.index)
    # Scores (mode one-hots, activity flags) stay scores in [0, 1].
    scores = [j for j, n in enumerate(names) if "=" in n or n.endswith("no_activity")]
    assert scores and vector[:, scores].min() >= 0 and vector[:, scores].max() <= 1


def test_output_is_deterministic_and_does_not_change_fit(fitted, db, X):
    est = TVEPretrainer(database=db, **FAST, output="task_vector").fit(X)
    assert est.encoder_state_ == fitted.encoder_state_
    np.testing.assert_array_equal(est.task_vector_coef_, fitted.task_vector_coef_)
    np.testing.assert_array_equal(
        est.transform(X), _with_output(fitted, "task_vector").transform(X)
    )


def test_output_task_vector_ignores_rows_after_each_time(fitted, frames, X):
    tables, schema = frames
    boundary = X["timestamp"].max()
    perturbed = load_database(_perturb_after(tables, schema, boundary), schema=schema)
    est = _with_output(fitted, "task_vector")
    before = est.transform(X)
    est.set_params(database=perturbed)
    np.testing.assert_array_equal(est.transform(X), before)


def test_output_task_vector_unknown_entities_are_zeros(fitted, X):
    X_bad = X.iloc[:5].copy()
    X_bad.loc[X_bad.index[0], "customer_id"] = 99_999
    est = _with_output(fitted, "both").set_params(handle_unknown="zeros")
    out = est.transform(X_bad)
    assert (out[0] == 0).all() and np.abs(out[1:]).sum() > 0


def test_predicted_order_count_tracks_the_actual_next_window(fitted, db):
    from sktve import task_vectors

    # Cutoffs after everything fit read (boundary 2021-07-29 + 30D): a real forecast.
    later = task_vectors(db, "customers", pd.date_range("2021-09-01", periods=8, freq="30D"), "30D")
    X_later = later[["customer_id", "cutoff"]].rename(columns={"cutoff": "timestamp"})
    est = _with_output(fitted, "task_vector")
    column = list(est.get_feature_names_out()).index("next 30D|orders|*|count")
    predicted = est.transform(X_later)[:, column]
    actual = later["30D|orders|*|count"].to_numpy(dtype=float)
    # Measured: correlation 0.23-0.28 over random_state 0-4, predicted mean 1.5-1.6x the
    # actual mean (activity fades after the training cutoffs in this database).
    assert np.corrcoef(predicted, actual)[0, 1] > 0.1
    assert 1 / 3 < predicted.mean() / actual.mean() < 3
    assert predicted.min() >= 0  # a count, clipped at 0


def test_task_vector_map_is_cached_with_the_fit(db, X, tmp_path, pretrain_calls):
    params = dict(database=db, **FAST, memory=str(tmp_path / "cache"), output="task_vector")
    first = TVEPretrainer(**params).fit(X)
    second = TVEPretrainer(**params).fit(X)
    assert len(pretrain_calls) == 1
    np.testing.assert_array_equal(second.task_vector_coef_, first.task_vector_coef_)
    np.testing.assert_array_equal(second.transform(X), first.transform(X))


def test_memory_key_is_what_training_reads(db, X, tmp_path):
    # Pre-training reads X's distinct times, not its ids or row order, and verbose is not a
    # setting: these fits are equivalent and must share one cache entry.
    cache = tmp_path / "cache"
    first = TVEPretrainer(database=db, **FAST, memory=str(cache)).fit(X)
    shuffled = X.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["customer_id"] = (shuffled["customer_id"] + 7) % 100
    doubled = pd.concat([shuffled, shuffled.iloc[:50]], ignore_index=True)
    second = TVEPretrainer(database=db, **FAST, memory=str(cache), verbose=True).fit(doubled)
    assert len(list(cache.rglob("output.pkl"))) == 1
    assert second.encoder_state_ == first.encoder_state_
    np.testing.assert_array_equal(second.transform(X), first.transform(X))
    # A different set of times is a different training set.
    TVEPretrainer(database=db, **FAST, memory=str(cache)).fit(X.iloc[: len(X) // 2])
    assert len(list(cache.rglob("output.pkl"))) == 2


def test_verbose_progress_is_plain_lines_off_a_terminal(db, X, capsys):
    # Output captured by pytest is not a terminal: no progress bars (their carriage returns
    # flood logs), one line per epoch, and lines for the long silent steps.
    tve = TVEPretrainer(database=db, **{**FAST, "max_epochs": 3, "patience": 5}, verbose=True)
    tve.fit(X)
    many = pd.concat([X] * 40, ignore_index=True)  # 9,600 rows: a long transform
    tve.transform(many)
    out, err = capsys.readouterr()
    assert "\r" not in out + err
    assert "epoch 1/" not in err
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == len(tve.history_) == 3
    assert "task vectors computed" in out
    assert f"embedded {len(many):,} rows" in out


def _default_windows_30d(params):
    # The default (True) with FAST's 30-day window.
    assert params["window"] == "30D"
    return [pd.Timedelta("30D"), pd.Timedelta("360D")]


def test_history_counts_windows(X, db):
    # True: the pre-training windows and a baseline 12 times the longest; a list: as given.
    fast = {**FAST, "max_epochs": 0}
    auto = TVEPretrainer(database=db, **{**fast, "window": "10D", "history_counts": True}).fit(X)
    assert auto.history_windows_ == [pd.Timedelta("10D"), pd.Timedelta("120D")]
    given = TVEPretrainer(database=db, history_counts=["90D", "7D"], **fast).fit(X)
    assert given.history_windows_ == [pd.Timedelta("7D"), pd.Timedelta("90D")]
    assert TVEPretrainer(database=db, **fast).fit(X).history_windows_ == _default_windows_30d(fast)
    off = TVEPretrainer(database=db, **{**fast, "history_counts": False}).fit(X)
    assert off.history_windows_ == []
    _, _, encoder = off._runtime_for(off.database_)
    assert len(encoder.history_encoders) == 0
    # The encoder reads one block of (all, each window, age) per referencing table.
    _, _, encoder = given._runtime_for(given.database_)
    module = encoder.history_encoders[str(encoder.node_types.index("customers"))]
    n_children = len(given.featurizer_.metadata_.child_edge_types()["customers"])
    assert module[0].in_features == n_children * 4
    # The fitted windows, not the current parameter, rebuild the encoder.
    Z = given.transform(X)
    given._runtime = None
    np.testing.assert_array_equal(given.set_params(history_counts=False).transform(X), Z)
    with pytest.raises(ValueError, match="history_counts"):
        TVEPretrainer(database=db, history_counts=["30"], **fast).fit(X)


def test_recency_scales(X, db):
    # Resolved like history_counts: True takes the pre-training windows and 12 times the
    # longest, a list is taken as given, False builds plain means only.
    fast = {**FAST, "max_epochs": 0}
    auto = TVEPretrainer(database=db, **fast).fit(X)
    assert auto.recency_scales_ == _default_windows_30d(fast)
    assert auto._encoder_spec().recency_scales == tuple(w.value for w in auto.recency_scales_)
    given = TVEPretrainer(database=db, recency_means=["90D", "7D"], **fast).fit(X)
    assert given.recency_scales_ == [pd.Timedelta("7D"), pd.Timedelta("90D")]
    _, _, encoder = given._runtime_for(given.database_)
    assert encoder.layers[0].recency_days == (7.0, 90.0)
    module = next(iter(encoder.layers[0].lin_recent.values()))
    assert module.in_features == 2 * encoder.channels
    off = TVEPretrainer(database=db, **{**fast, "recency_means": False}).fit(X)
    assert off.recency_scales_ == []
    _, _, encoder = off._runtime_for(off.database_)
    assert all(len(layer.lin_recent) == 0 for layer in encoder.layers)
    assert not np.allclose(off.transform(X), auto.transform(X))
    with pytest.raises(ValueError, match="recency_means"):
        TVEPretrainer(database=db, recency_means=["soon"], **fast).fit(X)


def test_history_counts_are_time_correct_and_change_the_embedding(frames, X, db, fitted):
    tables, schema = frames
    boundary = X["timestamp"].max()
    # The default counts (fitted has them): against an encoder without them.
    counted = fitted
    plain = TVEPretrainer(database=db, **{**FAST, "history_counts": False}).fit(X)
    assert counted.encoder_state_ != plain.encoder_state_
    Z = counted.transform(X)
    assert Z.dtype == np.float32 and not np.allclose(Z, plain.transform(X))
    # Rows referencing the entities later than every row of X (moved and added) change
    # the whole-history counts only after X's times: the embeddings stay the same.
    future = _add_rows_after(_perturb_after(tables, schema, boundary), schema, boundary)
    est = with_fitted_state(counted, database=load_database(future, schema=schema))
    np.testing.assert_array_equal(est.transform(X), Z)
    # ... while rows added inside it change them.
    early = _add_rows_after(tables, schema, X["timestamp"].min() - pd.Timedelta("30D"))
    est.set_params(database=load_database(early, schema=schema))
    assert not np.allclose(est.transform(X), Z)
