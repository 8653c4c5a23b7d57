"""One place that builds the graph, sampler and encoder for pre-training, fine-tuning and embedding.

:class:`~sktve.TVEPretrainer` and the fine-tuning estimators (:mod:`sktve.finetune`) share
the same architecture: a :class:`~sktve.graph.GraphFeaturizer` turns the database into a
temporal graph, a :class:`~sktve.graph.TemporalNeighborSampler` draws each seed's subgraph
of rows at or before its time, and a :class:`~sktve.nn.RelationalEncoder` embeds the seed.
:class:`EncoderSpec` names the settings of that stack, so that a fine-tuner started from
random weights is the same network, with the same budget, as one started from TVE.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from sktve._progress import progress, timed_step
from sktve._validation import parse_windows
from sktve.database import Database
from sktve.graph import GraphFeaturizer, TemporalNeighborSampler
from sktve.nn import RelationalEncoder

__all__ = [
    "EncoderSpec",
    "build_encoder",
    "build_sampler",
    "embed_rows",
    "encoder_windows",
    "recent_windows",
    "state_from_bytes",
    "state_to_bytes",
]

# history_counts=True: the long baseline window is this many of the longest target window.
LONG_HISTORY_WINDOWS = 12
DAY_NS = pd.Timedelta("1D").value
# Seeds embedded per forward pass at inference: bounds the sampled subgraph's memory.
EMBED_CHUNK = 1024
# From this many chunks on (about 8k rows, seconds on a laptop) embedding reports progress.
LONG_EMBEDDING_CHUNKS = 8


@dataclass(frozen=True)
class EncoderSpec:
    """Settings of the sampler + encoder stack.

    Attributes
    ----------
    embedding_dim : int
        Width of the encoder and of the seed embedding.
    fanouts : tuple of int
        Neighbours sampled per node at each hop; its length is the number of layers.
    dropout : float
    temporal_strategy : {"last", "uniform"}
    history_windows : tuple of int
        Recent windows (nanoseconds) of the seed's history counts (see
        ``recent_windows``); empty when the encoder reads no counts.
    recency_scales : tuple of int
        Time scales (nanoseconds) of the recency-weighted means each message-passing
        layer takes beside the plain mean; empty for plain means only.
    """

    embedding_dim: int = 128
    fanouts: tuple[int, ...] = (16, 16)
    dropout: float = 0.0
    temporal_strategy: str = "last"
    history_windows: tuple[int, ...] = ()
    recency_scales: tuple[int, ...] = ()

    @property
    def history_counts(self) -> bool:
        """Whether the encoder reads history counts: every setting that has them has windows."""
        return bool(self.history_windows)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> EncoderSpec:
        """The spec of an estimator's parameters (``get_params()`` or a settings dict)."""
        return cls(
            embedding_dim=int(params["embedding_dim"]),
            fanouts=tuple(int(f) for f in params["fanouts"]),
            dropout=float(params["dropout"]),
            temporal_strategy=str(params["temporal_strategy"]),
            history_windows=tuple(int(w) for w in params.get("history_windows", ())),
            recency_scales=tuple(int(w) for w in params.get("recency_scales", ())),
        )


def recent_windows(
    setting: Any, target_windows: Sequence[pd.Timedelta], name: str = "history_counts"
) -> tuple[int, ...]:
    """The recent windows (ns, ascending) of a ``history_counts`` or ``recency_means`` setting.

    ``True`` takes each pre-training target window and ``LONG_HISTORY_WINDOWS`` times
    the longest: what happened in the last window, next to a longer baseline to read it
    against (a customer fading away orders less in the last month than their yearly rate
    says). A list of windows is taken as given; ``False`` has none.
    """
    if isinstance(setting, (bool, np.bool_)) or setting is None:
        if not setting:
            return ()
        chosen = [*target_windows, LONG_HISTORY_WINDOWS * max(target_windows)]
    else:
        chosen = parse_windows(setting, name)
    return tuple(sorted({int(pd.Timedelta(w).value) for w in chosen}))


def encoder_windows(params: dict[str, Any], target_windows: Sequence[pd.Timedelta]) -> dict:
    """``history_windows`` and ``recency_scales`` (ns) of a pretrainer's parameters.

    One place, so that a fine-tuner started from random weights builds the very encoder a
    pretrainer with the same parameters would.
    """
    return {
        "history_windows": recent_windows(params["history_counts"], target_windows),
        "recency_scales": recent_windows(params["recency_means"], target_windows, "recency_means"),
    }


def build_sampler(graph: Any, spec: EncoderSpec, random_state: int) -> TemporalNeighborSampler:
    """The temporal neighbour sampler of ``spec`` over ``graph``."""
    return TemporalNeighborSampler(
        graph,
        fanouts=list(spec.fanouts),
        random_state=random_state,
        temporal_strategy=spec.temporal_strategy,
        history_windows=spec.history_windows,
    )


def build_encoder(
    featurizer: GraphFeaturizer, spec: EncoderSpec, state: bytes | None = None
) -> RelationalEncoder:
    """The encoder of ``spec``: fresh weights (seed torch first), or ``state`` loaded."""
    encoder = RelationalEncoder(
        featurizer.metadata_,
        channels=spec.embedding_dim,
        num_layers=len(spec.fanouts),
        dropout=spec.dropout,
        history_counts=spec.history_counts,
        n_history_windows=len(spec.history_windows),
        recency_days=tuple(w / DAY_NS for w in spec.recency_scales),
    )
    if state is not None:
        encoder.load_state_dict(state_from_bytes(state))
    return encoder


def build_graph(featurizer: GraphFeaturizer, database: Database) -> Any:
    """The temporal graph of ``database`` under the fitted featurizer."""
    return featurizer.transform(database)


def embed_rows(
    sampler: TemporalNeighborSampler,
    encoder: torch.nn.Module,
    entity_table: str,
    positions: np.ndarray,
    times_ns: np.ndarray,
    verbose: bool = False,
) -> torch.Tensor:
    """Embeddings of seed rows (no gradient), in chunks; a float32 CPU tensor (n, dim).

    Each row sees only database rows with time <= its time (the sampler's contract).
    With ``verbose``, many rows get a progress bar on a terminal and one line elsewhere.
    """
    device = next(encoder.parameters()).device
    chunks = []
    starts = range(0, len(positions), EMBED_CHUNK)
    verbose = verbose and len(starts) >= LONG_EMBEDDING_CHUNKS
    with torch.no_grad(), timed_step(verbose, f"embedded {len(positions):,} rows"):
        for start in progress(starts, verbose, desc="embedding", unit="chunk", leave=False):
            stop = start + EMBED_CHUNK
            batch = sampler.sample(entity_table, positions[start:stop], times_ns[start:stop])
            chunks.append(encoder(batch.to(device)).detach().float().cpu())
    if not chunks:
        return torch.zeros((0, encoder.channels), dtype=torch.float32)
    return torch.cat(chunks)


def state_to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """A module's state dict as bytes (what fitted estimators pickle)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def state_from_bytes(blob: bytes) -> dict[str, torch.Tensor]:
    """Inverse of :func:`state_to_bytes`."""
    # weights_only: a saved model never runs arbitrary pickled code when loaded.
    return torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
