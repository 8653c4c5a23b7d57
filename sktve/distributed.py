"""Data-parallel pre-training over processes (torch.distributed: gloo on CPU, NCCL on GPU).

Every rank holds the whole graph, sampler, encoder and the same training rows; the
ranks differ only in which rows of each global batch they compute. The design:

- :func:`epoch_batches` gives every rank the same global batches (the same seeded rng);
  :func:`shard` cuts each batch into contiguous per-rank shards.
- A rank's loss is the *sum* of its weighted per-row losses divided by the weight sum
  all-reduced over the ranks, so the summed gradients are exactly those of the global
  weighted mean (:func:`sharded_backward`).
- Gradients are all-reduced by hand in one flat buffer (:func:`all_reduce_gradients`),
  rather than through ``DistributedDataParallel``: on rel-f1 most of the encoder's
  parameters get no gradient in a given batch (tables out of reach), which DDP only
  handles with ``find_unused_parameters=True``. A parameter keeps ``grad=None`` when no
  rank produced one, as in one process, so AdamW skips it the same way.
- Clipping and the optimizer step run after the all-reduce, on identical gradients, so
  every rank keeps identical weights; the held-out loss is all-reduced the same way, so
  every rank stops at the same epoch.
- Each rank draws its own corruption randomness, keyed by (random_state, rank).

Two ways in: ``TVEPretrainer(n_workers=k)`` spawns ``k`` local processes
(:func:`run_data_parallel`); or, under ``torchrun``, initialise the default process group
yourself and ``fit`` uses it (:func:`context` finds it).

Devices: on CPU the ranks talk over gloo. With CUDA, each rank trains on its own GPU
(:func:`rank_device`: ``LOCAL_RANK``, else the rank, modulo the GPUs visible) and the
spawned ranks use NCCL (:func:`backend_for`), whose collectives run on that GPU
(:func:`collective_device`); a torchrun group keeps whichever backend it was given.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch

__all__ = [
    "DistContext",
    "all_reduce_gradients",
    "all_reduce_sum",
    "backend_for",
    "broadcast_parameters",
    "collective_device",
    "context",
    "gloo_available",
    "rank_device",
    "rank_seed",
    "run_data_parallel",
    "shard",
    "spawn_in_group_error",
    "sharded_backward",
    "sharded_loss",
]


@dataclass(frozen=True)
class DistContext:
    """This process's place among the data-parallel ranks."""

    rank: int
    world: int


def gloo_available() -> bool:
    """Whether torch.distributed with the gloo backend can be used here."""
    try:
        import torch.distributed as dist

        return dist.is_available() and dist.is_gloo_available()
    except Exception:  # pragma: no cover - exotic builds
        return False


def context() -> DistContext | None:
    """The context of an initialised default process group of more than one rank, else None."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size()
    if world <= 1:
        return None
    return DistContext(rank=dist.get_rank(), world=world)


def backend_for(device: torch.device) -> str:
    """The process-group backend for ranks training on ``device``: NCCL for CUDA, else gloo."""
    import torch.distributed as dist

    if device.type == "cuda" and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def rank_device(device: torch.device, ctx: DistContext | None) -> torch.device:
    """The device this rank trains on.

    One process, a CPU, or a CUDA device with an explicit index: ``device`` itself.
    Several ranks on ``"cuda"``: the rank's own GPU, ``LOCAL_RANK`` (set by torchrun and
    by :func:`run_data_parallel`) or else the rank, modulo the visible GPUs, so that ranks
    on one machine do not share a GPU while there are enough of them.
    """
    if ctx is None or device.type != "cuda" or device.index is not None:
        return device
    local = int(os.environ.get("LOCAL_RANK", ctx.rank))
    return torch.device("cuda", local % max(torch.cuda.device_count(), 1))


def collective_device() -> torch.device:
    """Where the group's collectives take their tensors: the current GPU for NCCL, else CPU."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def spawn_in_group_error() -> ValueError:
    """The error for ``n_workers > 1`` inside an initialised process group."""
    return ValueError(
        "n_workers > 1 spawns its own processes; inside an initialised "
        "torch.distributed group (torchrun) leave n_workers=1: fit then trains "
        "over the group's ranks."
    )


