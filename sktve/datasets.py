"""Synthetic relational databases with planted signal, and RelBench task helpers.

The generator builds a small e-commerce database (customers, products, suppliers, orders,
reviews) in which what a customer does next is predictable from what they did before:
every customer has latent traits (an activity rate that drifts and switches regimes, a
price sensitivity, a preferred category, a satisfaction level, a churn time) that drive
their orders, returns and reviews. It serves the demo and most tests, and
:func:`make_synthetic_dataset` writes it as a RelBench 3 folder with two forecast tasks
(``customer-churn`` and ``customer-spend``) so the same code path as for real RelBench
data is exercised, offline. A second schema, a lending library (members, books, loans,
fines, reviews; :func:`make_library_dataset`), lives in ``sktve.synthetic_library``, and
a third, a bank (accounts opened over time and referred by other accounts, merchants,
transactions, disputes two hops from the account, logins; :func:`make_bank_dataset`), in
``sktve.synthetic_bank``; both are re-exported here. ``SYNTHETIC_SCHEMAS`` names every
schema's dataset writer.

Generation is vectorised numpy (loops run over weeks or over a handful of categories,
never over rows), so ten million orders take seconds, not minutes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sktve._task_sql import label_select

__all__ = [
    "SYNTHETIC_SCHEMAS",
    "bank_tasks",
    "library_tasks",
    "make_bank_database",
    "make_bank_dataset",
    "make_library_database",
    "make_library_dataset",
    "make_synthetic_database",
    "make_synthetic_dataset",
    "synthetic_tasks",
    "task_to_xy",
    "train_val_cv",
    "write_relbench_folder",
    "write_tasks",
]

# --------------------------------------------------------------------------- vocabularies
_CATEGORIES = ("electronics", "books", "clothing", "home", "garden", "toys", "sports", "beauty")
# Typical price per category (log-normal around it): categories differ in spend per order.
_CATEGORY_PRICE = np.array([180.0, 18.0, 45.0, 70.0, 40.0, 30.0, 60.0, 25.0])
_CATEGORY_NOUNS = (
    ("headphones", "charger", "camera"),
    ("novel", "cookbook", "atlas"),
    ("jacket", "sneakers", "scarf"),
    ("lamp", "blanket", "kettle"),
    ("hose", "planter", "shovel"),
    ("puzzle", "robot", "kite"),
    ("racket", "yoga mat", "ball"),
    ("serum", "lipstick", "perfume"),
)
_ADJECTIVES = ("classic", "compact", "deluxe", "eco", "pro", "smart", "vintage", "essential")
_BRANDS = (
    "acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne",
    "wonka", "tyrell", "soylent", "cyberdyne", "nakatomi", "oscorp", "gringotts", "duff",
)  # fmt: skip
_SEGMENTS = ("consumer", "business", "student", "senior")
_SEGMENT_P = np.array([0.5, 0.2, 0.15, 0.15])
# Segment effects on the latent traits: log activity rate and price sensitivity (logit).
_SEGMENT_RATE = np.array([0.0, 0.7, -0.3, -0.2])
_SEGMENT_PRICE_SENS = np.array([0.0, -1.2, 1.2, 0.4])
_SEGMENT_AGE = np.array([[40.0, 12.0], [45.0, 10.0], [21.0, 2.5], [70.0, 5.0]])
_REGIONS = ("north", "south", "east", "west", "central")
_CHANNELS = ("web", "app", "store", "phone")
# Each region prefers some channels: a weak static -> behaviour link.
_REGION_CHANNEL_P = np.array(
    [
        [0.4, 0.3, 0.2, 0.1],
        [0.3, 0.2, 0.4, 0.1],
        [0.3, 0.5, 0.1, 0.1],
        [0.5, 0.3, 0.1, 0.1],
        [0.2, 0.2, 0.3, 0.3],
    ]
)
_COUNTRIES = ("US", "DE", "CN", "FR", "IN", "BR", "JP", "PL")
_DISCOUNTS = np.array([0.0, 0.05, 0.1, 0.2, 0.3])
_BIO_SEGMENT = {
    "consumer": ("everyday shopper", "family buyer", "casual buyer"),
    "business": ("office manager", "small business owner", "procurement lead"),
    "student": ("university student", "grad student", "college freshman"),
    "senior": ("retired teacher", "proud grandparent", "happy retiree"),
}
_SENTIMENT = {
    1: ("terrible", "broke quickly", "very disappointed"),
    2: ("not great", "below expectations", "mediocre quality"),
    3: ("okay", "average", "does the job"),
    4: ("good value", "works well", "happy with it"),
    5: ("excellent", "love it", "perfect"),
}

_SCHEMA: dict[str, dict[str, Any]] = {
    "suppliers": {"pkey": "supplier_id", "time_col": None, "fkeys": {}},
    "products": {"pkey": "product_id", "time_col": None, "fkeys": {"supplier_id": "suppliers"}},
    "customers": {"pkey": "customer_id", "time_col": None, "fkeys": {}},
    "orders": {
        "pkey": "order_id",
        "time_col": "order_time",
        "fkeys": {"customer_id": "customers", "product_id": "products"},
    },
    "reviews": {
        "pkey": "review_id",
        "time_col": "review_time",
        "fkeys": {"customer_id": "customers", "product_id": "products"},
    },
}

# One row per (customer, cutoff) for customers who ordered in the year before the cutoff.
_ACTIVE_CTE = """WITH active AS (
    SELECT DISTINCT t.timestamp, o.customer_id
    FROM timestamps t
    JOIN orders o
      ON o.order_time > t.timestamp - INTERVAL '365 days'
     AND o.order_time <= t.timestamp
    WHERE o.customer_id IS NOT NULL
),
future AS (
    SELECT t.timestamp, o.customer_id, COUNT(*) AS n_orders, SUM(o.amount) AS spend
    FROM timestamps t
    JOIN orders o
      ON o.order_time > t.timestamp
     AND o.order_time <= t.timestamp + INTERVAL '{timedelta}'
    GROUP BY t.timestamp, o.customer_id
)
"""

CHURN_SQL = _ACTIVE_CTE + label_select("customer_id", "CAST(f.n_orders IS NULL AS BIGINT)", "churn")

SPEND_SQL = _ACTIVE_CTE + label_select(
    "customer_id", "CAST(COALESCE(f.spend, 0.0) AS DOUBLE)", "spend"
)

# Not one of the shop's tasks: the count regression of bench_quality_synthetic --count-tasks.
ORDERS_SQL = _ACTIVE_CTE + label_select(
    "customer_id", "CAST(COALESCE(f.n_orders, 0) AS DOUBLE)", "n_orders"
)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """Draw one category per row from row-wise probabilities ``p`` (n, k), vectorised."""
    cum = np.cumsum(p, axis=1)
    u = rng.random(len(p))[:, None] * cum[:, -1:]
    return np.minimum((u >= cum).sum(axis=1), p.shape[1] - 1)


def _weeks(start: pd.Timestamp, end_excl: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Week start times (int64 ns) and week lengths (ns); the last week is cut at the end."""
    week = pd.Timedelta(days=7).value
    starts = np.arange(start.value, end_excl.value, week, dtype=np.int64)
    lengths = np.minimum(starts + week, end_excl.value) - starts
    return starts, lengths


