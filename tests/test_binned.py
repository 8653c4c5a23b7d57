"""sktve.nn.binned: bin centres, two-hot targets and the point read out of a distribution."""

import numpy as np
import pytest
import torch

from sktve.nn.binned import bin_centres, distribution_point, prior_logits, two_hot


def _logits(probabilities: torch.Tensor) -> np.ndarray:
    return np.log(probabilities.numpy().astype(np.float64) + 1e-30)


def test_centres_follow_the_quantiles_and_merge_ties():
    rng = np.random.default_rng(0)
    values = rng.normal(size=5000)
    centres = bin_centres(values, 11)
    assert centres.dtype == np.float32 and len(centres) == 11
    assert np.isin(centres, values.astype(np.float32)).all()  # observed values
    np.testing.assert_allclose(centres, np.quantile(values, np.linspace(0, 1, 11)), atol=0.01)
    # A count with half its rows zero: one centre per value taken, never more than asked.
    counts = np.r_[np.zeros(500), rng.integers(1, 4, 500)]
    np.testing.assert_array_equal(bin_centres(counts, 64), [0.0, 1.0, 2.0, 3.0])
    assert len(bin_centres(np.arange(1000.0), 8)) == 8


def test_a_constant_target_still_gets_two_centres():
    np.testing.assert_array_equal(bin_centres(np.full(10, 4.0), 16), [3.5, 4.5])


def test_two_hot_rows_sum_to_one_and_encode_the_value():
    centres = torch.tensor([-1.0, 0.0, 0.5, 2.0, 5.0])
    values = torch.tensor([-3.0, -1.0, -0.25, 0.5, 1.9, 4.99, 5.0, 9.0])
    probabilities = two_hot(values, centres)
    assert probabilities.shape == (len(values), len(centres))
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(1).numpy(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        (probabilities @ centres).numpy(), values.clamp(-1.0, 5.0).numpy(), atol=1e-6
    )
    # At most two neighbouring centres carry any mass.
    assert ((probabilities > 0).sum(1) <= 2).all()


@pytest.mark.parametrize("statistic", ["median", "mean"])
def test_point_of_a_two_hot_row_is_its_value(statistic):
    centres = np.array([0.0, 1.0, 3.0, 4.0, 10.0], dtype=np.float32)
    values = np.array([0.0, 0.2, 1.0, 2.5, 3.99, 7.0, 10.0], dtype=np.float32)
    logits = _logits(two_hot(torch.from_numpy(values), torch.from_numpy(centres)))
    np.testing.assert_allclose(distribution_point(logits, centres, statistic), values, atol=1e-5)


def test_median_resists_a_far_tail_that_moves_the_mean():
    centres = np.array([0.0, 1.0, 2.0, 100.0])
    probabilities = np.array([[0.3, 0.4, 0.2, 0.1]])
    logits = np.log(probabilities)
    median = distribution_point(logits, centres, "median")[0]
    mean = distribution_point(logits, centres, "mean")[0]
    assert 0.0 < median < 2.0 and mean == pytest.approx(10.8)
    # Moving mass from the lowest centre to the highest moves the median up, continuously.
    shifted = distribution_point(np.log([[0.25, 0.4, 0.2, 0.15]]), centres, "median")[0]
    assert median < shifted < median + 0.2


def test_prior_logits_are_the_mean_two_hot_distribution():
    centres = np.array([0.0, 1.0, 2.0], dtype=np.float32)
    targets = np.array([0.0, 0.5, 2.0, 2.0], dtype=np.float32)
    prior = np.exp(prior_logits(targets, centres, None))
    np.testing.assert_allclose(prior, [1.5 / 4, 0.5 / 4, 2.0 / 4], rtol=1e-5)
    weighted = np.exp(prior_logits(targets, centres, np.array([1.0, 0.0, 0.0, 1.0])))
    np.testing.assert_allclose(weighted, [0.5, 1e-6, 0.5], rtol=1e-4)
