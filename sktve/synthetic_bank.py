"""A third synthetic schema with planted signal: a retail bank's card accounts.

Accounts (opened over time, some referred by an earlier account) pay merchants, log in,
and dispute some of their payments. It differs from the shop and the library in the ways
real databases differ from both:

- the entity table has a time column (``accounts.opened_at``): accounts appear over time;
- a self-referencing foreign key (``accounts.referrer_id``, mostly null);
- the table that decides one task, ``disputes``, has no key to the entity: it references a
  transaction, so it is two hops from the account;
- the strongest signal of that task is short-lived: an account that is taken over first
  shows a burst of failed logins, then a few online payments at risky merchants that are
  disputed days to weeks later, so the last weeks' logins matter more than the history;
- signal at the merchants' side: some merchants turn bad at some time, after which many
  of their payments are disputed, whoever made them.

Every account also has latent traits: a spending rate that drifts with rare jumps to a
new level (and pay-day peaks at the start of each month), a ticket size, a preferred
category, a propensity to complain and a dormancy time after which it (almost) stops
paying, fading over the two months before. Referred accounts resemble their referrer.

:func:`make_bank_dataset` writes the database as a RelBench 3 folder with two forecast
tasks (``account-dispute`` and ``account-outflow``, see :func:`bank_tasks`), offline. Like
the library, the schema was written to check the library's defaults on data they were not
tuned for, not for any model.

Generation is vectorised numpy: loops run over weeks or over the handful of categories,
never over rows.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sktve._task_sql import label_select

__all__ = ["bank_tasks", "make_bank_database", "make_bank_dataset"]

# --------------------------------------------------------------------------- vocabularies
_CATEGORIES = ("groceries", "fuel", "restaurants", "travel", "electronics", "fashion", "utilities")
_CATEGORY_P = np.array([0.3, 0.15, 0.2, 0.07, 0.08, 0.12, 0.08])
# Typical payment per category (log-normal around it).
_CATEGORY_AMOUNT = np.array([45.0, 55.0, 35.0, 320.0, 260.0, 90.0, 110.0])
_PRODUCTS = ("checking", "savings", "business", "student")
_PRODUCT_P = np.array([0.55, 0.15, 0.15, 0.15])
# Product effects on the log spending rate and the log ticket size.
_PRODUCT_RATE = np.array([0.0, -0.8, 0.6, 0.1])
_PRODUCT_TICKET = np.array([0.0, 0.2, 0.6, -0.5])
_PRODUCT_AGE = np.array([[41.0, 13.0], [55.0, 14.0], [46.0, 10.0], [21.0, 2.0]])
_REGIONS = ("capital", "north", "south", "coast", "mountains")
_BRANCH_KINDS = ("urban", "rural", "online")
_COUNTRIES = ("domestic", "EU", "US", "asia", "other")
_COUNTRY_P = np.array([0.7, 0.12, 0.08, 0.06, 0.04])
_CHANNELS = ("card", "online", "contactless")
_DEVICES = ("mobile", "web")
_REASONS = ("fraud", "not received", "wrong amount")

_SCHEMA: dict[str, dict[str, Any]] = {
    "branches": {"pkey": "branch_id", "time_col": None, "fkeys": {}},
    "accounts": {
        "pkey": "account_id",
        "time_col": "opened_at",
        "fkeys": {"branch_id": "branches", "referrer_id": "accounts"},
    },
    "merchants": {"pkey": "merchant_id", "time_col": None, "fkeys": {}},
    "transactions": {
        "pkey": "tx_id",
        "time_col": "tx_time",
        "fkeys": {"account_id": "accounts", "merchant_id": "merchants"},
    },
    "disputes": {
        "pkey": "dispute_id",
        "time_col": "dispute_time",
        "fkeys": {"tx_id": "transactions"},
    },
    "logins": {
        "pkey": "login_id",
        "time_col": "login_time",
        "fkeys": {"account_id": "accounts"},
    },
}

# One row per (account, cutoff) for accounts that paid in the 90 days up to the cutoff.
_ACTIVE_CTE = """WITH active AS (
    SELECT DISTINCT t.timestamp, x.account_id
    FROM timestamps t
    JOIN transactions x
      ON x.tx_time > t.timestamp - INTERVAL '90 days'
     AND x.tx_time <= t.timestamp
    WHERE x.account_id IS NOT NULL
)
"""

DISPUTE_SQL = (
    _ACTIVE_CTE
    + """, future AS (
    SELECT DISTINCT t.timestamp, x.account_id
    FROM timestamps t
    JOIN disputes d
      ON d.dispute_time > t.timestamp
     AND d.dispute_time <= t.timestamp + INTERVAL '{timedelta}'
    JOIN transactions x ON x.tx_id = d.tx_id
)
"""
    + label_select("account_id", "CAST(f.account_id IS NOT NULL AS BIGINT)", "dispute")
)

# Each account's payments in the window after each cutoff: their sum and their number.
_PAYMENTS_CTE = """, future AS (
    SELECT t.timestamp, x.account_id, SUM(x.amount) AS outflow, COUNT(*) AS n_payments
    FROM timestamps t
    JOIN transactions x
      ON x.tx_time > t.timestamp
     AND x.tx_time <= t.timestamp + INTERVAL '{timedelta}'
    GROUP BY t.timestamp, x.account_id
)
"""

OUTFLOW_SQL = (
    _ACTIVE_CTE
    + _PAYMENTS_CTE
    + label_select("account_id", "CAST(COALESCE(f.outflow, 0.0) AS DOUBLE)", "outflow")
)

# Not one of the bank's tasks: the count regression of bench_quality_synthetic --count-tasks.
PAYMENTS_SQL = (
    _ACTIVE_CTE
    + _PAYMENTS_CTE
    + label_select("account_id", "CAST(COALESCE(f.n_payments, 0) AS DOUBLE)", "n_payments")
)


def _by_time(ns: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """``ns`` and ``columns`` reordered by time (stable), as RelBench wants its fact tables."""
    order = np.argsort(ns, kind="stable")
    return (ns[order],) + tuple(c[order] for c in columns)


def _generate(
    n_accounts: int,
    n_transactions: int,
    n_merchants: int,
    n_branches: int,
    start: pd.Timestamp,
    end_excl: pd.Timestamp,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    from sktve.datasets import _draw_cells, _objects, _sigmoid, _to_time, _weeks

    n_cat = len(_CATEGORIES)
    day = pd.Timedelta(days=1).value
    second = 1_000_000_000

    # ------------------------------------------------------------------ branches
    branch_kind = rng.integers(0, len(_BRANCH_KINDS), n_branches)
    branches = pd.DataFrame(
        {
            "branch_id": np.arange(n_branches, dtype=np.int64),
            "region": pd.Series(
                _objects(_REGIONS, rng.integers(0, len(_REGIONS), n_branches)), dtype=object
            ),
            "kind": pd.Series(_objects(_BRANCH_KINDS, branch_kind), dtype=object),
        }
    )

    # ------------------------------------------------------------------ merchants
    # The first n_cat merchants cover every category. Some merchants turn bad at a random
    # time: from then on many of their payments are disputed as never received.
    category = np.concatenate(
        [np.arange(n_cat), rng.choice(n_cat, max(0, n_merchants - n_cat), p=_CATEGORY_P)]
    )[:n_merchants]
    popularity = rng.normal(0.0, 1.0, n_merchants)
    country = rng.choice(len(_COUNTRIES), n_merchants, p=_COUNTRY_P)
    bad_from = np.full(n_merchants, np.iinfo(np.int64).max, dtype=np.int64)
    turns_bad = rng.random(n_merchants) < 0.1
    bad_from[turns_bad] = rng.integers(start.value, end_excl.value, int(turns_bad.sum()))
    merchants = pd.DataFrame(
        {
            "merchant_id": np.arange(n_merchants, dtype=np.int64),
            "category": pd.Series(_objects(_CATEGORIES, category), dtype=object),
            "country": pd.Series(_objects(_COUNTRIES, country), dtype=object),
        }
    )

    # ------------------------------------------------------------------ accounts
    # Accounts open from two years before the data starts to three months before its end;
    # ids follow the opening order (RelBench: keys in row order, sorted by time).
    opened_ns = np.sort(
        rng.integers(start.value - 730 * day, end_excl.value - 90 * day, n_accounts)
    )
    opened_ns -= opened_ns % second
    product = rng.choice(len(_PRODUCTS), size=n_accounts, p=_PRODUCT_P)
    # 40% were referred by an account opened before them (its id is smaller); a referred
    # account's spending rate and complaint propensity resemble its referrer's.
    referred = (rng.random(n_accounts) < 0.4) & (np.arange(n_accounts) > 0)
    referrer = np.where(
        referred, (rng.random(n_accounts) * np.arange(n_accounts)).astype(np.int64), -1
    )
    own_rate = rng.normal(size=n_accounts)
    own_complain = rng.normal(size=n_accounts)
    # The resemblance follows referral chains: iterate to the fixed point, one pass per
    # link of the longest chain (a handful), since a referrer's id is below the referred's.
    has_ref = referrer >= 0
    parent = np.maximum(referrer, 0)
    own_weight = np.where(has_ref, 0.8, 1.0)
    appetite, complain = own_rate, own_complain
    while True:
        new_appetite = np.where(has_ref, 0.6 * appetite[parent], 0.0) + own_weight * own_rate
        new_complain = np.where(has_ref, 0.6 * complain[parent], 0.0) + own_weight * own_complain
        if np.array_equal(new_appetite, appetite) and np.array_equal(new_complain, complain):
            break
        appetite, complain = new_appetite, new_complain
    ticket = 0.4 * rng.normal(size=n_accounts) + _PRODUCT_TICKET[product]
    preferred = rng.choice(n_cat, size=n_accounts, p=_CATEGORY_P)
    online_pref = rng.beta(2.0, 5.0, n_accounts)
    age = np.clip(
        np.round(_PRODUCT_AGE[product, 0] + _PRODUCT_AGE[product, 1] * rng.normal(size=n_accounts)),
        16,
        95,
    ).astype(np.float64)
    age[rng.random(n_accounts) < 0.05] = np.nan
    active_from = np.maximum(opened_ns, start.value)
    # Dormancy: keen and content accounts stay active longer.
    dormant_mean_days = 700.0 * np.exp(0.4 * appetite - 0.3 * complain)
    dormant_ns = active_from + (rng.exponential(1.0, n_accounts) * dormant_mean_days * day).astype(
        np.int64
    )
    accounts = pd.DataFrame(
        {
            "account_id": np.arange(n_accounts, dtype=np.int64),
            "branch_id": rng.integers(0, n_branches, n_accounts).astype(np.int64),
            "referrer_id": pd.array(np.where(referred, referrer, 0), dtype="Int64"),
            "opened_at": _to_time(opened_ns),
            "product": pd.Series(_objects(_PRODUCTS, product), dtype=object),
            "age": age,
        }
    )
    accounts.loc[~referred, "referrer_id"] = pd.NA

    # ------------------------------------------------------------------ account takeovers
    # Two accounts in five are taken over once, at a random time while active: 3-10
    # failed logins over the week before, then 2-6 online payments at foreign merchants in
    # the following week, most of them disputed as fraud 2-20 days later.
    taken = np.flatnonzero(rng.random(n_accounts) < 0.4)
    lo, hi = active_from[taken], np.minimum(dormant_ns[taken], end_excl.value)
    keep = hi - lo > 14 * day
    taken, lo, hi = taken[keep], lo[keep], hi[keep]
    takeover_ns = lo + (rng.random(len(taken)) * (hi - lo)).astype(np.int64)
    n_fraud_each = rng.integers(2, 7, len(taken))
    n_fraud = int(min(n_fraud_each.sum(), n_transactions // 5))
    fraud_account = np.repeat(taken, n_fraud_each)[:n_fraud]
    fraud_ns = np.repeat(takeover_ns, n_fraud_each)[:n_fraud] + (
        rng.random(n_fraud) * 7 * day
    ).astype(np.int64)
    foreign = np.flatnonzero(country != 0)
    foreign = foreign if len(foreign) else np.arange(n_merchants)
    fraud_merchant = foreign[rng.integers(0, len(foreign), n_fraud)]
    n_burst = rng.integers(3, 11, len(taken))
    burst_account = np.repeat(taken, n_burst)
    burst_ns = np.repeat(takeover_ns, n_burst) - (rng.random(int(n_burst.sum())) * 7 * day).astype(
        np.int64
    )

    # ------------------------------------------------------------------ payment intensities
    # Weekly intensity per account: base rate x a mean-reverting walk with rare regime
    # jumps x a pay-day peak (weeks holding a month's first days), zero before opening,
    # fading over the two months before dormancy and nearly zero after it.
    week_start, week_len = _weeks(start, end_excl)
    n_weeks = len(week_start)
    base = 0.8 * appetite + _PRODUCT_RATE[product]
    first_days = pd.DatetimeIndex(_to_time(week_start)).day.to_numpy() <= 7
    weights = np.empty((n_accounts, n_weeks), dtype=np.float32)
    walk = rng.normal(0.0, 0.3, n_accounts)
    fade = 60 * day
    for k in range(n_weeks):
        jump = rng.random(n_accounts) < 0.02
        walk = np.where(
            jump, rng.normal(0.0, 0.7, n_accounts), 0.92 * walk + rng.normal(0.0, 0.1, n_accounts)
        )
        t = week_start[k]
        to_dormant = dormant_ns - t
        dormant_factor = np.where(
            to_dormant <= 0, 0.01, np.exp(-2.5 * np.clip(fade - to_dormant, 0, None) / fade)
        )
        w = np.exp(base + walk + 0.3 * first_days[k]) * dormant_factor * (opened_ns <= t)
        weights[:, k] = w * (week_len[k] / (7 * day))
    n_regular = n_transactions - n_fraud
    cell = _draw_cells(weights, n_regular, rng)
    account = (cell // n_weeks).astype(np.int64)
    week = cell % n_weeks
    tx_ns = week_start[week] + (rng.random(n_regular) * week_len[week]).astype(np.int64)
    # Logins: about one per payment for each account, plus a 3% background of failures.
    login_cell = _draw_cells(weights, n_regular, rng)
    del weights, cell
    login_account = (login_cell // n_weeks).astype(np.int64)
    login_week = login_cell % n_weeks
    login_ns = week_start[login_week] + (rng.random(n_regular) * week_len[login_week]).astype(
        np.int64
    )
    del login_cell, login_week

    # ------------------------------------------------------------------ payment contents
    # 60% of payments are in the account's preferred category; within a category, popular
    # merchants are picked more (a rank drawn as u ** 2 on merchants by popularity).
    own = rng.random(n_regular) < 0.6
    tx_cat = np.where(own, preferred[account], rng.choice(n_cat, n_regular, p=_CATEGORY_P))
    by_pop = np.lexsort((-popularity, category))
    cat_start = np.searchsorted(category[by_pop], np.arange(n_cat))
    cat_count = np.bincount(category, minlength=n_cat)
    rank = (rng.random(n_regular) ** 2 * cat_count[tx_cat]).astype(np.int64)
    merchant = by_pop[cat_start[tx_cat] + np.minimum(rank, cat_count[tx_cat] - 1)].astype(np.int64)
    del own, rank, tx_cat
    channel = np.where(
        rng.random(n_regular) < online_pref[account],
        1,
        np.where(rng.random(n_regular) < 0.5, 0, 2),
    )
    amount = _CATEGORY_AMOUNT[category[merchant]] * np.exp(
        ticket[account] + 0.6 * rng.normal(size=n_regular)
    )
    fraud_amount = _CATEGORY_AMOUNT[category[fraud_merchant]] * np.exp(
        0.8 + 0.5 * rng.normal(size=n_fraud)
    )
    is_fraud = np.concatenate([np.zeros(n_regular, bool), np.ones(n_fraud, bool)])
    tx_ns, account, merchant, channel, amount, is_fraud = _by_time(
        np.concatenate([tx_ns, fraud_ns]),
        np.concatenate([account, fraud_account]),
        np.concatenate([merchant, fraud_merchant]),
        np.concatenate([channel, np.ones(n_fraud, np.int64)]),
        np.concatenate([amount, fraud_amount]),
        is_fraud,
    )
    # Takeover payments can fall past the end of the data: drop them (and keep the rest).
    keep = tx_ns < end_excl.value
    tx_ns, account, merchant, channel, amount, is_fraud = (
        a[keep] for a in (tx_ns, account, merchant, channel, amount, is_fraud)
    )
    tx_ns -= tx_ns % second
    n_tx = len(tx_ns)
    transactions = pd.DataFrame(
        {
            "tx_id": np.arange(n_tx, dtype=np.int64),
            "account_id": account,
            "merchant_id": merchant,
            "tx_time": _to_time(tx_ns),
            "amount": np.round(amount, 2),
            "channel": pd.Series(_objects(_CHANNELS, channel), dtype=object),
        }
    )

    # ------------------------------------------------------------------ disputes
    # Three causes, one dispute per payment at most (the first cause wins): takeover
    # payments (90%, 2-20 days later), payments at a merchant gone bad (35%, 5-40 days
    # later), and complaints, driven by the account's propensity (about 4%, 3-30 days).
    u = rng.random(n_tx)
    at_bad = tx_ns >= bad_from[merchant]
    p_complain = _sigmoid(-3.5 + 1.2 * complain[account])
    reason = np.full(n_tx, -1, dtype=np.int64)
    reason[(~is_fraud) & (u < p_complain)] = 2
    reason[(~is_fraud) & at_bad & (u < 0.35)] = 1
    reason[is_fraud & (u < 0.9)] = 0
    lag_days = np.select(
        [reason == 0, reason == 1],
        [rng.uniform(2, 20, n_tx), rng.uniform(5, 40, n_tx)],
        rng.uniform(3, 30, n_tx),
    )
    disputed = np.flatnonzero(reason >= 0)
    dispute_ns = tx_ns[disputed] + (lag_days[disputed] * day).astype(np.int64)
    dispute_ns -= dispute_ns % second
    keep = dispute_ns < end_excl.value
    dispute_ns, disputed = _by_time(dispute_ns[keep], disputed[keep])
    disputes = pd.DataFrame(
        {
            "dispute_id": np.arange(len(disputed), dtype=np.int64),
            "tx_id": disputed.astype(np.int64),
            "dispute_time": _to_time(dispute_ns),
            "reason": pd.Series(_objects(_REASONS, reason[disputed]), dtype=object),
        }
    )

    # ------------------------------------------------------------------ logins
    keep = (burst_ns >= np.maximum(opened_ns[burst_account], start.value)) & (
        burst_ns < end_excl.value
    )
    login_ns, login_account, failed = _by_time(
        np.concatenate([login_ns, burst_ns[keep]]),
        np.concatenate([login_account, burst_account[keep]]),
        np.concatenate([rng.random(n_regular) < 0.03, np.ones(int(keep.sum()), bool)]),
    )
    login_ns -= login_ns % second
    logins = pd.DataFrame(
        {
            "login_id": np.arange(len(login_ns), dtype=np.int64),
            "account_id": login_account,
            "login_time": _to_time(login_ns),
            "device": pd.Series(
                _objects(_DEVICES, (rng.random(len(login_ns)) < 0.35).astype(np.int64)),
                dtype=object,
            ),
            "success": ~failed,
        }
    )
    return {
        "branches": branches,
        "accounts": accounts,
        "merchants": merchants,
        "transactions": transactions,
        "disputes": disputes,
        "logins": logins,
    }


def make_bank_database(
    n_accounts: int = 300,
    n_transactions: int = 6000,
    *,
    n_merchants: int | None = None,
    n_branches: int | None = None,
    start: Any = "2020-01-01",
    end: Any = "2023-12-31",
    random_state: int | np.random.Generator | None = 0,
    as_frames: bool = False,
) -> Any:
    """Generate a synthetic bank database in which account behaviour is predictable.

    Tables (keys are ``0..n-1`` in row order, tables with a time column sorted by it):

    - ``branches`` (static): ``branch_id``, ``region``, ``kind`` (urban, rural, online);
    - ``accounts`` (time column ``opened_at``: accounts appear over time):
      ``account_id``, ``branch_id`` -> ``branches``, ``referrer_id`` -> ``accounts``
      (the account that referred this one, null for more than half), ``product`` (checking,
      savings, business, student), ``age`` (about 5% null);
    - ``merchants`` (static): ``merchant_id``, ``category``, ``country``;
    - ``transactions`` (time column ``tx_time``): ``tx_id``, ``account_id``,
      ``merchant_id``, ``amount``, ``channel`` (card, online, contactless);
    - ``disputes`` (time column ``dispute_time``): ``dispute_id``, ``tx_id`` ->
      ``transactions`` (no key to the account: it is two hops away), ``reason`` (fraud,
      not received, wrong amount);
    - ``logins`` (time column ``login_time``): ``login_id``, ``account_id``, ``device``,
      ``success`` (bool).

    Each account has latent traits: a spending rate (drifting, with rare jumps to a new
    level, peaking in the first week of each month), a ticket size, a preferred category,
    a propensity to complain and a dormancy time after which it (almost) stops paying,
    fading over the two months before. Referred accounts resemble their referrer. Two
    accounts in five are taken over once: a burst of failed logins over a week, then a
    few online payments at foreign merchants, most disputed as fraud 2-20 days later.
    About 10% of merchants turn bad at a random time; 35% of their later payments are
    disputed as not received, 5-40 days later. Complaints (about 4% of payments) follow
    each account's propensity.

    Parameters
    ----------
    n_accounts : int, default=300
        Rows of ``accounts``.
    n_transactions : int, default=6000
        Rows of ``transactions`` (exactly, less the few takeover payments that would fall
        after ``end``). ``logins`` gets about as many rows, ``disputes`` about a tenth.
    n_merchants : int, optional
        Rows of ``merchants``; default ``clip(n_accounts // 3, 30, 20_000)``.
    n_branches : int, optional
        Rows of ``branches``; default ``clip(n_accounts // 50, 3, 500)``.
    start, end : str or Timestamp, default="2020-01-01", "2023-12-31"
        First and last day (inclusive) of the payments' times.
    random_state : int, Generator or None, default=0
        Seed of ``numpy.random.default_rng``; the same seed gives identical tables.
    as_frames : bool, default=False
        Return ``(frames, schema)`` (a dict of DataFrames and a dict of
        ``{"pkey", "time_col", "fkeys"}``) instead of a :class:`sktve.Database`.

    Returns
    -------
    Database, or (dict of DataFrame, dict) when ``as_frames=True``

    Examples
    --------
    >>> from sktve.datasets import make_bank_database
    >>> frames, schema = make_bank_database(50, 500, as_frames=True)
    >>> schema["disputes"]["fkeys"]
    {'tx_id': 'transactions'}
    >>> schema["accounts"]["fkeys"]
    {'branch_id': 'branches', 'referrer_id': 'accounts'}
    """
    n_accounts, n_transactions = int(n_accounts), int(n_transactions)
    if n_accounts < 1 or n_transactions < 10:
        raise ValueError(
            "n_accounts must be positive and n_transactions at least 10, got "
            f"{n_accounts} and {n_transactions}."
        )
    n_cat = len(_CATEGORIES)
    if n_merchants is None:
        n_merchants = int(np.clip(n_accounts // 3, 30, 20_000))
    if n_branches is None:
        n_branches = int(np.clip(n_accounts // 50, 3, 500))
    if n_merchants < n_cat or n_branches < 1:
        raise ValueError(
            f"n_merchants must be at least {n_cat} (one per category) and n_branches "
            f"positive; got {n_merchants} and {n_branches}."
        )
    start_ts = pd.Timestamp(start).normalize()
    end_excl = pd.Timestamp(end).normalize() + pd.Timedelta(days=1)
    if end_excl - start_ts < pd.Timedelta(days=7):
        raise ValueError(f"end ({end}) must be at least a week after start ({start}).")
    rng = np.random.default_rng(random_state)
    frames = _generate(
        n_accounts, n_transactions, int(n_merchants), int(n_branches), start_ts, end_excl, rng
    )
    schema = copy.deepcopy(_SCHEMA)
    if as_frames:
        return frames, schema
    from sktve.database import load_database

    return load_database(frames, schema=schema)


def bank_tasks(num_eval_timestamps: int = 3) -> list[Any]:
    """The task manifests of the bank database: ``account-dispute`` and ``account-outflow``.

    Both are forecast tasks on ``accounts`` for the accounts that paid in the 90 days up
    to the cutoff t (inclusive):

    - ``account-dispute`` (binary classification, target ``dispute``): 1 when a dispute
      of one of the account's payments is filed in (t, t + 30 days];
    - ``account-outflow`` (regression, target ``outflow``): the sum of the account's
      payments in (t, t + 30 days], 0 when it pays nothing.

    Parameters
    ----------
    num_eval_timestamps : int, default=3
        Number of validation and test cutoffs (spaced by each task's window).

    Returns
    -------
    list of relbench.manifest.TaskManifest

    Examples
    --------
    >>> from sktve.datasets import bank_tasks
    >>> [(t.name, t.timedelta) for t in bank_tasks()]
    [('account-dispute', '30 days'), ('account-outflow', '30 days')]
    """
    from relbench.manifest import TaskManifest

    common = dict(
        kind="forecast",
        entity_table="accounts",
        entity_col="account_id",
        time_col="timestamp",
        num_eval_timestamps=int(num_eval_timestamps),
    )
    return [
        TaskManifest(
            name="account-dispute",
            task_type="binary_classification",
            description="Will a dispute be filed in the next 30 days on a payment of an "
            "account that paid in the past 90 days?",
            target_col="dispute",
            timedelta="30 days",
            sql=DISPUTE_SQL,
            **common,
        ),
        TaskManifest(
            name="account-outflow",
            task_type="regression",
            description="How much will an account that paid in the past 90 days pay in the "
            "next 30 days (0 when it pays nothing)?",
            target_col="outflow",
            timedelta="30 days",
            sql=OUTFLOW_SQL,
            **common,
        ),
    ]


def make_bank_dataset(
    path: str | Path,
    n_accounts: int = 300,
    n_transactions: int = 6000,
    *,
    random_state: int | None = 0,
    start: Any = "2020-01-01",
    end: Any = "2023-12-31",
    val_timestamp: Any = None,
    test_timestamp: Any = None,
    name: str = "sktve-bank",
    **kwargs: Any,
) -> Path:
    """Generate a bank database and write it as a RelBench 3 folder with two tasks.

    The tasks are ``account-dispute`` and ``account-outflow`` (see :func:`bank_tasks`).
    Load the folder with ``relbench.load_dataset(str(path))`` or
    ``sktve.load_database(path)``; nothing needs a network.

    Parameters
    ----------
    path : str or Path
        Folder to write.
    n_accounts, n_transactions : int, default=300, 6000
        Sizes, as in :func:`make_bank_database`.
    random_state : int or None, default=0
        Seed.
    start, end : str or Timestamp, default="2020-01-01", "2023-12-31"
        Time span of the data.
    val_timestamp, test_timestamp : str or Timestamp, optional
        Split cutoffs; default to the first of the month at 75% and 87.5% of the span
        (2023-01-01 and 2023-07-01 for the default span).
    name : str, default="sktve-bank"
        Dataset name in the manifest.
    **kwargs
        More arguments of :func:`make_bank_database` (``n_merchants``, ``n_branches``).

    Returns
    -------
    Path
        The folder.

    Examples
    --------
    >>> import tempfile, relbench
    >>> from sktve.datasets import make_bank_dataset, task_to_xy
    >>> path = make_bank_dataset(tempfile.mkdtemp(), n_accounts=100, n_transactions=2000)
    >>> task = relbench.load_dataset(str(path)).load_task("account-dispute")
    >>> X, y = task_to_xy(task, "val")
    >>> list(X.columns)
    ['account_id', 'timestamp']
    """
    from sktve.datasets import split_timestamps, write_relbench_folder

    val_timestamp, test_timestamp = split_timestamps(start, end, val_timestamp, test_timestamp)
    frames, schema = make_bank_database(
        n_accounts,
        n_transactions,
        start=start,
        end=end,
        random_state=random_state,
        as_frames=True,
        **kwargs,
    )
    return write_relbench_folder(
        (frames, schema),
        path,
        name=name,
        val_timestamp=val_timestamp,
        test_timestamp=test_timestamp,
        tasks=bank_tasks(),
        description="Synthetic bank database (sktve) with planted account behaviour.",
    )
