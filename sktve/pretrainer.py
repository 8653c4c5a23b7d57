"""TVEPretrainer: TVE pre-training as a scikit-learn transformer."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from sktve._as_of import clamp_times, parse_as_of
from sktve._progress import report, timed_step
from sktve._threads import limit_threads, resolve_n_threads
from sktve._validation import (
    TaskRows,
    parse_windows,
    raise_unknown_entities,
    resolve_task_table,
)
from sktve.database import Database, attach_shipped, load_database, ship_database
from sktve.distributed import (
    backend_for,
    context,
    rank_device,
    run_data_parallel,
    spawn_in_group_error,
)
from sktve.encoder_runtime import (
    EncoderSpec,
    build_encoder,
    build_graph,
    build_sampler,
    embed_rows,
    encoder_windows,
    state_to_bytes,
)
from sktve.graph import GraphFeaturizer
from sktve.graph.sampler import check_temporal_strategy
from sktve.nn.tve import TVEHead
from sktve.targets import TaskVectorScaler, task_vectors
from sktve.targets.engine import resolve_engine
from sktve.training import TrainingConfig, pretrain, resolve_device

__all__ = ["TVEPretrainer", "default_cutoffs", "infer_window"]


def target_windows(window: Any, times: np.ndarray) -> list[pd.Timedelta]:
    """The pre-training windows: ``window`` parsed, or inferred from X's ``times``."""
    return parse_windows(window) if window is not None else [infer_window(times)]


def infer_window(times: np.ndarray) -> pd.Timedelta:
    """The typical spacing of a task table's distinct timestamps (its label window).

    RelBench task tables step their timestamps by the task's window, so the median gap
    between distinct timestamps recovers it.
    """
    distinct = np.unique(times)
    if len(distinct) < 2:
        raise ValueError(
            "cannot infer the window: X has a single distinct timestamp. Pass window=... "
            "(e.g. window='30D', the horizon of the downstream labels)."
        )
    gaps = np.diff(distinct.astype("datetime64[ns]").view(np.int64))
    return pd.Timedelta(int(np.median(gaps)), unit="ns")


