"""The TVE objective: a linear head from the seed embedding to the task vector, and its loss."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TVEHead", "scaled_cosine_loss", "scaled_cosine_terms"]


class TVEHead(nn.Module):
    """Linear map from the encoder's seed embedding to the scaled task vector.

    Parameters
    ----------
    in_channels : int
        Width of the seed embedding.
    out_channels : int
        Length of the task vector.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear(embedding)


def scaled_cosine_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    inactive: torch.Tensor,
    inactive_weight: float = 0.1,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Scaled cosine error ``(1 - cos(pred, target))^2`` weighted by activity.

    Rows with no activity in the window carry weight ``inactive_weight`` and active rows
    ``1 - inactive_weight``; the loss is the weighted mean over rows. The square makes
    nearly-right directions cost little and wrong ones a lot, as in the TVE paper.

    Parameters
    ----------
    prediction, target : Tensor of shape (n, d)
    inactive : Tensor of shape (n,), bool or {0, 1}
    inactive_weight : float in [0, 1]

    Returns
    -------
    loss : scalar Tensor
    """
    loss_sum, weight = scaled_cosine_terms(prediction, target, inactive, inactive_weight, eps)
    return loss_sum / weight.clamp_min(eps)


def scaled_cosine_terms(
    prediction: torch.Tensor,
    target: torch.Tensor,
    inactive: torch.Tensor,
    inactive_weight: float = 0.1,
    eps: float = 1e-8,
    row_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The numerator and denominator of :func:`scaled_cosine_loss`.

    Returns the sum of the weighted per-row losses and the sum of the weights; their
    ratio is the loss. Data-parallel training adds both over ranks before dividing, so
    the mean is that of the whole batch (:mod:`sktve.distributed`). ``row_weight``
    (e.g. a fine-tuner's ``sample_weight``) multiplies each row's activity weight.
    """
    cos = nn.functional.cosine_similarity(prediction, target, dim=1, eps=eps)
    per_row = (1.0 - cos).pow(2)
    inactive = inactive.to(per_row.dtype)
    weights = inactive * inactive_weight + (1.0 - inactive) * (1.0 - inactive_weight)
    if row_weight is not None:
        weights = weights * row_weight.to(per_row.dtype)
    return (weights * per_row).sum(), weights.sum()
