"""TVEClassifier / TVERegressor: fit, predict, time-correctness, determinism, composition."""

import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from _perturb import perturb_after, with_fitted_state
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor, VotingClassifier
from sklearn.model_selection import GridSearchCV, PredefinedSplit

import sktve.finetune as finetune_module
import sktve.pretrainer as pretrainer_module
from sktve import AggregateFeatures, TVEClassifier, TVEPretrainer, TVERegressor, load_database
from sktve.datasets import make_synthetic_database
from sktve.encoder_runtime import build_encoder
from sktve.finetune import time_ordered_split
from sktve.nn.model import RelationalEncoder

PRETRAIN = dict(window="30D", embedding_dim=16, fanouts=(8, 4), max_epochs=1, steps_per_epoch=2)
FAST = dict(entity_table="customers", max_epochs=3, steps_per_epoch=4, batch_size=64, hidden_dim=16)


@pytest.fixture(scope="module")
def frames():
    return make_synthetic_database(n_customers=120, n_orders=3000, random_state=1, as_frames=True)


@pytest.fixture(scope="module")
def db(frames):
    return load_database(frames[0], schema=frames[1])


@pytest.fixture(scope="module")
def X():
    times = pd.date_range("2021-03-01", periods=6, freq="30D")
    grid = pd.MultiIndex.from_product([times, np.arange(40)], names=["timestamp", "customer_id"])
    return grid.to_frame(index=False)[["customer_id", "timestamp"]]


@pytest.fixture(scope="module")
def y_binary(X):
    # Planted: whether the customer id is even, learnable from the entity row's position only
    # through the graph, so the point is wiring, not accuracy.
    return (X["customer_id"].to_numpy() % 2).astype(int)


def _classifier(db, **params):
    params = {"pretrainer": TVEPretrainer(**PRETRAIN), **FAST, **params}
    return TVEClassifier(database=db, random_state=0, **params)


@pytest.fixture(scope="module")
def fitted(db, X, y_binary):
    return _classifier(db).fit(X, y_binary)


def test_binary_outputs_agree(fitted, X, y_binary):
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    decision = fitted.decision_function(X)
    assert decision.shape == (len(X),)
    np.testing.assert_array_equal(decision > 0, proba[:, 1] > 0.5)
    assert set(fitted.predict(X)) <= set(fitted.classes_)
    assert 0.0 <= fitted.score(X, y_binary) <= 1.0
    assert fitted.pretrainer_ is not None and fitted.n_features_in_ == 2
    assert len(fitted.history_) >= 1 and 1 <= fitted.best_epoch_ <= len(fitted.history_)


def test_multiclass_with_string_labels(db, X):
    labels = np.array(["low", "mid", "high"])[X["customer_id"].to_numpy() % 3]
    clf = _classifier(db, init="random").fit(X, labels)
    assert list(clf.classes_) == ["high", "low", "mid"]
    assert clf.predict_proba(X).shape == (len(X), 3)
    assert clf.decision_function(X).shape == (len(X), 3)
    assert set(clf.predict(X)) <= set(labels)


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error"])
def test_regressor_learns_a_planted_target(db, X, loss):
    # Target: the mean amount of the customer's orders in the year before the row's time,
    # which the encoder's mean aggregation over sampled orders sees directly.
    agg = AggregateFeatures(
        database=db, entity_table="customers", window="365D", include="orders|amount"
    )
    names = list(agg.fit(X).get_feature_names_out())
    y = np.nan_to_num(agg.transform(X)[:, names.index("365D|orders|amount|mean")].astype(float))
    reg = TVERegressor(
        database=db,
        init="random",
        loss=loss,
        random_state=0,
        pretrainer=TVEPretrainer(**PRETRAIN),
        **{**FAST, "max_epochs": 15, "steps_per_epoch": 8},
    ).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (len(X),) and np.isfinite(pred).all()
    baseline = np.abs(y - np.median(y)).mean()
    assert np.abs(y - pred).mean() < 0.8 * baseline


@pytest.mark.parametrize(
    "loss, centre", [("absolute_error", np.median), ("squared_error", np.mean)]
)
def test_regressor_recentres_on_the_held_out_rows(db, X, loss, centre):
    late = (X["timestamp"] == X["timestamp"].max()).to_numpy()
    # Planted: the held-out (latest) rows sit 3 units above the rest.
    y = (X["customer_id"].to_numpy() % 5).astype(float) + 3.0 * late
    params = dict(
        init="random",
        loss=loss,
        integer_output=False,  # the shift is continuous; rounding is tested on its own
        random_state=0,
        pretrainer=TVEPretrainer(**PRETRAIN),
    )
    plain = TVERegressor(database=db, recentre=False, **params, **FAST).fit(X, y)
    shifted = TVERegressor(database=db, **params, **FAST).fit(X, y)
    # Training is the same; only the output moves, by the held-out rows' centre residual.
    assert plain.output_shift_ == 0.0 and shifted.output_shift_ > 0
    residual = y[late] - plain.predict(X[late])
    np.testing.assert_allclose(shifted.predict(X), plain.predict(X) + centre(residual), atol=1e-4)
    refit = TVERegressor(database=db, refit=True, **params, **FAST).fit(X, y)
    assert refit.output_shift_ == 0.0  # the held-out rows were trained on
    side = TVERegressor(
        database=db,
        side_features=AggregateFeatures(window="30D"),
        side_estimator=HistGradientBoostingRegressor(max_iter=10),
        **params,
        **FAST,
    ).fit(X, y)
    assert side.output_shift_ == 0.0  # predict uses a side estimator refitted on all rows


def test_integer_targets_with_absolute_error_get_integer_predictions(db, X):
    ids = X["customer_id"].to_numpy()
    counts = (ids % 4).astype(float)  # integer-valued, like a count of orders
    params = dict(init="random", random_state=0, pretrainer=TVEPretrainer(**PRETRAIN), **FAST)
    auto = TVERegressor(database=db, loss="absolute_error", **params).fit(X, counts)
    raw = TVERegressor(database=db, loss="absolute_error", integer_output=False, **params)
    raw.fit(X, counts)
    assert auto.integer_output_ and not raw.integer_output_
    # The same network; only the read-out rounds.
    assert not np.array_equal(raw.predict(X), np.rint(raw.predict(X)))
    np.testing.assert_array_equal(auto.predict(X), np.rint(raw.predict(X)))
    # A non-integer target, or the squared error's mean, is not rounded unless asked.
    halves = TVERegressor(database=db, loss="absolute_error", **params).fit(X, counts + 0.5)
    mean = TVERegressor(database=db, loss="squared_error", **params).fit(X, counts)
    forced = TVERegressor(database=db, integer_output=True, **params).fit(X, counts + 0.5)
    assert not halves.integer_output_ and not mean.integer_output_ and forced.integer_output_
    assert not np.array_equal(mean.predict(X), np.rint(mean.predict(X)))
    np.testing.assert_array_equal(forced.predict(X), np.rint(forced.predict(X)))
    with pytest.raises(ValueError, match="integer_output must be 'auto', True or False"):
        TVERegressor(database=db, integer_output="yes", **params).fit(X, counts)


def test_classifier_output_is_not_shifted(fitted):
    assert fitted.output_shift_ == 0.0


def test_equal_sample_weights_are_no_weights(fitted, db, X, y_binary):
    again = _classifier(db).fit(X, y_binary, sample_weight=np.full(len(X), 3.0))
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))


def test_sample_weight_steers_the_fit(fitted, db, X, y_binary):
    from sklearn.pipeline import Pipeline

    # Class 1 nearly weightless: the weighted fit must believe in class 0 far more.
    weights = np.where(y_binary == 1, 0.02, 1.0)
    given = weights.copy()
    weighted = _classifier(db).fit(X, y_binary, sample_weight=weights)
    np.testing.assert_array_equal(weights, given)  # the user's array is left as it was
    assert weighted.predict_proba(X)[:, 1].mean() < fitted.predict_proba(X)[:, 1].mean() - 0.2
    # Through a Pipeline, as scikit-learn routes fit parameters to a step.
    pipe = Pipeline([("clf", _classifier(db))]).fit(X, y_binary, clf__sample_weight=weights)
    np.testing.assert_array_equal(pipe.predict_proba(X), weighted.predict_proba(X))
    # A scorer for early stopping gets the held-out rows' weights too.
    scored = _classifier(db, scoring="roc_auc").fit(X, y_binary, sample_weight=weights)
    assert all(np.isfinite(h["holdout_score"]) for h in scored.history_)


def test_weighted_regressor_centres_on_the_weighted_rows(db, X):
    y = (X["customer_id"].to_numpy() % 5).astype(float)
    # Rows with y >= 3 carry the weight: the weighted median is 3 or 4, not 2.
    weights = np.where(y >= 3, 1.0, 0.01)
    params = dict(init="random", random_state=0, pretrainer=TVEPretrainer(**PRETRAIN), **FAST)
    plain = TVERegressor(database=db, loss="absolute_error", **params).fit(X, y)
    heavy = TVERegressor(database=db, loss="absolute_error", **params)
    heavy.fit(X, y, sample_weight=weights)
    assert heavy.predict(X).mean() > plain.predict(X).mean() + 0.5
    # The centre the starting bias and recentre use: weighted median / weighted mean.
    values, w = np.array([1.0, 2.0, 10.0]), np.array([1.0, 1.0, 5.0])
    assert heavy._centre(values, w) == 10.0 and heavy._centre(values, None) == 2.0
    mean_reg = TVERegressor(loss="squared_error")
    assert mean_reg._centre(values, w) == pytest.approx(np.average(values, weights=w))


