"""A second synthetic schema with planted signal: a lending library.

Members borrow books (written by authors), pay fines for late returns and review what they
read. Every member has latent traits that drive what they do: a reading rate that drifts
and sometimes jumps to a new regime, a preferred genre, a lateness propensity, a
satisfaction level and a lapse time after which they (almost) stop borrowing, with their
activity fading in the months before. Late, unsatisfied and lightly reading members lapse
sooner, so fines and low ratings foreshadow a lapse, and the loan history predicts the
next month's loans.

:func:`make_library_dataset` writes the database as a RelBench 3 folder with two forecast
tasks (``member-loans`` and ``member-lapse``, see :func:`library_tasks`), offline. The
schema was not designed with any model in mind; it exists so that methods tuned on the
e-commerce generator of :mod:`sktve.datasets` can be checked on data they were not tuned
for.

Generation is vectorised numpy: loops run over weeks or over the handful of genres, never
over rows.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sktve._task_sql import label_select

__all__ = ["library_tasks", "make_library_database", "make_library_dataset"]

# --------------------------------------------------------------------------- vocabularies
_GENRES = (
    "fiction", "mystery", "fantasy", "romance", "history", "science", "biography",
    "children", "poetry", "travel",
)  # fmt: skip
# Typical page count per genre (log-normal around it): longer books are kept longer.
_GENRE_PAGES = np.array([320.0, 300.0, 450.0, 280.0, 420.0, 350.0, 380.0, 60.0, 120.0, 250.0])
# Genre popularity: where members' preferred genres and off-preference loans come from.
_GENRE_P = np.array([0.2, 0.15, 0.12, 0.1, 0.08, 0.08, 0.07, 0.1, 0.04, 0.06])
_MEMBERSHIPS = ("standard", "student", "senior", "family")
_MEMBERSHIP_P = np.array([0.5, 0.2, 0.15, 0.15])
# Membership effects on the log reading rate, the lateness propensity and age.
_MEMBERSHIP_RATE = np.array([0.0, 0.4, 0.3, 0.5])
_MEMBERSHIP_LATE = np.array([0.0, 0.8, -0.6, 0.3])
_MEMBERSHIP_AGE = np.array([[42.0, 13.0], [21.0, 2.5], [71.0, 6.0], [38.0, 7.0]])
_DISTRICTS = ("old town", "harbour", "university", "riverside", "hills", "market")
# Districts differ a little in how much their members read (a weak static signal).
_DISTRICT_RATE = np.array([0.1, -0.2, 0.3, 0.0, -0.1, 0.0])
_COUNTRIES = ("UK", "US", "FR", "DE", "JP", "NG", "BR", "IN", "SE")
_FIRST = ("anna", "ben", "chen", "dara", "elif", "femi", "gus", "hana", "ivan", "jun")
_LAST = ("abbott", "barros", "chopra", "dubois", "eriksen", "fujita", "garcia", "hughes")
_TITLE_ADJ = ("silent", "last", "hidden", "golden", "broken", "distant", "little", "red")
_GENRE_NOUNS = (
    ("river", "house", "summer"),
    ("murder", "alibi", "witness"),
    ("dragon", "crown", "sword"),
    ("heart", "letter", "promise"),
    ("empire", "war", "revolution"),
    ("universe", "cell", "equation"),
    ("life", "memoir", "journey"),
    ("bear", "rabbit", "moon"),
    ("songs", "verses", "seasons"),
    ("road", "island", "mountain"),
)
_SENTIMENT = {
    1: ("could not finish", "dull", "waste of time"),
    2: ("disappointing", "slow going", "not for me"),
    3: ("fine", "readable", "so-so"),
    4: ("enjoyed it", "well written", "recommended"),
    5: ("loved it", "a masterpiece", "could not put it down"),
}
_LOAN_DAYS = 21  # the lending period; loans kept longer are fined
_FINE_PER_DAY = 0.25

_SCHEMA: dict[str, dict[str, Any]] = {
    "members": {"pkey": "member_id", "time_col": None, "fkeys": {}},
    "authors": {"pkey": "author_id", "time_col": None, "fkeys": {}},
    "books": {"pkey": "book_id", "time_col": None, "fkeys": {"author_id": "authors"}},
    "loans": {
        "pkey": "loan_id",
        "time_col": "loan_time",
        "fkeys": {"member_id": "members", "book_id": "books"},
    },
    "fines": {
        "pkey": "fine_id",
        "time_col": "fine_time",
        "fkeys": {"member_id": "members", "loan_id": "loans"},
    },
    "reviews": {
        "pkey": "review_id",
        "time_col": "review_time",
        "fkeys": {"member_id": "members", "book_id": "books"},
    },
}

# One row per (member, cutoff) for members who borrowed in the year up to the cutoff.
_ACTIVE_CTE = """WITH active AS (
    SELECT DISTINCT t.timestamp, l.member_id
    FROM timestamps t
    JOIN loans l
      ON l.loan_time > t.timestamp - INTERVAL '365 days'
     AND l.loan_time <= t.timestamp
    WHERE l.member_id IS NOT NULL
),
future AS (
    SELECT t.timestamp, l.member_id, COUNT(*) AS n_loans
    FROM timestamps t
    JOIN loans l
      ON l.loan_time > t.timestamp
     AND l.loan_time <= t.timestamp + INTERVAL '{timedelta}'
    GROUP BY t.timestamp, l.member_id
)
"""

LOANS_SQL = _ACTIVE_CTE + label_select(
    "member_id", "CAST(COALESCE(f.n_loans, 0) AS DOUBLE)", "n_loans"
)

LAPSE_SQL = _ACTIVE_CTE + label_select("member_id", "CAST(f.n_loans IS NULL AS BIGINT)", "lapse")


def _generate(
    n_members: int,
    n_loans: int,
    n_books: int,
    n_authors: int,
    start: pd.Timestamp,
    end_excl: pd.Timestamp,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    from sktve.datasets import _draw_cells, _objects, _sigmoid, _to_time, _weeks

    n_genre = len(_GENRES)
    day = pd.Timedelta(days=1).value
    second = 1_000_000_000

    # ------------------------------------------------------------------ authors
    # An author writes mostly in one genre; popular authors' books are borrowed more.
    author_genre = np.concatenate(
        [np.arange(n_genre), rng.choice(n_genre, max(0, n_authors - n_genre), p=_GENRE_P)]
    )[:n_authors]
    popularity = rng.normal(0.0, 1.0, n_authors)
    author_names = [f"{f} {last}" for f in _FIRST for last in _LAST]
    authors = pd.DataFrame(
        {
            "author_id": np.arange(n_authors, dtype=np.int64),
            "name": pd.Series(
                _objects(author_names, rng.integers(0, len(author_names), n_authors)),
                dtype=object,
            ),
            "country": pd.Series(
                _objects(_COUNTRIES, rng.integers(0, len(_COUNTRIES), n_authors)), dtype=object
            ),
            "birth_year": rng.integers(1900, 1995, n_authors).astype(np.int64),
        }
    )

    # ------------------------------------------------------------------ books
    # The first n_genre books cover every genre (so that each genre can be borrowed).
    book_author = np.concatenate(
        [np.arange(n_genre), rng.integers(0, n_authors, max(0, n_books - n_genre))]
    )[:n_books]
    genre = np.where(
        rng.random(n_books) < 0.85, author_genre[book_author], rng.integers(0, n_genre, n_books)
    )
    genre[:n_genre] = np.arange(n_genre)
    quality = 0.5 * popularity[book_author] + rng.normal(0.0, 0.7, n_books)
    appeal = popularity[book_author] + 0.5 * quality  # how often a book is picked
    pages = np.clip(
        np.round(_GENRE_PAGES[genre] * np.exp(0.35 * rng.normal(size=n_books))), 16, 1500
    ).astype(np.int64)
    year = np.clip(np.round(2023 - rng.exponential(15.0, n_books)), 1850, 2023).astype(np.int64)
    titles = [
        f"the {adj} {nouns[j]}" for adj in _TITLE_ADJ for nouns in _GENRE_NOUNS for j in range(3)
    ]
    title_idx = (rng.integers(0, len(_TITLE_ADJ), n_books) * n_genre + genre) * 3 + rng.integers(
        0, 3, n_books
    )
    books = pd.DataFrame(
        {
            "book_id": np.arange(n_books, dtype=np.int64),
            "author_id": book_author.astype(np.int64),
            "title": pd.Series(_objects(titles, title_idx), dtype=object),
            "genre": pd.Series(_objects(_GENRES, genre), dtype=object),
            "year": year,
            "pages": pages,
        }
    )

    # ------------------------------------------------------------------ members
    membership = rng.choice(len(_MEMBERSHIPS), size=n_members, p=_MEMBERSHIP_P)
    age = np.clip(
        np.round(
            _MEMBERSHIP_AGE[membership, 0]
            + _MEMBERSHIP_AGE[membership, 1] * rng.normal(size=n_members)
        ),
        6,
        95,
    ).astype(np.float64)
    age[rng.random(n_members) < 0.04] = np.nan
    district = rng.integers(0, len(_DISTRICTS), n_members)
    appetite = rng.normal(size=n_members)  # latent reading appetite
    lateness = rng.normal(size=n_members) + _MEMBERSHIP_LATE[membership]
    satisfaction = rng.normal(size=n_members)
    preferred = rng.choice(n_genre, size=n_members, p=_GENRE_P)
    review_prop = rng.beta(1.5, 6.0, n_members)
    # Members join from three years before the data starts to three months before its
    # end, and borrow only after joining.
    joined_ns = rng.integers(start.value - 1095 * day, end_excl.value - 90 * day, n_members)
    joined_ns = joined_ns - joined_ns % day
    active_from = np.maximum(joined_ns, start.value)
    # Lapse: keen, satisfied and punctual members stay longer.
    lapse_mean_days = 550.0 * np.exp(0.4 * appetite + 0.5 * satisfaction - 0.35 * lateness)
    lapse_ns = active_from + (rng.exponential(1.0, n_members) * lapse_mean_days * day).astype(
        np.int64
    )
    members = pd.DataFrame(
        {
            "member_id": np.arange(n_members, dtype=np.int64),
            "age": age,
            "membership": pd.Series(_objects(_MEMBERSHIPS, membership), dtype=object),
            "district": pd.Series(_objects(_DISTRICTS, district), dtype=object),
            "joined_date": _to_time(joined_ns),
        }
    )

    # ------------------------------------------------------------------ loan intensities
    # Weekly intensity per member: base rate x a mean-reverting walk with rare regime jumps
    # x seasonality (summer holidays, winter evenings), zero before joining, fading over the
    # three months before the lapse time and nearly zero after it. Loops over weeks only.
    week_start, week_len = _weeks(start, end_excl)
    n_weeks = len(week_start)
    base = 0.8 * appetite + _MEMBERSHIP_RATE[membership] + _DISTRICT_RATE[district]
    month = pd.DatetimeIndex(_to_time(week_start)).month.to_numpy()
    season = 0.25 * np.isin(month, (7, 8)) + 0.15 * np.isin(month, (1, 2, 12))
    weights = np.empty((n_members, n_weeks), dtype=np.float32)
    walk = rng.normal(0.0, 0.3, n_members)
    fade = 90 * day
    for k in range(n_weeks):
        jump = rng.random(n_members) < 0.015
        walk = np.where(
            jump,
            rng.normal(0.0, 0.7, n_members),  # a new regime: a new level, not a step
            0.93 * walk + rng.normal(0.0, 0.1, n_members),
        )
        t = week_start[k]
        to_lapse = lapse_ns - t
        lapse_factor = np.where(
            to_lapse <= 0, 0.01, np.exp(-2.5 * np.clip(fade - to_lapse, 0, None) / fade)
        )
        w = np.exp(base + walk + season[k]) * lapse_factor * (joined_ns <= t)
        weights[:, k] = w * (week_len[k] / (7 * day))
    # Exactly n_loans (member, week) cells drawn proportionally to the weights.
    cell = _draw_cells(weights, n_loans, rng)
    del weights
    member = (cell // n_weeks).astype(np.int64)
    week = cell % n_weeks
    del cell
    loan_ns = week_start[week] + (rng.random(n_loans) * week_len[week]).astype(np.int64)
    loan_ns -= loan_ns % second
    del week
    order = np.argsort(loan_ns, kind="stable")  # RelBench: keys in row order, sorted by time
    loan_ns, member = loan_ns[order], member[order]
    del order

    # ------------------------------------------------------------------ loan contents
    # 70% of loans are in the member's preferred genre; within a genre, appealing books
    # are picked more (a rank drawn as u ** 2 on books sorted by decreasing appeal).
    own = rng.random(n_loans) < 0.7
    loan_genre = np.where(own, preferred[member], rng.choice(n_genre, n_loans, p=_GENRE_P))
    by_appeal = np.lexsort((-appeal, genre))
    genre_start = np.searchsorted(genre[by_appeal], np.arange(n_genre))
    genre_count = np.bincount(genre, minlength=n_genre)
    rank = (rng.random(n_loans) ** 2 * genre_count[loan_genre]).astype(np.int64)
    book = by_appeal[
        genre_start[loan_genre] + np.minimum(rank, genre_count[loan_genre] - 1)
    ].astype(np.int64)
    del own, rank
    # Days kept: longer books and late-prone members keep books longer. It depends on
    # neither the lapse time nor the reading rate, so a loan's row says nothing about the
    # member's future loans beyond what their traits say.
    log_days = (
        np.log(12.0)
        + 0.35 * np.log(pages[book] / 300.0)
        + 0.35 * lateness[member]
        + rng.normal(0.0, 0.35, n_loans)
    )
    days_kept = np.clip(np.round(np.exp(log_days)), 1, 120).astype(np.int64)
    renewed = (days_kept > 14) & (rng.random(n_loans) < _sigmoid(0.5 - 0.9 * lateness[member]))
    loans = pd.DataFrame(
        {
            "loan_id": np.arange(n_loans, dtype=np.int64),
            "member_id": member,
            "book_id": book,
            "loan_time": _to_time(loan_ns),
            "days_kept": days_kept,
            "renewed": renewed,
        }
    )
    returned_ns = loan_ns + days_kept * day

    # ------------------------------------------------------------------ fines
    # A loan kept past the lending period (longer when renewed) is fined on return.
    allowed = _LOAN_DAYS * (1 + renewed)
    fined = np.flatnonzero((days_kept > allowed) & (returned_ns < end_excl.value))
    fine_ns = returned_ns[fined] + (rng.random(len(fined)) * 6 * 3600 * second).astype(np.int64)
    fine_ns -= fine_ns % second
    keep = fine_ns < end_excl.value
    fined, fine_ns = fined[keep], fine_ns[keep]
    order = np.argsort(fine_ns, kind="stable")
    fined, fine_ns = fined[order], fine_ns[order]
    fines = pd.DataFrame(
        {
            "fine_id": np.arange(len(fined), dtype=np.int64),
            "member_id": member[fined],
            "loan_id": fined.astype(np.int64),
            "fine_time": _to_time(fine_ns),
            "amount": np.round(_FINE_PER_DAY * (days_kept[fined] - allowed[fined]), 2),
        }
    )

    # ------------------------------------------------------------------ reviews
    # Some returns are followed by a review; the rating reflects the member's satisfaction,
    # the book's quality and whether the book is in the member's preferred genre.
    reviewed = np.flatnonzero(rng.random(n_loans) < review_prop[member])
    review_ns = returned_ns[reviewed] + (rng.exponential(3.0, len(reviewed)) * day).astype(np.int64)
    review_ns -= review_ns % second
    keep = review_ns < end_excl.value
    reviewed, review_ns = reviewed[keep], review_ns[keep]
    order = np.argsort(review_ns, kind="stable")
    reviewed, review_ns = reviewed[order], review_ns[order]
    r_member, r_book = member[reviewed], book[reviewed]
    n_reviews = len(reviewed)
    rating = np.clip(
        np.round(
            3.0
            + 0.8 * satisfaction[r_member]
            + 0.5 * quality[r_book]
            + 0.5 * (genre[r_book] == preferred[r_member])
            + rng.normal(0.0, 0.7, n_reviews)
        ),
        1,
        5,
    ).astype(np.int64)
    texts = [
        f"{phrase}, {nouns[j]}"
        for r in range(1, 6)
        for phrase in _SENTIMENT[r]
        for nouns in _GENRE_NOUNS
        for j in range(3)
    ]
    text_idx = (
        ((rating - 1) * 3 + rng.integers(0, 3, n_reviews)) * n_genre + genre[r_book]
    ) * 3 + rng.integers(0, 3, n_reviews)
    reviews = pd.DataFrame(
        {
            "review_id": np.arange(n_reviews, dtype=np.int64),
            "member_id": r_member,
            "book_id": r_book,
            "review_time": _to_time(review_ns),
            "rating": rating,
            "text": pd.Series(_objects(texts, text_idx), dtype=object),
        }
    )
    return {
        "members": members,
        "authors": authors,
        "books": books,
        "loans": loans,
        "fines": fines,
        "reviews": reviews,
    }


def make_library_database(
    n_members: int = 300,
    n_loans: int = 6000,
    *,
    n_books: int | None = None,
    n_authors: int | None = None,
    start: Any = "2020-01-01",
    end: Any = "2023-12-31",
    random_state: int | np.random.Generator | None = 0,
    as_frames: bool = False,
) -> Any:
    """Generate a synthetic lending-library database in which member behaviour is predictable.

    Tables (keys are ``0..n-1`` in row order, fact tables are sorted by time):

    - ``members`` (static): ``member_id``, ``age`` (about 4% null), ``membership``
      (standard, student, senior, family), ``district``, ``joined_date`` (a plain
      datetime attribute, not a time column);
    - ``authors`` (static): ``author_id``, ``name``, ``country``, ``birth_year``;
    - ``books`` (static): ``book_id``, ``author_id`` -> ``authors``, ``title`` (short
      text), ``genre``, ``year``, ``pages``;
    - ``loans`` (time column ``loan_time``): ``loan_id``, ``member_id``, ``book_id``,
      ``days_kept``, ``renewed`` (bool);
    - ``fines`` (time column ``fine_time``, the return time): ``fine_id``,
      ``member_id``, ``loan_id`` -> ``loans``, ``amount``; one per loan kept past 21 days
      (42 when renewed);
    - ``reviews`` (time column ``review_time``, after the return): ``review_id``,
      ``member_id``, ``book_id``, ``rating`` (1-5), ``text`` (short text).

    Each member has latent traits: a reading rate (drifting, with rare jumps to a new
    regime, seasonal), a preferred genre, a lateness propensity (long loans, fines), a
    satisfaction level (ratings) and a lapse time after which they (almost) stop
    borrowing, with activity fading in the three months before. Keen, satisfied and
    punctual members lapse later; membership type and district shift the traits. So next
    month's loans and a coming lapse are predictable from the loan, fine and review
    history, and a little from the static attributes.

    As in most real databases, a loan row carries ``days_kept``, which is only known at
    the return; it depends on the book's length and the member's lateness alone, not on
    the member's future borrowing.

    Parameters
    ----------
    n_members : int, default=300
        Rows of ``members``.
    n_loans : int, default=6000
        Rows of ``loans`` (exactly). ``reviews`` gets about a sixth as many rows and
        ``fines`` about a tenth.
    n_books : int, optional
        Rows of ``books``; default ``clip(n_members // 2, 40, 50_000)``.
    n_authors : int, optional
        Rows of ``authors``; default ``max(len(genres), n_books // 5)``.
    start, end : str or Timestamp, default="2020-01-01", "2023-12-31"
        First and last day (inclusive) of the loans' times.
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
    >>> from sktve.datasets import make_library_database
    >>> db = make_library_database(n_members=50, n_loans=500, random_state=0)
    >>> db.num_rows("loans")
    500
    >>> frames, schema = make_library_database(50, 500, as_frames=True)
    >>> schema["fines"]["fkeys"]
    {'member_id': 'members', 'loan_id': 'loans'}
    """
    n_members, n_loans = int(n_members), int(n_loans)
    if n_members < 1 or n_loans < 1:
        raise ValueError(f"n_members and n_loans must be positive, got {n_members} and {n_loans}.")
    n_genre = len(_GENRES)
    if n_books is None:
        n_books = int(np.clip(n_members // 2, 40, 50_000))
    if n_authors is None:
        n_authors = max(n_genre, n_books // 5)
    if n_books < n_genre or n_authors < n_genre:
        raise ValueError(
            f"n_books and n_authors must be at least {n_genre} (one per genre); got "
            f"{n_books} and {n_authors}."
        )
    start_ts = pd.Timestamp(start).normalize()
    end_excl = pd.Timestamp(end).normalize() + pd.Timedelta(days=1)
    if end_excl - start_ts < pd.Timedelta(days=7):
        raise ValueError(f"end ({end}) must be at least a week after start ({start}).")
    rng = np.random.default_rng(random_state)
    frames = _generate(n_members, n_loans, int(n_books), int(n_authors), start_ts, end_excl, rng)
    schema = copy.deepcopy(_SCHEMA)
    if as_frames:
        return frames, schema
    from sktve.database import load_database

    return load_database(frames, schema=schema)


def library_tasks(num_eval_timestamps: int = 3) -> list[Any]:
    """The task manifests of the library database: ``member-loans`` and ``member-lapse``.

    Both are forecast tasks on ``members`` for the members who borrowed in the year up to
    the cutoff t (inclusive):

    - ``member-loans`` (regression, target ``n_loans``): the number of loans in
      (t, t + 30 days], 0 for members who borrow nothing;
    - ``member-lapse`` (binary classification, target ``lapse``): 1 when the member
      borrows nothing in (t, t + 60 days].

    Parameters
    ----------
    num_eval_timestamps : int, default=3
        Number of validation and test cutoffs (spaced by each task's window).

    Returns
    -------
    list of relbench.manifest.TaskManifest

    Examples
    --------
    >>> from sktve.datasets import library_tasks
    >>> [(t.name, t.timedelta) for t in library_tasks()]
    [('member-loans', '30 days'), ('member-lapse', '60 days')]
    """
    from relbench.manifest import TaskManifest

    common = dict(
        kind="forecast",
        entity_table="members",
        entity_col="member_id",
        time_col="timestamp",
        num_eval_timestamps=int(num_eval_timestamps),
    )
    return [
        TaskManifest(
            name="member-loans",
            task_type="regression",
            description="How many books will a member who borrowed in the past year borrow "
            "in the next 30 days (0 when they borrow none)?",
            target_col="n_loans",
            timedelta="30 days",
            sql=LOANS_SQL,
            **common,
        ),
        TaskManifest(
            name="member-lapse",
            task_type="binary_classification",
            description="Will a member who borrowed in the past year borrow nothing in the "
            "next 60 days?",
            target_col="lapse",
            timedelta="60 days",
            sql=LAPSE_SQL,
            **common,
        ),
    ]


def make_library_dataset(
    path: str | Path,
    n_members: int = 300,
    n_loans: int = 6000,
    *,
    random_state: int | None = 0,
    start: Any = "2020-01-01",
    end: Any = "2023-12-31",
    val_timestamp: Any = None,
    test_timestamp: Any = None,
    name: str = "sktve-library",
    **kwargs: Any,
) -> Path:
    """Generate a library database and write it as a RelBench 3 folder with two tasks.

    The tasks are ``member-loans`` and ``member-lapse`` (see :func:`library_tasks`).
    Load the folder with ``relbench.load_dataset(str(path))`` or
    ``sktve.load_database(path)``; nothing needs a network.

    Parameters
    ----------
    path : str or Path
        Folder to write.
    n_members, n_loans : int, default=300, 6000
        Sizes, as in :func:`make_library_database`.
    random_state : int or None, default=0
        Seed.
    start, end : str or Timestamp, default="2020-01-01", "2023-12-31"
        Time span of the data.
    val_timestamp, test_timestamp : str or Timestamp, optional
        Split cutoffs; default to the first of the month at 75% and 87.5% of the span
        (2023-01-01 and 2023-07-01 for the default span). The data must extend three
        60-day windows past ``test_timestamp`` for every ``member-lapse`` test cutoff to
        have labels.
    name : str, default="sktve-library"
        Dataset name in the manifest.
    **kwargs
        More arguments of :func:`make_library_database` (``n_books``, ``n_authors``).

    Returns
    -------
    Path
        The folder.

    Examples
    --------
    >>> import tempfile, relbench
    >>> from sktve.datasets import make_library_dataset, task_to_xy
    >>> path = make_library_dataset(tempfile.mkdtemp(), n_members=100, n_loans=2000)
    >>> task = relbench.load_dataset(str(path)).load_task("member-lapse")
    >>> X, y = task_to_xy(task, "val")
    >>> list(X.columns)
    ['member_id', 'timestamp']
    """
    from sktve.datasets import split_timestamps, write_relbench_folder

    val_timestamp, test_timestamp = split_timestamps(start, end, val_timestamp, test_timestamp)
    frames, schema = make_library_database(
        n_members,
        n_loans,
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
        tasks=library_tasks(),
        description="Synthetic lending-library database (sktve) with planted member behaviour.",
    )
