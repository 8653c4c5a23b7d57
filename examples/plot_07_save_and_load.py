"""
Saving and loading a fitted model
=================================

Fitted sktve estimators are saved with :mod:`joblib`. The database is **not** saved: a
:class:`~sktve.Database` pickles to its ``spec`` and a fingerprint of its content. A model
restored from disk gets its data back with :meth:`Database.attach
<sktve.Database.attach>` (checked by fingerprint) or with ``set_params(database=...)``,
which may also be a newer version of the database.
"""

# %%
import os
import tempfile

import joblib
import numpy as np
import pandas as pd

from sktve import DatabaseNotAttachedError, TVEPretrainer, load_database
from sktve.datasets import make_synthetic_database

frames, schema = make_synthetic_database(
    n_customers=200, n_orders=4000, random_state=0, as_frames=True
)
db = load_database(frames, schema=schema)
times = pd.date_range("2021-01-01", periods=6, freq="30D")
X = pd.MultiIndex.from_product(
    [times, np.arange(100)], names=["timestamp", "customer_id"]
).to_frame(index=False)[["customer_id", "timestamp"]]
tve = TVEPretrainer(
    database=db,
    entity_table="customers",
    window="30D",
    max_epochs=2,
    steps_per_epoch=5,
    embedding_dim=16,
    fanouts=(8, 4),
    random_state=0,
)
Z = tve.fit_transform(X)

# %%
# Save
# ----
path = os.path.join(tempfile.mkdtemp(), "tve.joblib")
joblib.dump(tve, path)
print(
    f"saved {os.path.getsize(path) / 1024:.0f} KiB (the database holds "
    f"{db.num_rows():,} rows and is not in the file)"
)

# %%
# Load: the database handle comes back empty
# ------------------------------------------
restored = joblib.load(path)
print(restored.database_)
try:
    restored.transform(X)
except DatabaseNotAttachedError as err:
    print("DatabaseNotAttachedError:", err)

# %%
# Give it the same data again
# ---------------------------
# ``attach`` checks the fingerprint: the data must be the same.
restored.database_.attach(load_database(frames, schema=schema))
print("identical embeddings:", np.array_equal(restored.transform(X), Z))

# %%
# Or point it at a newer database
# -------------------------------
# In production the model embeds new rows with the database as it is *now*. Rows appended
# after the training period cannot change the embeddings of earlier rows: ``transform``
# only reads rows at or before each row's time.
orders = frames["orders"]
new_orders = orders.tail(50).assign(
    order_id=orders.order_id.max() + 1 + np.arange(50),
    order_time=pd.Timestamp("2024-01-15") + pd.to_timedelta(np.arange(50), unit="h"),
)
newer = load_database({**frames, "orders": pd.concat([orders, new_orders])}, schema=schema)
restored = joblib.load(path).set_params(database=newer)
print("same embeddings for the old rows:", np.array_equal(restored.transform(X), Z))
X_now = pd.DataFrame({"customer_id": [0, 1, 2], "timestamp": pd.Timestamp("2024-02-01")})
print(restored.transform(X_now)[:, :6].round(2))  # first 6 of 16 dimensions
