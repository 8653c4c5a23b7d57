"""Column encoders (one per table) and the relative-time encoding."""

from __future__ import annotations

import math

import torch
from torch import nn

from sktve.graph.features import TableMeta

__all__ = ["RelativeTimeEncoder", "TableEncoder"]


class TableEncoder(nn.Module):
    """Encode one table's feature cells into a ``channels``-wide vector per row.

    Float features (standardised numbers, missing indicators, text embeddings) go through
    one linear map; each categorical column has its own embedding table (stored as one
    ``nn.Embedding`` with per-column offsets) and the column embeddings are summed. A
    learned table bias makes rows of feature-less tables distinguishable by type, and a
    LayerNorm keeps the scale independent of the number of columns.

    Parameters
    ----------
    meta : TableMeta
    channels : int
    """

    def __init__(self, meta: TableMeta, channels: int) -> None:
        super().__init__()
        self.num_dim = int(meta.num_dim)
        self.num_cat = len(meta.cat_cardinalities)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.num = nn.Linear(self.num_dim, channels) if self.num_dim else None
        if self.num_cat:
            cards = torch.tensor([0, *meta.cat_cardinalities], dtype=torch.long)
            self.cat = nn.Embedding(int(cards.sum()), channels)
            nn.init.normal_(self.cat.weight, std=1.0 / math.sqrt(self.num_cat))
            # Derived from the metadata, so not part of the state dict.
            self.register_buffer("offsets", torch.cumsum(cards, 0)[:-1], persistent=False)
        else:
            self.cat = None
        self.norm = nn.LayerNorm(channels)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        n = x_num.shape[0]
        h = self.bias.expand(n, -1)
        if self.num is not None:
            h = h + self.num(x_num)
        if self.cat is not None:
            # embedding_bag sums the column embeddings without an (n, columns, channels)
            # intermediate.
            h = h + nn.functional.embedding_bag(x_cat + self.offsets, self.cat.weight, mode="sum")
        return self.norm(h)


class RelativeTimeEncoder(nn.Module):
    """Encode ``seed time - node time`` (days, >= 0) into ``channels`` features.

    Features: ``log1p(days)`` (scaled) and sin / cos of ``2 pi days / period`` for
    periods from one day to about 16 years on a geometric grid, then a linear map. The
    log term orders events by age at any scale; the periodic terms resolve weekly and
    yearly patterns.

    Parameters
    ----------
    channels : int
    num_periods : int, default=8
    """

    def __init__(self, channels: int, num_periods: int = 8) -> None:
        super().__init__()
        periods = torch.logspace(0.0, math.log10(6000.0), num_periods)
        self.register_buffer("freq", 2 * math.pi / periods, persistent=False)
        self.lin = nn.Linear(2 * num_periods + 1, channels)

    def forward(self, days: torch.Tensor) -> torch.Tensor:
        days = days.clamp_min(0).unsqueeze(-1)
        angle = days * self.freq
        feats = torch.cat([torch.log1p(days) / 10.0, angle.sin(), angle.cos()], dim=-1)
        return self.lin(feats)
