"""TVEClassifier and TVERegressor: the pre-trained encoder fine-tuned end to end on labels.

This is TVE's own downstream protocol. ``fit(X, y)`` pre-trains a
:class:`~sktve.TVEPretrainer` on the rows of X (or takes a fitted one, or starts from
random weights with ``init="random"``: the supervised RDL-style GNN that pre-training must
beat, with the same architecture and budget), then trains encoder and head together on y.
Optional ``side_features`` (e.g. :class:`~sktve.AggregateFeatures`) enter the head beside
the embedding, so the GNN has to learn only what they miss. Early stopping watches the loss
(or a scikit-learn scorer, ``scoring``) on a time-ordered validation split (the latest
timestamps of X), or on a validation set the caller gives to ``fit``.

The loop is :func:`sktve.training.train_loop`, the one pre-training runs, rather than
skorch's: a batch here is a subgraph the temporal sampler draws for (entity, time) seeds,
the split must follow time, and the encoder needs its own learning-rate group; fitting that
into skorch takes a custom dataset, collate function, split and optimizer factory, and
leaves two loops to keep in step instead of one.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.metrics import get_scorer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import QuantileTransformer
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_is_fitted,
    has_fit_parameter,
)
from torch import nn

from sktve._as_of import clamp_times, parse_as_of
from sktve._threads import limit_threads, resolve_n_threads
from sktve._validation import (
    TaskRows,
    count_before_start,
    raise_unknown_entities,
    resolve_task_table,
)
from sktve.database import Database, attach_shipped, load_database, ship_database
from sktve.distributed import (
    all_reduce_sum,
    backend_for,
    context,
    rank_device,
    rank_seed,
    run_data_parallel,
    spawn_in_group_error,
)
from sktve.encoder_runtime import (
    EMBED_CHUNK,
    EncoderSpec,
    build_encoder,
    build_graph,
    build_sampler,
    embed_rows,
    encoder_windows,
    state_from_bytes,
    state_to_bytes,
)
from sktve.graph import GraphFeaturizer
from sktve.heads import zero_empty_columns
from sktve.nn.tve import TVEHead, scaled_cosine_terms
from sktve.pretrainer import TVEPretrainer, target_windows
from sktve.staleness import parse_lags, shift_times
from sktve.training import TrainingConfig, resolve_device, train_loop

__all__ = ["TVEClassifier", "TVERegressor"]

_INITS = ("tve", "random")


class FineTuneHead(nn.Module):
    """MLP on the seed embedding, with optional side features entering beside it.

    Parameters
    ----------
    embedding_dim : int
    side_dim : int
        Width of the (preprocessed) side features; 0 for none.
    hidden : int
    n_outputs : int
    dropout : float
    """

    def __init__(
        self, embedding_dim: int, side_dim: int, hidden: int, n_outputs: int, dropout: float
    ) -> None:
        super().__init__()
        self.side_dim = int(side_dim)
        # LayerNorm puts a pre-trained embedding and fresh side projections on one scale.
        self.embedding_norm = nn.LayerNorm(embedding_dim)
        self.side = (
            nn.Sequential(nn.Linear(side_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
            if side_dim
            else None
        )
        width = embedding_dim + (hidden if side_dim else 0)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )

    def forward(self, embedding: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.embedding_norm(embedding)]
        if self.side is not None:
            parts.append(self.side(side))
        return self.mlp(torch.cat(parts, dim=1))


# The probe embeds at most this many epochs' worth of training rows (one pass of the
# encoder over them, without gradients).
_PROBE_EPOCHS = 4


def _row_weights(sample_weight: Any, X: Any) -> np.ndarray | None:
    """``sample_weight`` checked by scikit-learn (finite, non-negative, one per row, not all
    zero), as float64; None when absent or all equal, so that equal weights are exactly no
    weights."""
    if sample_weight is None:
        return None
    weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    return None if np.all(weights == weights[0]) else weights


def _weighted_mean(losses: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # A batch of zero-weight rows contributes nothing (and no NaN).
    return (losses * weight).sum() / weight.sum().clamp_min(1e-12)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The smallest value at which the cumulative weight reaches half the total."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def time_ordered_split(times_ns: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the rows whose timestamps are the latest ``fraction`` of X's distinct ones.

    At least one distinct timestamp is held out when there are three or more, and at
    least one is always kept for training; with fewer than three, nothing is held out.
    """
    distinct = np.unique(times_ns)
    n_holdout = int(math.ceil(len(distinct) * fraction)) if fraction > 0 else 0
    if len(distinct) < 3:
        n_holdout = 0
    n_holdout = min(n_holdout, len(distinct) - 1)
    if n_holdout == 0:
        return np.zeros(len(times_ns), dtype=bool)
    return times_ns >= distinct[-n_holdout]


def summed_terms(
    batch_loss: Callable[[np.ndarray, bool], torch.Tensor],
    device: torch.device,
    row_weights: np.ndarray | None = None,
) -> Callable[[np.ndarray, bool], tuple[torch.Tensor, torch.Tensor]]:
    """``batch_loss`` in ``train_loop``'s data-parallel form: ``(sum of weighted row
    losses, sum of weights)``, so that ranks' shards add up (every row weighs 1 unless
    ``row_weights`` says otherwise)."""

    def terms(index: np.ndarray, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        total = len(index) if row_weights is None else float(row_weights[index].sum())
        rows = torch.tensor(float(total), device=device)
        return batch_loss(index, train) * rows, rows

    return terms


def _side_preprocessor(n_rows: int) -> Any:
    # Aggregates are heavy-tailed counts and sums with undefined (NaN) cells: impute with
    # an indicator, then map each column to normal scores so one scale fits all.
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        QuantileTransformer(
            n_quantiles=max(2, min(1000, n_rows)), output_distribution="normal", subsample=None
        ),
    )


def head_outputs(
    model: tuple[Any, nn.Module, nn.Module],
    entity_table: str,
    positions: np.ndarray,
    times: np.ndarray,
    side: torch.Tensor | None = None,
    offsets: torch.Tensor | None = None,
    verbose: bool = False,
) -> np.ndarray:
    """The head's outputs for seed rows, without gradients: ``embed_rows``, then the head.

    ``model`` is (sampler, encoder, head) in eval mode; ``side`` and ``offsets`` are
    per-row side features and side-estimator offsets (or None).
    """
    sampler, encoder, head = model
    embedding = embed_rows(sampler, encoder, entity_table, positions, times, verbose)
    device = next(head.parameters()).device
    outputs = []
    with torch.no_grad():
        for start in range(0, len(embedding), EMBED_CHUNK):
            stop = start + EMBED_CHUNK
            extra = None if side is None else side[start:stop].to(device)
            outputs.append(head(embedding[start:stop].to(device), extra).float().cpu())
    output = torch.cat(outputs) if outputs else torch.zeros((0, head.mlp[-1].out_features))
    return (output if offsets is None else output + offsets).numpy()


