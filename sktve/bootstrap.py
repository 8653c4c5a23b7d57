"""How sure is a score? Bootstrap intervals for a metric and for the difference of two models.

A val or test split of a relational task holds few entities: rel-f1's driver tasks score
500-760 rows of 42-56 drivers. Rows of one entity are not independent draws, so the
resampling unit is the entity (a cluster bootstrap): each replicate draws entities with
replacement and keeps all of their rows. Two models scored on the same rows are compared
*paired*: both are rescored on each replicate, so the noise they share cancels.

Every replicate is a weight vector over the rows (how many times its entity was drawn);
weighted ROC AUC and weighted absolute error are computed for blocks of replicates at
once, after one sort of the scores, so a thousand replicates cost a few matrix products.

Examples
--------
>>> import numpy as np
>>> from sktve.bootstrap import metric_interval, paired_difference
>>> rng = np.random.default_rng(0)
>>> groups = np.repeat(np.arange(40), 10)          # 40 entities, 10 rows each
>>> y = (rng.random(400) < 0.3).astype(int)
>>> good = y + rng.normal(0, 1.0, 400)             # two models' scores
>>> weak = y + rng.normal(0, 2.0, 400)
>>> interval = metric_interval(y, good, "roc_auc", groups=groups, random_state=0)
>>> interval["low"] < interval["value"] < interval["high"]
True
>>> diff = paired_difference(y, good, weak, "roc_auc", groups=groups, random_state=0)
>>> diff["difference"] > 0 and diff["share_first_better"] > 0.9
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["METRICS", "metric_interval", "paired_difference", "replicate_metric"]

#: Metrics this module resamples, with whether higher is better.
METRICS: dict[str, bool] = {"roc_auc": True, "mae": False}

#: Replicate weights held at once: blocks of replicates keep memory flat on large splits.
_BLOCK_CELLS = 4_000_000


def _check_inputs(y_true: Any, scores: list[Any], metric: str, groups: Any) -> tuple:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}.")
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    if len(y) == 0:
        raise ValueError("y_true is empty: give the labels of at least one row.")
    arrays = []
    for score in scores:
        s = np.asarray(score, dtype=np.float64).reshape(-1)
        if len(s) != len(y):
            raise ValueError(
                f"scores have {len(s)} rows but y_true has {len(y)}; give one score per row."
            )
        if not np.isfinite(s).all():
            raise ValueError(f"scores hold {int((~np.isfinite(s)).sum())} NaN or infinite values.")
        arrays.append(s)
    if not np.isfinite(y).all():
        raise ValueError(f"y_true holds {int((~np.isfinite(y)).sum())} NaN or infinite labels.")
    if metric == "roc_auc":
        values = np.unique(y)
        if not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(
                f"roc_auc needs binary labels 0/1 (or False/True); got values {values[:5]}."
            )
        if len(values) < 2:
            raise ValueError("roc_auc needs both classes in y_true; it holds one class only.")
    if groups is None:
        inverse = np.arange(len(y))
    else:
        groups = np.asarray(groups).reshape(-1)
        if len(groups) != len(y):
            raise ValueError(
                f"groups has {len(groups)} entries but y_true has {len(y)}; give one per row."
            )
        _, inverse = np.unique(groups, return_inverse=True)
    return y, arrays, inverse


def _replicate_weights(
    inverse: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_resamples, n_rows) weights: how often each row's group was drawn."""
    n_groups = int(inverse.max()) + 1
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_resamples)
    return counts[:, inverse].astype(np.float64)


class _Scorer:
    """One model's scores, prepared once (sorted, for AUROC) and scored under weight blocks."""

    def __init__(self, y: np.ndarray, scores: np.ndarray, metric: str) -> None:
        self.metric = metric
        if metric == "mae":
            self.errors = np.abs(y - scores)
            return
        self.order = np.argsort(scores, kind="stable")
        ranked = scores[self.order]
        # One group per distinct score: tied rows share their comparisons half and half.
        self.starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
        self.positive = y[self.order] == 1.0

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.metric == "mae":
                return weights @ self.errors / weights.sum(axis=1)
            # Weighted Mann-Whitney statistic: per distinct score, the positives' weight
            # times the negatives' weight below it, ties counting half.
            w = weights[:, self.order]
            pos = np.add.reduceat(w * self.positive, self.starts, axis=1)
            neg = np.add.reduceat(w * ~self.positive, self.starts, axis=1)
            below = np.cumsum(neg, axis=1) - neg
            pairs = pos.sum(axis=1) * neg.sum(axis=1)
            return (pos * (below + 0.5 * neg)).sum(axis=1) / pairs


def replicate_metric(y_true: Any, y_score: Any, metric: str, weights: np.ndarray) -> np.ndarray:
    """``metric`` of ``y_score`` under each row of ``weights`` (one replicate per row).

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        Labels (0/1 for ``"roc_auc"``) or targets (``"mae"``).
    y_score : array-like of shape (n_rows,)
        Scores (``"roc_auc"``: any monotone score, ties count half) or predictions.
    metric : {"roc_auc", "mae"}
    weights : ndarray of shape (n_replicates, n_rows)
        Non-negative row weights; integer weights equal repeating the rows.

    Returns
    -------
    ndarray of shape (n_replicates,)
        NaN where a replicate has no weight (``"roc_auc"``: no weight on one class).
    """
    y, (s,), _ = _check_inputs(y_true, [y_score], metric, None)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weights.shape[1] != len(y):
        raise ValueError(f"weights have {weights.shape[1]} columns for {len(y)} rows.")
    return _Scorer(y, s, metric)(weights)