@pytest.mark.parametrize(
    "weights, message",
    [
        (lambda n: -np.ones(n), "Negative"),
        (lambda n: np.ones(n - 1), "sample_weight"),
        (lambda n: np.zeros(n), "non-zero"),
        (lambda n: np.r_[np.nan, np.ones(n - 1)], "NaN"),
    ],
)
def test_bad_sample_weights_are_refused(db, X, y_binary, weights, message):
    with pytest.raises(ValueError, match=message):
        _classifier(db).fit(X, y_binary, sample_weight=weights(len(X)))


def test_weightless_held_out_rows_are_refused_before_pretraining(db, X, y_binary, monkeypatch):
    def no_pretraining(*args, **kwargs):
        raise AssertionError("pre-trained before checking the weights")

    monkeypatch.setattr(pretrainer_module, "pretrain", no_pretraining)
    late = (X["timestamp"] == X["timestamp"].max()).to_numpy()
    with pytest.raises(ValueError, match="held-out"):
        _classifier(db).fit(X, y_binary, sample_weight=np.where(late, 0.0, 1.0))
    with pytest.raises(ValueError, match="every training row"):
        _classifier(db).fit(X, y_binary, sample_weight=np.where(late, 1.0, 0.0))


def test_side_estimator_must_take_sample_weight(db, X, y_binary):
    from sklearn.neighbors import KNeighborsClassifier

    clf = _classifier(
        db, side_features=AggregateFeatures(window="30D"), side_estimator=KNeighborsClassifier()
    )
    with pytest.raises(ValueError, match="does not accept sample_weight"):
        clf.fit(X, y_binary, sample_weight=np.where(y_binary == 1, 2.0, 1.0))


def test_time_ordered_split_holds_out_latest_timestamps():
    times = np.repeat(np.arange(10), 3)
    held = time_ordered_split(times, 0.2)
    assert set(times[held]) == {8, 9} and not held[times < 8].any()
    assert not time_ordered_split(np.array([1, 1, 2]), 0.5).any()
    assert not time_ordered_split(times, 0.0).any()


def test_validation_split_follows_time(fitted, X):
    n_late = int((X["timestamp"] == X["timestamp"].max()).sum())
    assert fitted.n_validation_rows_ == n_late
    assert fitted.n_train_rows_ == len(X) - n_late


def test_user_validation_set(db, X, y_binary):
    late = (X["timestamp"] == X["timestamp"].max()).to_numpy()
    clf = _classifier(db).fit(X[~late], y_binary[~late], X_val=X[late], y_val=y_binary[late])
    assert clf.n_validation_rows_ == late.sum() and clf.n_train_rows_ == (~late).sum()
    with pytest.raises(ValueError, match="both X_val and y_val"):
        _classifier(db).fit(X, y_binary, X_val=X[late])


def test_refit_trains_on_the_held_out_rows(db, X, y_binary):
    # One epoch: early stopping can only choose it, so the held-out labels reach the
    # network through the refit alone.
    late = (X["timestamp"] == X["timestamp"].max()).to_numpy()
    flipped = np.where(late, 1 - y_binary, y_binary)
    params = dict(max_epochs=1, dropout=0.0)
    kept = [_classifier(db, **params).fit(X, y) for y in (y_binary, flipped)]
    assert [m.refit_epochs_ for m in kept] == [0, 0]
    np.testing.assert_array_equal(kept[0].predict_proba(X), kept[1].predict_proba(X))
    refit = [_classifier(db, refit=True, **params).fit(X, y) for y in (y_binary, flipped)]
    assert [m.refit_epochs_ for m in refit] == [1, 1]
    assert refit[0].n_steps_ > kept[0].n_steps_
    assert not np.allclose(refit[0].predict_proba(X), refit[1].predict_proba(X))


def test_no_refit_with_a_user_validation_set(db, X, y_binary):
    late = (X["timestamp"] == X["timestamp"].max()).to_numpy()
    clf = _classifier(db, refit=True)
    clf.fit(X[~late], y_binary[~late], X_val=X[late], y_val=y_binary[late])
    assert clf.refit_epochs_ == 0


def test_scoring_drives_early_stopping(db, X, y_binary):
    clf = _classifier(db, scoring="roc_auc", max_epochs=4, patience=4).fit(X, y_binary)
    scores = [record["holdout_score"] for record in clf.history_]
    assert len(scores) == 4 and all(0.0 <= s <= 1.0 for s in scores)
    # The kept epoch is the first with the best held-out AUROC, whatever the loss did.
    assert clf.best_epoch_ == int(np.argmax(scores)) + 1
    assert "holdout_score" not in _classifier(db).fit(X, y_binary).history_[0]


