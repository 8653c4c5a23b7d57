import subprocess
import sys

import pytest

from sktve.cli import build_parser, main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("info", "run", "demo"):
        assert command in out


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "sktve.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: sktve" in result.stdout


def test_run_requires_dataset_and_task():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--task", "x"])


@pytest.mark.relf1
def test_info_on_relf1(relf1_path, capsys):
    assert main(["info", str(relf1_path)]) == 0
    out = capsys.readouterr().out
    assert "74,063 rows" in out
    for table in ("drivers", "results", "qualifying", "constructor_standings"):
        assert table in out
    assert "results.driverId -> drivers" in out
    assert "fingerprint" in out


def test_info_on_synthetic(capsys):
    assert main(["info", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert "customers" in out and "orders.customer_id -> customers" in out


@pytest.mark.parametrize(
    "source, table, task",
    [("library", "members", "member-lapse"), ("bank", "accounts", "account-dispute")],
)
def test_info_on_the_other_synthetic_schemas(source, table, task, capsys):
    assert main(["info", source]) == 0
    out = capsys.readouterr().out
    assert table in out and task in out


def test_a_folder_named_like_a_synthetic_schema_wins(synthetic_path, tmp_path, monkeypatch, capsys):
    # The user's folder called "bank" (here: the shop) is read, not the synthetic bank.
    import shutil

    shutil.copytree(synthetic_path, tmp_path / "bank")
    monkeypatch.chdir(tmp_path)
    assert main(["info", "bank"]) == 0
    out = capsys.readouterr().out
    assert "customers" in out and "accounts" not in out


def test_info_on_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "manifest.yaml" in capsys.readouterr().err


def test_threads_reach_the_pretrainer_and_heads(monkeypatch):
    import sktve.run as run_module

    seen = {}

    def fake_run_task(source, task, **kwargs):
        seen.update(kwargs)
        return {}

    monkeypatch.setattr(run_module, "run_task", fake_run_task)
    assert main(["run", "--dataset", "x", "--task", "y", "--threads", "2", "--quiet"]) == 0
    assert seen["n_jobs"] == 2
    assert seen["pretrainer_params"] is None
    assert build_parser().parse_args(["run", "--dataset", "x", "--task", "y"]).threads is None
    assert main(["run", "--dataset", "x", "--task", "y", "--workers", "2", "--quiet"]) == 0
    assert seen["pretrainer_params"] == {"n_workers": 2}


def test_workers_below_one_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--dataset", "x", "--task", "y", "--workers", "0"])
    assert "--workers must be >= 1" in capsys.readouterr().err


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's folder pointed at an empty directory, to see what is left behind."""
    import tempfile

    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_info_lists_columns_tasks_and_the_cut(synthetic_path, capsys):
    assert main(["info", str(synthetic_path)]) == 0
    out = capsys.readouterr().out
    assert "customers: customer_id (pkey)" in out
    assert "order_time (time)" in out and "product_id (-> products)" in out
    assert "customer-churn" in out and "binary_classification" in out
    assert "customer-spend" in out and "window 30 days" in out
    assert "rows: cut at the test timestamp 2023-07-01" in out
    removed = int(out.split("rows: cut")[1].split(" of ")[0].split(":")[-1].replace(",", ""))
    assert removed > 0
    assert main(["info", str(synthetic_path), "--rows", "all"]) == 0
    out_all = capsys.readouterr().out
    assert "rows: all" in out_all and f"{removed:,} lie after the test timestamp" in out_all


def test_info_on_synthetic_leaves_no_temporary_folder(private_tmp, capsys):
    assert main(["info", "synthetic"]) == 0
    assert list(private_tmp.iterdir()) == []


def test_unknown_relbench_name_offline_is_our_error(capsys):
    assert main(["info", "rel-not-a-dataset"]) == 2
    err = capsys.readouterr().err
    assert "no RelBench dataset of that name is in the local cache" in err
    assert "HF_HUB_OFFLINE" in err and "Traceback" not in err


def test_run_refuses_to_overwrite_results_without_force(synthetic_path, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    args = ["run", "--dataset", str(synthetic_path), "--task", "customer-churn", "--quiet"]
    assert main([*args, "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == "{}"


def test_demo_without_out_leaves_no_temporary_folder(private_tmp, capsys):
    args = ["--max-epochs", "1", "--quiet", "--model", "embed", "--head", "logistic"]
    assert main(["demo", *args]) == 0
    # torch's optimizers import torch._dynamo, which makes torch's own persistent cache
    # folder (torchinductor_<user>) in the temp dir; it is not ours and is shared by runs.
    left = [p.name for p in private_tmp.iterdir() if not p.name.startswith("torchinductor_")]
    assert left == []


def test_rows_option_reaches_run_task(monkeypatch):
    import sktve.run as run_module

    seen = {}
    monkeypatch.setattr(run_module, "run_task", lambda source, task, **kw: seen.update(kw))
    assert main(["run", "--dataset", "x", "--task", "y", "--rows", "all", "--quiet"]) == 0
    assert seen["rows"] == "all" and seen["force"] is False
    assert build_parser().parse_args(["run", "--dataset", "x", "--task", "y"]).rows == "cut"


def test_model_option_reaches_run_task(monkeypatch):
    import sktve.run as run_module

    seen = {}
    monkeypatch.setattr(run_module, "run_task", lambda source, task, **kw: seen.update(kw))
    assert main(["run", "--dataset", "x", "--task", "y", "--model", "blend", "--quiet"]) == 0
    assert seen["model"] == "blend"
    assert build_parser().parse_args(["run", "--dataset", "x", "--task", "y"]).model == "auto"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--dataset", "x", "--task", "y", "--model", "gnn"])


def test_pretrain_until_option_reaches_run_task(monkeypatch):
    import sktve.run as run_module

    seen = {}
    monkeypatch.setattr(run_module, "run_task", lambda source, task, **kw: seen.update(kw))
    argv = ["run", "--dataset", "x", "--task", "y", "--pretrain-until", "train", "--quiet"]
    assert main(argv) == 0 and seen["pretrain_until"] == "train"
    assert (
        build_parser().parse_args(["run", "--dataset", "x", "--task", "y"]).pretrain_until is None
    )
