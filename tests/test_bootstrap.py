"""Bootstrap intervals: weighted metrics against scikit-learn, clusters, pairing, errors."""

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, roc_auc_score

from sktve.bootstrap import metric_interval, paired_difference, replicate_metric


def _binary(n=600, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    # Rounded scores: many ties, which must count half as in scikit-learn.
    return y, np.round(y + rng.normal(0, noise, n), 1)


def test_unit_weights_give_scikit_learns_auroc_and_mae_with_ties():
    y, s = _binary()
    assert len(np.unique(s)) < len(s) / 3  # ties present
    ones = np.ones((1, len(y)))
    assert replicate_metric(y, s, "roc_auc", ones)[0] == pytest.approx(roc_auc_score(y, s))
    target = s * 3.0 + 1.0
    assert replicate_metric(target, s, "mae", ones)[0] == pytest.approx(
        mean_absolute_error(target, s)
    )


def test_integer_weights_equal_repeating_the_rows():
    y, s = _binary(seed=1)
    rng = np.random.default_rng(2)
    weights = rng.integers(0, 4, size=(5, len(y)))
    for w in weights:
        rows = np.repeat(np.arange(len(y)), w)
        assert replicate_metric(y, s, "roc_auc", w[None])[0] == pytest.approx(
            roc_auc_score(y[rows], s[rows])
        )
        assert replicate_metric(s, y, "mae", w[None])[0] == pytest.approx(
            mean_absolute_error(s[rows], y[rows])
        )


def test_a_replicate_without_one_class_is_nan_for_auroc():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    out = replicate_metric(y, s, "roc_auc", np.array([[1, 1, 0, 0], [1, 1, 1, 1]]))
    assert np.isnan(out[0]) and out[1] == pytest.approx(roc_auc_score(y, s))


def test_interval_holds_the_value_and_is_reproducible():
    y, s = _binary(seed=3)
    groups = np.repeat(np.arange(60), 10)
    first = metric_interval(y, s, "roc_auc", groups=groups, random_state=7)
    again = metric_interval(y, s, "roc_auc", groups=groups, random_state=7)
    assert first == again
    assert first["value"] == pytest.approx(roc_auc_score(y, s))
    assert first["low"] < first["value"] < first["high"]
    assert first["n_groups"] == 60 and first["n_rows"] == 600
    assert metric_interval(y, s, "roc_auc", groups=groups, random_state=8) != first


def test_clusters_widen_the_interval_when_rows_of_an_entity_move_together():
    # Each entity's rows share one level: 30 entities, not 600 independent rows.
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(30), 20)
    level = rng.normal(0, 1, 30)[groups]
    y = (level + rng.normal(0, 0.3, 600) > 0.5).astype(int)
    s = level + rng.normal(0, 1.0, 600)
    by_rows = metric_interval(y, s, "roc_auc")
    by_entities = metric_interval(y, s, "roc_auc", groups=groups)
    assert by_entities["se"] > 1.5 * by_rows["se"]


def test_paired_difference_cancels_shared_noise():
    y, s = _binary(seed=5)
    groups = np.repeat(np.arange(60), 10)
    rng = np.random.default_rng(6)
    other = s + rng.normal(0, 0.2, len(s))  # nearly the same model
    diff = paired_difference(y, s, other, "roc_auc", groups=groups)
    single = metric_interval(y, s, "roc_auc", groups=groups)
    assert diff["difference"] == pytest.approx(roc_auc_score(y, s) - roc_auc_score(y, other))
    assert diff["se"] < single["se"] / 2
    assert diff["low"] <= diff["difference"] <= diff["high"]
    same = paired_difference(y, s, s, "roc_auc", groups=groups)
    assert same["difference"] == 0.0 and same["se"] == 0.0 and same["share_first_better"] == 0.5


def test_share_first_better_follows_the_metrics_direction():
    rng = np.random.default_rng(7)
    target = rng.normal(10, 3, 500)
    close = target + rng.normal(0, 0.5, 500)
    far = target + rng.normal(0, 3.0, 500)
    mae = paired_difference(target, close, far, "mae")
    assert mae["difference"] < 0 and mae["share_first_better"] > 0.99
    y = (target > 11).astype(int)
    auc = paired_difference(y, close, far, "roc_auc")
    assert auc["difference"] > 0 and auc["share_first_better"] > 0.99


def test_large_splits_are_scored_in_blocks_with_the_same_result(monkeypatch):
    import sktve.bootstrap as bootstrap

    y, s = _binary(n=300, seed=8)
    whole = metric_interval(y, s, "roc_auc", n_resamples=50, random_state=1)
    monkeypatch.setattr(bootstrap, "_BLOCK_CELLS", 300 * 7)  # blocks of 7 replicates
    blocks = metric_interval(y, s, "roc_auc", n_resamples=50, random_state=1)
    assert blocks["n_resamples"] == 50
    # The generator draws block by block: same distribution, other draws; the value is exact.
    assert blocks["value"] == whole["value"]
    assert abs(blocks["se"] - whole["se"]) < 0.5 * whole["se"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "accuracy"}, "metric must be one of"),
        ({"y_true": np.array([])}, "empty"),
        ({"y_score": np.zeros(3)}, "one score per row"),
        ({"y_true": np.array([0, 1, 2, 1])}, "binary labels"),
        ({"y_true": np.ones(4)}, "both classes"),
        ({"y_score": np.array([0.1, np.nan, 0.3, 0.4])}, "NaN or infinite"),
        ({"groups": np.zeros(3)}, "one per row"),
        ({"n_resamples": 1}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
    ],
)
def test_bad_input_says_what_is_wrong(kwargs, message):
    args = {
        "y_true": np.array([0, 1, 0, 1]),
        "y_score": np.array([0.1, 0.2, 0.3, 0.4]),
        "metric": "roc_auc",
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        metric_interval(args.pop("y_true"), args.pop("y_score"), args.pop("metric"), **args)


def test_the_module_example_runs():
    import doctest

    import sktve.bootstrap

    assert doctest.testmod(sktve.bootstrap).failed == 0
