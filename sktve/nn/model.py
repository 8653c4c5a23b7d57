"""RelationalEncoder: column encoders + relative time + hetero GraphSAGE -> seed embedding."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sktve.graph.features import GraphMetadata
from sktve.graph.sampler import SampledBatch
from sktve.nn.encoders import RelativeTimeEncoder, TableEncoder
from sktve.nn.sage import HeteroSAGELayer

__all__ = ["RelationalEncoder", "corrupt_features"]


def _random(
    shape: tuple[int, ...], high: int | None, generator: torch.Generator | None, device: Any
) -> torch.Tensor:
    # Draw on the generator's device (the training loop passes a CPU generator even when
    # the model is on CUDA), then move.
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if high is None:
        out = torch.rand(shape, generator=generator, device=gen_device)
    else:
        out = torch.randint(0, high, shape, generator=generator, device=gen_device)
    return out.to(device)


def _swap_cells(x: torch.Tensor, swap: torch.Tensor, donor: torch.Tensor) -> torch.Tensor:
    """Copy of ``x`` with cell (i, j) replaced by (donor[i, j], j) where ``swap``."""
    n_cols = x.shape[1]
    # Flat indices on the swapped cells only: far cheaper than 2-d advanced indexing.
    cells = swap.reshape(-1).nonzero().squeeze(1)
    source = donor.reshape(-1)[cells] * n_cols + cells % n_cols
    out = x.contiguous().clone()
    out.view(-1)[cells] = x.reshape(-1)[source]
    return out


def corrupt_features(
    batch: SampledBatch,
    node_type: str,
    num_groups: torch.Tensor,
    rate: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Swap feature cells with the same column of random other nodes of the same type.

    Each cell (a numeric value with its missing indicator, a text embedding, a
    categorical code) of each node is, with probability ``rate``, replaced by the same
    column of a random node of the same type in the batch. A donor stamped later than
    the receiving node's seed time is rejected (the cell is kept), so even corrupted
    training inputs hold nothing from the receiving seed's future.

    Returns
    -------
    x_num, x_cat : the corrupted copies.
    """
    x_num, x_cat = batch.x_num[node_type], batch.x_cat[node_type]
    n = x_num.shape[0]
    if n < 2 or rate <= 0:
        return x_num, x_cat
    device = x_num.device
    node_time = batch.node_time.get(node_type)
    horizon = batch.seed_time[batch.node_seed[node_type]] if node_time is not None else None

    def draw(n_cells: int) -> tuple[torch.Tensor, torch.Tensor]:
        swap = _random((n, n_cells), None, generator, device) < rate
        donor = _random((n, n_cells), n, generator, device)
        if node_time is not None:
            swap &= node_time[donor] <= horizon.unsqueeze(1)
        return swap, donor

    if x_num.shape[1]:
        n_groups = int(num_groups.max()) + 1
        swap, donor = draw(n_groups)
        x_num = _swap_cells(x_num, swap[:, num_groups], donor[:, num_groups])
    if x_cat.shape[1]:
        swap, donor = draw(x_cat.shape[1])
        x_cat = _swap_cells(x_cat, swap, donor)
    return x_num, x_cat


