"""Heterogeneous GraphSAGE layer in plain torch (no pyg-lib / torch-sparse needed)."""

from __future__ import annotations

import torch
from torch import nn

from sktve.graph.features import EdgeType

__all__ = ["HeteroSAGELayer", "scatter_mean"]


def scatter_mean(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of rows of ``src`` grouped by ``index`` into ``size`` rows (zero when empty)."""
    out = src.new_zeros((size, src.shape[1]))
    if index.numel() == 0:
        return out
    out.index_add_(0, index, src)
    count = torch.bincount(index, minlength=size).clamp_min_(1).to(src.dtype)
    return out / count.unsqueeze(1)


class HeteroSAGELayer(nn.Module):
    """One layer: per relation mean aggregation, summed over relations, LayerNorm, ReLU.

    ``h_dst' = ReLU(LayerNorm(W_self[dst] h_dst + sum_r W_r mean_{src in N_r(dst)} h_src))``

    Parameters
    ----------
    node_types : list of str
    edge_types : list of (src, rel, dst)
    channels : int
    dropout : float, default=0.0
    """

    def __init__(
        self,
        node_types: list[str],
        edge_types: list[EdgeType],
        channels: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.node_types = list(node_types)
        self.edge_types = list(edge_types)
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
            agg = scatter_mean(h[src].index_select(0, ei[0]), ei[1], num_dst[dst])
            msg = self.lin_nbr[i](agg)
            msgs[dst] = msgs[dst] + msg if dst in msgs else msg
        out: dict[str, torch.Tensor] = {}
        for i, t in enumerate(self.node_types):
            n = num_dst.get(t, 0)
            x = self.lin_self[i](h[t][:n])
            if t in msgs:
                x = x + msgs[t]
            out[t] = self.dropout(torch.relu(self.norm[i](x)))
        return out
