"""Heterogeneous GraphSAGE layer in plain torch (no pyg-lib / torch-sparse needed)."""

from __future__ import annotations

import torch
from torch import nn

from sktve.graph.features import EdgeType

__all__ = ["HeteroSAGELayer", "recency_means", "scatter_mean"]


def scatter_mean(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of rows of ``src`` grouped by ``index`` into ``size`` rows (zero when empty)."""
    out = src.new_zeros((size, src.shape[1]))
    if index.numel() == 0:
        return out
    out.index_add_(0, index, src)
    count = torch.bincount(index, minlength=size).clamp_min_(1).to(src.dtype)
    return out / count.unsqueeze(1)


def recency_means(
    src: torch.Tensor, age: torch.Tensor, index: torch.Tensor, size: int, scales: tuple[float, ...]
) -> torch.Tensor:
    """Per group, means of ``src`` weighted by ``exp(-(age - youngest) / scale)``, one per scale.

    Ages are taken relative to the group's most recent row, so the weights never underflow
    and each mean reads the latest rows' form at that time scale. Returns (size, len(scales) * C).
    """
    youngest = age.new_full((size,), float("inf")).scatter_reduce(
        0, index, age, reduce="amin", include_self=True
    )
    lag = age - youngest.index_select(0, index)
    parts = []
    for scale in scales:
        weight = torch.exp(-lag / scale)
        total = src.new_zeros(size).index_add_(0, index, weight)
        num = src.new_zeros((size, src.shape[1])).index_add_(0, index, src * weight.unsqueeze(1))
        parts.append(num / total.clamp_min(1e-12).unsqueeze(1))
    return torch.cat(parts, dim=1)


class HeteroSAGELayer(nn.Module):
    """One layer: per relation mean aggregation, summed over relations, LayerNorm, ReLU.

    ``h_dst' = ReLU(LayerNorm(W_self[dst] h_dst + sum_r W_r mean_{src in N_r(dst)} h_src))``

    With ``recency_days``, each relation whose source table is in ``temporal`` also adds
    ``U_r [m_1, ..., m_k]``, the ``recency_means`` of its sources at those scales
    (ages from ``forward``'s ``ages``).

    Parameters
    ----------
    node_types : list of str
    edge_types : list of (src, rel, dst)
    channels : int
    dropout : float, default=0.0
    recency_days : tuple of float, default=()
        Time scales (days) of the recency-weighted means; empty for plain means only.
    temporal : set of str, optional
        Node types whose rows have times (only their relations get recency means).
    """

    def __init__(
        self,
        node_types: list[str],
        edge_types: list[EdgeType],
        channels: int,
        dropout: float = 0.0,
        recency_days: tuple[float, ...] = (),
        temporal: set[str] | None = None,
    ) -> None:
        super().__init__()
        self.node_types = list(node_types)
        self.edge_types = list(edge_types)
        self.recency_days = tuple(float(d) for d in recency_days)
        temporal = set(temporal or ())
        self.lin_recent = nn.ModuleDict()
        if self.recency_days:
            for i, et in enumerate(self.edge_types):
                if et[0] in temporal:
                    self.lin_recent[str(i)] = nn.Linear(
                        channels * len(self.recency_days), channels, bias=False
                    )
        # Module names must not contain dots, and table names may: index-based keys.
        self.lin_self = nn.ModuleList(nn.Linear(channels, channels) for _ in self.node_types)
        self.lin_nbr = nn.ModuleList(
            nn.Linear(channels, channels, bias=False) for _ in self.edge_types
        )
        self.norm = nn.ModuleList(nn.LayerNorm(channels) for _ in self.node_types)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        h: dict[str, torch.Tensor],
        edge_index: dict[EdgeType, torch.Tensor],
        num_dst: dict[str, int],
        num_edges: dict[EdgeType, int],
        ages: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Update the first ``num_dst[t]`` nodes of each type using the first
        ``num_edges[e]`` edges of each edge type (the rest are beyond reach of the seeds
        at this depth)."""
        msgs: dict[str, torch.Tensor] = {}
        for i, et in enumerate(self.edge_types):
            src, _, dst = et
            n_e = num_edges.get(et, 0)
            if n_e == 0 or num_dst.get(dst, 0) == 0:
                continue
            ei = edge_index[et][:, :n_e]
            # index_select's backward is an index_add_; plain indexing's sorts the indices.
            h_src = h[src].index_select(0, ei[0])
            agg = scatter_mean(h_src, ei[1], num_dst[dst])
            msg = self.lin_nbr[i](agg)
            if str(i) in self.lin_recent and ages is not None and src in ages:
                recent = recency_means(
                    h_src, ages[src].index_select(0, ei[0]), ei[1], num_dst[dst], self.recency_days
                )
                msg = msg + self.lin_recent[str(i)](recent)
            msgs[dst] = msgs[dst] + msg if dst in msgs else msg
        out: dict[str, torch.Tensor] = {}
        for i, t in enumerate(self.node_types):
            n = num_dst.get(t, 0)
            x = self.lin_self[i](h[t][:n])
            if t in msgs:
                x = x + msgs[t]
            out[t] = self.dropout(torch.relu(self.norm[i](x)))
        return out