def default_cutoffs(x_times: np.ndarray, step: pd.Timedelta, start: pd.Timestamp) -> np.ndarray:
    """X's distinct timestamps plus earlier ones stepping back by ``step`` to ``start``."""
    distinct = np.unique(x_times.astype("datetime64[ns]"))
    earliest = distinct[0]
    n_back = int((pd.Timestamp(earliest) - start) // step)
    back = earliest - np.arange(1, n_back + 1) * np.timedelta64(step.value, "ns")
    return np.unique(np.concatenate([back, distinct]))


def later_cutoffs(
    last: np.datetime64, step: pd.Timedelta, until: pd.Timestamp, data_end: pd.Timestamp
) -> np.ndarray:
    """Times ``last + step, last + 2 step, ...`` whose window ``step`` ends by ``until``.

    The cutoffs ``pretrain_until`` adds after the training rows' last time ``last``; none
    at or after ``data_end``, the database's last time: such a cutoff's window is empty
    (every entity inactive) however much time passed, and would teach nothing else.
    Empty when none fits.
    """
    n_later = max(int((until - pd.Timestamp(last)) // step) - 1, 0)
    later = np.datetime64(last, "ns") + np.arange(1, n_later + 1) * np.timedelta64(step.value, "ns")
    return later[later < np.datetime64(data_end, "ns")]


def _balance_inactive(
    inactive: np.ndarray, ratio: float | None, rng: np.random.Generator
) -> np.ndarray:
    """Mask keeping every active row and at most ``ratio`` inactive rows per active one.

    On real databases most (entity, cutoff) pairs of the "active" universe have no activity
    in the window (96% on rel-f1); without this, batches are almost all inactive rows and
    training steps teach little about what active entities will do.
    """
    keep = np.ones(len(inactive), dtype=bool)
    if ratio is None:
        return keep
    n_active = int((~inactive).sum())
    inactive_rows = np.flatnonzero(inactive)
    budget = max(int(ratio * n_active), 1)
    if len(inactive_rows) > budget:
        keep[inactive_rows] = False
        keep[rng.choice(inactive_rows, budget, replace=False)] = True
    return keep


def path_weights(names: np.ndarray) -> np.ndarray:
    """Column weights giving every (window, path) block of a task vector equal total weight.

    Without them the cosine loss is dominated by whichever path has the most columns (on
    rel-f1, the 2-hop paths through races), and per-entity signal from 1-hop paths is lost.
    A block of k columns gets weight 1/sqrt(k), so its squared norm budget is that of one
    column; activity flags keep weight 1.
    """
    blocks = np.array(["|".join(str(n).split("|")[:2]) if "|" in str(n) else str(n) for n in names])
    _, inverse, counts = np.unique(blocks, return_inverse=True, return_counts=True)
    weights = 1.0 / np.sqrt(counts[inverse].astype(np.float32))
    flags = np.array([str(n).endswith("no_activity") for n in names])
    weights[flags] = 1.0
    return weights.astype(np.float32)


def target_frame(
    database: Database,
    entity_table: str,
    cutoffs: Any,
    windows: list[pd.Timedelta],
    *,
    max_hops: int,
    include: list[str] | None,
    exclude: list[str] | None,
    entities: Any = "active",
    engine: Any = None,
) -> pd.DataFrame:
    """The task vectors pre-training learns (the pretrainer's ``max_hops``,
    ``target_include`` and ``target_exclude``), at ``cutoffs`` or for given ``entities``."""
    return task_vectors(
        database,
        entity_table,
        cutoffs,
        [str(w) for w in windows] if len(windows) > 1 else str(windows[0]),
        max_hops=max_hops,
        entities=entities,
        include=include,
        exclude=exclude,
        engine=engine,
    )


def scale_targets(
    scaler: TaskVectorScaler, frame: pd.DataFrame, path_balance: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(task vectors as the encoder is trained on them, the column weights applied):
    scaled by ``scaler``, then weighted by :func:`path_weights` when ``path_balance``."""
    targets = scaler.transform(frame)
    weights = np.ones(targets.shape[1], dtype=np.float32)
    if path_balance:
        weights = path_weights(scaler.get_feature_names_out())
        targets *= weights[None, :]
    return targets, weights


OUTPUTS = ("embedding", "task_vector", "both")

# Rows of the training cutoffs on which the task-vector readout is fitted: enough for a
# least-squares map from a few hundred embedding dimensions, cheap to embed once.
MAX_CALIBRATION_ROWS = 4096


def _fit_task_vector_map(
    encoder: torch.nn.Module,
    sample: Any,
    positions: np.ndarray,
    seed_times: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    train_idx: np.ndarray,
    embedding_dim: int,
    random_state: int,
) -> dict[str, Any]:
    """Affine least-squares map from the embedding to the (unweighted) scaled task vector.

    Fitted on up to ``MAX_CALIBRATION_ROWS`` training rows, never held-out ones, with
    the trained encoder in eval mode, as ``transform`` embeds. Returns ``coef`` of shape
    (embedding_dim, n_targets), ``intercept`` and the number of rows used.
    """
    n_out = targets.shape[1]
    rows = np.asarray(train_idx, dtype=np.int64)
    if len(rows) > MAX_CALIBRATION_ROWS:
        rng = np.random.default_rng([random_state, 1])
        rows = np.sort(rng.choice(rows, MAX_CALIBRATION_ROWS, replace=False))
    if len(rows) == 0:
        return {"coef": np.zeros((embedding_dim, n_out)), "intercept": np.zeros(n_out), "n_rows": 0}
    encoder.eval()
    device = next(encoder.parameters()).device
    chunks = []
    with torch.no_grad():
        for start in range(0, len(rows), 1024):
            idx = rows[start : start + 1024]
            batch = sample(positions[idx], seed_times[idx])
            chunks.append(encoder(batch.to(device)).detach().cpu().numpy().astype(np.float64))
    embedding = np.concatenate(chunks)
    # Path weights scale whole columns and a per-column least-squares fit commutes with
    # that: fitting the unweighted target is fitting the weighted one, then undoing weights.
    target = targets[rows].astype(np.float64) / weights[None, :]
    # Why a map from the embedding rather than from the head's output: the scaled cosine
    # loss is blind to each row's prediction norm, so the head's outputs carry an arbitrary
    # per-row scale that no per-column affine map can undo. A least-squares map from the
    # embedding (the head's input) is as linear as head + calibration and sets the scale
    # and offset of every column. On the synthetic database (15 epochs) the predicted
    # next-30-day order count correlated 0.39 with the actual count at later cutoffs,
    # against 0.22 for a per-column affine map of the head's output.
    mean_e, mean_t = embedding.mean(axis=0), target.mean(axis=0)
    centred = embedding - mean_e
    gram = centred.T @ centred
    # A small ridge keeps the solve stable when embedding dimensions are collinear or
    # constant (dead units); its size, relative to the mean eigenvalue, barely mattered.
    penalty = 1e-2 * max(float(np.trace(gram)) / len(gram), 1e-12)
    coef = np.linalg.solve(gram + penalty * np.eye(len(gram)), centred.T @ (target - mean_t))
    return {"coef": coef, "intercept": mean_t - mean_e @ coef, "n_rows": int(len(rows))}


def _pretrain_state_parallel(
    database: Database,
    entity_table: str,
    times: np.ndarray,
    settings: dict[str, Any],
    verbose: bool = False,
    engine: Any = None,
    n_threads: int = 1,
) -> dict[str, Any]:
    """:func:`_pretrain_state` on ``settings["n_workers"]`` spawned ranks; rank 0's state.

    A database handle pickles without its tables, so the (normalised) tables and schema
    travel to the processes beside it and are attached there.
    """
    return run_data_parallel(
        _pretrain_state_shipped,
        (
            ship_database(database),
            entity_table,
            times,
            settings,
            verbose,
            engine,
        ),
        settings["n_workers"],
        n_threads,
        backend_for(resolve_device(settings["device"])),
    )


def _pretrain_state_shipped(shipped: tuple, *args: Any) -> dict[str, Any]:
    """In a spawned rank: give the unpickled handle its tables, then :func:`_pretrain_state`."""
    return _pretrain_state(attach_shipped(*shipped), *args)


def _pretrain_state(
    database: Database,
    entity_table: str,
    times: np.ndarray,
    settings: dict[str, Any],
    verbose: bool = False,
    engine: Any = None,
) -> dict[str, Any]:
    """Everything ``fit`` learns, as a picklable dict (the unit ``memory`` caches).

    Its arguments are exactly what training reads, so that they can be the cache key:
    pre-training runs over every active entity at cutoffs derived from X's *distinct
    times* (ids and row order of X do not enter), and ``verbose`` changes no result
    (``memory`` ignores it). Nor does ``engine``, where the task vectors' SQL runs (their
    values agree to floating-point rounding), so ``memory`` ignores it too.
    """
    started = time.perf_counter()
    dist = context()
    if dist is not None and dist.rank != 0:
        verbose = False  # one rank reports
    windows = settings["windows"]
    largest = max(windows)
    x_times = times.astype("datetime64[ns]")
    boundary = pd.Timestamp(x_times.max())
    cutoffs = settings["cutoffs"]
    if cutoffs is None:
        cutoffs = default_cutoffs(x_times, largest, database.min_timestamp)
    report(
        verbose,
        f"task vectors: {len(cutoffs)} cutoffs, windows {[str(w) for w in windows]}, "
        f"boundary {boundary} + {largest} ...",
    )
    with timed_step(verbose, "task vectors computed") as step:
        frame = target_frame(
            database,
            entity_table,
            cutoffs,
            windows,
            max_hops=settings["max_hops"],
            include=settings["target_include"],
            exclude=settings["target_exclude"],
            engine=engine,
        )
        step["detail"] = f"{len(frame):,} (entity, cutoff) rows x {frame.shape[1]} columns"
    if len(frame) == 0:
        raise ValueError(
            f"no entity of {entity_table!r} has activity at or before the pre-training "
            "cutoffs; there is nothing to pre-train on. Check that the foreign keys into "
            f"{entity_table!r} hold its keys (load_database warns about dangling keys), and "
            "that the times of X lie after the data starts."
        )
    pkey = database.pkey(entity_table)
    positions = database.entity_positions(entity_table, frame[pkey].to_numpy())
    seed_times = frame["cutoff"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    inactive = frame["no_activity"].to_numpy().astype(bool)

    # Hold out the latest cutoffs: early stopping then measures how well the encoder
    # predicts a future it was not trained on, as downstream use will.
    distinct = np.unique(seed_times)
    n_holdout = int(round(len(distinct) * settings["holdout_fraction"]))
    n_holdout = min(max(n_holdout, 1 if len(distinct) >= 3 else 0), len(distinct) - 1)
    holdout_from = distinct[-n_holdout] if n_holdout > 0 else np.iinfo(np.int64).max
    is_holdout = seed_times >= holdout_from
    rng = np.random.default_rng(settings["random_state"])
    keep = _balance_inactive(inactive, settings["max_inactive_ratio"], rng)
    train_idx = np.flatnonzero(~is_holdout & keep)
    holdout_idx = np.flatnonzero(is_holdout & keep)
    if len(holdout_idx) > settings["max_holdout_rows"]:
        # A fixed random subset keeps the per-epoch check cheap and comparable across epochs.
        holdout_idx = np.sort(rng.choice(holdout_idx, settings["max_holdout_rows"], replace=False))

    # Only rows that take part are scaled: the full frame can be hundreds of thousands of
    # mostly inactive rows by hundreds of columns.
    used = np.union1d(train_idx, holdout_idx)
    scaler = TaskVectorScaler().fit(frame.iloc[train_idx])
    targets, weights = scale_targets(scaler, frame.iloc[used], settings["path_balance"])
    positions, seed_times, inactive = positions[used], seed_times[used], inactive[used]
    train_idx = np.searchsorted(used, train_idx)
    holdout_idx = np.searchsorted(used, holdout_idx)
    n_rows = len(frame)
    del frame

    featurizer = GraphFeaturizer().fit(database, boundary=boundary)
    spec = EncoderSpec.from_params(settings)
    sampler = build_sampler(build_graph(featurizer, database), spec, settings["random_state"])
    torch.manual_seed(settings["random_state"])
    encoder = build_encoder(featurizer, spec)
    head = TVEHead(settings["embedding_dim"], targets.shape[1])
    target_seconds = time.perf_counter() - started
    result = None
    if settings["max_epochs"] > 0:
        config = TrainingConfig(
            max_epochs=settings["max_epochs"],
            steps_per_epoch=settings["steps_per_epoch"],
            batch_size=settings["batch_size"],
            learning_rate=settings["learning_rate"],
            weight_decay=settings["weight_decay"],
            patience=settings["patience"],
            inactive_weight=settings["inactive_weight"],
            mask_rate=settings["mask_rate"],
            random_state=settings["random_state"],
            verbose=verbose,
        )
        result = pretrain(
            encoder,
            head,
            lambda pos, t: sampler.sample(entity_table, pos, t),
            positions,
            seed_times,
            targets,
            inactive,
            train_idx,
            holdout_idx,
            config,
            rank_device(resolve_device(settings["device"]), dist),
            dist=dist,
        )
    task_vector_map = _fit_task_vector_map(
        encoder,
        lambda pos, t: sampler.sample(entity_table, pos, t),
        positions,
        seed_times,
        targets,
        weights,
        train_idx,
        settings["embedding_dim"],
        settings["random_state"],
    )
    return {
        "featurizer": featurizer,
        "scaler": scaler,
        "encoder_state": state_to_bytes(encoder.state_dict()),
        "head_state": state_to_bytes(head.state_dict()),
        "task_vector_map": task_vector_map,
        "cutoffs": cutoffs,
        "boundary": boundary,
        "history": result.history if result is not None else [],
        "best_epoch": result.best_epoch if result is not None else 0,
        "n_steps": result.n_steps if result is not None else 0,
        "steps_per_second": result.steps_per_second if result is not None else 0.0,
        "n_pretrain_rows": n_rows,
        "n_train_rows": len(train_idx),
        "n_holdout_rows": len(holdout_idx),
        "target_seconds": target_seconds,
        "fit_seconds": time.perf_counter() - started,
    }


class TVEPretrainer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Pre-train a temporal relational encoder with Task Vector Estimation.

    ``fit`` builds task vectors (SQL-style aggregations of what happens to each entity in
    the next window, over schema paths) at pre-training cutoffs up to the last time in
    ``X``, and trains a temporal heterogeneous GraphSAGE to predict them. ``transform``
    returns the encoder's embedding of each (entity, time) row of ``X`` (or, with
    ``output``, its predicted next-window task vector), computed only from database rows
    at or before that row's time.

    Parameters
    ----------
    database : Database, str or Path
        The relational database (see :func:`sktve.load_database`). A path or RelBench
        name is loaded at fit.
    entity_table : str
        Table whose rows are the entities of ``X``.
    entity_col, time_col : str, optional
        Columns of ``X`` with entity ids and prediction times; inferred when unambiguous
        (the entity table's primary key name; the only datetime column).
    window : str, Timedelta or list, optional
        Horizon(s) of the task vectors, e.g. ``"30D"`` or ``["7D", "90D"]``. Default: the
        spacing of X's distinct timestamps (RelBench task tables step by their window).
    cutoffs : array-like of timestamps, optional
        Pre-training cutoffs. Default: X's distinct timestamps plus earlier ones stepping
        back by the window to the start of the data. Cutoffs after max(X.time) are
        rejected: training never reads past ``max(X.time) + window``. With ``as_of``,
        cutoffs after it collapse onto it.
    as_of : str, Timestamp, datetime or datetime64, optional
        A declared data cut, e.g. the time the database was snapshotted, or RelBench's
        test timestamp when the database is cut there (rel-f1: 2010-01-01, while the
        test rows run to 2013). A row of X later than ``as_of`` is embedded as of
        ``as_of``: its effective time is ``min(t, as_of)``, so a test row after the cut
        gets the embedding of the cut rather than a subgraph over a past the database
        does not hold. In fit, the training boundary and the cutoffs are clamped the same
        way, so pre-training never reads past ``as_of + window``. Timezone-aware values
        are converted to naive UTC, as the database's times are. None (the default):
        every row at its own time. See :ref:`time_correctness`.
    pretrain_until : str, Timestamp, datetime or datetime64, optional
        Pre-train on the database up to this time rather than up to the training rows'
        horizon, ``max(X.time) + window``: the cutoffs go on past ``max(X.time)``, one
        window apart, while their windows end by ``pretrain_until``. Pre-training reads no
        labels, so this lets the encoder learn from a recent past that has no labelled rows
        yet, such as the years between RelBench's val and test timestamps
        (``pretrain_until=as_of``). Nothing after ``pretrain_until`` is read, so rows at or
        after it stay time-correct; rows before it are embedded by an encoder trained on
        data after them, so do not score a model on them (choose settings without it, then
        refit with it for the rows you predict; see :ref:`finetuning_pretrain_until`). At
        most ``as_of`` when both are given; cutoffs at or after the database's last row
        (whose windows hold no rows) are left out. None (the default): up to
        ``max(X.time) + window``.
    max_hops : {1, 2}, default=1
        Schema-path length of the task-vector aggregations. One hop (the entity's own
        fact rows) is the default: on rel-f1 driver-top3, 2-hop targets (through races
        and constructors, mostly shared by every driver of a race) gave clearly worse
        downstream embeddings (val AUROC about 0.60-0.70 against 0.76-0.79 with one hop).
    target_include, target_exclude : list of str, optional
        Path or column names to keep or drop from the task vectors.
    embedding_dim : int, default=128
        Width of the encoder and of the output embedding.
    fanouts : tuple of int, default=(16, 16)
        Neighbours sampled per node at each hop; its length is the number of layers.
        With ``temporal_strategy="last"`` the first hop reads an entity's latest 16 rows
        of each table that references it, one by one; ``history_counts`` carries the
        whole history as counts. The evidence for the default is on the docs'
        benchmarks page ("First-hop fan-out").
    temporal_strategy : {"last", "uniform"}, default="last"
        Which neighbours a node keeps when it has more visible ones than the fan-out:
        the most recent ones, or a keyed uniform draw (see
        :class:`~sktve.graph.TemporalNeighborSampler`). On rel-f1 (all rows, seed 0,
        HGB head) "last" raised val AUROC from 0.827 to 0.855 on driver-top3 and from
        0.729 to 0.770 on driver-dnf, and lowered val MAE from 3.199 to 3.055 on
        driver-position (fan-out 32): among a long career's results, a uniform draw sees little
        of the recent form.
    history_counts : bool or list of str, default=True
        Give the encoder each seed entity's visible history as counts, not only the
        ``fanouts`` sampled: per table that references the entity, how many of its rows
        do so at or before the seed's time, how many of them within each recent window,
        and how many days ago the latest one was (all ``log1p``). ``True`` takes the
        pre-training windows and 12 times the longest as the recent windows (a last
        window, and a baseline to read it against); a list such as ``["30D", "365D"]``
        sets them. Averaging messages cannot count, so without these a long and a short
        history, or a steady and a fading one, can embed alike. ``False`` leaves the
        encoder to the sampled rows alone. Measured effects are on the docs' benchmarks
        page.
    recency_means : bool or list of str, default=True
        Beside each relation's plain mean over the sampled rows, every message-passing
        layer takes means weighted by ``exp(-(age - age of the most recent row) / scale)``,
        one per time scale: the recent form, which a plain mean over a long history
        dilutes (a sum of features and age encodings cannot weight rows by age). ``True``
        takes the scales ``history_counts=True`` would (the pre-training windows and 12
        times the longest); a list such as ``["30D", "365D"]`` sets them; ``False``
        keeps plain means only. Measured effects are on the docs' benchmarks page.
    dropout : float, default=0.0
    mask_rate : float, default=0.15
        Probability that a feature cell is replaced by another row's value in training.
    inactive_weight : float, default=0.1
        Loss weight of rows with no activity in the window (active rows: 1 - weight).
    max_epochs : int, default=15
        Zero gives the untrained (random-init) encoder, a useful baseline.
    steps_per_epoch : int, default=40
        Cap on optimizer steps per epoch.
    batch_size : int, default=256
    learning_rate : float, default=2e-3
    weight_decay : float, default=1e-4
    patience : int, default=4
        Epochs without improvement of the held-out loss before stopping.
    holdout_fraction : float, default=0.1
        Share of the latest pre-training cutoffs held out for early stopping.
    max_inactive_ratio : float or None, default=None
        Keep at most this many rows without activity in the window per active row (a fixed
        random subset); None keeps them all. On rel-f1 driver-top3 keeping them all gave
        better downstream embeddings (whether an entity is active at all is signal).
    path_balance : bool, default=True
        Weight task-vector columns so that every (window, path) block counts equally in
        the cosine loss (see ``sktve.pretrainer.path_weights``).
    output : {"embedding", "task_vector", "both"}, default="embedding"
        What ``transform`` returns: the embedding (``embedding_dim`` columns named
        ``tvepretrainer0..``); the predicted task vector of the next window, for people
        to read (one column per target column, named ``"next <window>|<path>|<column>|
        <aggregate>"``, e.g. ``"next 30D|orders|*|count"``); or both side by side,
        ``[embedding, task vector]``. Predictions are in the aggregates' units (counts,
        sums, means), expected values over the entity's possible futures, clipped to the
        range between 0 and the values seen in training; mode columns
        (``"...|mode=<category>"``) and activity flags (``"...no_activity"``) are scores
        in [0, 1]. They come from a least-squares map from the embedding, fitted at the
        end of pre-training on up to 4096 training rows, so changing ``output`` after
        fit needs no refit. Meant for interpretation: fed to HistGradientBoosting they
        gained nothing over the embedding. See :ref:`task_vectors`.
    handle_unknown : {"error", "zeros"}, default="error"
        Rows of ``X`` naming entities absent from the entity table: raise, or return
        all-zero outputs for them.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available, else CPU.
    n_jobs : int, optional
        CPU threads for fit and transform (torch, OpenMP, BLAS and DuckDB), in
        scikit-learn's convention: None means 1, -1 all cores this process may use (inside
        a joblib worker, its share). The pools are restored afterwards. One thread is the
        default because idle threads busy-wait: on a machine shared with other work, more
        threads than free cores make a fit many times slower, while on a quiet 2-core
        machine two threads gain only about a third (``docs/user_guide/performance.rst``).
        Results may differ in the last float bits between thread counts.
    n_workers : int, default=1
        Data-parallel pre-training: ``fit`` spawns this many processes (torch.distributed:
        gloo on CPU; with CUDA, NCCL and one GPU per process, rank r on GPU
        ``r % n_gpus``), each with ``max(1, n_jobs threads // n_workers)`` threads, each holding the
        whole graph and computing its shard of every batch; gradients and held-out losses
        are summed over the processes (``sktve.distributed``). Results depend on
        ``random_state`` and ``n_workers`` (with ``mask_rate=0`` and ``dropout=0`` they
        match one process to float rounding). Memory is about ``n_workers`` times one
        process's. When a torch.distributed process group is already initialised (under
        ``torchrun``), ``fit`` trains over its ranks instead and this must stay 1.
        See ``docs/user_guide/scaling_out.rst``.
    memory : str, Path or joblib.Memory, optional
        Caches pre-training: identical (database, X, settings) are trained once.
    engine : None, "duckdb", "spark" or engine object, default=None
        Where the task vectors (the pre-training targets) are computed: None (or
        ``"duckdb"``) as :func:`~sktve.targets.task_vectors` does by default; ``"spark"``
        (a :class:`~sktve.targets.SparkEngine` on the active Spark session) or an engine
        object runs every path as SQL there (see :ref:`scaling_out`). Only the targets
        step uses it; stored as given, resolved at fit; ``memory`` ignores it.
    random_state : int, optional
        Seeds sampling, initialisation, corruption and batch order.
    verbose : bool, default=False
        Progress output during fit.

    Attributes
    ----------
    database_ : Database
    history_windows_ : list of Timedelta
        Recent windows of the ``history_counts`` inputs (empty when off).
    recency_scales_ : list of Timedelta
        Time scales of the ``recency_means`` (empty when off).
    windows_ : list of Timedelta
    cutoffs_ : ndarray of datetime64[ns]
    boundary_ : Timestamp
        ``max(X.time)``, or ``as_of`` when earlier, or with ``pretrain_until`` the last
        cutoff it allows; task vectors were read up to ``boundary_ + max(windows_)``.
    as_of_ : Timestamp or None
        The parsed cut.
    featurizer_ : GraphFeaturizer
    target_scaler_ : TaskVectorScaler
    task_vector_coef_ : ndarray of shape (embedding_dim, n_targets)
    task_vector_intercept_ : ndarray of shape (n_targets,)
        The affine map from the embedding to the scaled task vector (before
        ``target_scaler_.inverse_transform``) behind ``output="task_vector"``.
    history_ : list of dict
        Per-epoch ``train_loss``, ``holdout_loss``, ``learning_rate``, ``seconds``.
    n_features_in_ : int
        Always 2 (entity id, time).
    feature_names_in_ : ndarray of str
        Columns of X at fit, when X was a DataFrame.

    Examples
    --------
    >>> from sktve import TVEPretrainer
    >>> from sktve.datasets import make_synthetic_database
    >>> db = make_synthetic_database(n_customers=100, n_orders=2000, random_state=0)
    >>> import pandas as pd
    >>> X = pd.DataFrame({"customer_id": [0, 1, 2],
    ...                   "timestamp": pd.to_datetime(["2021-06-01"] * 3)})
    >>> tve = TVEPretrainer(database=db, entity_table="customers", window="30D",
    ...                     max_epochs=1, steps_per_epoch=2, random_state=0)
    >>> tve.fit_transform(X).shape
    (3, 128)
    """

    def __init__(
        self,
        *,
        database: Any = None,
        entity_table: str | None = None,
        entity_col: str | None = None,
        time_col: str | None = None,
        window: Any = None,
        cutoffs: Any = None,
        as_of: Any = None,
        pretrain_until: Any = None,
        max_hops: int = 1,
        target_include: list[str] | None = None,
        target_exclude: list[str] | None = None,
        embedding_dim: int = 128,
        fanouts: tuple[int, ...] = (16, 16),
        temporal_strategy: str = "last",
        history_counts: bool | list[str] = True,
        recency_means: bool | list[str] = True,
        dropout: float = 0.0,
        mask_rate: float = 0.15,
        inactive_weight: float = 0.1,
        max_epochs: int = 15,
        steps_per_epoch: int = 40,
        batch_size: int = 256,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        patience: int = 4,
        holdout_fraction: float = 0.1,
        max_inactive_ratio: float | None = None,
        path_balance: bool = True,
        output: str = "embedding",
        handle_unknown: str = "error",
        device: str = "auto",
        n_jobs: int | None = None,
        n_workers: int = 1,
        memory: Any = None,
        engine: Any = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.database = database
        self.entity_table = entity_table
        self.entity_col = entity_col
        self.time_col = time_col
        self.window = window
        self.cutoffs = cutoffs
        self.as_of = as_of
        self.pretrain_until = pretrain_until
        self.max_hops = max_hops
        self.target_include = target_include
        self.target_exclude = target_exclude
        self.embedding_dim = embedding_dim
        self.fanouts = fanouts
        self.temporal_strategy = temporal_strategy
        self.history_counts = history_counts
        self.recency_means = recency_means
        self.dropout = dropout
        self.mask_rate = mask_rate
        self.inactive_weight = inactive_weight
        self.max_epochs = max_epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.holdout_fraction = holdout_fraction
        self.max_inactive_ratio = max_inactive_ratio
        self.path_balance = path_balance
        self.output = output
        self.handle_unknown = handle_unknown
        self.device = device
        self.n_jobs = n_jobs
        self.n_workers = n_workers
        self.memory = memory
        self.engine = engine
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if self.database is None:
            raise ValueError(
                "TVEPretrainer needs a database: TVEPretrainer(database=load_database(...), "
                "entity_table=...)."
            )
        if not isinstance(self.entity_table, str):
            raise ValueError("entity_table must name the table whose rows X refers to.")
        checks = [
            ("embedding_dim", self.embedding_dim, 1),
            ("max_hops", self.max_hops, 1),
            ("batch_size", self.batch_size, 1),
            ("steps_per_epoch", self.steps_per_epoch, 1),
            ("patience", self.patience, 1),
            ("max_epochs", self.max_epochs, 0),
            ("n_workers", self.n_workers, 1),
        ]
        for name, value, low in checks:
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        fanouts = tuple(self.fanouts) if np.iterable(self.fanouts) else ()
        if not fanouts or any(not isinstance(f, (int, np.integer)) or f < 1 for f in fanouts):
            raise ValueError(
                f"fanouts must be a non-empty sequence of positive integers, got {self.fanouts!r}."
            )
        check_temporal_strategy(self.temporal_strategy)
        resolve_engine(self.engine, "engine")  # raises on unknown names and objects
        for name, value in (
            ("dropout", self.dropout),
            ("mask_rate", self.mask_rate),
            ("inactive_weight", self.inactive_weight),
            ("holdout_fraction", self.holdout_fraction),
        ):
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}.")
        if self.handle_unknown not in ("error", "zeros"):
            raise ValueError(
                f"handle_unknown must be 'error' or 'zeros', got {self.handle_unknown!r}."
            )
        if self.max_inactive_ratio is not None and not float(self.max_inactive_ratio) > 0:
            raise ValueError(
                f"max_inactive_ratio must be positive or None, got {self.max_inactive_ratio!r}."
            )
        if not float(self.learning_rate) > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}.")
        as_of = parse_as_of(self.as_of)
        until = parse_as_of(self.pretrain_until, "pretrain_until")
        if as_of is not None and until is not None and until > as_of:
            raise ValueError(
                f"pretrain_until={until} lies after as_of={as_of}, the declared end of the "
                "data: pre-training cannot read past it. Give pretrain_until <= as_of (e.g. "
                "pretrain_until=as_of)."
            )
        for name in ("history_counts", "recency_means"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                parse_windows(getattr(self, name), name)
        self._check_output()

    def _encoder_spec(self) -> EncoderSpec:
        """The sampler + encoder settings of the fitted encoder (for fine-tuning it)."""
        check_is_fitted(self, "encoder_state_")
        # From what fit resolved, so a later set_params cannot mismatch the weights.
        return EncoderSpec.from_params(
            {
                **self.get_params(),
                "history_windows": [int(w.value) for w in self.history_windows_],
                "recency_scales": [int(w.value) for w in self.recency_scales_],
            }
        )

    def _check_output(self) -> None:
        if not isinstance(self.output, str) or self.output not in OUTPUTS:
            raise ValueError(
                f"output must be one of {list(OUTPUTS)}, got {self.output!r}: 'embedding' "
                "for the encoder's embedding, 'task_vector' for the predicted next-window "
                "task vector, 'both' for the two side by side."
            )

    def _rows(self, X: Any, database: Database) -> TaskRows:
        rows = resolve_task_table(X, database, self.entity_table, self.entity_col, self.time_col)
        if self.handle_unknown == "error":
            raise_unknown_entities(rows, self.entity_table)
        return rows

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None) -> TVEPretrainer:
        """Pre-train the encoder on task vectors up to the last time in ``X``.

        Parameters
        ----------
        X : DataFrame of (entity id, time) rows, or array of shape (n_rows, 2)
        y : ignored
            Present for Pipeline compatibility; labels are never used.

        Returns
        -------
        self
        """
        self._check_params()
        with limit_threads(resolve_n_threads(self.n_jobs)):
            return self._fit(X)

    def _fit(self, X: Any) -> TVEPretrainer:
        database = load_database(self.database)
        if self.entity_table not in database:
            raise ValueError(
                f"unknown entity_table {self.entity_table!r}; tables: {database.table_names}."
            )
        rows = self._rows(X, database)
        known = ~rows.unknown
        if not known.any():
            raise ValueError(
                "no row of X names a known entity; nothing to pre-train on. Give X ids of "
                f"{self.entity_table!r}'s primary key."
            )
        windows = target_windows(self.window, rows.times[known])
        span = database.max_timestamp - database.min_timestamp
        if max(windows) > span:
            warnings.warn(
                f"the window {max(windows)} is longer than the data's whole time span "
                f"({span}); every task vector will cover most of the database.",
                UserWarning,
                stacklevel=2,
            )
        as_of = parse_as_of(self.as_of)
        until = parse_as_of(self.pretrain_until, "pretrain_until")
        # Training sees X's rows at their effective times: the boundary, the default
        # cutoffs (X's distinct times) and so every target window end at most as_of + window.
        fit_times = clamp_times(rows.times[known], as_of)
        # Given cutoffs may run to X's last time (later ones collapse onto as_of below).
        boundary = rows.times[known].max()
        if until is not None:
            last, step = pd.Timestamp(fit_times.max()), max(windows)
            if until < last + step:
                raise ValueError(
                    f"pretrain_until={until} lies before the training rows' horizon "
                    f"({last + step}: their last time {last} plus the window {step}), which "
                    "pre-training reads anyway; give a later time, or None."
                )
            later = later_cutoffs(fit_times.max(), step, until, database.max_timestamp)
            fit_times = np.concatenate([fit_times, later])
            boundary = max(boundary, fit_times.max())
        cutoffs = None
        if self.cutoffs is not None:
            cutoffs = np.unique(pd.to_datetime(np.asarray(self.cutoffs)).to_numpy("datetime64[ns]"))
            if len(cutoffs) == 0:
                raise ValueError("cutoffs is empty; give at least one timestamp or None.")
            if cutoffs.max() > boundary:
                raise ValueError(
                    f"cutoffs reach past the last time in X ({pd.Timestamp(boundary)}, or "
                    "the last cutoff pretrain_until allows); training must not read past "
                    "it + window. Drop later cutoffs."
                )
            cutoffs = np.unique(clamp_times(cutoffs, as_of))
        random_state = (
            int(np.random.default_rng().integers(2**31 - 1))
            if self.random_state is None
            else int(self.random_state)
        )
        settings = {
            "windows": windows,
            "cutoffs": cutoffs,
            "max_hops": self.max_hops,
            "target_include": self.target_include,
            "target_exclude": self.target_exclude,
            "embedding_dim": int(self.embedding_dim),
            "fanouts": tuple(int(f) for f in self.fanouts),
            "temporal_strategy": self.temporal_strategy,
            **encoder_windows(self.get_params(), windows),
            "dropout": float(self.dropout),
            "mask_rate": float(self.mask_rate),
            "inactive_weight": float(self.inactive_weight),
            "max_epochs": int(self.max_epochs),
            "steps_per_epoch": int(self.steps_per_epoch),
            "batch_size": int(self.batch_size),
            "learning_rate": float(self.learning_rate),
            "weight_decay": float(self.weight_decay),
            "patience": int(self.patience),
            "holdout_fraction": float(self.holdout_fraction),
            "max_holdout_rows": 2048,
            "path_balance": bool(self.path_balance),
            "max_inactive_ratio": (
                None if self.max_inactive_ratio is None else float(self.max_inactive_ratio)
            ),
            "random_state": random_state,
            "device": self.device,
        }
        fit_fn, extra, ignore = _pretrain_state, {}, ["verbose", "engine"]
        group = context()
        if int(self.n_workers) > 1:
            if group is not None:
                raise spawn_in_group_error()
            fit_fn = _pretrain_state_parallel
            # Threads, like n_jobs, change no result beyond float rounding: not in the key.
            extra = {"n_threads": max(1, resolve_n_threads(self.n_jobs) // int(self.n_workers))}
            ignore = [*ignore, "n_threads"]
        world = int(self.n_workers) if group is None else group.world
        if world > 1:
            # Only then part of the cache key: one process keeps the keys of before.
            settings["n_workers"] = world
        if self.memory is not None:
            from sklearn.utils.validation import check_memory

            fit_fn = check_memory(self.memory).cache(fit_fn, ignore=ignore)
        state = fit_fn(
            database,
            self.entity_table,
            np.unique(fit_times),
            settings,
            bool(self.verbose),
            engine=self.engine,
            **extra,
        )
        self.database_ = database
        # The parameter as given (a path, say): transform reuses database_ while it is unchanged.
        self._fitted_database_param = self.database
        self.windows_ = windows
        self.history_windows_ = [pd.Timedelta(w) for w in settings["history_windows"]]
        self.recency_scales_ = [pd.Timedelta(w) for w in settings["recency_scales"]]
        self.as_of_ = as_of
        self.cutoffs_ = state["cutoffs"]
        self.boundary_ = state["boundary"]
        self.featurizer_ = state["featurizer"]
        self.target_scaler_ = state["scaler"]
        self.task_vector_coef_ = state["task_vector_map"]["coef"]
        self.task_vector_intercept_ = state["task_vector_map"]["intercept"]
        self.encoder_state_ = state["encoder_state"]
        self.head_state_ = state["head_state"]
        self.history_ = state["history"]
        self.best_epoch_ = state["best_epoch"]
        self.n_steps_ = state["n_steps"]
        self.steps_per_second_ = state["steps_per_second"]
        self.n_pretrain_rows_ = state["n_pretrain_rows"]
        self.fit_seconds_ = state["fit_seconds"]
        self.random_state_ = random_state
        self._n_features_out = int(self.embedding_dim)
        self.n_features_in_ = 2
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._runtime = None
        return self

    # ------------------------------------------------------------------ transform
    def _runtime_for(self, database: Database) -> tuple[Any, Any, torch.nn.Module]:
        """Graph, sampler and encoder for ``database`` (rebuilt when the database changes)."""
        runtime = getattr(self, "_runtime", None)
        if runtime is not None and runtime[0] is database:
            return runtime[1], runtime[2], runtime[3]
        spec = self._encoder_spec()
        graph = build_graph(self.featurizer_, database)
        sampler = build_sampler(graph, spec, self.random_state_)
        encoder = build_encoder(self.featurizer_, spec, self.encoder_state_)
        encoder.to(resolve_device(self.device))
        encoder.eval()
        self._runtime = (database, graph, sampler, encoder)
        return graph, sampler, encoder

    def _current_database(self) -> Database:
        # set_params(database=...) after fit points transform at another handle (e.g. the
        # same data re-attached after loading, or a database with later rows appended).
        unchanged = (self.database_, getattr(self, "_fitted_database_param", None))
        if self.database is None or any(self.database is d for d in unchanged):
            return self.database_
        return load_database(self.database)

    def transform(self, X: Any) -> np.ndarray:
        """Embed each (entity, time) row using only data at or before that time.

        Parameters
        ----------
        X : DataFrame of (entity id, time) rows, or array of shape (n_rows, 2)

        Returns
        -------
        ndarray of float32, shape (n_rows, n_features)
            ``embedding_dim`` columns, the task vector's columns, or both, by ``output``
            (see :meth:`~sktve.TVEPretrainer.get_feature_names_out`).
        """
        check_is_fitted(self, "encoder_state_")
        self._check_output()
        with limit_threads(resolve_n_threads(self.n_jobs)):
            return self._transform(X)

    def _transform(self, X: Any) -> np.ndarray:
        database = self._current_database()
        rows = self._rows(X, database)
        _, sampler, encoder = self._runtime_for(database)
        out = np.zeros((len(rows.keys), int(self.embedding_dim)), dtype=np.float32)
        known = np.flatnonzero(~rows.unknown)
        # Rows after the declared cut are embedded as of the cut.
        times = clamp_times(rows.times, self.as_of_).view(np.int64)
        out[known] = embed_rows(
            sampler,
            encoder,
            self.entity_table,
            rows.positions[known],
            times[known],
            verbose=bool(self.verbose),
        ).numpy()
        if self.output == "embedding":
            return out
        predicted = self._predict_task_vectors(out)
        predicted[rows.unknown] = 0.0
        return predicted if self.output == "task_vector" else np.hstack([out, predicted])

    def _training_targets(
        self, database: Database, pairs: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scaled task vectors, no-activity flags) of ``pairs`` (the entity key and
        ``"cutoff"`` columns), computed and scaled as ``fit`` computed its own targets."""
        frame = target_frame(
            database,
            self.entity_table,
            None,
            self.windows_,
            max_hops=self.max_hops,
            include=self.target_include,
            exclude=self.target_exclude,
            entities=pairs,
            engine=self.engine,
        )
        targets, _ = scale_targets(self.target_scaler_, frame, self.path_balance)
        return targets, frame["no_activity"].to_numpy() != 0

    def _predict_task_vectors(self, embedding: np.ndarray) -> np.ndarray:
        """Task vectors in the aggregates' units from embeddings (float32)."""
        scaler = self.target_scaler_
        scaled = embedding.astype(np.float64) @ self.task_vector_coef_ + self.task_vector_intercept_
        values = scaler.inverse_transform(scaled)
        # An expected value lies between the values it averages: scores (modes, flags) in
        # [0, 1], an aggregate between the training range and 0 (its value with no rows).
        # A linear map overshoots at the extremes (negative counts), which would mislead.
        low, high = np.zeros(values.shape[1]), np.ones(values.shape[1])
        numeric = scaler._numeric_positions()
        low[numeric] = np.minimum(scaler.min_, 0.0)
        high[numeric] = np.maximum(scaler.min_ + scaler.scale_, 0.0)
        return np.clip(values, low, high).astype(np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns, by ``output``.

        ``tvepretrainer0..`` for the embedding; ``"next <target column>"`` for the
        predicted task vector (the target columns of ``target_scaler_``, e.g.
        ``"next 30D|orders|*|count"``); the two concatenated for ``output="both"``.

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self, "encoder_state_")
        self._check_output()
        embedding = super().get_feature_names_out(input_features)
        if self.output == "embedding":
            return embedding
        names = self.target_scaler_.get_feature_names_out()
        predicted = np.asarray([f"next {name}" for name in names], dtype=object)
        return predicted if self.output == "task_vector" else np.concatenate([embedding, predicted])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_runtime", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags
