"""What load_database says about common mistakes (run at documentation build time)."""

import warnings

import pandas as pd

from sktve import load_database

users = pd.DataFrame({"user_id": [0, 1, 2], "country": ["fr", "de", "fr"]})
orders = pd.DataFrame(
    {
        "order_id": [0, 1, 2, 3],
        "user_id": [0, 0, 1, 7],  # user 7 does not exist
        "ts": pd.to_datetime(["2024-01-02", "2024-01-05", "2024-02-01", "2024-02-03"]),
        "amount": [3.0, 5.0, 7.0, 1.0],
    }
)
clean = orders.iloc[:3]  # without the dangling key
SECOND = pd.Timedelta("1s")
schema = {
    "users": {"pkey": "user_id", "time_col": None, "fkeys": {}},
    "orders": {"pkey": "order_id", "time_col": "ts", "fkeys": {"user_id": "users"}},
}


def attempt(title, tables, schema, **kwargs):
    print(f"# {title}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            db = load_database(tables, schema=schema, **kwargs)
            print(f"ok: {db!r}")
        except (ValueError, TypeError) as err:
            print(f"{type(err).__name__}: {err}")
    for w in caught:
        print(f"{w.category.__name__}: {w.message}")
    print()


attempt(
    "a dangling foreign key (the default: set to null, with a warning)",
    {"users": users, "orders": orders},
    schema,
)
attempt(
    "the same, with dangling='raise'", {"users": users, "orders": orders}, schema, dangling="raise"
)
attempt(
    "a table without a schema entry", {"users": users, "orders": clean}, {"users": schema["users"]}
)
attempt(
    "a misspelt time column",
    {"users": users, "orders": clean},
    {**schema, "orders": {**schema["orders"], "time_col": "time"}},
)
attempt(
    "duplicated primary keys",
    {"users": pd.concat([users, users.iloc[:1]]), "orders": clean},
    schema,
)
attempt(
    "a foreign key to an unknown table",
    {"users": users, "orders": clean},
    {**schema, "orders": {**schema["orders"], "fkeys": {"user_id": "user"}}},
)
attempt(
    "times given as strings (converted, with a warning)",
    {"users": users, "orders": clean.assign(ts=clean.ts.dt.strftime("%Y-%m-%d"))},
    schema,
)
attempt(
    "times given as numbers",
    {"users": users, "orders": clean.assign(ts=(clean.ts - pd.Timestamp(0)) // SECOND)},
    schema,
)
attempt(
    "string keys referenced by integers (converted, with a warning)",
    {"users": users.assign(user_id=users.user_id.astype(str)), "orders": clean},
    schema,
)
attempt(
    "keys that name other ids",
    {"users": users.assign(user_id=["u0", "u1", "u2"]), "orders": clean},
    schema,
)
attempt(
    "most foreign keys dangle (a loud warning)",
    {"users": users, "orders": clean.assign(user_id=[0, 5, 6])},
    schema,
)
