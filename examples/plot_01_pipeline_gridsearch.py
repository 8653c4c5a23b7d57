"""
Pipeline and grid search on the validation split
================================================

A :class:`~sktve.TVEPretrainer` followed by a gradient-boosting head, with the head's
hyper-parameters chosen by :class:`~sklearn.model_selection.GridSearchCV` on the task's
validation split (never on the test split, and never on shuffled rows).

:func:`sktve.datasets.train_val_cv` returns the train and validation rows together with a
:class:`~sklearn.model_selection.PredefinedSplit` that fits on the former and scores on
the latter. The pretrainer's ``memory`` caches pre-training, so the four grid points share
one pre-training (plus one for the final refit on train + validation rows).
"""

# %%
# A RelBench task on the synthetic database
# -----------------------------------------
# :func:`~sktve.datasets.make_synthetic_dataset` writes a small synthetic shop as a
# RelBench 3 folder with two forecast tasks. ``customer-churn`` asks, for customers who
# ordered in the past year, whether they place no order in the next 30 days.
import tempfile

import pandas as pd
import relbench
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sktve import TVEPretrainer, load_database
from sktve.datasets import make_synthetic_dataset, task_to_xy, train_val_cv

path = make_synthetic_dataset(tempfile.mkdtemp(), n_customers=200, n_orders=4000, random_state=0)
dataset = relbench.load_dataset(str(path))
task = dataset.load_task("customer-churn")
db = load_database(dataset)
print(db.describe())

# %%
# Train and validation rows, with the split that separates them
# -------------------------------------------------------------
# ``X`` holds only the entity id and the prediction time of each row.
X, y, cv = train_val_cv(task)
X_test, y_test = task_to_xy(task, "test")
print(X.head())
print(f"{len(X)} train + val rows, {len(X_test)} test rows; churn rate {y.mean():.2f}")
train_idx, val_idx = next(cv.split(X))
print(
    "train times:",
    X.timestamp.iloc[train_idx].min().date(),
    "..",
    X.timestamp.iloc[train_idx].max().date(),
)
print(
    "val times:  ",
    X.timestamp.iloc[val_idx].min().date(),
    "..",
    X.timestamp.iloc[val_idx].max().date(),
)

# %%
# The pipeline and the search
# ---------------------------
# Small pre-training settings keep this example fast. ``memory`` is a folder where
# pre-training results are cached, keyed by the database's fingerprint, the rows of ``X``
# and the pretrainer's settings.
tve = TVEPretrainer(
    database=db,
    entity_table="customers",
    window="30D",
    max_epochs=2,
    steps_per_epoch=5,
    embedding_dim=16,
    fanouts=(8, 4),
    memory=tempfile.mkdtemp(),
    random_state=0,
)
pipe = Pipeline([("tve", tve), ("clf", HistGradientBoostingClassifier(random_state=0))])
grid = {"clf__learning_rate": [0.03, 0.1], "clf__max_leaf_nodes": [7, 31]}
search = GridSearchCV(pipe, grid, cv=cv, scoring="roc_auc")
search.fit(X, y)

results = pd.DataFrame(search.cv_results_)
print(results[["param_clf__learning_rate", "param_clf__max_leaf_nodes", "mean_test_score"]])
print("best:", search.best_params_, f"validation AUROC {search.best_score_:.3f}")

# %%
# One look at the test split
# --------------------------
# The refitted pipeline (trained on train + validation rows) is evaluated once.
test_auc = roc_auc_score(y_test, search.predict_proba(X_test)[:, 1])
print(f"test AUROC {test_auc:.3f}")

# %%
# The pretrainer inside the refitted pipeline pre-trained on cutoffs up to the last
# validation time, and read the database up to one window later: never the test labels'
# period.
fitted = search.best_estimator_.named_steps["tve"]
print("boundary:", fitted.boundary_, " window:", fitted.windows_[0])
print("test rows start at:", X_test.timestamp.min())