def test_undefined_score_is_refused(db, X, y_binary):
    with pytest.raises(ValueError, match="early stopping cannot compare epochs"):
        _classifier(db, scoring=lambda estimator, X, y: float("nan")).fit(X, y_binary)


def test_scorer_sees_the_held_out_rows_and_their_predictions(db, X):
    late = (X["timestamp"] == X["timestamp"].max()).to_numpy()
    y = (X["customer_id"].to_numpy() % 5).astype(float)
    calls = []

    def scorer(estimator, X_held, y_held):
        calls.append((X_held, y_held, estimator.predict(X_held)))
        return -float(np.abs(y_held - estimator.predict(X_held)).mean())

    reg = TVERegressor(
        database=db,
        init="random",
        loss="absolute_error",
        integer_output=False,  # compared with predict's continuous output below
        scoring=scorer,
        random_state=0,
        pretrainer=TVEPretrainer(**PRETRAIN),
        **FAST,
    ).fit(X, y)
    X_held, y_held, _ = calls[-1]
    expected = X[late].reset_index(drop=True)
    pd.testing.assert_frame_equal(X_held.reset_index(drop=True), expected, check_dtype=False)
    np.testing.assert_array_equal(y_held, y[late])
    # The scored predictions are in the target's units: at the kept epoch they are what
    # predict gives before recentring.
    kept = calls[reg.best_epoch_ - 1][2]
    unshifted = reg.predict(X[late]) - reg.output_shift_ * reg.target_scale_
    np.testing.assert_allclose(kept, unshifted, atol=1e-4)
    assert reg.history_[reg.best_epoch_ - 1]["holdout_score"] == max(
        r["holdout_score"] for r in reg.history_
    )


def test_deterministic_given_random_state(fitted, db, X, y_binary):
    again = _classifier(db).fit(X, y_binary)
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))


def test_mask_rate_corrupts_training_batches_only(db, X, y_binary, monkeypatch):
    pre = TVEPretrainer(database=db, entity_table="customers", random_state=0, **PRETRAIN).fit(X)
    rates = []
    real_forward = RelationalEncoder.forward

    def recording_forward(self, batch, corruption_rate=0.0, generator=None):
        rates.append(corruption_rate)
        return real_forward(self, batch, corruption_rate, generator)

    monkeypatch.setattr(RelationalEncoder, "forward", recording_forward)
    clf = _classifier(db, pretrainer=pre, mask_rate=0.5, refit=True).fit(X, y_binary)
    fit_rates = set(rates)
    rates.clear()
    proba = clf.predict_proba(X)
    # Training batches are corrupted, the held-out rows (early stopping) and predictions not.
    assert fit_rates == {0.0, 0.5} and set(rates) == {0.0}
    monkeypatch.undo()
    again = _classifier(db, pretrainer=pre, mask_rate=0.5, refit=True).fit(X, y_binary)
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    clean = _classifier(db, pretrainer=pre, mask_rate=0.0, refit=True).fit(X, y_binary)
    assert not np.allclose(proba, clean.predict_proba(X))


def test_probe_trains_the_head_alone_then_fine_tunes_from_it(db, X, y_binary, monkeypatch):
    calls = []
    real_loop = finetune_module.train_loop

    def recording_loop(modules, *args, **kwargs):
        frozen = [p.detach().clone() for m in modules[:-1] for p in m.parameters()]
        result = real_loop(modules, *args, **kwargs)
        calls.append((len(modules), kwargs.get("evaluate_start"), frozen))
        return result

    monkeypatch.setattr(finetune_module, "train_loop", recording_loop)
    clf = _classifier(db, probe_head=True).fit(X, y_binary)
    # First the head alone (the encoder is not among the trained modules), then encoder
    # and head together, starting from (and able to keep) the probed head.
    assert [(n, start) for n, start, _ in calls] == [(1, True), (2, True)]
    assert len(clf.probe_history_) >= 1 and 0 <= clf.probe_epoch_ <= len(clf.probe_history_)
    assert all(np.isfinite(e["holdout_loss"]) for e in clf.probe_history_)
    # The fine-tuning loop started from the pre-trained encoder: the probe did not move it.
    pretrained = build_encoder(
        clf.pretrainer_.featurizer_, clf.encoder_spec_, clf.pretrainer_.encoder_state_
    )
    for before, weight in zip(calls[1][2], pretrained.parameters()):
        torch.testing.assert_close(before, weight.detach())
    monkeypatch.undo()
    again = _classifier(db, probe_head=True).fit(X, y_binary)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    plain = _classifier(db).fit(X, y_binary)
    assert plain.probe_history_ == [] and plain.probe_epoch_ == 0
    assert not np.allclose(plain.predict_proba(X), clf.predict_proba(X))


