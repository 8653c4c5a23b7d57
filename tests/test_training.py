import numpy as np
import pytest
import torch

from sktve.nn.tve import TVEHead, scaled_cosine_loss, scaled_cosine_terms
from sktve.training import TrainingConfig, epoch_batches, resolve_device, train_loop


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


def test_row_weights_multiply_the_activity_weights():
    target = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    pred = torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]])  # row 0 right, row 1 orthogonal
    inactive = torch.tensor([0, 0])
    plain = scaled_cosine_terms(pred, target, inactive, 0.1)
    ones = scaled_cosine_terms(pred, target, inactive, 0.1, row_weight=torch.ones(2))
    assert [float(v) for v in plain] == [float(v) for v in ones]
    loss_sum, weight = scaled_cosine_terms(
        pred, target, inactive, 0.1, row_weight=torch.tensor([3.0, 1.0])
    )
    # The wrong row now holds a quarter of the weight: loss 1 * 0.9 / (4 * 0.9).
    assert float(loss_sum / weight) == pytest.approx(0.25)


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


def _toy_run(average_epochs=None, holdout=False, holdout_eval=None, trajectory=None):
    """A linear regression trained by train_loop; returns (module, history, best_epoch)."""
    torch.manual_seed(0)
    data = torch.randn(64, 3)
    target = data @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(64, 1)
    model = torch.nn.Linear(3, 1)

    def batch_loss(rows, train):
        if train and trajectory is not None:
            trajectory.append([p.detach().clone() for p in model.parameters()])
        return torch.nn.functional.mse_loss(model(data[rows]), target[rows])

    config = TrainingConfig(max_epochs=4, steps_per_epoch=4, batch_size=8, learning_rate=0.05)
    holdout_idx = np.arange(48, 64) if holdout else np.empty(0, dtype=np.int64)
    history, best_epoch, _, _ = train_loop(
        [model],
        batch_loss,
        np.arange(48),
        holdout_idx,
        config,
        holdout_eval=holdout_eval,
        average_epochs=average_epochs,
    )
    return model, history, best_epoch


def test_average_epochs_keeps_a_moving_average_of_the_raw_weights():
    raw_steps = []
    raw, _, _ = _toy_run(trajectory=raw_steps)
    averaged, _, _ = _toy_run(average_epochs=1.0, trajectory=[])
    # Training follows the raw weights, so the average can be rebuilt from their path:
    # the weights before each step, then the final ones.
    path = raw_steps[1:] + [[p.detach() for p in raw.parameters()]]
    expected = [p.clone() for p in raw_steps[0]]
    decay = 1.0 - 1.0 / 4  # one epoch of 4 steps
    for step, weights in enumerate(path):
        rate = 1.0 - min(decay, (1.0 + step) / (10.0 + step))
        expected = [e + rate * (w - e) for e, w in zip(expected, weights)]
    for got, want in zip(averaged.parameters(), expected):
        torch.testing.assert_close(got.detach(), want)
    assert not torch.allclose(averaged.weight, raw.weight)


def test_holdout_eval_criterion_chooses_the_epoch():
    # A criterion that prefers epoch 2 whatever the loss says.
    calls = []

    def holdout_eval():
        calls.append(len(calls) + 1)
        return 1.0, 0.0 if len(calls) == 2 else 1.0

    _, history, best_epoch = _toy_run(holdout=True, holdout_eval=holdout_eval)
    assert best_epoch == 2 and [h["holdout_score"] for h in history][:2] == [-1.0, -0.0]
