"""
Embeddings and history aggregates together
==========================================

:class:`~sktve.AggregateFeatures` computes classic history features (counts, sums, means,
modes... of each entity's rows in windows *before* the prediction time) with the same SQL
engine that builds task vectors. They are a strong baseline and combine naturally with
TVE embeddings: both take the same ``X``, so a
:class:`~sklearn.pipeline.FeatureUnion` puts them side by side. A
:class:`~sklearn.compose.ColumnTransformer` does the same when ``X`` has other columns,
and :mod:`sktve.bootstrap` says how sure a difference on the validation rows is.
"""

# %%
import tempfile

import numpy as np
import relbench
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import FeatureUnion, Pipeline

from sktve import AggregateFeatures, TVEPretrainer, load_database
from sktve.bootstrap import paired_difference
from sktve.datasets import make_synthetic_dataset, task_to_xy

path = make_synthetic_dataset(tempfile.mkdtemp(), n_customers=200, n_orders=4000, random_state=0)
dataset = relbench.load_dataset(str(path))
task = dataset.load_task("customer-churn")
db = load_database(dataset)
X_train, y_train = task_to_xy(task, "train")
X_val, y_val = task_to_xy(task, "val")

cache = tempfile.mkdtemp()  # shared: the two pipelines below pre-train once


def make_tve():
    return TVEPretrainer(
        database=db,
        entity_table="customers",
        window="30D",
        max_epochs=2,
        steps_per_epoch=5,
        embedding_dim=16,
        fanouts=(8, 4),
        memory=cache,
        random_state=0,
    )


def make_agg():
    return AggregateFeatures(database=db, entity_table="customers", window=["30D", "365D"])


# %%
# History aggregates alone
# ------------------------
agg = make_agg().fit(X_train)
names = agg.get_feature_names_out()
print(f"{len(names)} aggregate features, e.g.")
print("\n".join(names[:8]))

# %%
# Three feature sets, one head
# ----------------------------
candidates = {
    "aggregates": make_agg(),
    "embeddings": make_tve(),
    "both": FeatureUnion([("tve", make_tve()), ("agg", make_agg())]),
}
val_proba = {}
for name, features in candidates.items():
    pipe = Pipeline(
        [("features", features), ("clf", HistGradientBoostingClassifier(random_state=0))]
    )
    pipe.fit(X_train, y_train)
    val_proba[name] = pipe.predict_proba(X_val)[:, 1]
    auc = roc_auc_score(y_val, val_proba[name])
    n_features = pipe.named_steps["features"].transform(X_val.head(1)).shape[1]
    print(f"{name:<11} {n_features:4d} features  validation AUROC {auc:.3f}")

# %%
# How sure is the difference?
# ---------------------------
# The validation rows belong to a few hundred customers, each at several timestamps.
# :mod:`sktve.bootstrap` resamples customers with all their rows and scores both models
# on each resample (paired), so the noise they share cancels. A difference within about
# one standard error is a weak reason to prefer either model.
for name in ("embeddings", "both"):
    diff = paired_difference(
        y_val, val_proba[name], val_proba["aggregates"], "roc_auc", groups=X_val.customer_id
    )
    print(
        f"{name} minus aggregates: {diff['difference']:+.3f} AUROC, standard error "
        f"{diff['se']:.3f} over {diff['n_groups']} customers, better in "
        f"{diff['share_first_better']:.0%} of the resamples"
    )

# %%
# The union's feature names say where each column comes from.
union = pipe.named_steps["features"]
print(union.get_feature_names_out()[[0, 1, 16, 17]])

# %%
# With other columns in X: a ColumnTransformer
# --------------------------------------------
# sktve estimators accept exactly the entity and time columns (a third column is refused,
# so that labels cannot slip in). When ``X`` carries more, route the two columns to them
# and the rest elsewhere.
X_train_plus = X_train.assign(month=X_train.timestamp.dt.month)
X_val_plus = X_val.assign(month=X_val.timestamp.dt.month)
keys = ["customer_id", "timestamp"]
columns = ColumnTransformer(
    [
        ("tve", make_tve(), keys),
        ("agg", make_agg(), keys),
        ("calendar", "passthrough", ["month"]),
    ]
)
pipe = Pipeline([("features", columns), ("clf", HistGradientBoostingClassifier(random_state=0))])
pipe.fit(X_train_plus, y_train)
auc = roc_auc_score(y_val, pipe.predict_proba(X_val_plus)[:, 1])
print(f"embeddings + aggregates + month: validation AUROC {auc:.3f}")
print("last feature:", pipe.named_steps["features"].get_feature_names_out()[-1])
print("dtype:", np.asarray(columns.transform(X_val_plus.head(2))).dtype)