def test_random_init_skips_pretraining_and_differs(db, X, y_binary, monkeypatch, fitted):
    calls = []
    monkeypatch.setattr(pretrainer_module, "pretrain", lambda *a, **k: calls.append(1))
    clf = _classifier(db, init="random").fit(X, y_binary)
    assert calls == [] and clf.pretrainer_ is None
    assert not np.allclose(clf.predict_proba(X), fitted.predict_proba(X))


def test_fitted_pretrainer_is_used_as_is(db, X, y_binary, monkeypatch):
    pre = TVEPretrainer(database=db, entity_table="customers", random_state=0, **PRETRAIN).fit(X)
    calls = []
    monkeypatch.setattr(pretrainer_module, "pretrain", lambda *a, **k: calls.append(1))
    clf = TVEClassifier(database=db, pretrainer=pre, random_state=0, **FAST).fit(X, y_binary)
    assert calls == [] and clf.pretrainer_ is pre


def test_predictions_ignore_rows_after_each_time(fitted, frames, X):
    tables, schema = frames
    perturbed = load_database(perturb_after(tables, schema, X["timestamp"].max()), schema=schema)
    before = fitted.predict_proba(X)
    est = with_fitted_state(fitted, database=perturbed)
    est._fitted_database_param = None
    np.testing.assert_array_equal(est.predict_proba(X), before)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"stale_lags": ["0D", "45D"]},
        {"probe_head": True},
        {"tve_weight": 1.0},
        {"mask_rate": 0.5},
    ],
)
def test_fit_ignores_rows_after_boundary_plus_window(frames, X, y_binary, extra):
    tables, schema = frames
    boundary = X["timestamp"].max() + pd.Timedelta("30D")
    perturbed = load_database(perturb_after(tables, schema, boundary), schema=schema)
    params = dict(side_features=AggregateFeatures(window="90D", include="orders"), **extra)
    a = _classifier(load_database(tables, schema=schema), **params).fit(X, y_binary)
    b = _classifier(perturbed, **params).fit(X, y_binary)
    assert a.encoder_state_ == b.encoder_state_ and a.head_state_ == b.head_state_
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_recentred_regressor_ignores_rows_after_each_time(frames, X):
    # The shift is read from the held-out rows, each seen as of its own time: rows after
    # every time of X change neither it nor any prediction.
    tables, schema = frames
    perturbed = load_database(perturb_after(tables, schema, X["timestamp"].max()), schema=schema)
    y = (X["customer_id"].to_numpy() % 5).astype(float)
    params = dict(init="random", random_state=0, **FAST)
    params.update(pretrainer=TVEPretrainer(**PRETRAIN))
    a = TVERegressor(database=load_database(tables, schema=schema), **params).fit(X, y)
    b = TVERegressor(database=perturbed, **params).fit(X, y)
    assert a.output_shift_ != 0.0 and a.output_shift_ == b.output_shift_
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_side_features_enter_the_head(db, X, y_binary):
    clf = _classifier(db, side_features=AggregateFeatures(window="60D")).fit(X, y_binary)
    assert clf.side_features_ is not None and clf.side_dim_ > 0
    assert clf.side_features_.database is db
    before = X.copy()
    assert clf.predict_proba(X).shape == (len(X), 2)
    pd.testing.assert_frame_equal(X, before)


def test_as_of_featurises_later_rows_at_the_cut(db, X, y_binary):
    cut = X["timestamp"].max() - pd.Timedelta("30D")
    clf = _classifier(db, init="random", as_of=cut).fit(X, y_binary)
    late = X[X["timestamp"] == X["timestamp"].max()]
    at_cut = late.assign(timestamp=cut)
    np.testing.assert_array_equal(clf.predict_proba(late), clf.predict_proba(at_cut))


_SIDE_TIMES: list[np.ndarray] = []


