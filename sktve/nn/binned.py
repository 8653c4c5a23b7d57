"""A regression target as a distribution over bins: centres, two-hot targets, point readouts.

``TVERegressor(n_bins=...)`` trains its head to classify the target into bins (cross-entropy
against a "two-hot" target that splits each value between its two neighbouring centres, so
that the expected centre is the value itself) and reads a point out of the predicted
distribution: its median for absolute error, its mean for squared error. Classification
gives every row a gradient that scales with how wrong the whole distribution is, where an
absolute-error head only ever sees the sign of its residual.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["bin_centres", "two_hot", "distribution_point", "prior_logits"]


def bin_centres(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Increasing bin centres at ``n_bins`` quantiles of ``values`` (observed values, ties
    merged).

    A target with few distinct values (a count) gets one centre per value it takes, up to
    ``n_bins``; a constant target gets two centres around its value, so that the head
    always has at least two classes.
    """
    values = np.asarray(values, dtype=np.float64)
    # Observed values only: a count's centres are counts, never a value between two.
    quantiles = np.linspace(0.0, 1.0, int(n_bins))
    centres = np.unique(np.quantile(values, quantiles, method="inverted_cdf"))
    if len(centres) < 2:
        centres = np.array([centres[0] - 0.5, centres[0] + 0.5])
    return centres.astype(np.float32)


def two_hot(targets: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Each target's probability over the centres, split between its two neighbours.

    ``targets`` has shape (n,) or (n, 1); values outside the centres' range go wholly to
    the nearest end. Returns (n, n_centres) rows summing to 1 whose expectation over the
    centres is the (clipped) target.
    """
    values = targets.reshape(-1).to(centres.dtype).clamp(centres[0], centres[-1])
    upper = torch.searchsorted(centres, values).clamp(1, len(centres) - 1)
    lower = upper - 1
    width = centres[upper] - centres[lower]
    upper_share = ((values - centres[lower]) / width).clamp(0.0, 1.0)
    probabilities = torch.zeros(
        len(values), len(centres), dtype=centres.dtype, device=centres.device
    )
    rows = torch.arange(len(values), device=centres.device)
    probabilities[rows, lower] = 1.0 - upper_share
    probabilities[rows, upper] += upper_share
    return probabilities


def prior_logits(
    targets: np.ndarray, centres: np.ndarray, weights: np.ndarray | None
) -> np.ndarray:
    """Log of the (weighted) mean two-hot distribution: a head that starts at the marginal."""
    probabilities = two_hot(
        torch.from_numpy(np.asarray(targets, np.float32)), torch.from_numpy(centres)
    )
    w = np.ones(len(probabilities)) if weights is None else np.asarray(weights, np.float64)
    mean = (probabilities.numpy().astype(np.float64) * w[:, None]).sum(0) / max(w.sum(), 1e-12)
    return np.log(np.clip(mean, 1e-6, None)).astype(np.float32)


def distribution_point(logits: np.ndarray, centres: np.ndarray, statistic: str) -> np.ndarray:
    """The median or mean of each row's predicted distribution over the centres.

    The median interpolates linearly between centres on the mid-distribution function
    (the mass below a centre plus half its own), which is where it crosses one half: a
    point mass reads as its centre and a two-hot row as the value it encodes, and the
    median moves continuously with the logits instead of jumping from centre to centre.
    """
    logits = np.asarray(logits, dtype=np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    centres = np.asarray(centres, dtype=np.float64)
    if statistic == "mean":
        return probabilities @ centres
    mid = np.cumsum(probabilities, axis=1) - 0.5 * probabilities
    upper = (mid < 0.5).sum(axis=1).clip(1, len(centres) - 1)
    rows = np.arange(len(upper))
    low, high = mid[rows, upper - 1], mid[rows, upper]
    share = ((0.5 - low) / np.maximum(high - low, 1e-12)).clip(0.0, 1.0)
    return centres[upper - 1] + share * (centres[upper] - centres[upper - 1])
