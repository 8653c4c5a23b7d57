"""
A skorch neural-network head
============================

skorch wraps a PyTorch module as a scikit-learn estimator, so a neural network can be the
head of a :class:`~sktve.TVEPretrainer` pipeline. Three details matter:

* torch modules want **float32** features (scikit-learn steps often return float64);
* ``NeuralNetClassifier`` with a cross-entropy loss wants **int64** class labels;
* ``train_split=None``, or skorch carves a random 20% validation split out of the
  training rows: wasted data and, on temporal rows, a validation set from the past.
  Model selection belongs to *your* validation split.

:class:`sktve.heads.SkorchMLPClassifier` does all three for you; the second half of this
example writes them out with a raw :class:`skorch.NeuralNetClassifier`.
"""

# %%
import tempfile

import numpy as np
import relbench
import torch
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from skorch import NeuralNetClassifier

from sktve import TVEPretrainer, load_database
from sktve.datasets import make_synthetic_dataset, task_to_xy
from sktve.heads import SkorchMLPClassifier

path = make_synthetic_dataset(tempfile.mkdtemp(), n_customers=200, n_orders=4000, random_state=0)
dataset = relbench.load_dataset(str(path))
task = dataset.load_task("customer-churn")
db = load_database(dataset)
X_train, y_train = task_to_xy(task, "train")
X_val, y_val = task_to_xy(task, "val")

EMBEDDING_DIM = 16
tve = TVEPretrainer(
    database=db,
    entity_table="customers",
    window="30D",
    max_epochs=2,
    steps_per_epoch=5,
    embedding_dim=EMBEDDING_DIM,
    fanouts=(8, 4),
    memory=tempfile.mkdtemp(),
    random_state=0,
)

# %%
# The ready-made head
# -------------------
pipe = Pipeline(
    [
        ("tve", tve),
        ("scale", StandardScaler()),  # float64 out: the head converts to float32
        ("mlp", SkorchMLPClassifier(hidden=32, max_epochs=20, lr=3e-3, random_state=0)),
    ]
)
pipe.fit(X_train, y_train)
proba = pipe.predict_proba(X_val)[:, 1]
print(f"SkorchMLPClassifier: validation AUROC {roc_auc_score(y_val, proba):.3f}")

# %%
# A raw skorch net, with the details written out
# ----------------------------------------------
torch.manual_seed(0)
net = NeuralNetClassifier(
    torch.nn.Sequential(
        torch.nn.Linear(EMBEDDING_DIM, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2)
    ),
    criterion=torch.nn.CrossEntropyLoss,
    optimizer=torch.optim.AdamW,
    lr=3e-3,
    max_epochs=20,
    batch_size=128,
    train_split=None,  # no random internal validation split
    iterator_train__shuffle=True,
    verbose=0,
)
pipe = Pipeline(
    [
        ("tve", tve),  # the same settings and memory: pre-training comes from the cache
        ("scale", StandardScaler()),
        ("float32", FunctionTransformer(lambda Z: np.asarray(Z, dtype=np.float32))),
        ("net", net),
    ]
)
pipe.fit(X_train, y_train.to_numpy().astype(np.int64))  # int64 class labels
proba = pipe.predict_proba(X_val)[:, 1]
print(f"raw NeuralNetClassifier: validation AUROC {roc_auc_score(y_val, proba):.3f}")

# %%
# skorch kept a per-epoch history of the training loss (and no validation loss, since
# ``train_split=None``).
history = pipe.named_steps["net"].history
print([round(float(h), 4) for h in history[:, "train_loss"][::5]])
