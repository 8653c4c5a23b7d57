"""Pages written at documentation build time (called from conf.py).

- ``_generated/benchmark_tables.rst``: every ``benchmarks/results/*.json`` rendered as a
  table (or a note that there are no results yet), except the files in ``DEDICATED``;
- ``_generated/quality_relf1.rst``, ``finetune_relf1.rst``, ``finetune_relf1_default.rst``
  and ``finetune_relf1_recency.rst``: the downstream-quality comparisons (frozen
  embeddings; fine-tuning and blends, before and with ``history_counts=True``, and with
  ``recency_means=True``) written by
  ``benchmarks/bench_quality_relf1.py`` (mean ± std per method and task beside the published
  numbers, timings, machine) with its plots, copied to ``_generated/``;
- ``_generated/<name>.txt``: the output of each ``user_guide/_scripts/<name>.py``
  (e.g. the worked task-vector example), computed for real at each build;
- ``_generated/cli_*.txt``: the ``--help`` of the ``sktve`` command and its subcommands.

Run it alone with ``python docs/_build_tables.py`` to see what it writes.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import runpy
import shutil
from pathlib import Path
from typing import Any

# Sections of a results file that describe the run rather than its results.
META_SECTIONS = ("machine", "args", "config", "environment", "settings")
# Bulky fields that do not belong in a summary table.
SKIPPED = {"history", "head_params"}
# Results files with a section of their own (name -> function rendering it).
DEDICATED = {
    "quality_relf1.json",
    "quality_relf1_cut.json",
    "quality_synthetic.json",
    "blend_rules.json",  # its Markdown is included in the synthetic section
    "stale_training.json",  # quoted in the fine-tuning section's "tried" subsection
    "stale_finetune.json",  # quoted there too
    "stale_finetune_recency.json",  # and these two
    "stale_finetune_recency_dnf.json",
}
# Per-task runs of the fine-tuning benchmark (merged into finetune_relf1*.json, which has
# its own section too).
DEDICATED_PREFIXES = ("finetune_relf1", "blend_relf1")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b.c": scalar}; lists of scalars are kept as lists."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if key in SKIPPED:
                continue
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(_flatten(value, name))
            elif _is_scalar(value) or (
                isinstance(value, list) and all(_is_scalar(v) for v in value)
            ):
                out[name] = value
    return out


def _format(value: Any) -> str:
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_format(v) for v in value) or "\u2014"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    text = str(value).replace("\n", " ").strip()
    text = text.replace("|", "\\|").replace("*", "\\*")
    # "name_" before a space or the end is reStructuredText's reference syntax.
    return re.sub(r"_(?=\W|$)", r"\\_", text) or "\u2014"


def render_table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    """A ``list-table`` directive."""
    lines = [f".. list-table:: {title}", "   :header-rows: 1", ""]
    for row in [header] + [[_format(v) if not isinstance(v, str) else v for v in r] for r in rows]:
        cells = [str(c) if str(c).strip() else "\u2014" for c in row]
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {c}" for c in cells[1:])
    return "\n".join(lines) + "\n"


def _records_table(title: str, records: list[dict[str, Any]]) -> str:
    flat = [_flatten(r) for r in records]
    columns: list[str] = []
    for record in flat:
        columns.extend(k for k in record if k not in columns)
    rows = [[_format(r.get(c)) for c in columns] for r in flat]
    return render_table(title, [f"``{c}``" for c in columns], rows)


def _key_value_table(title: str, sections: dict[str, dict[str, Any]]) -> str:
    """Rows: flattened fields; one value column per section."""
    flat = {name: _flatten(data) for name, data in sections.items()}
    keys: list[str] = []
    for values in flat.values():
        keys.extend(k for k in values if k not in keys)
    header = ["field"] + [f"``{name}``" for name in flat]
    rows = [[f"``{k}``"] + [_format(flat[n].get(k)) for n in flat] for k in keys]
    return render_table(title, header, rows)


def render_results(name: str, data: Any) -> str:
    """All tables of one results file, under a heading of its name."""
    parts = [name, "~" * len(name), "", f"From ``benchmarks/results/{name}``.", ""]
    if isinstance(data, list):
        records = [r for r in data if isinstance(r, dict)]
        parts.append(_records_table("Results", records) if records else "No result rows.\n")
        return "\n".join(parts)
    if not isinstance(data, dict):
        parts.append("Not a JSON object or list; nothing to tabulate.\n")
        return "\n".join(parts)
    results = {k: v for k, v in data.items() if isinstance(v, dict) and k not in META_SECTIONS}
    lists = {
        k: v
        for k, v in data.items()
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)
    }
    scalars = {k: v for k, v in data.items() if _is_scalar(v) and k not in SKIPPED}
    meta = {k: v for k, v in data.items() if isinstance(v, dict) and k in META_SECTIONS}
    for key, records in lists.items():
        parts.append(_records_table(f"``{key}``", records))
    if results:
        parts.append(_key_value_table("Results", results))
    if scalars:
        parts.append(_key_value_table("Summary", {"value": scalars}))
    for key, section in meta.items():
        parts.append(_key_value_table(f"Run ``{key}``", {"value": section}))
    return "\n".join(parts)


def benchmark_tables(results_dir: Path) -> str:
    files = sorted(results_dir.glob("*.json")) if results_dir.is_dir() else []
    files = [
        f for f in files if f.name not in DEDICATED and not f.name.startswith(DEDICATED_PREFIXES)
    ]
    if not files:
        return (
            ".. note::\n\n"
            "   No benchmark results yet: ``benchmarks/results/`` holds no ``*.json`` file.\n"
            "   Run the benchmarks (see ``benchmarks/``) and rebuild the documentation.\n"
        )
    parts = []
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            parts.append(f".. warning::\n\n   ``{path.name}`` could not be read: {err}\n")
            continue
        parts.append(render_results(path.name, data))
    return "\n".join(parts)


QUALITY_METHODS = {
    "tve-logistic": "TVE + logistic / ridge",
    "tve-hgb": "TVE + HGB",
    "untrained-logistic": "untrained encoder + logistic / ridge",
    "untrained-hgb": "untrained encoder + HGB",
    "entity-hgb": "entity columns + HGB",
    "agg-hgb": "AggregateFeatures + HGB",
    "tve+agg-hgb": "TVE + AggregateFeatures + HGB",
    "tv-hgb": "predicted task vectors + HGB",
    "tv+agg-hgb": "predicted task vectors + AggregateFeatures + HGB",
    "ft-tve": "fine-tuned from TVE",
    "ft-random": "fine-tuned from random init",
    "ft-tve+agg": "fine-tuned from TVE + AggregateFeatures (side features, HGB start)",
    "ft-random+agg": "fine-tuned from random init + AggregateFeatures (side features, HGB start)",
    "ft-tve|agg-hgb": "fine-tuned from TVE, blended with AggregateFeatures + HGB",
    "ft-random|agg-hgb": "fine-tuned from random init, blended with AggregateFeatures + HGB",
}
QUALITY_REFERENCES = {
    "relbench_lightgbm": "*RelBench LightGBM (paper)*",
    "relbench_rdl_gnn": "*RelBench RDL GNN (paper)*",
    "calibration_handwritten_history_hgb": "*hand-written history aggregation + HGB*",
}


def _rows_text(data: dict[str, Any]) -> str:
    """What the benchmark wrote about the rows it loaded (``settings.rows``)."""
    return data.get("settings", {}).get("rows", "the database cut at the test timestamp")


def _mean_std(entry: dict[str, Any] | None, key: str) -> str:
    if not entry or entry.get(f"{key}_mean") is None:
        return "\u2014"
    mean, std = entry[f"{key}_mean"], entry[f"{key}_std"]
    if isinstance(mean, float) and math.isnan(mean):
        return "\u2014"
    if entry["metric"] == "mae":
        return f"{mean:.3f} ± {std:.3f}"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _task_header(tasks: list[str]) -> list[str]:
    arrows = {"driver-position": "MAE ↓"}
    return ["method"] + [f"``{t}`` ({arrows.get(t, 'AUROC ↑')})" for t in tasks]


def quality_section(results_dir: Path, out_dir: Path, name: str = "quality_relf1") -> str:
    """The downstream-quality comparison: tables from the JSON, plots copied beside them."""
    path = results_dir / f"{name}.json"
    if not path.exists():
        return (
            ".. note::\n\n"
            f"   No results yet (``{name}.json``): run ``benchmarks/bench_quality_relf1.py`` "
            "and rebuild.\n"
        )
    data = json.loads(path.read_text())
    tasks, summary = data["tasks"], data["summary"]
    methods = [m for m in data["methods"] if m in summary]
    seeds = ", ".join(str(s) for s in data["seeds"])

    def table(title: str, key: str, references: bool) -> str:
        rows = [
            [QUALITY_METHODS.get(m, m)] + [_mean_std(summary[m].get(t), key) for t in tasks]
            for m in methods
        ]
        if references:
            for ref, label in QUALITY_REFERENCES.items():
                values = data["references"].get(ref, {})
                rows.append(
                    [label]
                    + [
                        "\u2014"
                        if t not in values
                        else (
                            f"{values[t]:.3f}"
                            if t == "driver-position"
                            else f"{100 * values[t]:.2f}"
                        )
                        for t in tasks
                    ]
                )
        return render_table(title, _task_header(tasks), rows)

    cut_path = results_dir / f"{name}_cut.json"
    cut_part: list[str] = []
    if data.get("rows") == "all" and cut_path.exists():
        cut = json.loads(cut_path.read_text())
        cut_methods = [m for m in cut["methods"] if m in cut["summary"]]
        cut_rows = [
            [QUALITY_METHODS.get(m, m)]
            + [_mean_std(cut["summary"][m].get(t), "test") for t in cut["tasks"]]
            for m in cut_methods
        ]
        cut_part = [
            "The same benchmark with ``--rows cut``, seeds "
            + ", ".join(str(s) for s in cut["seeds"])
            + f": {_rows_text(cut)}. This is the protocol of the published RelBench rows.",
            "",
            render_table(
                "Test metric, database cut at the test timestamp",
                _task_header(cut["tasks"]),
                cut_rows,
            ),
        ]

    timing_rows = []
    for m in methods:
        cells = []
        for t in tasks:
            e = summary[m].get(t)
            cells.append(
                "\u2014"
                if not e
                else f"{e['fit_seconds_mean']:.1f} / {e['transform_seconds_mean']:.1f} / "
                f"{e['head_select_seconds_mean']:.1f} s, {e['peak_rss_gib_max']:.2f} GiB"
            )
        timing_rows.append([QUALITY_METHODS.get(m, m)] + cells)
    parts = [
        f"Test split, mean ± standard deviation over seeds {seeds} (AUROC × 100; MAE in "
        "positions). Each method's head hyper-parameters were chosen on val; test was "
        "predicted once with the chosen head. ``entity-hgb`` and ``agg-hgb`` have no "
        "seed-dependent step (their standard deviation is 0 by construction).",
        "",
        table("Test metric, mean ± std over seeds", "test", references=True),
        f"Database rows: ``{data.get('rows', 'cut')}``: {_rows_text(data)}.",
        "",
        *cut_part,
        table("Validation metric (the model-selection split)", "val", False),
        "Cost per method, mean over seeds: feature fit on train / transform of val + test / "
        "head selection (all grid fits plus val predictions); peak resident memory of the "
        "whole process while the features were computed. A pre-trained encoder is shared by "
        "the methods using it, so its fit time appears on each of them.",
        "",
        render_table("Seconds and memory", ["method"] + [f"``{t}``" for t in tasks], timing_rows),
        _key_value_table("Settings", {"value": data.get("settings", {})}),
        _key_value_table("Machine", {"value": data.get("machine", {})}),
    ]
    for stem, caption in (
        (f"{name}_loss", "Pre-training loss per epoch (train and held-out cutoffs)."),
        (f"{name}_pca", "PCA of test-split embeddings, coloured by the downstream label."),
    ):
        png = results_dir / f"{stem}.png"
        if png.exists():
            target = out_dir / png.name
            if not target.exists() or target.read_bytes() != png.read_bytes():
                shutil.copyfile(png, target)
            parts += [
                f".. figure:: /_generated/{png.name}",
                "   :width: 100%",
                "",
                f"   {caption}",
                "",
            ]
    return "\n".join(parts)


def synthetic_section(results_dir: Path) -> str:
    """Every synthetic schema: test and val per method and task, and the target's verdicts."""
    path = results_dir / "quality_synthetic.json"
    if not path.exists():
        return (
            ".. note::\n\n"
            "   No results yet: run ``benchmarks/bench_quality_synthetic.py`` and rebuild.\n"
        )
    data = json.loads(path.read_text())
    keys, summary = data["task_keys"], data["summary"]
    methods = [m for m in data["methods"] if m in summary]
    header = ["method"] + [
        f"``{k}`` ({'MAE ↓' if summary[methods[0]][k]['metric'] == 'mae' else 'AUROC ↑'})"
        for k in keys
    ]

    def table(title: str, key: str) -> str:
        rows = [
            [QUALITY_METHODS.get(m, m)] + [_mean_std(summary[m].get(k), key) for k in keys]
            for m in methods
        ]
        return render_table(title, header, rows)

    verdicts = []
    for k in keys:
        v = data["verdicts"].get(k)
        if not v:
            continue
        scale = 1.0 if summary["agg-hgb"][k]["metric"] == "mae" else 100.0
        verdicts.append(
            f"- ``{k}``: best TVE method by val ``{v['best_tve_method']}``, paired test gain "
            f"over ``agg-hgb`` {scale * v['paired_gain_mean']:+.3f} ± "
            f"{scale * v['paired_gain_std']:.3f}: "
            + ("**not worse**" if v["not_worse"] else "**worse**")
        )
    seeds = ", ".join(str(s) for s in data["seeds"])
    return "\n".join(
        [
            f"Seeds {seeds}; each seed draws a fresh database and seeds every model.",
            "",
            table("Test metric, mean ± std over seeds", "test"),
            table("Validation metric (the model-selection split)", "val"),
            "Best TVE method (chosen by val mean) against AggregateFeatures + HGB on test "
            "(gain: positive favours TVE; AUROC × 100, MAE as is):",
            "",
            *verdicts,
            "",
            _key_value_table("Machine", {"value": data.get("machine", {})}),
        ]
    )