class RelationalEncoder(nn.Module):
    """Temporal heterogeneous GNN encoder: one embedding per seed of a sampled batch.

    Per-table column encoders (:class:`TableEncoder`) embed every sampled node; nodes of
    timestamped tables add an encoding of their age relative to their seed
    (:class:`RelativeTimeEncoder`); ``num_layers`` heterogeneous GraphSAGE layers
    (:class:`HeteroSAGELayer`: mean per relation, sum across relations, LayerNorm, ReLU)
    carry information towards the seeds. Layer ``l`` only updates nodes still within
    reach of a seed (depth <= num_layers - 1 - l), as PyG's ``trim_to_layer`` does.

    Parameters
    ----------
    metadata : GraphMetadata or dict
        ``GraphFeaturizer.metadata_`` (or ``graph.metadata``), or its ``to_dict()``.
    channels : int, default=128
        Width of every hidden layer and of the output embedding.
    num_layers : int, default=2
        Message-passing layers; match the number of sampler hops.
    dropout : float, default=0.0
    history_counts : bool, default=False
        Add a map of each seed's history counts (``SampledBatch.seed_history``: per
        referencing edge type, log1p of its visible rows, of those in each recent
        window, and of the latest one's age) to the seed's input embedding. The sampler
        keeps only ``fanouts`` neighbours and the layers average them, so without this
        an entity with 3 orders and one with 3,000 can look alike.
    n_history_windows : int, default=0
        Number of recent windows in those counts (the sampler's ``history_windows``).

    Examples
    --------
    >>> encoder = RelationalEncoder(featurizer.metadata_, channels=64)  # doctest: +SKIP
    >>> emb = encoder(sampler.sample("users", positions, times))      # doctest: +SKIP
    """

    def __init__(
        self,
        metadata: GraphMetadata | dict[str, Any],
        channels: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        history_counts: bool = False,
        n_history_windows: int = 0,
        recency_days: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        if isinstance(metadata, dict):
            metadata = GraphMetadata.from_dict(metadata)
        if not isinstance(metadata, GraphMetadata):
            raise TypeError(
                "metadata must be a GraphMetadata (GraphFeaturizer.metadata_) or its dict; "
                f"got {type(metadata).__name__}."
            )
        if int(channels) < 1 or int(num_layers) < 0:
            raise ValueError(f"need channels >= 1, num_layers >= 0; got {channels}, {num_layers}.")
        self.metadata = metadata
        self.channels = int(channels)
        self.num_layers = int(num_layers)
        self.node_types = list(metadata.node_types)
        self.edge_types = [tuple(e) for e in metadata.edge_types]
        self.table_encoders = nn.ModuleList(
            TableEncoder(metadata.tables[t], self.channels) for t in self.node_types
        )
        self.time_encoder = RelativeTimeEncoder(self.channels)
        self.layers = nn.ModuleList(
            HeteroSAGELayer(
                self.node_types,
                self.edge_types,
                self.channels,
                float(dropout),
                recency_days=tuple(recency_days),
                temporal={t for t in self.node_types if metadata.tables[t].temporal},
            )
            for _ in range(self.num_layers)
        )
        self.input_dropout = nn.Dropout(float(dropout))
        self.history_counts = bool(history_counts)
        # Keyed by node-type index: table names may hold dots, which module names may not.
        self.history_encoders = nn.ModuleDict()
        if self.history_counts:
            children = metadata.child_edge_types()
            for i, t in enumerate(self.node_types):
                edge_types = children.get(t, [])
                if edge_types:
                    # Normalised like the column encoders' output, so counts (log1p up
                    # to ~15) cannot drown the row's own features.
                    self.history_encoders[str(i)] = nn.Sequential(
                        nn.Linear(len(edge_types) * (2 + int(n_history_windows)), self.channels),
                        nn.LayerNorm(self.channels),
                    )
        for i, t in enumerate(self.node_types):
            groups = torch.tensor(metadata.tables[t].num_groups, dtype=torch.long)
            self.register_buffer(f"_groups_{i}", groups, persistent=False)

    def forward(
        self,
        batch: SampledBatch,
        corruption_rate: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Embed the seeds of ``batch``.

        Parameters
        ----------
        batch : SampledBatch
            On the encoder's device.
        corruption_rate : float, default=0.0
            Probability that each feature cell is swapped with the same column of a random
            node of the same type (training-time corruption; 0 turns it off).
        generator : torch.Generator, optional
            Source of the corruption randomness (default: torch's global generator).

        Returns
        -------
        FloatTensor of shape (batch.num_seeds, channels); row i embeds seed i.
        """
        h: dict[str, torch.Tensor] = {}
        for i, t in enumerate(self.node_types):
            x_num, x_cat = batch.x_num[t], batch.x_cat[t]
            if corruption_rate > 0:
                groups = getattr(self, f"_groups_{i}")
                x_num, x_cat = corrupt_features(batch, t, groups, corruption_rate, generator)
            x = self.table_encoders[i](x_num, x_cat)
            if t == batch.seed_table and str(i) in self.history_encoders:
                n = batch.num_seeds
                counts = self.history_encoders[str(i)](batch.seed_history)
                x = torch.cat([x[:n] + counts, x[n:]])
            if t in batch.rel_time:
                x = x + self.time_encoder(batch.rel_time[t])
            h[t] = self.input_dropout(x)
        max_depth = batch.num_hops
        for layer_idx, layer in enumerate(self.layers):
            # Nodes deeper than `reach` cannot influence the seeds any more.
            reach = self.num_layers - 1 - layer_idx
            d = min(reach, max_depth)
            num_dst = {t: batch.depth_ptr[t][d + 1] for t in self.node_types}
            num_edges = {
                et: batch.edge_ptr[et][min(reach + 1, max_depth)] for et in self.edge_types
            }
            h = layer(h, batch.edge_index, num_dst, num_edges, batch.rel_time)
        return h[batch.seed_table][: batch.num_seeds]

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, num_layers={self.num_layers}, "
            f"node_types={len(self.node_types)}, edge_types={len(self.edge_types)}"
        )
