"""Pages written at documentation build time (called from conf.py).

- ``_generated/benchmark_tables.rst``: every ``benchmarks/results/*.json`` rendered as a
  table (or a note that there are no results yet);
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
import runpy
from pathlib import Path
from typing import Any

# Sections of a results file that describe the run rather than its results.
META_SECTIONS = ("machine", "args", "config", "environment", "settings")
# Bulky fields that do not belong in a summary table.
SKIPPED = {"history", "head_params"}


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
    return text.replace("|", "\\|").replace("*", "\\*") or "\u2014"


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
    for script in sorted((root / "docs" / "user_guide" / "_scripts").glob("*.py")):
        _write(out_dir / f"{script.stem}.txt", run_script(script))
    for name, text in cli_help().items():
        _write(out_dir / f"cli_{name}.txt", text)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    write_all(here / "_generated", here.parent)
    for path in sorted((here / "_generated").iterdir()):
        print(f"--- {path}\n{path.read_text()}")