def _draw_cells(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``n`` flat cell indices of ``weights`` drawn proportionally, in sorted order.

    Inverse CDF on sorted uniforms: cumulative exponential spacings are sorted by
    construction, so no sort of ``n`` draws is needed (O(n), not O(n log n)).
    """
    cum = np.cumsum(weights.ravel(), dtype=np.float64)
    spacings = np.cumsum(rng.exponential(1.0, n + 1))
    u = spacings[:-1] / spacings[-1] * cum[-1]
    del spacings
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def _objects(values: Sequence[str], index: np.ndarray) -> np.ndarray:
    # Fancy indexing an object array shares the few distinct str objects: fast and small,
    # and object (not pandas' str dtype) is what DuckDB ingests reliably.
    return np.asarray(values, dtype=object)[index]


def _to_time(ns: np.ndarray) -> np.ndarray:
    return ns.astype("datetime64[ns]")


def _generate(
    n_customers: int,
    n_orders: int,
    n_products: int,
    n_suppliers: int,
    start: pd.Timestamp,
    end_excl: pd.Timestamp,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    n_cat = len(_CATEGORIES)
    day = pd.Timedelta(days=1).value

    # ------------------------------------------------------------------ suppliers
    supplier_quality = rng.normal(0.0, 1.0, n_suppliers)
    suppliers = pd.DataFrame(
        {
            "supplier_id": np.arange(n_suppliers, dtype=np.int64),
            "country": pd.Series(
                _objects(_COUNTRIES, rng.integers(0, len(_COUNTRIES), n_suppliers)), dtype=object
            ),
            # The rating reflects supplier quality, which flows into product quality, then
            # into returns and review ratings: a 3-hop signal.
            "rating": np.round(
                np.clip(3.6 + 0.6 * supplier_quality + rng.normal(0, 0.3, n_suppliers), 1, 5), 1
            ),
        }
    )

    # ------------------------------------------------------------------ products
    # The first n_cat products cover every category so that each category can be sampled.
    category = np.concatenate(
        [np.arange(n_cat), rng.integers(0, n_cat, max(0, n_products - n_cat))]
    )[:n_products]
    brand = rng.integers(0, len(_BRANDS), n_products)
    brand_quality = rng.normal(0.0, 0.5, len(_BRANDS))
    supplier_id = rng.integers(0, n_suppliers, n_products)
    quality = (
        brand_quality[brand]
        + 0.4 * supplier_quality[supplier_id]
        + rng.normal(0.0, 0.5, n_products)
    )
    price = np.round(
        _CATEGORY_PRICE[category] * np.exp(0.5 * rng.normal(size=n_products) + 0.15 * quality), 2
    )
    noun = rng.integers(0, 3, n_products)
    adjective = rng.integers(0, len(_ADJECTIVES), n_products)
    titles = [
        f"{adj} {b} {nouns[j]}" for adj in _ADJECTIVES for b in _BRANDS for nouns in _CATEGORY_NOUNS
        for j in range(3)
    ]  # fmt: skip
    title_idx = ((adjective * len(_BRANDS) + brand) * n_cat + category) * 3 + noun
    products = pd.DataFrame(
        {
            "product_id": np.arange(n_products, dtype=np.int64),
            "category": pd.Series(_objects(_CATEGORIES, category), dtype=object),
            "price": price,
            "brand": pd.Series(_objects(_BRANDS, brand), dtype=object),
            "title": pd.Series(_objects(titles, title_idx), dtype=object),
            "supplier_id": supplier_id.astype(np.int64),
        }
    )

    # ------------------------------------------------------------------ customers
    segment = rng.choice(len(_SEGMENTS), size=n_customers, p=_SEGMENT_P)
    age = np.clip(
        np.round(
            _SEGMENT_AGE[segment, 0] + _SEGMENT_AGE[segment, 1] * rng.normal(size=n_customers)
        ),
        18,
        90,
    )
    region = rng.integers(0, len(_REGIONS), n_customers)
    activity = rng.normal(size=n_customers)  # latent activity level
    is_premium = rng.random(n_customers) < _sigmoid(-1.2 + 0.9 * activity + 0.6 * (segment == 1))
    satisfaction = rng.normal(size=n_customers) + 0.4 * is_premium
    price_sens = _sigmoid(
        rng.normal(size=n_customers) + _SEGMENT_PRICE_SENS[segment] - 0.5 * is_premium
    )
    preferred = rng.integers(0, n_cat, n_customers)
    channel_p = _REGION_CHANNEL_P[region]
    preferred_channel = _pick(rng, channel_p)
    review_prop = rng.beta(2.0, 6.0, n_customers)
    # Sign-ups spread from two years before the data starts to four months before its end;
    # a customer orders only after signing up.
    signup_ns = rng.integers(start.value - 730 * day, end_excl.value - 120 * day, n_customers)
    signup_ns = signup_ns - signup_ns % day
    active_from = np.maximum(signup_ns, start.value)
    # Churn: satisfied, active and premium customers stay longer.
    churn_mean_days = 600.0 * np.exp(0.5 * satisfaction + 0.3 * activity + 0.4 * is_premium)
    churn_ns = active_from + (rng.exponential(1.0, n_customers) * churn_mean_days * day).astype(
        np.int64
    )

    # A few words of free text; half the bios name the preferred category (text signal).
    bio_options = [
        f"{role}{suffix}"
        for seg in _SEGMENTS
        for role in _BIO_SEGMENT[seg]
        for suffix in ("",) + tuple(f", into {c}" for c in _CATEGORIES)
    ]
    n_suffix = 1 + n_cat
    role = rng.integers(0, 3, n_customers)
    suffix = np.where(rng.random(n_customers) < 0.5, 1 + preferred, 0)
    bio_idx = (segment * 3 + role) * n_suffix + suffix
    age_col = age.astype(np.float64)
    age_col[rng.random(n_customers) < 0.05] = np.nan
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(n_customers, dtype=np.int64),
            "age": age_col,
            "segment": pd.Series(_objects(_SEGMENTS, segment), dtype=object),
            "region": pd.Series(_objects(_REGIONS, region), dtype=object),
            "is_premium": is_premium,
            "bio": pd.Series(_objects(bio_options, bio_idx), dtype=object),
            "signup_date": _to_time(signup_ns),
        }
    )

    # ------------------------------------------------------------------ order intensities
    # Weekly intensity per customer: base rate x a mean-reverting random walk with rare
    # regime jumps x seasonality, zero before sign-up, fading in the months before the
    # churn time and nearly zero after it. Loops run over weeks, vectorised over customers.
    week_start, week_len = _weeks(start, end_excl)
    n_weeks = len(week_start)
    base = 0.9 * activity + _SEGMENT_RATE[segment] + 0.3 * is_premium
    week_day = (week_start - pd.Timestamp("2000-01-01").value) / day
    doy = (week_day % 365.25) / 365.25
    month = pd.DatetimeIndex(_to_time(week_start)).month.to_numpy()
    season = 0.15 * np.sin(2 * np.pi * doy) + 0.3 * (month == 12)
    weights = np.empty((n_customers, n_weeks), dtype=np.float32)
    walk = rng.normal(0.0, 0.25, n_customers)
    fade = 120 * day
    for k in range(n_weeks):
        jump = rng.random(n_customers) < 0.01
        walk = (
            0.95 * walk
            + rng.normal(0.0, 0.08, n_customers)
            + jump * rng.normal(0.0, 0.8, n_customers)
        )
        t = week_start[k]
        to_churn = churn_ns - t
        churn_factor = np.where(
            to_churn <= 0, 0.01, np.exp(-2.0 * np.clip(fade - to_churn, 0, None) / fade)
        )
        w = np.exp(base + walk + season[k]) * churn_factor * (signup_ns <= t)
        weights[:, k] = w * (week_len[k] / (7 * day))
    # Exactly n_orders (customer, week) cells drawn proportionally to the weights.
    cell = _draw_cells(weights, n_orders, rng)
    del weights
    cust = (cell // n_weeks).astype(np.int64)
    week = cell % n_weeks
    del cell
    offset = (rng.random(n_orders) * week_len[week]).astype(np.int64)
    order_ns = week_start[week] + offset
    order_ns -= order_ns % 1_000_000_000  # whole seconds: readable and parquet-friendly
    del week, offset
    # RelBench keys are 0..n-1 in row order and get_db keeps a time prefix: sort by time.
    order_sort = np.argsort(order_ns, kind="stable")
    order_ns = order_ns[order_sort]
    cust = cust[order_sort]
    del order_sort

    # ------------------------------------------------------------------ order contents
    ps = price_sens[cust]
    own_cat = rng.random(n_orders) < 0.65
    cat = np.where(own_cat, preferred[cust], rng.integers(0, n_cat, n_orders))
    # Within a category, price-sensitive customers pick from the cheap end (u ** a, a > 1).
    by_price = np.lexsort((price, category))
    cat_start = np.searchsorted(category[by_price], np.arange(n_cat))
    cat_count = np.bincount(category, minlength=n_cat)
    rank = (rng.random(n_orders) ** (0.6 + 2.5 * ps) * cat_count[cat]).astype(np.int64)
    product = by_price[cat_start[cat] + np.minimum(rank, cat_count[cat] - 1)].astype(np.int64)
    del own_cat, rank
    quantity = 1 + rng.poisson(0.2 + 0.8 * (1 - ps))
    level = np.clip(np.floor(4 * ps + rng.normal(0.0, 1.0, n_orders)), 0, 4).astype(np.int64)
    discount = _DISCOUNTS[level]
    discount[rng.random(n_orders) < 0.2] = np.nan
    amount = np.round(price[product] * quantity * (1.0 - np.nan_to_num(discount)), 2)
    channel = np.where(
        rng.random(n_orders) < 0.7, preferred_channel[cust], rng.integers(0, 4, n_orders)
    )
    returned = rng.random(n_orders) < _sigmoid(
        -2.4 - 0.8 * satisfaction[cust] - 0.6 * quality[product] + 0.5 * (cat == 2)
    )
    del ps, level
    orders = pd.DataFrame(
        {
            "order_id": np.arange(n_orders, dtype=np.int64),
            "customer_id": cust,
            "product_id": product,
            "order_time": _to_time(order_ns),
            "quantity": quantity.astype(np.int64),
            "amount": amount,
            "discount": discount,
            "channel": pd.Series(_objects(_CHANNELS, channel), dtype=object),
            "returned": returned,
        }
    )
    del quantity, amount, discount, channel

    # ------------------------------------------------------------------ reviews
    # A review follows a purchase by a few days; its rating reflects satisfaction, product
    # quality and whether the item went back.
    reviewed = np.flatnonzero(rng.random(n_orders) < review_prop[cust])
    delay = (rng.exponential(4.0, len(reviewed)) * day).astype(np.int64) + 3600 * 10**9
    review_ns = order_ns[reviewed] + delay
    review_ns -= review_ns % 1_000_000_000
    keep = review_ns < end_excl.value
    reviewed, review_ns = reviewed[keep], review_ns[keep]
    review_sort = np.argsort(review_ns, kind="stable")
    reviewed, review_ns = reviewed[review_sort], review_ns[review_sort]
    r_cust, r_prod = cust[reviewed], product[reviewed]
    n_reviews = len(reviewed)
    rating = np.clip(
        np.round(
            3.5
            + 0.8 * satisfaction[r_cust]
            + 0.6 * quality[r_prod]
            - 1.5 * returned[reviewed]
            + rng.normal(0.0, 0.7, n_reviews)
        ),
        1,
        5,
    ).astype(np.int64)
    comments = [
        f"{phrase}, {nouns[j]}"
        for r in range(1, 6)
        for phrase in _SENTIMENT[r]
        for nouns in _CATEGORY_NOUNS
        for j in range(3)
    ]
    comment_idx = (
        ((rating - 1) * 3 + rng.integers(0, 3, n_reviews)) * n_cat + category[r_prod]
    ) * 3 + rng.integers(0, 3, n_reviews)
    reviews = pd.DataFrame(
        {
            "review_id": np.arange(n_reviews, dtype=np.int64),
            "customer_id": r_cust,
            "product_id": r_prod,
            "review_time": _to_time(review_ns),
            "rating": rating,
            "comment": pd.Series(_objects(comments, comment_idx), dtype=object),
            "verified": rng.random(n_reviews) < 0.85,
        }
    )
    return {
        "suppliers": suppliers,
        "products": products,
        "customers": customers,
        "orders": orders,
        "reviews": reviews,
    }


def make_synthetic_database(
    n_customers: int = 300,
    n_orders: int = 5000,
    *,
    n_products: int | None = None,
    n_suppliers: int | None = None,
    start: Any = "2020-01-01",
    end: Any = "2023-12-31",
    random_state: int | np.random.Generator | None = 0,
    as_frames: bool = False,
) -> Any:
    """Generate a synthetic e-commerce database in which customer behaviour is predictable.

    Tables (keys are ``0..n-1`` in row order, fact tables are sorted by time):

    - ``customers`` (static): ``customer_id``, ``age`` (about 5% null), ``segment``,
      ``region``, ``is_premium`` (bool), ``bio`` (short text), ``signup_date`` (a plain
      datetime attribute, not a time column);
    - ``products`` (static): ``product_id``, ``category``, ``price``, ``brand``,
      ``title`` (short text), ``supplier_id`` -> ``suppliers``;
    - ``suppliers`` (static): ``supplier_id``, ``country``, ``rating``;
    - ``orders`` (time column ``order_time``): ``order_id``, ``customer_id``,
      ``product_id``, ``quantity``, ``amount``, ``discount`` (about 20% null),
      ``channel``, ``returned`` (bool);
    - ``reviews`` (time column ``review_time``): ``review_id``, ``customer_id``,
      ``product_id``, ``rating`` (1-5), ``comment`` (short text), ``verified`` (bool).

    Each customer has latent traits: an activity rate (drifting, with rare regime jumps,
    seasonal), a price sensitivity, a preferred category and channel, a satisfaction level
    and a churn time after which they (almost) stop ordering, with activity fading in the
    four months before. Segment, premium status and age correlate with these traits, and
    satisfaction shows in returns and review ratings, so next-window behaviour (churn,
    spend, ratings) is predictable from history and partly from static attributes.

    Parameters
    ----------
    n_customers : int, default=300
        Rows of ``customers``.
    n_orders : int, default=5000
        Rows of ``orders`` (exactly). ``reviews`` gets about a quarter as many rows.
    n_products : int, optional
        Rows of ``products``; default ``clip(n_customers // 4, 30, 50_000)``.
    n_suppliers : int, optional
        Rows of ``suppliers``; default ``max(5, n_products // 10)``.
    start, end : str or Timestamp, default="2020-01-01", "2023-12-31"
        First and last day (inclusive) of the orders' and reviews' times.
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
    >>> from sktve.datasets import make_synthetic_database
    >>> db = make_synthetic_database(n_customers=50, n_orders=500, random_state=0)
    >>> db.num_rows("orders")
    500
    >>> frames, schema = make_synthetic_database(50, 500, as_frames=True)
    >>> schema["orders"]["fkeys"]
    {'customer_id': 'customers', 'product_id': 'products'}
    """
    n_customers, n_orders = int(n_customers), int(n_orders)
    if n_customers < 1 or n_orders < 1:
        raise ValueError(
            f"n_customers and n_orders must be positive, got {n_customers} and {n_orders}."
        )
    if n_products is None:
        n_products = int(np.clip(n_customers // 4, 30, 50_000))
    if n_suppliers is None:
        n_suppliers = max(5, n_products // 10)
    if n_products < len(_CATEGORIES) or n_suppliers < 1:
        raise ValueError(
            f"n_products must be at least {len(_CATEGORIES)} (one per category) and "
            f"n_suppliers at least 1; got {n_products} and {n_suppliers}."
        )
    start_ts = pd.Timestamp(start).normalize()
    end_excl = pd.Timestamp(end).normalize() + pd.Timedelta(days=1)
    if end_excl - start_ts < pd.Timedelta(days=7):
        raise ValueError(f"end ({end}) must be at least a week after start ({start}).")
    rng = np.random.default_rng(random_state)
    frames = _generate(n_customers, n_orders, n_products, n_suppliers, start_ts, end_excl, rng)
    schema = copy.deepcopy(_SCHEMA)
    if as_frames:
        return frames, schema
    from sktve.database import load_database

    return load_database(frames, schema=schema)


def synthetic_tasks(timedelta: str = "30 days", num_eval_timestamps: int = 3) -> list[Any]:
    """The task manifests of the synthetic database: ``customer-churn`` and ``customer-spend``.

    Both are forecast tasks on ``customers`` over the window (t, t + timedelta], for the
    customers who ordered in the year up to t (inclusive):

    - ``customer-churn`` (binary classification, target ``churn``): 1 when the customer
      places no order in the window;
    - ``customer-spend`` (regression, target ``spend``): the sum of ``orders.amount`` in
      the window, 0 for customers who do not order (so churners are included).

    Parameters
    ----------
    timedelta : str, default="30 days"
        The label window.
    num_eval_timestamps : int, default=3
        Number of validation and test cutoffs (spaced by ``timedelta``).

    Returns
    -------
    list of relbench.manifest.TaskManifest

    Examples
    --------
    >>> from sktve.datasets import synthetic_tasks
    >>> [t.name for t in synthetic_tasks()]
    ['customer-churn', 'customer-spend']
    """
    from relbench.manifest import TaskManifest

    common = dict(
        kind="forecast",
        entity_table="customers",
        entity_col="customer_id",
        time_col="timestamp",
        timedelta=str(timedelta),
        num_eval_timestamps=int(num_eval_timestamps),
    )
    return [
        TaskManifest(
            name="customer-churn",
            task_type="binary_classification",
            description="Will a customer who ordered in the past year place no order in the "
            "next window?",
            target_col="churn",
            sql=CHURN_SQL,
            **common,
        ),
        TaskManifest(
            name="customer-spend",
            task_type="regression",
            description="How much will a customer who ordered in the past year spend in the "
            "next window (0 when they do not order)?",
            target_col="spend",
            sql=SPEND_SQL,
            **common,
        ),
    ]


def _frames_and_schema(
    db_or_frames: Any, schema: Mapping[str, Any] | None
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, Any]]]:
    from sktve.database import Database, TableSchema

    if isinstance(db_or_frames, Database):
        frames = db_or_frames.tables
        parsed = db_or_frames.schema
    else:
        if isinstance(db_or_frames, tuple) and len(db_or_frames) == 2 and schema is None:
            db_or_frames, schema = db_or_frames
        if not isinstance(db_or_frames, Mapping) or schema is None:
            raise TypeError(
                "write_relbench_folder needs a sktve Database, a (frames, schema) pair, or a "
                "dict of DataFrames with schema=..."
            )
        frames = dict(db_or_frames)
        parsed = {name: TableSchema.from_any(name, spec) for name, spec in schema.items()}
    return frames, {name: s.to_dict() for name, s in parsed.items()}


def write_relbench_folder(
    db_or_frames: Any,
    path: str | Path,
    *,
    name: str,
    val_timestamp: Any,
    test_timestamp: Any,
    tasks: Sequence[Any] = (),
    schema: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> Path:
    """Write a database (and forecast tasks with their labels) as a RelBench 3 folder.

    The folder holds ``manifest.yaml``, ``db/<table>.parquet`` and, per task,
    ``tasks/<task>/manifest.yaml`` with ``{train,val,test}.parquet``. The labels are
    produced by RelBench itself (the task's SQL run on the written database, with
    RelBench's split cutoffs and sort order), so ``load_task(name, regenerate=True)``
    gives the same tables. Existing files of the same names are overwritten.

    Parameters
    ----------
    db_or_frames : Database, (frames, schema) pair, or dict of DataFrame
        The database. Primary keys must be ``0..n-1`` in row order and tables with a time
        column sorted by time, as RelBench requires.
    path : str or Path
        Folder to write (created if needed).
    name : str
        Dataset name for the manifest.
    val_timestamp, test_timestamp : str or Timestamp
        Split cutoffs. Data must extend at least one task window past ``test_timestamp``
        for test labels to exist.
    tasks : sequence of TaskManifest or dict, default=()
        Forecast task manifests (see :func:`synthetic_tasks`).
    schema : dict, optional
        Keys and time columns when ``db_or_frames`` is a dict of frames.
    description : str, optional
        Dataset description for the manifest.

    Returns
    -------
    Path
        The folder.

    Examples
    --------
    >>> import tempfile
    >>> from sktve.datasets import make_synthetic_database, synthetic_tasks
    >>> from sktve.datasets import write_relbench_folder
    >>> db = make_synthetic_database(100, 2000, random_state=0)
    >>> folder = write_relbench_folder(db, tempfile.mkdtemp(), name="shop",
    ...     val_timestamp="2023-01-01", test_timestamp="2023-07-01", tasks=synthetic_tasks())
    >>> sorted(p.name for p in (folder / "tasks").iterdir())
    ['customer-churn', 'customer-spend']
    """
    from relbench.manifest import DatasetManifest, TableSpec

    frames, table_specs = _frames_and_schema(db_or_frames, schema)
    val_ts, test_ts = pd.Timestamp(val_timestamp), pd.Timestamp(test_timestamp)
    if not val_ts < test_ts:
        raise ValueError(f"val_timestamp ({val_ts}) must be before test_timestamp ({test_ts}).")
    for table, spec in table_specs.items():
        frame = frames[table]
        if spec["pkey"] is not None and not np.array_equal(
            frame[spec["pkey"]].to_numpy(), np.arange(len(frame))
        ):
            raise ValueError(
                f"primary key {table}.{spec['pkey']} is not 0..n-1 in row order, which "
                "RelBench requires; re-index the table (and the foreign keys into it)."
            )
        if spec["time_col"] is not None and not frame[spec["time_col"]].is_monotonic_increasing:
            raise ValueError(
                f"table {table!r} is not sorted by its time column {spec['time_col']!r}; "
                "RelBench cuts tables at the test timestamp and keeps keys as row numbers."
            )
    folder = Path(path).expanduser()
    (folder / "db").mkdir(parents=True, exist_ok=True)
    for table, frame in frames.items():
        frame.to_parquet(folder / "db" / f"{table}.parquet", index=False)
    DatasetManifest(
        name=name,
        val_timestamp=val_ts.isoformat(),
        test_timestamp=test_ts.isoformat(),
        description=description,
        tables={t: TableSpec.from_dict(s) for t, s in table_specs.items()},
    ).save(folder / "manifest.yaml")

    write_tasks(folder, tasks)
    return folder


def write_tasks(path: str | Path, tasks: Sequence[Any]) -> Path:
    """Add forecast tasks, with their labels, to a RelBench 3 folder.

    Each task gets ``tasks/<task>/manifest.yaml`` and ``{train,val,test}.parquet``, its
    labels produced by RelBench itself (the task's SQL run on the folder's whole
    database, with RelBench's split cutoffs and sort order). A task of the same name is
    overwritten; the database and the other tasks are left as they are.

    Parameters
    ----------
    path : str or Path
        A RelBench 3 folder (``manifest.yaml`` and ``db/``), e.g. one written by
        :func:`write_relbench_folder` or :func:`make_library_dataset`.
    tasks : sequence of TaskManifest or dict
        Forecast task manifests (see :func:`synthetic_tasks` for their fields).

    Returns
    -------
    Path
        The folder.

    Examples
    --------
    >>> import tempfile
    >>> from sktve.datasets import make_synthetic_dataset, synthetic_tasks, write_tasks
    >>> folder = make_synthetic_dataset(tempfile.mkdtemp(), n_customers=100, n_orders=2000)
    >>> churn = synthetic_tasks()[0].to_dict() | {"name": "churn-60d", "timedelta": "60 days"}
    >>> sorted(p.name for p in (write_tasks(folder, [churn]) / "tasks").iterdir())
    ['churn-60d', 'customer-churn', 'customer-spend']
    """
    import relbench
    from relbench.manifest import TaskManifest

    folder = Path(path).expanduser()
    if not (folder / "manifest.yaml").is_file():
        raise FileNotFoundError(
            f"{folder} has no manifest.yaml: give a RelBench 3 folder (write one with "
            "write_relbench_folder)."
        )
    manifests = [
        t if isinstance(t, TaskManifest) else TaskManifest.from_dict(dict(t)) for t in tasks
    ]
    if not manifests:
        return folder
    dataset = relbench.load_dataset(str(folder))
    full_db = None
    for manifest in manifests:
        manifest.validate()
        task_dir = folder / "tasks" / manifest.name
        manifest.save(task_dir / "manifest.yaml")
        for stale in task_dir.glob("*.parquet"):
            stale.unlink()  # so that loading below regenerates, never reads old labels
        task = dataset.load_task(manifest.name, regenerate=True)
        if full_db is None:
            # One database build for every split and task (the tasks remove no columns).
            full_db = task.get_db(upto_test_timestamp=False)
        for split in ("train", "val", "test"):
            table = task.get_table(split, mask_input_cols=False, db=full_db)
            table.df.to_parquet(task_dir / f"{split}.parquet", index=False)
    return folder


def split_timestamps(
    start: Any, end: Any, val_timestamp: Any = None, test_timestamp: Any = None
) -> tuple[Any, Any]:
    """The synthetic datasets' split cutoffs: those given, else month starts at 75% / 87.5%.

    Shared by every synthetic dataset writer, so that all schemas split their span alike.
    """
    start_ts = pd.Timestamp(start).normalize()
    span = pd.Timestamp(end).normalize() + pd.Timedelta(days=1) - start_ts

    def month_start(fraction: float) -> pd.Timestamp:
        return (start_ts + span * fraction + pd.Timedelta(days=15)).to_period("M").to_timestamp()

    if val_timestamp is None:
        val_timestamp = month_start(0.75)
    if test_timestamp is None:
        test_timestamp = month_start(0.875)
    return val_timestamp, test_timestamp


def make_synthetic_dataset(
    path: str | Path,
    n_customers: int = 300,
    n_orders: int = 5000,
    *,
    random_state: int | None = 0,
    start: Any = "2020-01-01",
    end: Any = "2023-12-31",
    val_timestamp: Any = None,
    test_timestamp: Any = None,
    name: str = "sktve-synthetic",
    **kwargs: Any,
) -> Path:
    """Generate a synthetic database and write it as a RelBench 3 folder with two tasks.

    The tasks are ``customer-churn`` and ``customer-spend`` (see :func:`synthetic_tasks`),
    with 30-day windows. Load the folder with ``relbench.load_dataset(str(path))`` or
    ``sktve.load_database(path)``; nothing needs a network.

    Parameters
    ----------
    path : str or Path
        Folder to write.
    n_customers, n_orders : int, default=300, 5000
        Sizes, as in :func:`make_synthetic_database`.
    random_state : int or None, default=0
        Seed.
    start, end : str or Timestamp, default="2020-01-01", "2023-12-31"
        Time span of the data.
    val_timestamp, test_timestamp : str or Timestamp, optional
        Split cutoffs; default to the first of the month at 75% and 87.5% of the span
        (2023-01-01 and 2023-07-01 for the default span).
    name : str, default="sktve-synthetic"
        Dataset name in the manifest.
    **kwargs
        More arguments of :func:`make_synthetic_database` (``n_products``, ...).

    Returns
    -------
    Path
        The folder.

    Examples
    --------
    >>> import tempfile, relbench
    >>> from sktve.datasets import make_synthetic_dataset, task_to_xy
    >>> path = make_synthetic_dataset(tempfile.mkdtemp(), n_customers=100, n_orders=2000)
    >>> task = relbench.load_dataset(str(path)).load_task("customer-churn")
    >>> X, y = task_to_xy(task, "val")
    >>> list(X.columns)
    ['customer_id', 'timestamp']
    """
    val_timestamp, test_timestamp = split_timestamps(start, end, val_timestamp, test_timestamp)
    frames, schema = make_synthetic_database(
        n_customers,
        n_orders,
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
        tasks=synthetic_tasks(),
        description="Synthetic e-commerce database (sktve) with planted customer behaviour.",
    )


def task_to_xy(task: Any, split: str = "train") -> tuple[pd.DataFrame, pd.Series]:
    """Turn a RelBench entity task's split into ``(X, y)`` for scikit-learn.

    Parameters
    ----------
    task : relbench entity task
        E.g. ``relbench.load_dataset(path).load_task("customer-churn")``.
    split : {"train", "val", "test"}, default="train"

    Returns
    -------
    X : DataFrame
        The task table's ``[entity_col, time_col]`` columns (what sktve estimators take).
    y : Series
        The target column (for ``"test"`` too: the labels are read unmasked).

    Examples
    --------
    >>> import tempfile, relbench
    >>> from sktve.datasets import make_synthetic_dataset, task_to_xy
    >>> path = make_synthetic_dataset(tempfile.mkdtemp(), n_customers=100, n_orders=2000)
    >>> task = relbench.load_dataset(str(path)).load_task("customer-spend")
    >>> X, y = task_to_xy(task, "train")
    >>> len(X) == len(y)
    True
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}.")
    df = task.get_table(split, mask_input_cols=False).df
    X = df[[task.entity_col, task.time_col]].reset_index(drop=True)
    y = df[task.target_col].reset_index(drop=True)
    return X, y


def train_val_cv(task: Any) -> tuple[pd.DataFrame, pd.Series, Any]:
    """Train and validation rows together, with a ``PredefinedSplit`` that separates them.

    Use it for model selection on the validation split only (``GridSearchCV(...,
    cv=cv)``); the test split stays untouched.

    Parameters
    ----------
    task : relbench entity task

    Returns
    -------
    X : DataFrame
        Train rows followed by validation rows (``[entity_col, time_col]``).
    y : Series
    cv : sklearn.model_selection.PredefinedSplit
        One split: train rows (fold -1) fit, validation rows (fold 0) score.

    Examples
    --------
    >>> import tempfile, relbench
    >>> from sktve.datasets import make_synthetic_dataset, train_val_cv
    >>> path = make_synthetic_dataset(tempfile.mkdtemp(), n_customers=100, n_orders=2000)
    >>> X, y, cv = train_val_cv(relbench.load_dataset(str(path)).load_task("customer-churn"))
    >>> cv.get_n_splits()
    1
    """
    from sklearn.model_selection import PredefinedSplit

    X_train, y_train = task_to_xy(task, "train")
    X_val, y_val = task_to_xy(task, "val")
    X = pd.concat([X_train, X_val], ignore_index=True)
    y = pd.concat([y_train, y_val], ignore_index=True)
    fold = np.concatenate([np.full(len(X_train), -1), np.zeros(len(X_val), dtype=int)])
    return X, y, PredefinedSplit(fold)


# The library and bank schemas live in their own modules, which import this one's helpers
# only when called, so either module can be imported first.
from sktve.synthetic_bank import (  # noqa: E402
    bank_tasks,
    make_bank_database,
    make_bank_dataset,
)
from sktve.synthetic_library import (  # noqa: E402
    library_tasks,
    make_library_database,
    make_library_dataset,
)

#: Every synthetic schema: name -> ``callable(path, random_state=0, **sizes)`` that writes
#: a RelBench 3 folder with the schema's forecast tasks and returns its path.
SYNTHETIC_SCHEMAS: dict[str, Callable[..., Path]] = {
    "ecommerce": make_synthetic_dataset,
    "library": make_library_dataset,
    "bank": make_bank_dataset,
}
