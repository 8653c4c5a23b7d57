import json

import joblib
import numpy as np
import pandas as pd
import pytest
import relbench

from sktve.run import RoundedVotingRegressor, blend, hedge, run_task, task_pretrainer

FAST = {"embedding_dim": 8, "fanouts": (4, 2), "steps_per_epoch": 2, "batch_size": 64}


FINETUNE_FAST = {"max_epochs": 2, "steps_per_epoch": 2, "batch_size": 64, "hidden_dim": 8}


@pytest.mark.parametrize(
    "task_name, model, head",
    [
        ("customer-churn", "blend", "hgb"),
        ("customer-spend", "blend", "logistic"),
        ("customer-churn", "finetune", "hgb"),
        ("customer-spend", "embed", "logistic"),
    ],
)
def test_run_task_reports_val_and_test_and_saves_the_model(
    synthetic_path, tmp_path, task_name, model, head
):
    out = tmp_path / "run"
    result = run_task(
        str(synthetic_path),
        task_name,
        model=model,
        head=head,
        out=out,
        max_epochs=1,
        verbose=False,
        pretrainer_params=FAST,
        finetune_params=FINETUNE_FAST,
    )
    assert result["metric"] == ("roc_auc" if task_name == "customer-churn" else "mae")
    for split in ("val", "test"):
        assert np.isfinite(result[split])
        if result["metric"] == "roc_auc":
            assert 0.0 <= result[split] <= 1.0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"] == pytest.approx(result["test"])
    task = relbench.load_dataset(str(synthetic_path)).load_task(task_name)
    # Each figure with its bootstrap interval over the split's entities (customers here).
    for split in ("val", "test"):
        interval = saved[f"{split}_interval"]
        assert interval["metric"] == saved["metric"]
        assert interval["value"] == pytest.approx(saved[split])
        assert interval["low"] <= saved[split] <= interval["high"] and interval["se"] >= 0
        frame = task.get_table(split).df
        assert interval["n_groups"] == frame["customer_id"].nunique() < len(frame)
    assert saved["models_val_difference"] is None  # one model: nothing to compare
    # The blend is measured against its aggregates alone; the other models fit none.
    reference = saved["aggregates_val_difference"]
    if model == "blend":
        expected = saved["val"] - saved["parts"]["aggregates"]["val"]
        assert reference["difference"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert reference["se"] > 0 and reference["n_groups"] == saved["val_interval"]["n_groups"]
    else:
        assert reference is None
    # What was run, as JSON values (not reprs), so that runs can be compared by script.
    import sktve

    assert saved["task"] == task_name and saved["dataset"] == str(synthetic_path)
    assert saved["model"] == model
    assert saved["rows"] == "cut" and saved["random_state"] == 0 and saved["threads"] == 1
    assert saved["cut"]["as_of"] == saved["cut"]["test_timestamp"] == "2023-07-01 00:00:00"
    assert saved["sktve_version"] == sktve.__version__
    assert saved["pretrainer"]["max_epochs"] == 1 and saved["pretrainer"]["fanouts"] == [4, 2]
    assert saved["pretrainer"]["entity_table"] == "customers"
    assert "database" not in saved["pretrainer"] and "verbose" not in saved["pretrainer"]
    assert {"pretrain_seconds", "test_seconds"} <= set(saved["timings"])
    assert saved["n_rows"]["val"] == len(task.get_table("val").df)
    fitted = joblib.load(out / "pipeline.joblib")
    X_val = task.get_table("val").df[[task.entity_col, task.time_col]]
    # The saved model finds its (folder-based) database again on its own.
    preds = fitted.predict(X_val)
    assert len(preds) == len(X_val)
    if model == "embed":
        assert all(not str(v).startswith(("<", "array(")) for v in saved["head_params"].values())
        assert "head_selection_seconds" in saved["timings"] and saved["parts"] == {}
    elif model == "finetune":
        assert saved["head"] is None and saved["parts"]["network"]["settings"]["max_epochs"] == 2
        assert saved["parts"]["network"]["settings"]["as_of"] == "2023-07-01 00:00:00"
    else:
        # 0.3 x the network + 0.7 x the aggregates' pipeline, each as saved in the blend.
        network, aggregates = (fitted.named_estimators_[k] for k in ("network", "aggregates"))
        if task_name == "customer-churn":
            parts = [m.predict_proba(X_val)[:, 1] for m in (network, aggregates)]
            blended = fitted.predict_proba(X_val)[:, 1]
        else:
            parts = [m.predict(X_val) for m in (network, aggregates)]
            blended = preds
        np.testing.assert_allclose(blended, 0.3 * parts[0] + 0.7 * parts[1], rtol=1e-5, atol=1e-4)
        assert saved["blend_weight"] == 0.3
        assert set(saved["parts"]) == {"network", "aggregates"}
        assert all(np.isfinite(part["val"]) for part in saved["parts"].values())
        windows = saved["parts"]["aggregates"]["settings"]["window"]
        assert windows == ["30D", "365D", "3650D"]  # the task's horizon, a year, ten years


def test_auto_keeps_the_model_with_the_best_val(synthetic_path, tmp_path):
    common = dict(
        max_epochs=1, verbose=False, pretrainer_params=FAST, finetune_params=FINETUNE_FAST
    )
    auto = run_task(str(synthetic_path), "customer-spend", model="auto", **common)
    vals = auto["models_val"]
    assert set(vals) == {"embed", "finetune", "blend"}
    assert auto["chosen_model"] == min(vals, key=vals.get)  # MAE: lower is better
    assert auto["val"] == pytest.approx(vals[auto["chosen_model"]])
    # How far each other candidate is from the kept one on val, with its standard error.
    differences = auto["models_val_difference"]
    assert set(differences) == set(vals) - {auto["chosen_model"]}
    for name, difference in differences.items():
        assert difference["difference"] == pytest.approx(vals[name] - auto["val"])
        assert difference["difference"] >= 0 and difference["se"] >= 0  # MAE: the kept is lowest
    # The aggregates alone are a reference on val, not a candidate.
    reference = auto["aggregates_val_difference"]
    assert "aggregates" not in vals
    assert reference["difference"] == pytest.approx(
        auto["val"] - auto["parts"]["aggregates"]["val"]
    )
    # Each candidate is the model its own run fits: the network is fine-tuned from the
    # embeddings' pretrainer, which is the one a "finetune" run pre-trains.
    for name in ("embed", "finetune"):
        alone = run_task(str(synthetic_path), "customer-spend", model=name, **common)
        assert alone["val"] == pytest.approx(vals[name], rel=1e-6)


def test_run_task_rejects_an_unknown_model(synthetic_path):
    with pytest.raises(ValueError, match="model must be one of"):
        run_task(str(synthetic_path), "customer-churn", model="gnn", verbose=False)


def test_run_task_rejects_unknown_head(synthetic_path):
    with pytest.raises(ValueError, match="unknown head"):
        run_task(
            str(synthetic_path),
            "customer-churn",
            head="forest",
            max_epochs=0,
            verbose=False,
            pretrainer_params=FAST,
        )


def test_task_pretrainer_takes_entity_time_and_window_from_the_task(synthetic_path):
    from sktve import load_database

    dataset = relbench.load_dataset(str(synthetic_path))
    task = dataset.load_task("customer-churn")
    database = load_database(dataset)
    params = task_pretrainer(database, task, random_state=3).get_params()
    assert params["database"] is database
    assert (params["entity_table"], params["entity_col"], params["time_col"]) == (
        task.entity_table,
        task.entity_col,
        task.time_col,
    )
    assert params["window"] == task.timedelta and params["random_state"] == 3
    assert task_pretrainer(database, task, window="7D").get_params()["window"] == "7D"


def test_run_task_rows_all_keeps_every_row_and_sets_no_cut(synthetic_path, tmp_path):
    common = dict(max_epochs=0, verbose=False, pretrainer_params=FAST, head="logistic")
    common.update(model="embed")
    cut = run_task(str(synthetic_path), "customer-churn", **common)
    every = run_task(str(synthetic_path), "customer-churn", rows="all", **common)
    assert every["cut"]["as_of"] is None and cut["cut"]["as_of"] is not None
    assert every["cut"]["database_rows"] > cut["cut"]["database_rows"]
    with pytest.raises(ValueError, match="rows must be"):
        run_task(str(synthetic_path), "customer-churn", rows="some", **common)


def refit_settings(model: str) -> dict:
    """run_task's settings for the refit tests: one epoch each, a logistic head."""
    return dict(
        model=model,
        head="logistic",
        max_epochs=1,
        verbose=False,
        pretrainer_params=FAST,
        finetune_params=FINETUNE_FAST,
    )


@pytest.mark.parametrize("model", ["embed", "finetune", "blend"])
def test_cut_runs_refit_the_chosen_model_pretrained_up_to_the_test_timestamp(
    synthetic_path, tmp_path, model
):
    common = refit_settings(model)
    refit = run_task(str(synthetic_path), "customer-churn", out=tmp_path / "refit", **common)
    plain = run_task(
        str(synthetic_path),
        "customer-churn",
        out=tmp_path / "plain",
        pretrain_until="train",
        **common,
    )
    test_at = refit["cut"]["test_timestamp"]
    assert refit["pretrain_until"] == test_at and plain["pretrain_until"] is None
    # Val is the chosen model's, the same with either setting; only the tested model moves.
    assert refit["val"] == pytest.approx(plain["val"], rel=1e-9)
    assert refit["pretrainer"]["pretrain_until"] == test_at
    assert plain["pretrainer"]["pretrain_until"] is None
    assert "refit_seconds" in refit["timings"] and "refit_seconds" not in plain["timings"]

    def pretrainer_of(fitted):
        if model == "embed":
            return fitted.named_steps["tve"]
        network = fitted if model == "finetune" else fitted.named_estimators_["network"]
        return getattr(network, "estimator", network).pretrainer_

    saved = {k: joblib.load(tmp_path / k / "pipeline.joblib") for k in ("refit", "plain")}
    later, earlier = (pretrainer_of(saved[k]) for k in ("refit", "plain"))
    # The refit pre-trains at more cutoffs, none whose window runs past the test timestamp.
    assert later.cutoffs_.max() > earlier.cutoffs_.max()
    window = max(later.windows_)
    assert pd.Timestamp(later.cutoffs_.max()) + window <= pd.Timestamp(test_at)
    assert later.encoder_state_ != earlier.encoder_state_
    if model == "blend":  # the aggregates' member is kept as chosen
        heads = [saved[k].named_estimators_["aggregates"] for k in ("refit", "plain")]
        assert repr(heads[0].estimator) == repr(heads[1].estimator)


@pytest.mark.parametrize("model", ["embed", "blend"])
def test_pretrain_until_both_averages_the_chosen_model_and_its_refit(
    synthetic_path, tmp_path, model
):
    common = refit_settings(model)
    runs = {
        until: run_task(
            str(synthetic_path),
            "customer-churn",
            out=tmp_path / until,
            pretrain_until=until,
            **common,
        )
        for until in ("train", "test", "both")
    }
    assert runs["both"]["hedged"] and not runs["test"]["hedged"]
    assert runs["both"]["pretrain_until"] == runs["test"]["pretrain_until"] is not None
    assert runs["both"]["val"] == pytest.approx(runs["train"]["val"], rel=1e-9)
    saved = {k: joblib.load(tmp_path / k / "pipeline.joblib") for k in runs}
    # The hedge's members are the two other runs' models (each deterministic given the
    # seed), and it predicts the mean of their probabilities.
    members = saved["both"].named_estimators_
    dataset = relbench.load_dataset(str(synthetic_path))
    task = dataset.load_task("customer-churn")
    X_test = task.get_table("test", mask_input_cols=False).df[[task.entity_col, task.time_col]]
    proba = {k: saved[k].predict_proba(X_test)[:, 1] for k in ("train", "test")}
    np.testing.assert_allclose(
        members["chosen"].predict_proba(X_test)[:, 1], proba["train"], rtol=1e-6
    )
    np.testing.assert_allclose(
        members["refit"].predict_proba(X_test)[:, 1], proba["test"], rtol=1e-6
    )
    np.testing.assert_allclose(
        saved["both"].predict_proba(X_test)[:, 1], (proba["train"] + proba["test"]) / 2, rtol=1e-6
    )
    assert runs["both"]["pretrainer"]["pretrain_until"] == runs["both"]["pretrain_until"]


def test_hedge_of_regressors_averages_without_rounding():
    from sklearn.dummy import DummyRegressor

    X, y = np.zeros((4, 1)), np.arange(4.0)
    pair = [DummyRegressor(strategy="constant", constant=c).fit(X, y) for c in (1.0, 2.0)]
    np.testing.assert_array_equal(hedge(*pair, False, X, y).predict(X), [1.5] * 4)


@pytest.mark.parametrize("integer_output", [True, False])
def test_blend_answers_in_integers_when_its_network_does(integer_output):
    from sklearn.base import clone
    from sklearn.dummy import DummyRegressor

    X, y = np.zeros((4, 1)), np.arange(4.0)
    network = DummyRegressor(strategy="constant", constant=2.0).fit(X, y)
    network.integer_output_ = integer_output  # as a fitted TVERegressor records it
    aggregates = DummyRegressor(strategy="constant", constant=0.0).fit(X, y)
    model = blend(network, aggregates, binary=False).fit(X, y)  # 0.3 * 2 + 0.7 * 0 = 0.6
    assert isinstance(model, RoundedVotingRegressor) == integer_output
    np.testing.assert_allclose(model.predict(X), [1.0 if integer_output else 0.6] * 4)
    assert type(clone(model)) is type(model)


def test_rows_all_keeps_pretraining_to_the_training_rows_unless_asked(synthetic_path):
    common = dict(
        model="embed", head="logistic", max_epochs=0, verbose=False, pretrainer_params=FAST
    )
    every = run_task(str(synthetic_path), "customer-churn", rows="all", **common)
    assert every["pretrain_until"] is None and "refit_seconds" not in every["timings"]
    asked = run_task(
        str(synthetic_path), "customer-churn", rows="all", pretrain_until="test", **common
    )
    assert asked["pretrain_until"] == asked["cut"]["test_timestamp"]
    with pytest.raises(ValueError, match="pretrain_until must be one of"):
        run_task(str(synthetic_path), "customer-churn", pretrain_until="val", **common)
