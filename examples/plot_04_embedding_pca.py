"""
Looking at the embeddings
=========================

A two-dimensional PCA of the embeddings of the validation rows, coloured by the label
the pretrainer never saw (churn in the next 30 days), for an untrained encoder
(``max_epochs=0``, random weights) and a briefly pre-trained one.
"""

# %%
import tempfile

import matplotlib.pyplot as plt
import relbench
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktve import TVEPretrainer, load_database
from sktve.datasets import make_synthetic_dataset, task_to_xy

path = make_synthetic_dataset(tempfile.mkdtemp(), n_customers=200, n_orders=4000, random_state=0)
dataset = relbench.load_dataset(str(path))
task = dataset.load_task("customer-churn")
db = load_database(dataset)
X_train, _ = task_to_xy(task, "train")
X_val, y_val = task_to_xy(task, "val")

settings = dict(
    database=db,
    entity_table="customers",
    window="30D",
    embedding_dim=16,
    fanouts=(8, 4),
    steps_per_epoch=5,
    random_state=0,
)
encoders = {
    "untrained (max_epochs=0)": TVEPretrainer(max_epochs=0, **settings),
    "pre-trained (max_epochs=2)": TVEPretrainer(max_epochs=2, **settings),
}

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), layout="constrained")
for ax, (title, tve) in zip(axes, encoders.items()):
    tve.fit(X_train)  # labels are never used
    points = make_pipeline(StandardScaler(), PCA(n_components=2)).fit_transform(
        tve.transform(X_val)
    )
    for label, colour, name in ((0, "tab:blue", "orders again"), (1, "tab:red", "churns")):
        mask = (y_val == label).to_numpy()
        ax.scatter(points[mask, 0], points[mask, 1], s=12, alpha=0.6, c=colour, label=name)
    ax.set_title(title)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
axes[0].legend(loc="best")
fig.suptitle("TVE embeddings of the validation rows, coloured by next-month churn")
plt.show()

# %%
# The pre-training losses of the trained encoder (targets: scaled task vectors of the
# next 30 days; the held-out loss is measured on the latest pre-training cutoffs).
for record in encoders["pre-trained (max_epochs=2)"].history_:
    print({k: round(v, 4) for k, v in record.items()})
