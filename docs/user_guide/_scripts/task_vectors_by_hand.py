"""Task vectors of one customer, computed by sktve and by hand.

Run at documentation build time (docs/_build_tables.py); its output is shown in
user_guide/task_vectors.rst.
"""

import pandas as pd

from sktve import load_database
from sktve.targets import enumerate_paths, task_vectors

# A hand-made shop: three customers, three products, eight orders.
customers = pd.DataFrame({"customer_id": [0, 1, 2], "country": ["fr", "de", "fr"]})
products = pd.DataFrame(
    {
        "product_id": [0, 1, 2],
        "category": ["books", "toys", "books"],
        "price": [12.0, 30.0, 8.0],
    }
)
orders = pd.DataFrame(
    {
        "order_id": range(8),
        "customer_id": [0, 1, 0, 0, 0, 2, 0, 2],
        "product_id": [2, 0, 0, 1, 2, 1, 0, 0],
        "order_time": pd.to_datetime(
            [
                "2024-01-20",  # before the cutoff: history, not target
                "2024-01-05",
                "2024-02-03",  # \
                "2024-02-10",  #  } customer 0, inside (2024-01-31, 2024-03-01]
                "2024-02-20",  # /
                "2024-02-28",
                "2024-03-15",  # after the window: not counted
                "2024-04-02",
            ]
        ),
        "quantity": [1, 2, 1, 2, 3, 1, 1, 1],
        "channel": ["web", "web", "web", "app", "web", "app", "web", "app"],
    }
)
db = load_database(
    {"customers": customers, "products": products, "orders": orders},
    schema={
        "customers": {"pkey": "customer_id"},
        "products": {"pkey": "product_id"},
        "orders": {
            "pkey": "order_id",
            "time_col": "order_time",
            "fkeys": {"customer_id": "customers", "product_id": "products"},
        },
    },
)

print("Schema paths from 'customers' (1 and 2 hops):")
for path in enumerate_paths(db, "customers", max_hops=2):
    print(f"  {path.name:<28} {path.kind:<10} columns: {[c.name for c in path.columns]}")

cutoff, window = pd.Timestamp("2024-01-31"), "30D"
tv = task_vectors(db, "customers", [cutoff], window, max_hops=2)
print(
    f"\ntask_vectors(db, 'customers', ['{cutoff.date()}'], '{window}'): "
    f"{tv.shape[0]} rows x {tv.shape[1]} columns"
)
print(tv[["customer_id", "cutoff", "30D|orders|*|count", "no_activity"]].to_string(index=False))

print("\nCustomer 0, one value per column:")
with pd.option_context("display.max_rows", None, "display.width", 100):
    print(
        tv[tv["customer_id"] == 0].drop(columns=["customer_id", "cutoff"]).T.to_string(header=False)
    )

# The same numbers by hand, as the SQL sktve generates would compute them:
#   SELECT COUNT(*), SUM(quantity), AVG(quantity), ... FROM orders o
#   WHERE o.customer_id = 0 AND o.order_time > cutoff AND o.order_time <= cutoff + 30 days
end = cutoff + pd.Timedelta(window)
mine = orders[(orders.customer_id == 0) & (orders.order_time > cutoff) & (orders.order_time <= end)]
bought = mine.merge(products, on="product_id")
print("\nBy hand, from the 3 orders of customer 0 in (2024-01-31, 2024-03-01]:")
print(f"  orders|*|count              = {len(mine)}")
print(f"  orders|quantity|sum         = {mine.quantity.sum()}")
print(f"  orders|quantity|mean        = {mine.quantity.mean():.4f}")
print(f"  orders|quantity|std         = {mine.quantity.std(ddof=0):.4f}  (population std)")
print(f"  orders|channel|mode         = {mine.channel.mode().iloc[0]!r}")
print(f"  orders|channel|nunique      = {mine.channel.nunique()}")
print(f"  orders->products|price|mean = {bought.price.mean():.4f}")
print(f"  orders->products|category|mode = {bought.category.mode().iloc[0]!r}")

# Sibling path orders->products<-orders: for each of those orders, the orders of the same
# product (by anyone, itself included) in the 30 days up to it.
siblings = [
    orders[
        (orders.product_id == row.product_id)
        & (orders.order_time > row.order_time - pd.Timedelta(window))
        & (orders.order_time <= row.order_time)
    ]
    for row in mine.itertuples()
]
siblings = pd.concat(siblings)
print(f"  orders->products<-orders|*|count       = {len(siblings)}")
print(f"  orders->products<-orders|quantity|sum  = {siblings.quantity.sum()}")
