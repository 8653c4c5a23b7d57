"""
Bringing your own database from pandas
======================================

Any relational data that fits in memory works: a dict of DataFrames and a schema giving
each table's primary key, time column and foreign keys. Here, a small lending library is
built from scratch with numpy (members, books, loans), loaded with
:func:`~sktve.load_database`, and used to predict which members borrow a book in the next
30 days.
"""

# %%
# The tables
# ----------
# ``members`` and ``books`` are static tables; ``loans`` is timestamped and references
# both. Some members are keen readers, most are occasional.
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktve import TVEPretrainer, load_database

rng = np.random.default_rng(0)
n_members, n_books, n_loans = 150, 60, 2500
members = pd.DataFrame(
    {
        "member_id": np.arange(n_members),
        "age": rng.integers(16, 80, n_members),
        "branch": rng.choice(["central", "north", "harbour"], n_members),
    }
)
books = pd.DataFrame(
    {
        "book_id": np.arange(n_books),
        "genre": rng.choice(["crime", "poetry", "history", "science", "fantasy"], n_books),
        "pages": rng.integers(90, 900, n_books),
    }
)
keenness = rng.gamma(0.6, 1.0, n_members)  # hidden: how often each member borrows
start = pd.Timestamp("2022-01-01")
loans = pd.DataFrame(
    {
        "loan_id": np.arange(n_loans),
        "member_id": rng.choice(n_members, n_loans, p=keenness / keenness.sum()),
        "book_id": rng.integers(0, n_books, n_loans),
        "loan_time": start + pd.to_timedelta(np.sort(rng.uniform(0, 730, n_loans)), unit="D"),
        "days_kept": rng.integers(3, 40, n_loans),
    }
)
loans["returned_late"] = loans["days_kept"] > 28
print(loans.head().to_string())

# %%
# Loading: tables plus a schema
# -----------------------------
schema = {
    "members": {"pkey": "member_id", "time_col": None, "fkeys": {}},
    "books": {"pkey": "book_id", "time_col": None, "fkeys": {}},
    "loans": {
        "pkey": "loan_id",
        "time_col": "loan_time",
        "fkeys": {"member_id": "members", "book_id": "books"},
    },
}
tables = {"members": members, "books": books, "loans": loans}
db = load_database(tables, schema=schema)
print(db.describe())

# %%
# Mistakes are caught at load time, with a message that says what to do:
try:
    load_database(tables, schema={**schema, "loans": {**schema["loans"], "time_col": "date"}})
except ValueError as err:
    print("ValueError:", err)

# %%
# A task table and its labels
# ---------------------------
# One row per (member, prediction time) on the first of each month; the label says
# whether the member borrows anything in the next 30 days. Labels come from the data
# after each time: the pretrainer must never see them, and never does (``y`` is ignored
# and ``X`` may only hold the two key columns).
times = pd.date_range("2022-03-01", "2023-11-01", freq="MS")
X = pd.MultiIndex.from_product([times, members.member_id], names=["time", "member_id"]).to_frame(
    index=False
)[["member_id", "time"]]
window = pd.Timedelta("30D")
borrowed = pd.merge(X, loans[["member_id", "loan_time"]], on="member_id")
borrowed = borrowed[
    (borrowed.loan_time > borrowed.time) & (borrowed.loan_time <= borrowed.time + window)
]
y = (
    X.set_index(["member_id", "time"])
    .index.isin(borrowed.set_index(["member_id", "time"]).index)
    .astype(int)
)

# Split by time, with a one-window gap so that no training label overlaps a test label.
train = (X.time <= "2023-05-01").to_numpy()
test = (X.time >= pd.Timestamp("2023-05-01") + window).to_numpy()
print(f"{train.sum()} train rows, {test.sum()} test rows, positive rate {y.mean():.2f}")

# %%
# Pre-train and fit
# -----------------
# The entity column is ``member_id`` (the key of ``members``) and the only datetime column
# is ``time``, so both are inferred.
pipe = make_pipeline(
    TVEPretrainer(
        database=db,
        entity_table="members",
        window="30D",
        max_epochs=2,
        steps_per_epoch=5,
        embedding_dim=16,
        fanouts=(8, 4),
        random_state=0,
    ),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
pipe.fit(X[train], y[train])
auc = roc_auc_score(y[test], pipe.predict_proba(X[test])[:, 1])
print(f"test AUROC {auc:.3f}")

# %%
# What the pretrainer aggregated: the schema paths from ``members``.
from sktve.targets import enumerate_paths  # noqa: E402

for p in enumerate_paths(db, "members"):
    print(f"{p.name:<24} {p.kind:<10} {[c.name for c in p.columns]}")
