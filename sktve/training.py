"""The pre-training loop: AdamW, a cosine learning-rate schedule, early stopping, history.

The loop is independent of how targets were built: it gets seed rows (table positions and
times), their scaled task vectors and activity flags, a sampler and an encoder. Early
stopping watches the target loss on held-out rows (the latest pre-training cutoffs),
never downstream labels.

All randomness comes from ``random_state`` and the epoch number, so every rank of a
data-parallel run draws the same batches from :func:`epoch_batches`; with ``dist`` the
loop shards them by rank and all-reduces gradients and held-out losses
(:mod:`sktve.distributed`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from sktve._progress import progress
from sktve.distributed import (
    DistContext,
    broadcast_parameters,
    rank_seed,
    sharded_backward,
    sharded_loss,
)
from sktve.nn import keep_freed_memory
from sktve.nn.tve import scaled_cosine_terms

__all__ = [
    "TrainingConfig",
    "TrainingResult",
    "epoch_batches",
    "pretrain",
    "resolve_device",
    "train_loop",
]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but CUDA is not available here.")
    return resolved


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of the pre-training loop (see TVEPretrainer for their meaning)."""

    max_epochs: int = 20
    steps_per_epoch: int = 50
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 4
    inactive_weight: float = 0.1
    mask_rate: float = 0.15
    eval_batch_size: int = 1024
    random_state: int = 0
    verbose: bool = False


@dataclass
class TrainingResult:
    """What the loop learned: best weights, per-epoch history and throughput."""

    encoder_state: dict[str, torch.Tensor]
    head_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    n_steps: int = 0
    steps_per_second: float = 0.0


def epoch_batches(n_rows: int, batch_size: int, steps: int, rng: np.random.Generator) -> list:
    """Index batches of one epoch: a fresh permutation cut into at most ``steps`` batches."""
    order = rng.permutation(n_rows)
    n_batches = min(steps, max(1, math.ceil(n_rows / batch_size)))
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]


def train_loop(
    modules: list[nn.Module],
    batch_loss: Callable[[np.ndarray, bool], torch.Tensor],
    train_idx: np.ndarray,
    holdout_idx: np.ndarray,
    config: TrainingConfig,
    param_groups: list[dict[str, Any]] | None = None,
    evaluate_start: bool = False,
    dist: DistContext | None = None,
    batch_terms: Callable[[np.ndarray, bool], tuple[torch.Tensor, torch.Tensor]] | None = None,
    n_epochs: int | None = None,
    holdout_eval: Callable[[], tuple[float, float]] | None = None,
    average_epochs: float | None = None,
    row_weights: np.ndarray | None = None,
) -> tuple[list[dict[str, float]], int, int, float]:
    """The loop that pre-training and fine-tuning share.

    AdamW with a warm-up + cosine learning-rate schedule and gradient clipping; after each
    epoch the weighted mean of ``batch_loss`` over ``holdout_idx`` (or ``holdout_eval``'s
    criterion) decides early stopping, and the modules end with the weights of the best
    epoch.

    Parameters
    ----------
    modules : list of nn.Module
        Trained together; their state is what early stopping keeps.
    batch_loss : callable
        ``batch_loss(rows, train)`` returns the mean loss of rows ``rows`` (indices into
        the caller's arrays); ``train`` is False for held-out evaluation.
    train_idx, holdout_idx : ndarray of int
        Rows to train on, and rows whose loss drives early stopping (may be empty:
        then the last epoch is kept).
    config : TrainingConfig
    param_groups : list of dict, optional
        Optimizer parameter groups (e.g. a smaller learning rate for a pre-trained
        encoder: a group's ``lr`` is a factor applied to ``config.learning_rate``).
        Default: every parameter of ``modules`` at ``config.learning_rate``.
    evaluate_start : bool, default=False
        Measure the held-out loss before the first step too, so that the starting
        weights are kept when no epoch beats them (best epoch 0). Fine-tuning uses it: its
        start can already be a good model (a side estimator's prediction).
    dist : DistContext, optional
        Data-parallel training (see :mod:`sktve.distributed`): each global batch (the same
        on every rank) is sharded by rank, gradients and held-out losses are all-reduced,
        and clipping and the step run on the summed gradients, so every rank keeps the
        same weights and stops at the same epoch. Needs ``batch_terms``.
    batch_terms : callable, optional
        ``batch_terms(rows, train)`` returns ``(sum of weighted row losses, sum of
        weights)``, whose ratio is ``batch_loss``; used with ``dist``.
    n_epochs : int, optional
        Stop after this many epochs of the ``config.max_epochs`` schedule (the learning
        rate follows the full schedule up to there). With an empty ``holdout_idx``, this
        replays a run whose best epoch is known on more rows.
    holdout_eval : callable, optional
        ``holdout_eval()`` returns ``(held-out loss, criterion)`` for the modules as they
        are (called in eval mode, without gradients); early stopping then minimises the
        criterion (a negated score, e.g. minus the AUROC) instead of the loss, and each
        epoch's history records ``-criterion`` as ``holdout_score``. It must cover every
        held-out row itself (with ``dist``, return the same values on every rank).
    row_weights : ndarray, optional
        Weight of each row (indexed as ``train_idx`` and ``holdout_idx``) when
        ``batch_loss`` is a weighted mean: held-out batches are then combined by their
        weight, not their row count. Default: every row weighs 1.

    Returns
    -------
    history, best_epoch, n_steps, steps_per_second
    """
    # Training reallocates the same large activation buffers every step; letting glibc
    # return them to the OS made steps about 10x slower on small VMs (see keep_freed_memory).
    keep_freed_memory()
    if dist is not None and batch_terms is None:
        raise ValueError("data-parallel training (dist=...) needs batch_terms.")
    if dist is not None:
        broadcast_parameters(modules)
    params = [p for m in modules for p in m.parameters()]
    if param_groups is None:
        groups = [{"params": params, "lr": config.learning_rate}]
    else:
        groups = [{**g, "lr": config.learning_rate * float(g.get("lr", 1.0))} for g in param_groups]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = min(
        config.steps_per_epoch, max(1, math.ceil(len(train_idx) / config.batch_size))
    )
    total_steps = max(1, steps_per_epoch * config.max_epochs)
    warmup = max(1, total_steps // 20)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    rng = np.random.default_rng(config.random_state)

    def set_mode(train: bool) -> None:
        for module in modules:
            module.train(train)

    def holdout_criterion() -> tuple[float, float]:
        """(held-out loss, the value early stopping minimises)."""
        if len(holdout_idx) == 0:
            return float("nan"), float("nan")
        if holdout_eval is not None:
            set_mode(False)
            with torch.no_grad():
                loss, criterion = holdout_eval()
            return float(loss), float(criterion)
        loss = holdout_loss()
        return loss, loss

    def holdout_loss() -> float:
        set_mode(False)
        total, weight = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(holdout_idx), config.eval_batch_size):
                rows = holdout_idx[start : start + config.eval_batch_size]
                rows_weight = len(rows) if row_weights is None else float(row_weights[rows].sum())
                if dist is None:
                    total += float(batch_loss(rows, False)) * rows_weight
                else:
                    total += sharded_loss(batch_terms, rows, dist) * rows_weight
                weight += rows_weight
        return total / weight

    def snapshot() -> list[dict[str, torch.Tensor]]:
        return [copy.deepcopy(m.state_dict()) for m in modules]

    averaged = None
    if average_epochs is not None:
        averaged = [p.detach().clone() for p in params]
        average_decay = 1.0 - 1.0 / max(1.0, float(average_epochs) * steps_per_epoch)

    def update_average(step: int) -> None:
        decay = min(average_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for mean, param in zip(averaged, params):
                mean.lerp_(param.detach(), 1.0 - decay)

    def swap_average() -> None:
        # Exchanges raw and averaged weights in place (twice restores them).
        with torch.no_grad():
            for mean, param in zip(averaged, params):
                raw = param.detach().clone()
                param.copy_(mean)
                mean.copy_(raw)

    history: list[dict[str, float]] = []
    best_criterion, best_epoch, stale = math.inf, 0, 0
    best_state = snapshot()
    if evaluate_start and len(holdout_idx):
        best_criterion = holdout_criterion()[1]
    n_steps, train_seconds = 0, 0.0
    last_epoch = config.max_epochs if n_epochs is None else min(int(n_epochs), config.max_epochs)
    for epoch in range(1, last_epoch + 1):
        set_mode(True)
        started = time.perf_counter()
        losses = []
        batches = epoch_batches(len(train_idx), config.batch_size, steps_per_epoch, rng)
        for index in progress(
            batches, config.verbose, desc=f"epoch {epoch}/{config.max_epochs}", leave=False
        ):
            if dist is None:
                loss = batch_loss(train_idx[index], True)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                loss_value = float(loss.detach())
            else:
                optimizer.zero_grad(set_to_none=True)
                loss_value = sharded_backward(batch_terms, train_idx[index], params, dist)
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss_value)
            if averaged is not None:
                update_average(n_steps)
            n_steps += 1
        train_seconds += time.perf_counter() - started
        if averaged is not None:
            swap_average()  # evaluate (and snapshot) the averaged weights
        val_loss, criterion = holdout_criterion()
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "holdout_loss": val_loss,
            "learning_rate": float(scheduler.get_last_lr()[0]),
            "seconds": time.perf_counter() - started,
        }
        scored = ""
        if holdout_eval is not None:
            record["holdout_score"] = -criterion
            scored = f"  held-out score {-criterion:.4f}"
        history.append(record)
        if config.verbose:
            print(
                f"epoch {epoch:3d}  train loss {record['train_loss']:.4f}  "
                f"held-out loss {val_loss:.4f}{scored}  ({record['seconds']:.1f}s)",
                flush=True,
            )
        improved = math.isnan(criterion) or criterion < best_criterion - 1e-5
        if improved:
            best_criterion = criterion if not math.isnan(criterion) else best_criterion
            best_epoch, stale = epoch, 0
            best_state = snapshot()
        else:
            stale += 1
        if averaged is not None:
            swap_average()  # back to the raw weights to train on
        if stale >= config.patience:
            break
    for module, state in zip(modules, best_state):
        module.load_state_dict(state)
    steps_per_second = n_steps / train_seconds if train_seconds > 0 else 0.0
    return history, best_epoch, n_steps, steps_per_second


def pretrain(
    encoder: nn.Module,
    head: nn.Module,
    sample: Callable[[np.ndarray, np.ndarray], Any],
    positions: np.ndarray,
    times_ns: np.ndarray,
    targets: np.ndarray,
    inactive: np.ndarray,
    train_idx: np.ndarray,
    holdout_idx: np.ndarray,
    config: TrainingConfig,
    device: torch.device,
    dist: DistContext | None = None,
) -> TrainingResult:
    """Train ``head(encoder(batch))`` to predict task vectors (with :func:`train_loop`).

    Parameters
    ----------
    encoder, head : nn.Module
    sample : callable
        ``sample(positions, times_ns)`` returns a batch the encoder consumes.
    positions, times_ns : ndarray of int64, shape (n_rows,)
        Seed rows: entity-table positions and cutoff times.
    targets : ndarray of float32, shape (n_rows, d)
        Scaled task vectors.
    inactive : ndarray of bool, shape (n_rows,)
        True where the entity has no activity in the window.
    train_idx, holdout_idx : ndarray of int
        Rows used to train, and rows whose loss drives early stopping (may be empty:
        then the last epoch is kept).
    config : TrainingConfig
    device : torch.device
    dist : DistContext, optional
        Data-parallel training over the ranks of an initialised process group (see
        :mod:`sktve.distributed`); each rank draws its own corruption and dropout
        randomness, keyed by (``random_state``, rank).

    Returns
    -------
    TrainingResult
    """
    encoder.to(device)
    head.to(device)
    seed = config.random_state if dist is None else rank_seed(config.random_state, dist.rank)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if dist is not None:
        torch.manual_seed(seed)  # dropout: a different stream per rank
    targets_t = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    inactive_t = torch.from_numpy(np.asarray(inactive, dtype=bool))

    def batch_terms(rows: np.ndarray, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        batch = sample(positions[rows], times_ns[rows]).to(device)
        embedding = encoder(
            batch, corruption_rate=config.mask_rate if train else 0.0, generator=generator
        )
        prediction = head(embedding)
        return scaled_cosine_terms(
            prediction,
            targets_t[rows].to(device),
            inactive_t[rows].to(device),
            config.inactive_weight,
        )

    def batch_loss(rows: np.ndarray, train: bool) -> torch.Tensor:
        loss_sum, weight = batch_terms(rows, train)
        return loss_sum / weight.clamp_min(1e-8)

    history, best_epoch, n_steps, steps_per_second = train_loop(
        [encoder, head],
        batch_loss,
        train_idx,
        holdout_idx,
        config,
        dist=dist,
        batch_terms=batch_terms,
    )
    return TrainingResult(
        encoder_state={k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        head_state={k: v.detach().cpu() for k, v in head.state_dict().items()},
        history=history,
        best_epoch=best_epoch,
        n_steps=n_steps,
        steps_per_second=steps_per_second,
    )
