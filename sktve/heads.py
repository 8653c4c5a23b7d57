"""Downstream heads for embeddings, with small validation grids.

The skorch head documents the details that trip people up: skorch wants float32
features, int64 class labels (float32 column targets for regression), and
``train_split=None`` so that it does not carve its own random validation split out of
the training rows (model selection belongs to the caller's validation split).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["SkorchMLPClassifier", "SkorchMLPRegressor", "head_grid"]


def _mlp(n_features: int, n_out: int, hidden: int, dropout: float) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_out),
    )


class _SkorchMLP(BaseEstimator):
    """A two-layer MLP trained by skorch, with the dtype conversions done for you."""

    def __init__(
        self,
        *,
        hidden: int = 64,
        dropout: float = 0.1,
        lr: float = 1e-3,
        max_epochs: int = 30,
        batch_size: int = 128,
        random_state: int | None = 0,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.random_state = random_state

    def _net(self, n_features: int, n_out: int, classifier: bool) -> Any:
        import torch
        from skorch import NeuralNetClassifier, NeuralNetRegressor

        if self.random_state is not None:
            torch.manual_seed(self.random_state)
        common = dict(
            module=_mlp(n_features, n_out, self.hidden, self.dropout),
            max_epochs=self.max_epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            optimizer=torch.optim.AdamW,
            train_split=None,  # selection happens on the caller's validation split
            verbose=0,
            iterator_train__shuffle=True,
        )
        if classifier:
            return NeuralNetClassifier(criterion=torch.nn.CrossEntropyLoss, **common)
        return NeuralNetRegressor(criterion=torch.nn.L1Loss, **common)


class SkorchMLPClassifier(ClassifierMixin, _SkorchMLP):
    """skorch ``NeuralNetClassifier`` on float32 features and int64 labels."""

    def fit(self, X: Any, y: Any) -> SkorchMLPClassifier:
        self.classes_, y_index = np.unique(np.asarray(y), return_inverse=True)
        X32 = np.asarray(X, dtype=np.float32)
        self.net_ = self._net(X32.shape[1], len(self.classes_), classifier=True)
        self.net_.fit(X32, y_index.astype(np.int64))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        import torch

        logits = self.net_.forward(np.asarray(X, dtype=np.float32))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class SkorchMLPRegressor(RegressorMixin, _SkorchMLP):
    """skorch ``NeuralNetRegressor`` on float32 features and a float32 (n, 1) target."""

    def fit(self, X: Any, y: Any) -> SkorchMLPRegressor:
        X32 = np.asarray(X, dtype=np.float32)
        y32 = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        self.net_ = self._net(X32.shape[1], 1, classifier=False)
        self.net_.fit(X32, y32)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.net_.predict(np.asarray(X, dtype=np.float32)).reshape(-1)


def zero_empty_columns(X: np.ndarray) -> np.ndarray:
    """``X`` with its all-NaN columns set to 0 (a copy; ``X`` itself when there are none).

    HistGradientBoosting cannot bin a column that is all NaN on its training rows
    (scikit-learn 1.9 raises), which happens when features fitted on more rows (every row
    of X, every training row) meet a subset of them (a fold, the labelled rows). Such a
    column carries nothing for those rows, so a constant stands in for it.
    """
    empty = np.isnan(X).all(axis=0)
    if not empty.any():
        return X
    X = X.copy()
    X[:, empty] = 0.0
    return X


def head_grid(head: str, *, binary: bool, random_state: int = 0) -> list[Any]:
    """Candidate heads of one kind, to be chosen between on the validation split.

    HistGradientBoosting and LightGBM: learning rate 0.03 or 0.1 x 3, 7 or 31 leaves, 200
    iterations. The 3-leaf trees were added after the most regularised corner of a 7 / 31
    grid won on every rel-f1 task's validation split.

    HistGradientBoosting regression tries the absolute and the squared error: scikit-learn's
    absolute-error gradient is -1 for a target equal to the prediction, so when more than
    half the targets equal their median (a count that is mostly 0) every row starts with the
    same gradient, no split gains anything, and the model can stay at the median for good
    (``docs/user_guide/heads.rst``).
    """
    if head == "logistic":
        if binary:
            return [
                make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
                for c in (0.01, 0.1, 1.0)
            ]
        return [make_pipeline(StandardScaler(), Ridge(alpha=a)) for a in (1.0, 10.0, 100.0)]
    if head == "hgb":
        estimator = HistGradientBoostingClassifier if binary else HistGradientBoostingRegressor
        losses = [{}] if binary else [{"loss": "absolute_error"}, {"loss": "squared_error"}]
        return [
            estimator(
                learning_rate=lr,
                max_leaf_nodes=leaves,
                max_iter=200,
                early_stopping=False,
                random_state=random_state,
                **loss,
            )
            for loss in losses
            for lr in (0.03, 0.1)
            for leaves in (3, 7, 31)
        ]
    if head == "lightgbm":
        try:
            import lightgbm
        except ImportError as err:
            raise ImportError(
                "head='lightgbm' needs LightGBM: pip install 'sktve[lightgbm]'."
            ) from err
        estimator = lightgbm.LGBMClassifier if binary else lightgbm.LGBMRegressor
        extra = {} if binary else {"objective": "l1"}
        return [
            estimator(
                learning_rate=lr,
                num_leaves=leaves,
                n_estimators=200,
                random_state=random_state,
                verbose=-1,
                **extra,
            )
            for lr in (0.03, 0.1)
            for leaves in (3, 7, 31)
        ]
    if head == "skorch":
        estimator = SkorchMLPClassifier if binary else SkorchMLPRegressor
        return [
            estimator(hidden=h, lr=lr, random_state=random_state)
            for h in (32, 128)
            for lr in (1e-3, 3e-3)
        ]
    raise ValueError(f"unknown head {head!r}; choose logistic, hgb, lightgbm or skorch.")