def shard(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """The ``rank``-th of ``world`` contiguous, near-equal pieces of ``rows`` (may be empty)."""
    n = len(rows)
    start = (n * rank) // world
    stop = (n * (rank + 1)) // world
    return rows[start:stop]


def rank_seed(random_state: int, rank: int) -> int:
    """A seed for ``rank``'s own randomness, distinct per (random_state, rank)."""
    return int(np.random.SeedSequence([int(random_state), int(rank)]).generate_state(1)[0])


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over the ranks, in place; returned.

    A tensor on another device than the collectives' (a CPU tensor under NCCL) travels
    there and back.
    """
    import torch.distributed as dist

    where = collective_device()
    if values.device == where:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values
    moved = values.to(where)
    dist.all_reduce(moved, op=dist.ReduceOp.SUM)
    values.copy_(moved.to(values.device))
    return values


def all_reduce_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum every parameter's gradient over the ranks, in one flat all-reduce.

    A missing gradient counts as zeros; a parameter that no rank produced a gradient for
    keeps ``grad=None`` (as it would in one process), so the optimizer skips it everywhere.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    where = collective_device()
    pieces = []
    for p in params:
        if p.grad is None:
            pieces.append(torch.zeros(p.numel(), dtype=torch.float32, device=where))
        else:
            pieces.append(p.grad.detach().reshape(-1).to(where, torch.float32))
    flags = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=where)
    buffer = torch.cat([*pieces, flags])
    all_reduce_sum(buffer)
    flags = buffer[-len(params) :]
    offset = 0
    for p, flag in zip(params, flags.tolist()):
        n = p.numel()
        if flag > 0:
            grad = buffer[offset : offset + n].view_as(p).to(p.device, p.dtype)
            if p.grad is None:
                p.grad = grad.clone()
            else:
                p.grad.copy_(grad)
        offset += n


def broadcast_parameters(modules: Iterable[torch.nn.Module]) -> None:
    """Give every rank rank 0's weights (they should already agree: same seed)."""
    import torch.distributed as dist

    where = collective_device()
    with torch.no_grad():
        for module in modules:
            for tensor in module.state_dict().values():
                if tensor.is_floating_point():
                    moved = tensor.detach().to(where).clone()
                    dist.broadcast(moved, src=0)
                    tensor.copy_(moved.to(tensor.device))


def sharded_backward(
    batch_terms: Callable[[np.ndarray, bool], tuple[torch.Tensor, torch.Tensor]],
    rows: np.ndarray,
    params: list[torch.nn.Parameter],
    ctx: DistContext,
    train: bool = True,
    eps: float = 1e-8,
) -> float:
    """Backward of the global weighted-mean loss of ``rows``, computed on this rank's shard.

    ``batch_terms(rows, train)`` returns ``(sum of weighted row losses, sum of weights)``.
    Afterwards every parameter's ``grad`` holds the gradient of the global mean (summed
    over ranks). Returns the global mean loss. Call ``zero_grad`` before.
    """
    local = shard(rows, ctx.rank, ctx.world)
    if len(local):
        loss_sum, weight = batch_terms(local, train)
        weight_value = float(weight.detach())
    else:
        loss_sum, weight_value = None, 0.0
    totals = all_reduce_sum(torch.tensor([weight_value], dtype=torch.float64))
    global_weight = max(float(totals[0]), eps)
    if loss_sum is not None:
        loss = loss_sum / global_weight
        loss.backward()
        local_loss = float(loss.detach())
    else:
        local_loss = 0.0
    all_reduce_gradients(params)
    return float(all_reduce_sum(torch.tensor([local_loss], dtype=torch.float64))[0])


def sharded_loss(
    batch_terms: Callable[[np.ndarray, bool], tuple[torch.Tensor, torch.Tensor]],
    rows: np.ndarray,
    ctx: DistContext,
    eps: float = 1e-8,
) -> float:
    """The global weighted-mean loss of ``rows`` (no gradient), each rank on its shard."""
    local = shard(rows, ctx.rank, ctx.world)
    values = torch.zeros(2, dtype=torch.float64)
    if len(local):
        with torch.no_grad():
            loss_sum, weight = batch_terms(local, False)
        values[0], values[1] = float(loss_sum), float(weight)
    all_reduce_sum(values)
    return float(values[0]) / max(float(values[1]), eps)


# ---------------------------------------------------------------------- local spawning
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _worker(
    rank: int,
    world: int,
    init_file: str,
    n_threads: int,
    fn: Callable[..., Any],
    args: tuple,
    result_path: str,
    backend: str = "gloo",
) -> None:
    import torch.distributed as dist

    from sktve._threads import limit_threads

    # As torchrun does: each rank knows its place on the machine (rank_device reads it).
    os.environ["LOCAL_RANK"] = str(rank)
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank % torch.cuda.device_count())
        dist.init_process_group(
            backend,
            init_method=f"file://{init_file}",
            rank=rank,
            world_size=world,
            timeout=timedelta(minutes=30),
        )
        try:
            with limit_threads(n_threads):
                result = fn(*args)
        finally:
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
        if rank == 0:
            with open(result_path, "wb") as handle:
                pickle.dump(("ok", result), handle)
    except BaseException as err:  # report to the parent, then fail the process
        with open(f"{result_path}.{rank}.err", "wb") as handle:
            pickle.dump(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"), handle)
        raise


def run_data_parallel(
    fn: Callable[..., Any],
    args: tuple,
    n_workers: int,
    n_threads: int = 1,
    backend: str = "gloo",
) -> Any:
    """Run ``fn(*args)`` on ``n_workers`` spawned ranks of one group; rank 0's result.

    Each process initialises the default process group (through a temporary file store)
    with ``backend`` (``"gloo"``, or ``"nccl"``: rank r then uses GPU ``r % n_gpus``),
    limits itself to ``n_threads`` threads and calls ``fn``; ``fn`` finds the group with
    :func:`context`. ``fn`` and ``args`` must pickle (the processes are spawned, not forked).
    """
    import multiprocessing

    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers!r}.")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}.")
    mp = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="sktve-dist-") as folder:
        init_file = os.path.join(folder, "store")
        result_path = os.path.join(folder, "result.pkl")
        processes = [
            mp.Process(
                target=_worker,
                args=(rank, n_workers, init_file, n_threads, fn, args, result_path, backend),
                daemon=False,
            )
            for rank in range(n_workers)
        ]
        # The children start with their share of threads (OpenMP, BLAS read these at load).
        saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
        os.environ.update({name: str(n_threads) for name in _THREAD_VARIABLES})
        try:
            for process in processes:
                process.start()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        try:
            while any(p.is_alive() for p in processes):
                if any(p.exitcode not in (None, 0) for p in processes):
                    break
                time.sleep(0.05)
        finally:
            failed = [p for p in processes if p.exitcode not in (None, 0)]
            if failed:
                for p in processes:
                    if p.is_alive():
                        p.terminate()
            for p in processes:
                p.join()
        errors = []
        for rank in range(n_workers):
            path = f"{result_path}.{rank}.err"
            if os.path.exists(path):
                with open(path, "rb") as handle:
                    errors.append(f"rank {rank}: {pickle.load(handle)[1]}")
        if errors or any(p.exitcode != 0 for p in processes):
            codes = [p.exitcode for p in processes]
            raise RuntimeError(
                f"data-parallel training failed (exit codes {codes}):\n" + "\n".join(errors)
            )
        with open(result_path, "rb") as handle:
            return pickle.load(handle)[1]