class _TVEFineTuner(BaseEstimator):
    """Shared fit / predict of the fine-tuning estimators (see TVEClassifier)."""

    _is_classifier = False

    def __init__(
        self,
        *,
        database: Any = None,
        entity_table: str | None = None,
        entity_col: str | None = None,
        time_col: str | None = None,
        init: str = "tve",
        pretrainer: TVEPretrainer | None = None,
        side_features: Any = None,
        side_estimator: Any = None,
        as_of: Any = None,
        stale_lags: Any = None,
        hidden_dim: int = 128,
        dropout: float = 0.3,
        mask_rate: float = 0.15,
        max_epochs: int = 40,
        steps_per_epoch: int = 50,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        encoder_lr_scale: float = 0.5,
        weight_decay: float = 1e-4,
        patience: int = 6,
        validation_fraction: float = 0.15,
        scoring: Any = "loss",
        average_epochs: float | None = None,
        tve_weight: float = 0.0,
        refit: bool = False,
        recentre: bool = True,
        probe_head: bool = False,
        memory: Any = None,
        n_jobs: int | None = None,
        n_workers: int = 1,
        device: str = "auto",
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.database = database
        self.entity_table = entity_table
        self.entity_col = entity_col
        self.time_col = time_col
        self.init = init
        self.pretrainer = pretrainer
        self.side_features = side_features
        self.side_estimator = side_estimator
        self.as_of = as_of
        self.stale_lags = stale_lags
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.mask_rate = mask_rate
        self.max_epochs = max_epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.encoder_lr_scale = encoder_lr_scale
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.scoring = scoring
        self.average_epochs = average_epochs
        self.tve_weight = tve_weight
        self.refit = refit
        self.recentre = recentre
        self.probe_head = probe_head
        self.memory = memory
        self.n_jobs = n_jobs
        self.n_workers = n_workers
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        name = type(self).__name__
        if self.init not in _INITS:
            raise ValueError(f"init must be 'tve' or 'random', got {self.init!r}.")
        if self.database is None and (
            self.pretrainer is None or getattr(self.pretrainer, "database", None) is None
        ):
            raise ValueError(
                f"{name} needs a database: {name}(database=load_database(...), "
                "entity_table=...), or a pretrainer=TVEPretrainer(database=...)."
            )
        if self.pretrainer is not None and not isinstance(self.pretrainer, TVEPretrainer):
            raise TypeError(
                f"pretrainer must be a TVEPretrainer (fitted or not), got "
                f"{type(self.pretrainer).__name__}."
            )
        for pname, value, low in (
            ("hidden_dim", self.hidden_dim, 1),
            ("max_epochs", self.max_epochs, 1),
            ("steps_per_epoch", self.steps_per_epoch, 1),
            ("batch_size", self.batch_size, 1),
            ("patience", self.patience, 1),
            ("n_workers", self.n_workers, 1),
        ):
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
                raise ValueError(f"{pname} must be an integer >= {low}, got {value!r}.")
        for pname, value in (
            ("dropout", self.dropout),
            ("mask_rate", self.mask_rate),
            ("validation_fraction", self.validation_fraction),
        ):
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"{pname} must lie in [0, 1), got {value!r}.")
        if isinstance(self.scoring, str) and self.scoring != "loss":
            try:
                get_scorer(self.scoring)
            except ValueError as err:
                raise ValueError(
                    f"scoring must be 'loss', a scikit-learn scorer name such as 'roc_auc' "
                    f"or 'neg_mean_absolute_error', or a callable scorer(estimator, X, y); "
                    f"got {self.scoring!r}."
                ) from err
        elif not isinstance(self.scoring, str) and not callable(self.scoring):
            raise ValueError(
                "scoring must be 'loss', a scikit-learn scorer name or a callable "
                f"scorer(estimator, X, y); got {type(self.scoring).__name__}."
            )
        if self.average_epochs is not None and not (
            isinstance(self.average_epochs, int | float | np.number)
            and not isinstance(self.average_epochs, bool)
            and self.average_epochs > 0
        ):
            raise ValueError(
                f"average_epochs must be None or a positive number, got {self.average_epochs!r}."
            )
        if not (
            isinstance(self.tve_weight, int | float | np.number)
            and not isinstance(self.tve_weight, bool)
            and self.tve_weight >= 0
        ):
            raise ValueError(f"tve_weight must be a number >= 0, got {self.tve_weight!r}.")
        if self.tve_weight > 0 and self.init != "tve":
            raise ValueError(
                "tve_weight keeps the pre-training objective during fine-tuning, so it needs "
                f"init='tve'; got init={self.init!r}. Set tve_weight=0."
            )
        if self.tve_weight > 0 and int(self.n_workers) > 1:
            raise ValueError(
                "tve_weight > 0 fine-tunes in one process: the task-vector loss is normalised "
                "per batch, which does not split over ranks. Set n_workers=1 (n_jobs still "
                "sets the threads)."
            )
        for pname, value in (
            ("refit", self.refit),
            ("recentre", self.recentre),
            ("probe_head", self.probe_head),
        ):
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"{pname} must be True or False, got {value!r}.")
        for pname, value in (
            ("learning_rate", self.learning_rate),
            ("encoder_lr_scale", self.encoder_lr_scale),
        ):
            if not float(value) > 0:
                raise ValueError(f"{pname} must be positive, got {value!r}.")
        if self.stale_lags is not None:
            parse_lags(self.stale_lags, "stale_lags")
        if self.side_features is not None and not hasattr(self.side_features, "fit_transform"):
            raise TypeError(
                "side_features must be a transformer with fit/transform, such as "
                f"AggregateFeatures(...); got {type(self.side_features).__name__}."
            )

        if self.side_estimator is not None:
            if self.side_features is None:
                raise ValueError(
                    "side_estimator is fitted on the side features: give side_features=... "
                    "(e.g. AggregateFeatures()) too, or drop side_estimator."
                )
            if not hasattr(self.side_estimator, "fit"):
                raise TypeError(
                    "side_estimator must be a scikit-learn estimator such as "
                    "HistGradientBoostingClassifier(); got "
                    f"{type(self.side_estimator).__name__}."
                )

    def _seed_times(self, rows: TaskRows) -> np.ndarray:
        """Row times (int64 ns), or the declared data cut for rows after it."""
        return clamp_times(rows.times, self.as_of_).view(np.int64)

    def _database_param(self) -> Any:
        return self.database if self.database is not None else self.pretrainer.database

    def _resolve_rows(self, X: Any, database: Database) -> TaskRows:
        rows = resolve_task_table(X, database, self.entity_table, self.entity_col, self.time_col)
        raise_unknown_entities(rows, self.entity_table)
        return rows

    def _with_shared(self, estimator: Any, database: Database, random_state: int) -> Any:
        """A clone of ``estimator`` given this estimator's database, table, cut and seed."""
        estimator = clone(estimator)
        params = estimator.get_params(deep=False)
        shared = {
            "database": database,
            "entity_table": self.entity_table,
            "entity_col": self.entity_col,
            "time_col": self.time_col,
            "as_of": self.as_of,
            "random_state": random_state,
            "memory": self.memory,
            "n_jobs": self.n_jobs,
        }
        updates = {k: v for k, v in shared.items() if k in params and params[k] is None}
        if updates:
            estimator.set_params(**updates)
        return estimator

    # ------------------------------------------------------------------ targets
    def _encode_targets(self, y: Any, n_rows: int) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def _loss(
        self, output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean loss over the rows, weighted by ``weight`` when given."""
        raise NotImplementedError

    def _output_bias(self, targets: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def _offset(self, model: Any, side: np.ndarray) -> np.ndarray:
        """The side estimator's prediction in the head's output units (n_rows, n_outputs)."""
        raise NotImplementedError

    def _output_shift(
        self, outputs: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None
    ) -> float:
        """Shift of the head's output that centres it on held-out rows (regression only)."""
        return 0.0

    def _held_out_view(self, outputs: np.ndarray) -> BaseEstimator:
        """An estimator whose predictions are ``outputs`` (the held-out rows'), for scorers."""
        raise NotImplementedError

    def _side_offsets(
        self,
        raw: np.ndarray,
        targets: np.ndarray,
        group_times: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        refit_all: bool,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Offsets from the side estimator: out-of-fold on training rows, held-out on the rest.

        In-sample predictions of a boosted model are far better than its predictions on new
        rows, so a network trained on top of them would learn to trust them too much.
        Training rows therefore get predictions from models fitted on other timestamps
        (folds grouped by time), validation rows from a model fitted on every training row,
        and rows at predict time from ``side_estimator_``, refitted on all rows of X when
        the validation rows came from X.
        """
        from sklearn.model_selection import GroupKFold

        if weights is not None and not has_fit_parameter(self.side_estimator, "sample_weight"):
            raise ValueError(
                f"side_estimator {type(self.side_estimator).__name__} does not accept "
                "sample_weight in fit, so it cannot follow the rows' weights; give a side "
                "estimator that does, or fit without sample_weight."
            )

        def fit_on(index: np.ndarray) -> Any:
            # A fold can miss every row where an aggregate is defined.
            part = zero_empty_columns(raw[index])
            extra = {} if weights is None else {"sample_weight": weights[index]}
            return clone(self.side_estimator).fit(part, targets[index].squeeze(), **extra)

        offsets = np.zeros((len(raw), self.n_outputs_), dtype=np.float32)
        groups = group_times[train_idx]
        n_splits = min(4, len(np.unique(groups)))
        if n_splits >= 2:
            for fit_part, out_part in GroupKFold(n_splits=n_splits).split(
                raw[train_idx], groups=groups
            ):
                model = fit_on(train_idx[fit_part])
                offsets[train_idx[out_part]] = self._offset(model, raw[train_idx[out_part]])
        model = fit_on(train_idx)
        if n_splits < 2:
            offsets[train_idx] = self._offset(model, raw[train_idx])
        if len(val_idx):
            offsets[val_idx] = self._offset(model, raw[val_idx])
            if refit_all:
                every = np.concatenate([train_idx, val_idx])
                model = fit_on(every)
        self.side_estimator_ = model
        return offsets

    # ------------------------------------------------------------------ fit
    def fit(
        self, X: Any, y: Any, X_val: Any = None, y_val: Any = None, sample_weight: Any = None
    ) -> _TVEFineTuner:
        """Pre-train (unless given a fitted pretrainer or ``init="random"``), then fine-tune.

        Parameters
        ----------
        X : DataFrame of (entity id, time) rows, or array of shape (n_rows, 2)
        y : array-like of shape (n_rows,)
        X_val, y_val : optional
            A validation set for early stopping. Default: the rows of X with the latest
            ``validation_fraction`` of its distinct timestamps are held out.
        sample_weight : array-like of shape (n_rows,), optional
            Non-negative weight of each row of X in the fine-tuning loss (a weighted mean
            per batch), in the held-out loss or ``scoring`` of the rows X holds out, in the
            head's starting bias, ``recentre`` and the side estimator's fits (which must
            then accept ``sample_weight``). Rows of ``X_val`` weigh 1. Pre-training and
            side features read no labels and ignore it. Equal weights give exactly the
            fit without them.

        Returns
        -------
        self
        """
        self._check_params()
        self.as_of_ = parse_as_of(self.as_of)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither.")
        if int(self.n_workers) > 1:
            return self._fit_data_parallel(X, y, X_val, y_val, sample_weight)
        with limit_threads(resolve_n_threads(self.n_jobs)):
            return self._fit(X, y, X_val, y_val, sample_weight)

    def _fit_data_parallel(
        self, X: Any, y: Any, X_val: Any, y_val: Any, sample_weight: Any = None
    ) -> _TVEFineTuner:
        """``fit`` on ``n_workers`` spawned ranks; this estimator takes rank 0's result."""
        if context() is not None:
            raise spawn_in_group_error()
        n_workers = int(self.n_workers)
        database = load_database(self._database_param())
        # A shallow copy: a fitted pretrainer given as a parameter must stay fitted.
        one_rank = copy.copy(self).set_params(n_workers=1)
        fitted = run_data_parallel(
            _fit_in_rank,
            (one_rank, ship_database(database), X, y, X_val, y_val, sample_weight),
            n_workers,
            max(1, resolve_n_threads(self.n_jobs) // n_workers),
            backend_for(resolve_device(self.device)),
        )
        params = self.get_params(deep=False)
        for name, value in fitted.__dict__.items():
            if name not in params:
                setattr(self, name, value)
        # The rank's handle came back without tables: this process's database serves.
        self.database_ = database
        self._runtime = None
        return self

    def _fit(
        self, X: Any, y: Any, X_val: Any, y_val: Any, sample_weight: Any = None
    ) -> _TVEFineTuner:
        started = time.perf_counter()
        say = print if self.verbose else (lambda *a, **k: None)
        database = load_database(self._database_param())
        if self.entity_table not in database:
            raise ValueError(
                f"unknown entity_table {self.entity_table!r}; tables: {database.table_names}."
            )
        # Labels first: a wrong y is reported before any work on X.
        n_rows = _num_samples(X)
        if n_rows == 0:
            raise ValueError("X is empty: give at least one (entity id, time) row.")
        targets, n_outputs = self._encode_targets(y, n_rows)
        labels = np.asarray(y)
        weights = _row_weights(sample_weight, X)
        rows = self._resolve_rows(X, database)
        # X's own held-out rows (its latest timestamps), known before any pre-training.
        held_out = (
            None
            if X_val is not None
            else time_ordered_split(rows.times_ns, float(self.validation_fraction))
        )
        if weights is not None and held_out is not None:
            for name, part in (("training", ~held_out), ("held-out", held_out)):
                if part.any() and not weights[part].sum() > 0:
                    raise ValueError(
                        f"sample_weight is zero for every {name} row ({part.sum()} rows; "
                        "the held-out rows are X's latest timestamps unless X_val is given), "
                        "so fine-tuning has nothing to fit or to stop on there; give those "
                        "rows some weight."
                    )
        random_state = (
            int(np.random.default_rng().integers(2**31 - 1))
            if self.random_state is None
            else int(self.random_state)
        )
        spec, featurizer, encoder_state = self._starting_encoder(X, rows, database, random_state)
        pretrain_seconds = time.perf_counter() - started
        torch.manual_seed(random_state)
        encoder = build_encoder(featurizer, spec, encoder_state)
        sampler = build_sampler(build_graph(featurizer, database), spec, random_state)

        # ---- rows to train on and to stop on.
        positions = rows.positions
        seed_times = self._seed_times(rows)
        keys, times = rows.keys, rows.times
        if X_val is not None:
            val_rows = self._resolve_rows(X_val, database)
            val_targets, _ = self._encode_targets(y_val, len(val_rows.keys), refit=False)
            positions = np.concatenate([positions, val_rows.positions])
            seed_times = np.concatenate([seed_times, self._seed_times(val_rows)])
            keys = np.concatenate([keys, val_rows.keys])
            times = np.concatenate([times, val_rows.times])
            targets = np.concatenate([targets, val_targets])
            labels = np.concatenate([labels, np.asarray(y_val)])
            if weights is not None:
                weights = np.concatenate([weights, np.ones(len(val_rows.keys))])
            is_val = np.r_[np.zeros(len(rows.keys), bool), np.ones(len(val_rows.keys), bool)]
        else:
            is_val = held_out
        # The side estimator's folds group rows by time; every copy of a row keeps the
        # row's own group, so no fold sees another copy's label.
        group_times = seed_times
        lags = None if self.stale_lags is None else parse_lags(self.stale_lags, "stale_lags")
        if lags is not None:
            # Lag-major copies of every row (X's, then X_val's), as the side features
            # below are stacked; a copy's features are as of its time minus the lag.
            copy_of = np.tile(np.arange(len(positions)), len(lags))
            row_lags = np.repeat(lags, len(positions))
            times = times[copy_of] - row_lags
            _warn_copies_before_start(times[row_lags > np.timedelta64(0, "ns")], database)
            seed_times = clamp_times(times, self.as_of_).view(np.int64)
            positions, keys, group_times = positions[copy_of], keys[copy_of], group_times[copy_of]
            targets, labels, is_val = targets[copy_of], labels[copy_of], is_val[copy_of]
            weights = None if weights is None else weights[copy_of]
        train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
        tve_terms = None
        if float(self.tve_weight) > 0:
            if context() is not None:
                raise ValueError(
                    "tve_weight > 0 fine-tunes in one process, not inside a data-parallel "
                    "group; set tve_weight=0 there."
                )
            tve_terms = self._tve_terms(database, keys, seed_times, train_idx, spec)

        self.n_outputs_ = n_outputs
        side, offsets = self._side_inputs(
            X,
            X_val,
            lags,
            database,
            random_state,
            targets,
            group_times,
            train_idx,
            val_idx,
            weights,
        )
        side_dim = 0 if side is None else side.shape[1]
        head = FineTuneHead(
            spec.embedding_dim, side_dim, int(self.hidden_dim), n_outputs, float(self.dropout)
        )
        with torch.no_grad():
            if offsets is None:
                bias = self._output_bias(
                    targets[train_idx], None if weights is None else weights[train_idx]
                )
                head.mlp[-1].bias.copy_(torch.from_numpy(bias))
            else:
                # Start exactly at the side estimator's prediction; the network learns the
                # correction.
                head.mlp[-1].weight.zero_()
                head.mlp[-1].bias.zero_()
        dist = context()
        # Dropout and swap noise: one stream per rank.
        rank_random_state = random_state if dist is None else rank_seed(random_state, dist.rank)
        device = rank_device(resolve_device(self.device), dist)
        encoder.to(device)
        head.to(device)
        if dist is not None:
            torch.manual_seed(rank_random_state)
        targets_t = torch.from_numpy(targets)
        side_t = None if side is None else torch.from_numpy(side)
        offsets_t = None if offsets is None else torch.from_numpy(offsets)
        weights_t = None if weights is None else torch.from_numpy(weights.astype(np.float32))

        row_tensors = (side_t, offsets_t, targets_t, weights_t)

        tve_weight = float(self.tve_weight)
        if tve_terms is not None:
            tve_terms[0].to(device)
        mask_rate = float(self.mask_rate)
        # Its own stream, reseeded for a refit as the dropout stream is, so that a refit does
        # not depend on how many draws the first run made.
        corruption = torch.Generator(device="cpu").manual_seed(rank_random_state)

        def batch_loss(index: np.ndarray, train: bool) -> torch.Tensor:
            batch = sampler.sample(self.entity_table, positions[index], seed_times[index])
            embedding = encoder(
                batch.to(device),
                corruption_rate=mask_rate if train else 0.0,
                generator=corruption,
            )
            loss = self._head_loss(head, embedding, index, row_tensors)
            if train and tve_terms is not None:
                tve_head, tv_targets, tv_inactive, inactive_weight = tve_terms
                loss_sum, weight = scaled_cosine_terms(
                    tve_head(embedding),
                    tv_targets[index].to(device),
                    tv_inactive[index].to(device),
                    inactive_weight,
                    row_weight=None if weights_t is None else weights_t[index].to(device),
                )
                loss = loss + tve_weight * loss_sum / weight.clamp_min(1e-8)
            return loss

        batch_terms = summed_terms(batch_loss, device, weights)

        def held_out_outputs() -> np.ndarray:
            return head_outputs(
                (sampler, encoder, head),
                self.entity_table,
                positions[val_idx],
                seed_times[val_idx],
                None if side_t is None else side_t[val_idx],
                None if offsets_t is None else offsets_t[val_idx],
            )

        holdout_eval = None
        if self.scoring != "loss" and len(val_idx):
            scorer = get_scorer(self.scoring)
            X_held = pd.DataFrame({rows.entity_col: keys[val_idx], rows.time_col: times[val_idx]})

            held_weights = {} if weights is None else {"sample_weight": weights[val_idx]}

            def holdout_eval() -> tuple[float, float]:
                outputs = held_out_outputs()
                loss = float(
                    self._loss(
                        torch.from_numpy(outputs),
                        targets_t[val_idx],
                        None if weights_t is None else weights_t[val_idx],
                    )
                )
                view = self._held_out_view(outputs)
                score = float(scorer(view, X_held, labels[val_idx], **held_weights))
                if not math.isfinite(score):
                    raise ValueError(
                        f"scoring={self.scoring!r} gave {score} on the {len(val_idx)} "
                        "held-out rows, so early stopping cannot compare epochs; use "
                        "scoring='loss' or a scorer defined on those rows."
                    )
                if dist is not None:
                    # Ranks agree on when to stop even if their sums differ in the last bit.
                    values = all_reduce_sum(torch.tensor([loss, score], dtype=torch.float64))
                    loss, score = (float(v) / dist.world for v in values)
                return loss, -score

        config = TrainingConfig(
            max_epochs=int(self.max_epochs),
            steps_per_epoch=int(self.steps_per_epoch),
            batch_size=int(self.batch_size),
            learning_rate=float(self.learning_rate),
            weight_decay=float(self.weight_decay),
            patience=int(self.patience),
            random_state=random_state,
            verbose=bool(self.verbose),
        )
        say(
            f"[sktve] fine-tuning ({self.init} init): {len(train_idx)} train rows, "
            f"{len(val_idx)} validation rows, {side_dim} side features",
            flush=True,
        )
        finetune_started = time.perf_counter()
        self.probe_history_, self.probe_epoch_ = [], 0
        if self.probe_head and len(train_idx):
            say("[sktve] probing: the head alone on the frozen encoder's embeddings", flush=True)
            self.probe_history_, self.probe_epoch_ = self._probe(
                (sampler, encoder, head),
                positions,
                seed_times,
                row_tensors,
                train_idx,
                val_idx,
                config,
                dist,
            )
        groups = [
            {"params": list(encoder.parameters()), "lr": float(self.encoder_lr_scale)},
            {"params": list(head.parameters()), "lr": 1.0},
        ]
        if tve_terms is not None:
            groups.append(
                {"params": list(tve_terms[0].parameters()), "lr": float(self.encoder_lr_scale)}
            )
        # The refit replays the run from these weights and this dropout stream.
        replayed = [encoder, head] + ([] if tve_terms is None else [tve_terms[0]])
        start_state = [copy.deepcopy(m.state_dict()) for m in replayed] if self.refit else None
        loop = {
            "average_epochs": None if self.average_epochs is None else float(self.average_epochs),
            "param_groups": groups,
            "dist": dist,
            "batch_terms": batch_terms if dist is not None else None,
            "row_weights": weights,
        }
        history, best_epoch, n_steps, steps_per_second = train_loop(
            [encoder, head],
            batch_loss,
            train_idx,
            val_idx,
            config,
            # A side estimator's prediction or a probed head is already a model: keep it
            # when no epoch of fine-tuning beats it.
            evaluate_start=offsets_t is not None or bool(self.probe_head),
            holdout_eval=holdout_eval,
            **loop,
        )
        self.refit_epochs_ = 0
        if start_state is not None and X_val is None and len(val_idx) and best_epoch > 0:
            # Early stopping held out X's latest rows, the nearest to what will be
            # predicted: the chosen number of epochs is run again on every row.
            say(f"[sktve] refit on all {len(positions)} rows for {best_epoch} epochs", flush=True)
            for module, state in zip(replayed, start_state):
                module.load_state_dict(state)
            torch.manual_seed(rank_random_state)
            corruption.manual_seed(rank_random_state)
            _, _, refit_steps, _ = train_loop(
                [encoder, head],
                batch_loss,
                np.arange(len(positions)),
                np.empty(0, dtype=np.int64),
                config,
                n_epochs=best_epoch,
                **loop,
            )
            n_steps += refit_steps
            self.refit_epochs_ = best_epoch
        self.output_shift_ = 0.0
        # Only where the held-out outputs are those predict will give: not after a refit,
        # nor with a side estimator (predict uses one refitted on every row of X).
        recentre = self.recentre and X_val is None and self.side_estimator is None
        if recentre and len(val_idx) and self.refit_epochs_ == 0:
            # The network's level drifts between seeds (driver-position's median residual
            # spans -1.2 to +0.8 on val); the latest rows of X pin it.
            encoder.eval()
            head.eval()
            self.output_shift_ = self._output_shift(
                held_out_outputs(),
                targets[val_idx],
                None if weights is None else weights[val_idx],
            )
        self.featurizer_ = featurizer
        self.encoder_spec_ = spec
        self.encoder_state_ = state_to_bytes(encoder.state_dict())
        self.head_state_ = state_to_bytes(head.state_dict())
        self.side_dim_ = side_dim
        self.database_ = database
        self._fitted_database_param = self._database_param()
        self.random_state_ = random_state
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.n_steps_ = n_steps
        self.steps_per_second_ = steps_per_second
        self.n_train_rows_ = len(train_idx)
        self.n_validation_rows_ = len(val_idx)
        self.pretrain_seconds_ = pretrain_seconds
        self.finetune_seconds_ = time.perf_counter() - finetune_started
        self.n_features_in_ = 2
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._runtime = None
        return self

    def _head_loss(
        self,
        head: nn.Module,
        embedding: torch.Tensor,
        index: np.ndarray,
        row_tensors: tuple,
    ) -> torch.Tensor:
        """Mean loss of the head on rows ``index``, given their embeddings (on the head's
        device): side features beside the embedding, side-estimator offsets added, rows
        weighted by ``sample_weight`` when given."""
        side_t, offsets_t, targets_t, weights_t = row_tensors
        device = embedding.device
        extra = None if side_t is None else side_t[index].to(device)
        output = head(embedding, extra)
        if offsets_t is not None:
            output = output + offsets_t[index].to(device)
        weight = None if weights_t is None else weights_t[index].to(device)
        return self._loss(output, targets_t[index].to(device), weight)

    def _probe(
        self,
        model: tuple[Any, nn.Module, nn.Module],
        positions: np.ndarray,
        seed_times: np.ndarray,
        row_tensors: tuple,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        config: TrainingConfig,
        dist: Any,
    ) -> tuple[list[dict[str, float]], int]:
        """Train the head alone on the frozen encoder's embeddings; (history, best epoch).

        Linear probing before fine-tuning: a head that starts as a fitted model sends
        the encoder gradients about what the labels need, where a random head's first
        steps mostly reshape the pre-trained weights, and early stopping can keep the
        probed model when fine-tuning only overfits (few labelled rows). Embeddings are
        computed once, in eval mode, for at most ``_PROBE_EPOCHS`` epochs' worth of
        training rows (a random subset beyond that) and every held-out row; early
        stopping watches the held-out loss.
        """
        sampler, encoder, head = model
        cap = _PROBE_EPOCHS * config.steps_per_epoch * config.batch_size
        if len(train_idx) > cap:
            rng = np.random.default_rng(config.random_state)
            train_idx = np.sort(rng.choice(train_idx, cap, replace=False))
        rows = np.concatenate([train_idx, val_idx])
        encoder.eval()
        embedding = embed_rows(
            sampler, encoder, self.entity_table, positions[rows], seed_times[rows], self.verbose
        )
        device = next(head.parameters()).device

        def probe_loss(index: np.ndarray, train: bool) -> torch.Tensor:
            return self._head_loss(head, embedding[index].to(device), rows[index], row_tensors)

        weights_t = row_tensors[3]
        row_weights = None if weights_t is None else weights_t.numpy()[rows]
        history, best_epoch, _, _ = train_loop(
            [head],
            probe_loss,
            np.arange(len(train_idx)),
            np.arange(len(train_idx), len(rows)),
            config,
            evaluate_start=True,
            dist=dist,
            batch_terms=(
                summed_terms(probe_loss, device, row_weights) if dist is not None else None
            ),
            row_weights=row_weights,
        )
        return history, best_epoch

    def _tve_terms(
        self,
        database: Database,
        keys: np.ndarray,
        seed_times: np.ndarray,
        train_idx: np.ndarray,
        spec: EncoderSpec,
    ) -> tuple[nn.Module, torch.Tensor, torch.Tensor, float]:
        """(pre-training head, scaled task vectors, inactive flags, inactive weight) of the
        training rows, for ``tve_weight``: each row's task vector over the window after
        its (effective) time, as pre-training computed them at its cutoffs; other rows
        get zeros and never enter the auxiliary loss."""
        pretrainer = self.pretrainer_
        pairs = pd.DataFrame(
            {
                database.pkey(self.entity_table): keys[train_idx],
                "cutoff": seed_times[train_idx].astype("datetime64[ns]"),
            }
        )
        scaled, train_inactive = pretrainer._training_targets(database, pairs)
        n_rows = len(keys)
        targets = np.zeros((n_rows, scaled.shape[1]), dtype=np.float32)
        targets[train_idx] = scaled
        inactive = np.zeros(n_rows, dtype=bool)
        inactive[train_idx] = train_inactive
        tve_head = TVEHead(spec.embedding_dim, scaled.shape[1])
        tve_head.load_state_dict(state_from_bytes(pretrainer.head_state_))
        return (
            tve_head,
            torch.from_numpy(targets),
            torch.from_numpy(inactive),
            float(pretrainer.inactive_weight),
        )

    def _starting_encoder(
        self, X: Any, rows: TaskRows, database: Database, random_state: int
    ) -> tuple[EncoderSpec, GraphFeaturizer, Any]:
        """(spec, featurizer, weights) of the encoder to fine-tune; sets ``pretrainer_``.

        TVE init pre-trains on X (unless the given pretrainer is fitted); random init
        takes the same architecture with no weights.
        """
        pretrainer = self.pretrainer if self.pretrainer is not None else TVEPretrainer()
        fitted = hasattr(pretrainer, "encoder_state_")
        if not fitted:
            pretrainer = self._with_shared(pretrainer, database, random_state)
        if self.init == "tve":
            if not fitted:
                if self.verbose:
                    print("[sktve] pre-training the encoder (TVE)", flush=True)
                pretrainer.fit(X)
            self.pretrainer_ = pretrainer
            return pretrainer._encoder_spec(), pretrainer.featurizer_, pretrainer.encoder_state_
        # The same history inputs and recency scales the pretrainer would give its
        # encoder on these rows.
        params = pretrainer.get_params()
        windows = target_windows(pretrainer.window, rows.times)
        spec = EncoderSpec.from_params({**params, **encoder_windows(params, windows)})
        featurizer = GraphFeaturizer().fit(database, boundary=pd.Timestamp(rows.times.max()))
        self.pretrainer_ = None
        return spec, featurizer, None

    def _side_inputs(
        self,
        X: Any,
        X_val: Any,
        lags: np.ndarray | None,
        database: Database,
        random_state: int,
        targets: np.ndarray,
        group_times: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(preprocessed side features, side-estimator offsets), each None when not asked.

        Side features are fitted on X (frozen) and preprocessed on the training rows, one
        block of X's and X_val's rows per lag of ``stale_lags``; sets ``side_features_``,
        ``side_preprocessor_`` and ``side_estimator_``.
        """
        self.side_features_ = None
        self.side_preprocessor_ = None
        self.side_estimator_ = None
        if self.side_features is None:
            return None, None
        self.side_features_ = self._with_shared(self.side_features, database, random_state)
        frames = [X] if X_val is None else [X, X_val]
        given = [np.asarray(self.side_features_.fit_transform(X), dtype=np.float64)]
        given += [np.asarray(self.side_features_.transform(f), np.float64) for f in frames[1:]]
        blocks = []
        for lag in [np.timedelta64(0, "ns")] if lags is None else lags:
            for frame, block in zip(frames, given, strict=True):
                if lag != np.timedelta64(0, "ns"):
                    shifted = shift_times(frame, lag, self.time_col)
                    block = np.asarray(self.side_features_.transform(shifted), np.float64)
                blocks.append(block)
        raw = np.vstack(blocks)
        self.side_preprocessor_ = _side_preprocessor(len(train_idx)).fit(raw[train_idx])
        side = self.side_preprocessor_.transform(raw).astype(np.float32)
        if self.side_estimator is None:
            return side, None
        if self.verbose:
            message = "[sktve] side estimator: out-of-fold predictions as the starting point"
            print(message, flush=True)
        offsets = self._side_offsets(
            raw, targets, group_times, train_idx, val_idx, refit_all=X_val is None, weights=weights
        )
        return side, offsets

    # ------------------------------------------------------------------ predict
    def _current_database(self) -> Database:
        param = self._database_param()
        if param is None or param is self.database_ or param is self._fitted_database_param:
            return self.database_
        return load_database(param)

    def _runtime_for(self, database: Database) -> tuple[Any, nn.Module, nn.Module]:
        runtime = getattr(self, "_runtime", None)
        if runtime is not None and runtime[0] is database:
            return runtime[1:]
        sampler = build_sampler(
            build_graph(self.featurizer_, database), self.encoder_spec_, self.random_state_
        )
        encoder = build_encoder(self.featurizer_, self.encoder_spec_, self.encoder_state_)
        head = FineTuneHead(
            self.encoder_spec_.embedding_dim,
            self.side_dim_,
            int(self.hidden_dim),
            self.n_outputs_,
            float(self.dropout),
        )
        head.load_state_dict(state_from_bytes(self.head_state_))
        device = resolve_device(self.device)
        encoder.to(device).eval()
        head.to(device).eval()
        self._runtime = (database, sampler, encoder, head)
        return sampler, encoder, head

    def _raw_output(self, X: Any) -> np.ndarray:
        """The head's outputs (logits, or the standardised prediction) for X's rows."""
        check_is_fitted(self, "head_state_")
        with limit_threads(resolve_n_threads(self.n_jobs)):
            database = self._current_database()
            rows = self._resolve_rows(X, database)
            sampler, encoder, head = self._runtime_for(database)
            side = offsets = None
            if self.side_features_ is not None:
                raw = np.asarray(self.side_features_.transform(X), dtype=np.float64)
                side = torch.from_numpy(self.side_preprocessor_.transform(raw).astype(np.float32))
                if self.side_estimator_ is not None:
                    offsets = torch.from_numpy(self._offset(self.side_estimator_, raw))
            return head_outputs(
                (sampler, encoder, head),
                self.entity_table,
                rows.positions,
                self._seed_times(rows),
                side,
                offsets,
                bool(self.verbose),
            )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_runtime", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags


class TVEClassifier(ClassifierMixin, _TVEFineTuner):
    """Classify (entity, time) rows with a TVE-pre-trained encoder fine-tuned on the labels.

    ``fit`` pre-trains a :class:`~sktve.TVEPretrainer` on X (unless ``pretrainer`` is
    already fitted, or ``init="random"``), then trains the encoder and an MLP head
    together with cross-entropy. Binary and multiclass labels.

    Parameters
    ----------
    database : Database, str or Path
        The relational database (see :func:`sktve.load_database`); may be left out when
        ``pretrainer`` has one.
    entity_table : str
        Table whose rows are the entities of ``X``.
    entity_col, time_col : str, optional
        Columns of ``X``; inferred when unambiguous.
    init : {"tve", "random"}, default="tve"
        Start from TVE pre-training on X, or from random weights: the supervised GNN
        baseline, with the same architecture (the pretrainer's ``embedding_dim``,
        ``fanouts``, ``dropout``, ``temporal_strategy``) and fine-tuning budget.
    pretrainer : TVEPretrainer, optional
        Pre-training settings (unfitted: cloned and fitted on X, taking this estimator's
        database, table, ``as_of``, ``random_state``, ``memory`` and ``n_jobs`` where its
        own are None), or a fitted one, used as it is. Default: ``TVEPretrainer()``.
    side_features : transformer, optional
        E.g. ``AggregateFeatures(window=["30D", "365D"])``: fitted on X (given the
        database and table when its own are None), its output (median-imputed with
        missing indicators, mapped to normal scores) enters the head beside the embedding.
    side_estimator : estimator, optional
        E.g. ``HistGradientBoostingClassifier()``: fitted on the raw side features (in
        the head's target units: class indices, or the standardised target), its
        prediction becomes the network's starting point, and the network (encoder and
        head, whose last layer starts at zero) learns the correction. Training rows get
        out-of-fold predictions (folds grouped by timestamp), so the network does not
        learn to trust in-sample fits; validation starts from the side estimator alone,
        which is kept when no epoch improves on it. Needs ``side_features``.
    as_of : timestamp, optional
        Declared end of the data: rows of X after it are featurised as of it.
    stale_lags : list of time spans, optional
        Train on stale features too: each row of X (and of ``X_val``) is used once per
        lag, with its features taken as of its time minus the lag and its label
        unchanged (see :mod:`sktve.staleness`); include ``"0D"`` to keep the rows as
        given, e.g. ``["0D", "182D", "365D", "730D", "1095D"]``. For predictions whose
        data lags behind the row's time, such as RelBench's cut protocol (``as_of`` at
        the test timestamp, test rows up to 3 years past it). Every copy of a row falls
        on the same side of the early-stopping split; pre-training sees the rows as given.
        Default: the rows as given.
    hidden_dim : int, default=128
        Width of the head's hidden layer (and of the side-feature projection).
    dropout : float, default=0.3
        Dropout in the head (the encoder's is the pretrainer's ``dropout``).
    mask_rate : float, default=0.15
        Feature swap noise while fine-tuning, a regulariser: each input cell of each
        sampled node is, with this probability, replaced by the same column of another
        node of its table in the batch (pre-training's corruption,
        :class:`TVEPretrainer`'s ``mask_rate``), never from a donor stamped after the
        receiving row's time. Prediction and early stopping see clean inputs; 0 turns it
        off.
    max_epochs : int, default=40
    steps_per_epoch : int, default=50
        Cap on optimizer steps per epoch.
    batch_size : int, default=256
    learning_rate : float, default=1e-3
        Learning rate of the head (warm-up, then cosine decay).
    encoder_lr_scale : float, default=0.5
        The encoder's learning rate as a multiple of ``learning_rate``.
    weight_decay : float, default=1e-4
    patience : int, default=6
        Epochs without a better validation criterion (see ``scoring``) before stopping;
        the best epoch's weights are kept.
    validation_fraction : float, default=0.15
        Share of X's latest distinct timestamps held out for early stopping when no
        ``X_val`` is given to ``fit``.
    scoring : "loss", str or callable, default="loss"
        What early stopping watches on the held-out rows after each epoch: the training
        loss, or a scikit-learn scorer (a name such as ``"roc_auc"``, or a callable
        ``scorer(estimator, X, y)``) applied to the network's predictions for those rows,
        as ``HistGradientBoostingClassifier(scoring=...)`` does. The scorer is called on a
        stand-in estimator whose predictions are those rows' (the X it is given holds their
        entity ids and times).
    average_epochs : float, optional
        Keep an exponential moving average of the weights with a time constant of this
        many epochs; early stopping evaluates the averaged weights and the fitted network
        ends with them (training itself follows the raw weights). ``None``: no averaging.
    tve_weight : float, default=0.0
        Keep the pre-training objective while fine-tuning (``init="tve"`` only): each
        training step adds ``tve_weight`` times the TVE loss of the pre-training head on
        the batch's own task vectors (what happens to each training row's entity in the
        pre-training window after the row's time; with the task's window, the window its
        label covers). Early stopping watches the label loss alone, and predictions do
        not use the pre-training head. Costs one task-vector computation over X's
        training rows. ``0``: labels only. See :ref:`finetuning_tve_weight`.
    refit : bool, default=False
        When the rows for early stopping came from X, train again from the same start
        on every row of X, held-out rows included, for the best epoch's number of epochs
        (on the same learning-rate schedule). The held-out rows are X's latest, the
        closest to the rows being predicted; ``False`` keeps the first run's best
        weights (half the training time).
    recentre : bool, default=True
        Regression only (a classifier ignores it): after early stopping on rows held out
        from X, shift the predictions by the held-out rows' median residual (mean with
        squared error), so the network's level follows X's latest rows. Not applied with
        a user's ``X_val``, a ``side_estimator`` (refitted on every row before predict) or
        after a refit.
    probe_head : bool, default=False
        Linear probing, then fine-tuning: first train the head alone on the frozen
        encoder's embeddings (same optimizer settings, early stopping on the held-out
        loss), then fine-tune encoder and head together from there, keeping the probed
        model when no epoch of fine-tuning beats it on the held-out rows. Costs one pass
        of the encoder over (up to four epochs' worth of) the training rows.
    memory : str, Path or joblib.Memory, optional
        Caches pre-training (passed to the pretrainer): a grid search over fine-tuning
        parameters pre-trains once.
    n_jobs : int, optional
        CPU threads (None means 1, -1 all available cores); see TVEPretrainer.
    n_workers : int, default=1
        Data-parallel ``fit`` over this many spawned processes (gloo on CPU; NCCL and a
        GPU each with CUDA), each with ``max(1, n_jobs threads // n_workers)`` threads
        and the whole graph: each computes its shard of every batch, and gradients and
        validation losses are summed over them (``sktve.distributed``), for pre-training
        and fine-tuning alike. Under ``torchrun`` (an initialised process group) ``fit``
        trains over the group's ranks instead and this must stay 1.
    device : str, default="auto"
    random_state : int, optional
    verbose : bool, default=False

    Attributes
    ----------
    classes_ : ndarray
    pretrainer_ : TVEPretrainer or None
        The fitted pretrainer (None with ``init="random"``).
    side_features_ : transformer or None
        The fitted side-feature transformer.
    side_estimator_ : estimator or None
        The side estimator used at predict time.
    history_ : list of dict
        Per-epoch ``train_loss``, ``holdout_loss`` (the validation loss), ``seconds``,
        and ``holdout_score`` (the scorer's value) when ``scoring`` is not ``"loss"``.
    best_epoch_ : int
        The epoch whose weights early stopping chose (0: the starting weights).
    probe_epoch_ : int
        The probe's best epoch (0: none, or the head as initialised; see ``probe_head``).
    probe_history_ : list of dict
        The probe's per-epoch losses (empty without ``probe_head``).
    refit_epochs_ : int
        Epochs of the refit on every row of X (0 when there was none; see ``refit``).
    output_shift_ : float
        The shift ``recentre`` added to the standardised prediction (0 for classifiers).
    n_features_in_ : int
        Always 2 (entity id, time).

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve import TVEClassifier
    >>> from sktve.datasets import make_synthetic_database
    >>> db = make_synthetic_database(n_customers=100, n_orders=2000, random_state=0)
    >>> X = pd.DataFrame({"customer_id": list(range(40)) * 2,
    ...                   "timestamp": pd.to_datetime(["2021-05-01"] * 40 + ["2021-06-01"] * 40)})
    >>> y = [i % 2 for i in range(80)]
    >>> clf = TVEClassifier(database=db, entity_table="customers", init="random",
    ...                     max_epochs=2, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape
    (80, 2)
    """

    _is_classifier = True

    def _encode_targets(self, y: Any, n_rows: int, refit: bool = True) -> tuple[np.ndarray, int]:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != n_rows:
            raise ValueError(
                f"y must be 1-d with one label per row of X ({n_rows}); got shape {y.shape}."
            )
        if refit:
            check_classification_targets(y)
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"y has a single class ({self.classes_[0]!r}); a classifier needs two or more."
                )
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[index], y):
            raise ValueError(
                "y_val holds classes that y does not; give y_val from the same labels."
            )
        return index.astype(np.int64), len(self.classes_)

    def _loss(
        self, output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        if weight is None:
            return nn.functional.cross_entropy(output, target)
        return _weighted_mean(nn.functional.cross_entropy(output, target, reduction="none"), weight)

    def _output_bias(self, targets: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        # Start at the class priors, so the first steps do not have to learn them. Weights
        # are rescaled to the row count, so the +1 smoothing means the same with or without.
        if weights is not None:
            weights = weights * (len(weights) / weights.sum())
        counts = np.bincount(targets, weights=weights, minlength=len(self.classes_)) + 1.0
        return np.log(counts / counts.sum()).astype(np.float32)

    def _offset(self, model: Any, side: np.ndarray) -> np.ndarray:
        # Log-probabilities are logits; a class the model never saw in its fold gets a floor.
        out = np.full((len(side), len(self.classes_)), np.log(1e-6), dtype=np.float64)
        proba = model.predict_proba(side)
        out[:, np.asarray(model.classes_, dtype=np.int64)] = np.log(np.clip(proba, 1e-6, 1.0))
        return out.astype(np.float32)

    def _held_out_view(self, outputs: np.ndarray) -> _HeldOutClassifier:
        return _HeldOutClassifier(self, outputs)

    def _decision(self, logits: np.ndarray) -> np.ndarray:
        logits = logits.astype(np.float64)
        if len(self.classes_) == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    @staticmethod
    def _proba(logits: np.ndarray) -> np.ndarray:
        logits = logits.astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def _labels(self, logits: np.ndarray) -> np.ndarray:
        return self.classes_[logits.argmax(axis=1)]

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits (binary: the positive class's log-odds, shape (n_rows,))."""
        check_is_fitted(self, "head_state_")
        return self._decision(self._raw_output(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_rows, n_classes), columns in ``classes_`` order."""
        return self._proba(self._raw_output(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        check_is_fitted(self, "head_state_")
        return self._labels(self._raw_output(X))


class TVERegressor(RegressorMixin, _TVEFineTuner):
    """Regress on (entity, time) rows with a TVE-pre-trained encoder fine-tuned on the targets.

    The same estimator as :class:`TVEClassifier` with a regression loss; targets are
    standardised at fit (centre and scale frozen) and predictions mapped back.

    Parameters
    ----------
    loss : {"squared_error", "absolute_error"}, default="squared_error"
        Training loss (and early-stopping criterion unless ``scoring`` says otherwise).
        ``"absolute_error"`` predicts a conditional median, for MAE-scored tasks.
    integer_output : {"auto", True, False}, default="auto"
        Round predictions to the nearest integer. ``"auto"``: when ``loss`` is
        ``"absolute_error"`` and every training target is an integer (counts, say), since
        the median of an integer-valued target can always be taken as an integer, and
        between two integers the expected absolute error is linear, so a point between
        them is never better than both. Early stopping's loss sees the unrounded outputs;
        a ``scoring`` scorer sees what ``predict`` returns.
    **params
        Every other parameter as in :class:`TVEClassifier`.

    Examples
    --------
    >>> import pandas as pd
    >>> from sktve import TVERegressor
    >>> from sktve.datasets import make_synthetic_database
    >>> db = make_synthetic_database(n_customers=100, n_orders=2000, random_state=0)
    >>> X = pd.DataFrame({"customer_id": list(range(40)) * 2,
    ...                   "timestamp": pd.to_datetime(["2021-05-01"] * 40 + ["2021-06-01"] * 40)})
    >>> reg = TVERegressor(database=db, entity_table="customers", init="random",
    ...                    loss="absolute_error", max_epochs=2, random_state=0)
    >>> reg.fit(X, [float(i % 5) for i in range(80)]).predict(X).shape
    (80,)
    >>> bool(reg.integer_output_)  # integer targets and absolute error: integer predictions
    True

    Attributes
    ----------
    integer_output_ : bool
        Whether ``predict`` rounds to integers (see ``integer_output``).
    target_centre_, target_scale_ : float
        The standardisation of the targets (median or mean, and standard deviation).
    **attributes
        Every other attribute as in :class:`TVEClassifier` (but ``classes_``).
    """

    def __init__(
        self,
        *,
        loss: str = "squared_error",
        integer_output: str | bool = "auto",
        database: Any = None,
        entity_table: str | None = None,
        entity_col: str | None = None,
        time_col: str | None = None,
        init: str = "tve",
        pretrainer: TVEPretrainer | None = None,
        side_features: Any = None,
        side_estimator: Any = None,
        as_of: Any = None,
        stale_lags: Any = None,
        hidden_dim: int = 128,
        dropout: float = 0.3,
        mask_rate: float = 0.15,
        max_epochs: int = 40,
        steps_per_epoch: int = 50,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        encoder_lr_scale: float = 0.5,
        weight_decay: float = 1e-4,
        patience: int = 6,
        validation_fraction: float = 0.15,
        scoring: Any = "loss",
        average_epochs: float | None = None,
        tve_weight: float = 0.0,
        refit: bool = False,
        recentre: bool = True,
        probe_head: bool = False,
        memory: Any = None,
        n_jobs: int | None = None,
        n_workers: int = 1,
        device: str = "auto",
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.loss = loss
        self.integer_output = integer_output
        self.database = database
        self.entity_table = entity_table
        self.entity_col = entity_col
        self.time_col = time_col
        self.init = init
        self.pretrainer = pretrainer
        self.side_features = side_features
        self.side_estimator = side_estimator
        self.as_of = as_of
        self.stale_lags = stale_lags
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.mask_rate = mask_rate
        self.max_epochs = max_epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.encoder_lr_scale = encoder_lr_scale
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.scoring = scoring
        self.average_epochs = average_epochs
        self.tve_weight = tve_weight
        self.refit = refit
        self.recentre = recentre
        self.probe_head = probe_head
        self.memory = memory
        self.n_jobs = n_jobs
        self.n_workers = n_workers
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self) -> None:
        super()._check_params()
        if self.loss not in ("squared_error", "absolute_error"):
            raise ValueError(
                f"loss must be 'squared_error' or 'absolute_error', got {self.loss!r}."
            )
        if not (isinstance(self.integer_output, bool | np.bool_) or self.integer_output == "auto"):
            raise ValueError(
                f"integer_output must be 'auto', True or False, got {self.integer_output!r}."
            )

    def _encode_targets(self, y: Any, n_rows: int, refit: bool = True) -> tuple[np.ndarray, int]:
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"y must be numeric for a regressor ({err}).") from err
        if y.ndim != 1 or len(y) != n_rows:
            raise ValueError(
                f"y must be 1-d with one target per row of X ({n_rows}); got shape {y.shape}."
            )
        if not np.isfinite(y).all():
            raise ValueError(
                f"y has {int((~np.isfinite(y)).sum())} NaN or infinite targets; drop or fill them."
            )
        if refit:
            if self.integer_output == "auto":
                integers = bool(np.array_equal(y, np.round(y)))
                self.integer_output_ = self.loss == "absolute_error" and integers
            else:
                self.integer_output_ = bool(self.integer_output)
            centre = np.median(y) if self.loss == "absolute_error" else y.mean()
            scale = y.std()
            self.target_centre_ = float(centre)
            self.target_scale_ = float(scale) if scale > 0 else 1.0
        scaled = (y - self.target_centre_) / self.target_scale_
        return scaled.astype(np.float32).reshape(-1, 1), 1

    def _loss(
        self, output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        loss = nn.functional.l1_loss if self.loss == "absolute_error" else nn.functional.mse_loss
        if weight is None:
            return loss(output, target)
        return _weighted_mean(loss(output, target, reduction="none")[:, 0], weight)

    def _output_bias(self, targets: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.asarray([self._centre(targets[:, 0], weights)], dtype=np.float32)

    def _centre(self, values: np.ndarray, weights: np.ndarray | None) -> float:
        """The loss's own centre of ``values``: the (weighted) median or mean."""
        if self.loss == "absolute_error":
            return float(
                np.median(values) if weights is None else _weighted_median(values, weights)
            )
        return float(np.average(values, weights=weights))

    def _offset(self, model: Any, side: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(side), dtype=np.float32).reshape(-1, 1)

    def _output_shift(
        self, outputs: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None
    ) -> float:
        residual = targets[:, 0].astype(np.float64) - outputs[:, 0]
        return self._centre(residual, weights)

    def _held_out_view(self, outputs: np.ndarray) -> _HeldOutRegressor:
        return _HeldOutRegressor(self, outputs)

    def _targets_from(self, outputs: np.ndarray, shift: float = 0.0) -> np.ndarray:
        """Standardised head outputs (plus ``shift``) in the target's units."""
        out = (outputs[:, 0].astype(np.float64) + shift) * self.target_scale_
        out += self.target_centre_
        # Fitted before the integer option existed: no rounding.
        return np.rint(out) if getattr(self, "integer_output_", False) else out

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shape (n_rows,)."""
        return self._targets_from(self._raw_output(X), getattr(self, "output_shift_", 0.0))


class _HeldOutClassifier(ClassifierMixin, BaseEstimator):
    """What ``scoring`` is called on during training: a classifier whose predictions are
    the network's current outputs on the held-out rows (whatever X the scorer passes)."""

    def __init__(self, owner: TVEClassifier, outputs: np.ndarray) -> None:
        self.owner = owner
        self.outputs = outputs

    @property
    def classes_(self) -> np.ndarray:
        return self.owner.classes_

    def decision_function(self, X: Any) -> np.ndarray:
        return self.owner._decision(self.outputs)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.owner._proba(self.outputs)

    def predict(self, X: Any) -> np.ndarray:
        return self.owner._labels(self.outputs)


class _HeldOutRegressor(RegressorMixin, BaseEstimator):
    """The regressor's counterpart of :class:`_HeldOutClassifier`."""

    def __init__(self, owner: TVERegressor, outputs: np.ndarray) -> None:
        self.owner = owner
        self.outputs = outputs

    def predict(self, X: Any) -> np.ndarray:
        return self.owner._targets_from(self.outputs)


def _warn_copies_before_start(times: np.ndarray, database: Database) -> None:
    """Say how many stale copies of rows were moved before the data starts."""
    n_early = count_before_start(times, database)
    if n_early:
        warnings.warn(
            f"{n_early} of the {len(times)} stale copies of X's rows (stale_lags) have times "
            f"before the database starts ({database.min_timestamp}); they train on features "
            "that see no history.",
            UserWarning,
            stacklevel=4,
        )


def _fit_in_rank(
    estimator: _TVEFineTuner,
    shipped: tuple,
    X: Any,
    y: Any,
    X_val: Any,
    y_val: Any,
    sample_weight: Any = None,
) -> _TVEFineTuner:
    """In a spawned rank: attach the shipped database, then fit over the group."""
    attach_shipped(*shipped)
    return estimator.fit(X, y, X_val, y_val, sample_weight=sample_weight)