def run_script(script: Path) -> str:
    """Run a documentation script and return what it printed."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        runpy.run_path(str(script), run_name="__main__")
    return buffer.getvalue()


def cli_help() -> dict[str, str]:
    import os

    from sktve.cli import build_parser

    os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal: fix it for the docs
    parser = build_parser()
    pages = {"sktve": parser.format_help()}
    for action in parser._subparsers._group_actions:  # the subcommands
        for name, sub in action.choices.items():
            pages[f"sktve-{name}"] = sub.format_help()
    return pages


def _write(path: Path, text: str) -> None:
    # Unchanged files keep their time stamp, so Sphinx does not rebuild pages needlessly.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_all(out_dir: Path, root: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / "benchmark_tables.rst", benchmark_tables(root / "benchmarks" / "results"))
    _write(out_dir / "quality_synthetic.rst", synthetic_section(root / "benchmarks" / "results"))
    for name in (
        "quality_relf1",
        "finetune_relf1",
        "finetune_relf1_default",
        "finetune_relf1_recency",
    ):
        _write(
            out_dir / f"{name}.rst", quality_section(root / "benchmarks" / "results", out_dir, name)
        )
    for script in sorted((root / "docs" / "user_guide" / "_scripts").glob("*.py")):
        _write(out_dir / f"{script.stem}.txt", run_script(script))
    for name, text in cli_help().items():
        _write(out_dir / f"cli_{name}.txt", text)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    write_all(here / "_generated", here.parent)
    for path in sorted((here / "_generated").iterdir()):
        print(f"--- {path}\n{path.read_text()}")
