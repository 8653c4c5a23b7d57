"""
rel-f1: will a driver finish in the top 3?
==========================================

The RelBench ``rel-f1`` task ``driver-top3`` (for each driver and date, will the driver
qualify in the top 3 of a race in the next 30 days?), with TVE embeddings and history
aggregates side by side, the head chosen on the validation split and the test split
scored once.

This example needs the RelBench ``rel-f1`` folder: set ``SKTVE_RELF1=/path/to/rel-f1``.
It is not run when the documentation is built (``make -C docs html-relf1`` runs it); it
takes about two minutes on two CPU cores.
"""

# %%
import os
import sys
import tempfile

import pandas as pd
import relbench
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import FeatureUnion, Pipeline

from sktve import AggregateFeatures, TVEPretrainer, load_database
from sktve.datasets import task_to_xy, train_val_cv

RELF1 = os.environ.get("SKTVE_RELF1")
if not RELF1 or not os.path.isdir(RELF1):
    sys.exit("Set SKTVE_RELF1 to the RelBench rel-f1 folder to run this example.")

dataset = relbench.load_dataset(RELF1)
task = dataset.load_task("driver-top3")
db = load_database(dataset)  # cut at the test timestamp, as RelBench does
print(db.describe())

# %%
X, y, cv = train_val_cv(task)
X_test, y_test = task_to_xy(task, "test")
print(f"{len(X)} train + val rows, {len(X_test)} test rows; columns {list(X.columns)}")

# %%
# Features: embeddings and history aggregates
# -------------------------------------------
features = FeatureUnion(
    [
        (
            "tve",
            TVEPretrainer(
                database=db,
                entity_table="drivers",
                window=task.timedelta,
                embedding_dim=32,
                fanouts=(16, 8),
                max_epochs=8,
                steps_per_epoch=20,
                memory=tempfile.mkdtemp(),
                random_state=0,
            ),
        ),
        ("agg", AggregateFeatures(database=db, entity_table="drivers", window=["365D", "3650D"])),
    ]
)
pipe = Pipeline([("features", features), ("clf", HistGradientBoostingClassifier(random_state=0))])

# %%
# The head's hyper-parameters are chosen on the validation split only.
grid = {"clf__learning_rate": [0.03, 0.1], "clf__max_leaf_nodes": [7, 31]}
search = GridSearchCV(pipe, grid, cv=cv, scoring="roc_auc").fit(X, y)
columns = ["param_clf__learning_rate", "param_clf__max_leaf_nodes", "mean_test_score"]
print(pd.DataFrame(search.cv_results_)[columns])

# %%
# The test split, once.
test_auc = roc_auc_score(y_test, search.predict_proba(X_test)[:, 1])
print(f"validation AUROC {search.best_score_:.3f}   test AUROC {test_auc:.3f}")
print("RelBench reference (test AUROC): LightGBM 73.92, RDL GNN 75.54")