def _replicates(y, arrays, metric, inverse, n_resamples, random_state) -> list[np.ndarray]:
    """Each array's metric on the same ``n_resamples`` cluster replicates."""
    rng = np.random.default_rng(random_state)
    block = max(1, _BLOCK_CELLS // len(y))
    scorers = [_Scorer(y, s, metric) for s in arrays]  # sorted once, not once per block
    out: list[list[np.ndarray]] = [[] for _ in arrays]
    for first in range(0, n_resamples, block):
        weights = _replicate_weights(inverse, min(block, n_resamples - first), rng)
        for i, scorer in enumerate(scorers):
            out[i].append(scorer(weights))
    return [np.concatenate(parts) for parts in out]


def _check_resampling(n_resamples: int, confidence: float) -> None:
    if not isinstance(n_resamples, int | np.integer) or isinstance(n_resamples, bool):
        raise ValueError(f"n_resamples must be an integer >= 2, got {n_resamples!r}.")
    if n_resamples < 2:
        raise ValueError(f"n_resamples must be an integer >= 2, got {n_resamples!r}.")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")


def _summary(values: np.ndarray, confidence: float) -> dict[str, Any]:
    kept = values[np.isfinite(values)]
    if len(kept) < 2:
        raise ValueError(
            "fewer than two bootstrap replicates could be scored (each needs both classes "
            "for roc_auc); give more rows or more groups."
        )
    tail = (1.0 - float(confidence)) / 2.0
    low, high = np.quantile(kept, [tail, 1.0 - tail])
    return {
        "se": float(kept.std(ddof=1)),
        "low": float(low),
        "high": float(high),
        "n_resamples": int(len(kept)),
    }


def metric_interval(
    y_true: Any,
    y_score: Any,
    metric: str,
    *,
    groups: Any = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> dict[str, Any]:
    """The metric on the rows given, with a bootstrap standard error and percentile interval.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        Labels (0/1 for ``"roc_auc"``) or regression targets (``"mae"``).
    y_score : array-like of shape (n_rows,)
        Positive-class scores or predictions.
    metric : {"roc_auc", "mae"}
        ROC AUC (ties count half, as scikit-learn's) or mean absolute error.
    groups : array-like of shape (n_rows,), optional
        The entity of each row: replicates draw entities, keeping all their rows. Give
        it whenever an entity has several rows (a driver at 30 timestamps). Default:
        rows are drawn one by one.
    n_resamples : int, default=1000
    confidence : float, default=0.95
        Coverage of the percentile interval.
    random_state : int or None, default=0
        Seeds the resampling (the same seed gives the same interval).

    Returns
    -------
    dict
        ``metric``, ``value`` (on the rows as given), ``se`` (standard deviation of the
        replicates), ``low`` / ``high`` (the interval), ``confidence``, ``n_resamples``
        (replicates scored), ``n_groups`` and ``n_rows``.
    """
    _check_resampling(n_resamples, confidence)
    y, arrays, inverse = _check_inputs(y_true, [y_score], metric, groups)
    value = float(_Scorer(y, arrays[0], metric)(np.ones((1, len(y))))[0])
    (values,) = _replicates(y, arrays, metric, inverse, int(n_resamples), random_state)
    return {
        "metric": metric,
        "value": value,
        **_summary(values, confidence),
        "confidence": float(confidence),
        "n_groups": int(inverse.max()) + 1,
        "n_rows": len(y),
    }


def paired_difference(
    y_true: Any,
    first_score: Any,
    second_score: Any,
    metric: str,
    *,
    groups: Any = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> dict[str, Any]:
    """The metric of ``first_score`` minus that of ``second_score``, paired over replicates.

    Both models are rescored on every replicate, so the difference's interval is much
    narrower than the two separate intervals suggest when the models err on the same rows.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
    first_score, second_score : array-like of shape (n_rows,)
        Two models' scores or predictions on the same rows.
    metric : {"roc_auc", "mae"}
    groups, n_resamples, confidence, random_state
        As in :func:`metric_interval`.

    Returns
    -------
    dict
        ``metric``, ``difference`` (first minus second, on the rows as given), ``se``,
        ``low`` / ``high``, ``share_first_better`` (fraction of replicates where the first
        model is better: higher AUROC, lower MAE; ties count half), ``confidence``,
        ``n_resamples``, ``n_groups`` and ``n_rows``.
    """
    _check_resampling(n_resamples, confidence)
    y, arrays, inverse = _check_inputs(y_true, [first_score, second_score], metric, groups)
    ones = np.ones((1, len(y)))
    first, second = (float(_Scorer(y, a, metric)(ones)[0]) for a in arrays)
    a, b = _replicates(y, arrays, metric, inverse, int(n_resamples), random_state)
    differences = a - b
    finite = np.isfinite(differences)
    signed = differences[finite] * (1.0 if METRICS[metric] else -1.0)
    share = float(((signed > 0) + 0.5 * (signed == 0)).mean()) if finite.any() else float("nan")
    return {
        "metric": metric,
        "difference": first - second,
        **_summary(differences, confidence),
        "share_first_better": share,
        "confidence": float(confidence),
        "n_groups": int(inverse.max()) + 1,
        "n_rows": len(y),
    }