class _TimesAsFeature(TransformerMixin, BaseEstimator):
    """Side features: the row's time in days; records the times of every X it transforms."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        times = pd.to_datetime(X["timestamp"])
        _SIDE_TIMES.append(times.to_numpy())
        return (times.astype("int64") / 8.64e13).to_numpy()[:, None]


def test_stale_lags_of_zero_change_nothing(fitted, db, X, y_binary):
    same = _classifier(db, stale_lags=["0D"]).fit(X, y_binary)
    np.testing.assert_array_equal(same.predict_proba(X), fitted.predict_proba(X))


def test_stale_lags_train_on_copies_and_hold_out_every_copy(db, X, y_binary):
    held = []

    def scorer(estimator, X_held, y_held):
        held.append((X_held, np.asarray(y_held)))
        return 0.0

    _SIDE_TIMES.clear()
    before = X.copy()
    lag = pd.Timedelta("60D")
    clf = _classifier(
        db,
        init="random",
        stale_lags=["0D", "60D"],
        side_features=_TimesAsFeature(),
        scoring=scorer,
        max_epochs=1,
    ).fit(X, y_binary)
    pd.testing.assert_frame_equal(X, before)
    late = (X["timestamp"] == X["timestamp"].max()).to_numpy()
    # Every row twice; the latest timestamp held out with both of its copies.
    assert clf.n_validation_rows_ == 2 * late.sum()
    assert clf.n_train_rows_ == 2 * (~late).sum()
    X_held, y_held = held[0]
    expected_times = np.concatenate([X["timestamp"][late], X["timestamp"][late] - lag])
    np.testing.assert_array_equal(X_held["timestamp"].to_numpy(), expected_times)
    np.testing.assert_array_equal(y_held, np.tile(y_binary[late], 2))
    # The side features were computed for the rows as given and as of 60 days earlier.
    fitted_times = _SIDE_TIMES[:2]
    np.testing.assert_array_equal(fitted_times[0], X["timestamp"].to_numpy())
    np.testing.assert_array_equal(fitted_times[1], (X["timestamp"] - lag).to_numpy())
    # Predictions use the rows as given: one side-feature call, on X's own times.
    _SIDE_TIMES.clear()
    assert clf.predict_proba(X).shape == (len(X), 2)
    np.testing.assert_array_equal(_SIDE_TIMES[0], X["timestamp"].to_numpy())


def test_stale_lags_with_a_side_estimator_and_a_cut(db, X):
    y = (X["customer_id"].to_numpy() % 5).astype(float)
    cut = X["timestamp"].max() - pd.Timedelta("30D")
    reg = TVERegressor(
        database=db,
        init="random",
        loss="absolute_error",
        side_features=AggregateFeatures(window="60D", include="orders"),
        side_estimator=HistGradientBoostingRegressor(max_iter=20),
        stale_lags=["0D", "30D", "90D"],
        as_of=cut,
        random_state=0,
        pretrainer=TVEPretrainer(**PRETRAIN),
        **FAST,
    ).fit(X.to_numpy(dtype=object), y)
    assert reg.n_train_rows_ + reg.n_validation_rows_ == 3 * len(X)
    pred = reg.predict(X)
    assert pred.shape == (len(X),) and np.isfinite(pred).all()


@pytest.mark.parametrize(
    "lags, error", [("365D", TypeError), (["0D", "-30D"], ValueError), ([30], TypeError)]
)
def test_bad_stale_lags_are_refused_before_any_work(db, X, y_binary, lags, error):
    with pytest.raises(error, match="stale_lags"):
        _classifier(db, stale_lags=lags).fit(X, y_binary)


def test_persistence_without_the_data(fitted, db, X, tmp_path):
    path = tmp_path / "clf.joblib"
    joblib.dump(fitted, path)
    assert path.stat().st_size < 5_000_000
    np.testing.assert_array_equal(joblib.load(path).predict_proba(X), fitted.predict_proba(X))
    reloaded = pickle.loads(pickle.dumps(fitted))
    assert "_runtime" not in reloaded.__dict__
    np.testing.assert_array_equal(reloaded.predict_proba(X), fitted.predict_proba(X))


def test_gridsearch_over_finetuning_pretrains_once_with_memory(
    db, X, y_binary, tmp_path, pretrain_calls
):
    est = _classifier(db, memory=str(tmp_path / "cache"))
    fold = np.where(X["timestamp"] < X["timestamp"].max(), -1, 0)
    search = GridSearchCV(
        est, {"learning_rate": [1e-3, 3e-3], "dropout": [0.0, 0.2]}, cv=PredefinedSplit(fold)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y_binary)
    # One pre-training on the training fold shared by the 4 settings, one for the refit.
    assert len(pretrain_calls) == 2
    assert search.predict_proba(X).shape == (len(X), 2)


def test_voting_over_finetuning_seeds_pretrains_once_with_memory(
    db, X, y_binary, tmp_path, pretrain_calls
):
    # The docs' recipe for averaging fine-tuning runs: members that differ in their seed
    # share one pre-trained encoder when the pretrainer's own seed is fixed and memory set.
    shared = {
        "pretrainer": TVEPretrainer(**PRETRAIN, random_state=0),
        "memory": str(tmp_path / "cache"),
    }
    members = [
        (f"seed{seed}", TVEClassifier(database=db, **FAST, **shared, random_state=seed))
        for seed in (1, 2)
    ]
    vote = VotingClassifier(members, voting="soft").fit(X, y_binary)
    assert len(pretrain_calls) == 1
    probas = [member.predict_proba(X) for member in vote.estimators_]
    assert not np.array_equal(probas[0], probas[1])
    np.testing.assert_allclose(vote.predict_proba(X), np.mean(probas, axis=0), rtol=1e-6)


def test_clone_keeps_params(fitted):
    cloned = clone(fitted)
    assert cloned.database is fitted.database
    assert cloned.get_params()["pretrainer__embedding_dim"] == 16
    assert not hasattr(cloned, "head_state_")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"init": "pretrained"}, "init must be"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"mask_rate": 1.0}, "mask_rate must lie in"),
        ({"refit": "yes"}, "refit must be True or False"),
        ({"recentre": 1}, "recentre must be True or False"),
        ({"probe_head": "yes"}, "probe_head must be True or False"),
        ({"scoring": "auroc"}, "scoring must be 'loss', a scikit-learn scorer name"),
        ({"scoring": 3}, "scoring must be 'loss'"),
        ({"average_epochs": 0}, "average_epochs must be None or a positive number"),
        ({"side_features": "agg"}, "side_features must be a transformer"),
        ({"pretrainer": "tve"}, "pretrainer must be a TVEPretrainer"),
        ({"as_of": "not a time"}, "as_of"),
    ],
)
def test_bad_parameters(db, X, y_binary, params, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _classifier(db, **params).fit(X, y_binary)


def test_bad_targets(db, X, y_binary):
    with pytest.raises(ValueError, match="single class"):
        _classifier(db).fit(X, np.zeros(len(X), int))
    with pytest.raises(ValueError, match="one label per row"):
        _classifier(db).fit(X, y_binary[:-1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        TVERegressor(database=db, init="random", **FAST).fit(X, np.full(len(X), np.nan))
    with pytest.raises(ValueError, match="loss must be"):
        TVERegressor(database=db, loss="huber", **FAST).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="needs a database"):
        TVEClassifier(entity_table="customers").fit(X, y_binary)


def test_unknown_entities_are_refused(fitted, X):
    bad = X.assign(customer_id=X["customer_id"] + 10_000)
    with pytest.raises(ValueError, match="not in table"):
        fitted.predict(bad)


def test_side_estimator_starts_the_network_from_its_prediction(db, X, y_binary):
    from sklearn.ensemble import HistGradientBoostingClassifier

    hgb = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    side = AggregateFeatures(window="60D")
    # learning_rate 0 (almost): the network cannot move, so the start is what is kept.
    clf = _classifier(db, side_features=side, side_estimator=hgb, learning_rate=1e-12)
    clf.fit(X, y_binary)
    assert clf.best_epoch_ == 0
    raw = clf.side_features_.transform(X)
    np.testing.assert_allclose(
        clf.predict_proba(X), clf.side_estimator_.predict_proba(raw), rtol=1e-4, atol=1e-5
    )


def test_side_offsets_are_out_of_fold_on_training_rows(db, X, y_binary):
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = _classifier(db, side_estimator=HistGradientBoostingClassifier(max_iter=30))
    clf.classes_ = np.array([0, 1])
    clf.n_outputs_ = 2
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(len(X), 3)) + y_binary[:, None]
    times = X["timestamp"].to_numpy().view(np.int64)
    train_idx, val_idx = np.arange(200), np.arange(200, len(X))
    offsets = clf._side_offsets(raw, y_binary, times, train_idx, val_idx, refit_all=False)
    in_sample = clf._offset(clf.side_estimator_, raw)
    # Validation rows: the model fitted on every training row; training rows: other folds.
    np.testing.assert_allclose(offsets[val_idx], in_sample[val_idx], rtol=1e-6)
    assert not np.allclose(offsets[train_idx], in_sample[train_idx])


def test_side_estimator_needs_side_features(db, X, y_binary):
    from sklearn.ensemble import HistGradientBoostingClassifier

    with pytest.raises(ValueError, match="side_features"):
        _classifier(db, side_estimator=HistGradientBoostingClassifier()).fit(X, y_binary)


def test_soft_voting_blend_with_aggregates(db, X, y_binary):
    # The documented blend: a fine-tuner and an aggregate pipeline on the same rows.
    from sklearn.ensemble import HistGradientBoostingClassifier, VotingClassifier
    from sklearn.pipeline import make_pipeline

    agg = make_pipeline(
        AggregateFeatures(database=db, entity_table="customers", window="30D"),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
    )
    blend = VotingClassifier(
        [("tve", _classifier(db)), ("agg", agg)], voting="soft", weights=[0.3, 0.7]
    ).fit(X, y_binary)
    parts = [est.predict_proba(X) for est in blend.estimators_]
    np.testing.assert_allclose(blend.predict_proba(X), 0.3 * parts[0] + 0.7 * parts[1])
    search = GridSearchCV(
        blend,
        {"weights": [[0.0, 1.0], [1.0, 0.0]]},
        cv=PredefinedSplit(np.where(X["timestamp"] < X["timestamp"].max(), -1, 0)),
        scoring="roc_auc",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y_binary)
    assert search.best_params_["weights"] in ([0.0, 1.0], [1.0, 0.0])


@pytest.mark.parametrize("init", ["tve", "random"])
def test_history_counts_reach_the_fine_tuned_encoder(db, X, y_binary, init):
    # The pretrainer's history_counts decides the architecture for either init.
    pretrainer = TVEPretrainer(**{**PRETRAIN, "history_counts": True})
    clf = _classifier(db, pretrainer=pretrainer, init=init).fit(X, y_binary)
    assert clf.encoder_spec_.history_counts
    # Recent windows as the pretrainer resolves them (window and 12 times it), either init.
    window = pd.Timedelta(clf.encoder_spec_.history_windows[0])
    assert clf.encoder_spec_.history_windows == (window.value, 12 * window.value)
    # So does its recency_means: both inits build the same layers.
    assert clf.encoder_spec_.recency_scales == clf.encoder_spec_.history_windows
    _, encoder, _ = clf._runtime_for(clf.database_)
    assert len(encoder.history_encoders) > 0
    again = _classifier(db, pretrainer=pretrainer, init=init).fit(X, y_binary)
    np.testing.assert_array_equal(clf.predict_proba(X), again.predict_proba(X))


def test_stale_copies_before_the_data_starts_are_counted(db, X, y_binary):
    # The database starts on 2020-01-01 and X's rows end in July 2021: two years back,
    # every copy is before the start.
    with pytest.warns(UserWarning, match=f"{len(X)} of the {len(X)} stale copies"):
        _classifier(db, init="random", stale_lags=["0D", "730D"], max_epochs=1).fit(X, y_binary)


def test_tve_weight_keeps_the_pretraining_objective(fitted, db, X, y_binary, monkeypatch):
    kept = _classifier(db, tve_weight=5.0).fit(X, y_binary)
    again = _classifier(db, tve_weight=5.0).fit(X, y_binary)
    assert kept.encoder_state_ == again.encoder_state_  # deterministic
    assert kept.encoder_state_ != fitted.encoder_state_  # the extra term changes training
    # The auxiliary targets are the training rows' own task vectors, as pre-training
    # computes them: each row's entity at its time, nothing else.
    seen = []
    real = pretrainer_module.task_vectors

    def spy(database, entity_table, cutoffs, window, **kwargs):
        if isinstance(kwargs["entities"], pd.DataFrame):  # not pre-training's "active"
            seen.append(kwargs["entities"].copy())
        return real(database, entity_table, cutoffs, window, **kwargs)

    monkeypatch.setattr(pretrainer_module, "task_vectors", spy)
    _classifier(db, tve_weight=5.0).fit(X, y_binary)
    (pairs,) = seen
    held_out = time_ordered_split(
        X["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64), 0.15
    )
    train = X[~held_out]
    np.testing.assert_array_equal(pairs["customer_id"], train["customer_id"])
    np.testing.assert_array_equal(pairs["cutoff"], train["timestamp"])


def test_tve_weight_with_refit_replays_from_the_start(db, X, y_binary, monkeypatch):
    # The refit restarts every trained module, the pre-training head among them, so the
    # replay of the first run's epochs on every row is itself deterministic.
    starts = []  # the pre-training head's weights as each training run begins
    real = finetune_module.train_loop

    def spy(*args, **kwargs):
        tve_group = kwargs["param_groups"][-1]["params"]
        starts.append([p.detach().clone() for p in tve_group])
        return real(*args, **kwargs)

    monkeypatch.setattr(finetune_module, "train_loop", spy)
    first = _classifier(db, tve_weight=5.0, refit=True).fit(X, y_binary)
    assert first.refit_epochs_ == first.best_epoch_ >= 1
    fit_start, refit_start = starts
    for before, again in zip(fit_start, refit_start):
        torch.testing.assert_close(again, before, rtol=0, atol=0)
    second = _classifier(db, tve_weight=5.0, refit=True).fit(X, y_binary)
    assert first.encoder_state_ == second.encoder_state_


def test_tve_weight_needs_tve_init(db, X, y_binary):
    with pytest.raises(ValueError, match="tve_weight .*init='tve'"):
        _classifier(db, init="random", tve_weight=1.0).fit(X, y_binary)
    with pytest.raises(ValueError, match="tve_weight must be a number >= 0"):
        _classifier(db, tve_weight=-1.0).fit(X, y_binary)
    with pytest.raises(ValueError, match="tve_weight > 0 fine-tunes in one process"):
        _classifier(db, tve_weight=1.0, n_workers=2).fit(X, y_binary)
