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
    assert build_parser().parse_args(["run", "--dataset", "x", "--task", "y"]).threads is None
