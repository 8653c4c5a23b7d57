"""Shared fixtures: a small synthetic database, a written synthetic RelBench folder, rel-f1."""

from __future__ import annotations

import os

# Nothing in the tests may reach the network: RelBench must resolve everything locally.
os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from sktve import load_database  # noqa: E402
from sktve.datasets import make_synthetic_database, make_synthetic_dataset  # noqa: E402

# The test models are tiny: one thread avoids oversubscription when the 2 cores are busy
# (a small fit took 39 s with 2 threads against 2 s with 1 on a loaded machine).
torch.set_num_threads(1)

# The official rel-f1 folder lives next to the project checkout, never inside it.
_DEFAULT_RELF1 = Path(__file__).resolve().parents[1].parent / "shared/data/rel-f1"


@pytest.fixture(scope="session")
def small_db():
    """A small synthetic database (300 customers, 5000 orders), shared by all tests."""
    return make_synthetic_database(n_customers=300, n_orders=5000, random_state=0)


@pytest.fixture(scope="session")
def synthetic_path(tmp_path_factory):
    """The default synthetic dataset written once as a RelBench 3 folder with two tasks."""
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("synthetic") / "shop", n_customers=300, n_orders=5000
    )


@pytest.fixture(scope="session")
def relf1_path():
    """Path to the rel-f1 folder (env var SKTVE_RELF1 overrides); skips when absent."""
    path = Path(os.environ.get("SKTVE_RELF1", _DEFAULT_RELF1)).expanduser()
    if not (path / "manifest.yaml").exists():
        pytest.skip(
            f"rel-f1 data not found at {path}: put the RelBench rel-f1 folder there or set "
            "SKTVE_RELF1 to its path."
        )
    return path


@pytest.fixture(scope="session")
def relf1_db(relf1_path):
    """rel-f1 loaded once (rows up to the test timestamp)."""
    return load_database(relf1_path)


@pytest.fixture
def pretrain_calls(monkeypatch):
    """A list that grows by one each time a pre-training runs (memory hits add nothing)."""
    import sktve.pretrainer as pretrainer_module

    calls = []
    original = pretrainer_module.pretrain

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pretrainer_module, "pretrain", counting)
    return calls
