import numpy as np
import pytest
import torch

from sktve.nn.tve import TVEHead, scaled_cosine_loss
from sktve.training import epoch_batches, resolve_device


def test_scaled_cosine_loss_zero_for_parallel_and_weighted():
    target = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    assert float(scaled_cosine_loss(3 * target, target, torch.tensor([0, 1]))) == pytest.approx(0)
    opposite = -target
    # (1 - (-1))^2 = 4 for every row, whatever the weights.
    assert float(scaled_cosine_loss(opposite, target, torch.tensor([0, 1]))) == pytest.approx(4)
    pred = torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]])  # row 0 right, row 1 orthogonal
    w = 0.1
    loss_inactive_wrong = scaled_cosine_loss(pred, target, torch.tensor([0, 1]), w)
    loss_active_wrong = scaled_cosine_loss(pred, target, torch.tensor([1, 0]), w)
    # The wrong row weighs w when inactive and 1 - w when active.
    assert float(loss_inactive_wrong) == pytest.approx(w / (w + (1 - w)))
    assert float(loss_active_wrong) == pytest.approx((1 - w) / 1.0)


def test_loss_gradient_reaches_head():
    head = TVEHead(4, 3)
    x = torch.randn(5, 4)
    loss = scaled_cosine_loss(head(x), torch.rand(5, 3), torch.zeros(5))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_epoch_batches_cover_rows_without_repeats_and_respect_cap():
    rng = np.random.default_rng(0)
    batches = epoch_batches(1000, 128, steps=100, rng=rng)
    joined = np.concatenate(batches)
    assert len(batches) == 8 and len(np.unique(joined)) == 1000
    capped = epoch_batches(1000, 128, steps=3, rng=np.random.default_rng(0))
    assert len(capped) == 3 and all(len(b) == 128 for b in capped)
    again = epoch_batches(1000, 128, steps=3, rng=np.random.default_rng(0))
    assert all((a == b).all() for a, b in zip(capped, again))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
