"""How much of a comparison is the split's own noise? Bootstrap over the split's entities.

Reads the scores that ``bench_quality_relf1.py`` or ``bench_quality_synthetic.py`` wrote
with ``--save-scores`` (every method's val, test and, where there is one, cut-test scores
per seed, with the labels and each row's entity) and, for each task, split and method,
resamples the split's entities (rel-f1's drivers, the synthetic customers and members)
with all their rows (:mod:`sktve.bootstrap`):

- the method's metric and its standard error over entities (mean over seeds);
- the method minus a baseline (``--baseline``, default ``agg-hgb``: AggregateFeatures +
  HGB; ``ft-random``: the same network fine-tuned from random initialisation), paired on
  the same resamples: its mean over seeds, standard error and the share of resamples
  where the method wins.

Score files written before they held the entities and the blend's own scores (rel-f1
runs) are completed from the RelBench task tables (``--relf1``), the blend rebuilt with
the quality benchmark's rule (the weight best on val). Nothing is chosen here: the scores
were scored before; this measures how far apart two methods must be before a split of a
few dozen entities can tell.

    python benchmarks/bench_quality_relf1.py --rows both --tasks driver-dnf \\
        --methods "agg-hgb,ft-tve,ft-tve+agg,ft-tve|agg-hgb" --save-scores dnf.npz
    python benchmarks/bench_split_noise.py --scores top3.npz dnf.npz position.npz
    python benchmarks/bench_quality_synthetic.py --save-scores syn.npz --blend-weights 0.3
    python benchmarks/bench_split_noise.py --scores syn.npz --name split_noise_synthetic

Writes ``benchmarks/results/split_noise.json`` and ``split_noise.md`` (``--name``). The two
quality benchmarks write the same summary of their own run as ``<name>_noise.json`` / ``.md``
(:func:`write_noise`), whether or not they save the scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_pretrainer_relf1 import machine  # noqa: E402
from bench_quality_relf1 import BLEND_WEIGHTS, blend_and_test  # noqa: E402

from sktve.bootstrap import metric_interval, paired_difference  # noqa: E402

AGGREGATES = "agg-hgb"
BLEND = ("ft-tve|agg-hgb", "ft-tve")


#: Keys of a score file that are not a method's scores: labels, entity ids, task type.
LABEL_KINDS = ("y", "ids", "task_type")


def collect(arrays: Mapping[str, np.ndarray], out: dict[str, dict] | None = None) -> dict:
    """{task: {"labels": {(seed, kind, split): array}, "scores": {(seed, method): {split: ...}}}}.

    ``arrays`` holds a score file's keys (``ScoreLog`` in ``bench_quality_relf1.py``).
    Labels, entity ids and the task type are shared by every seed (seed None: rel-f1, one
    database) or held per seed (the synthetic benchmark draws a database per seed).
    """
    out = {} if out is None else out
    for key in arrays:
        parts = key.split("|")
        entry = out.setdefault(parts[0], {"labels": {}, "scores": {}})
        if parts[1] in LABEL_KINDS:  # task|y|split, task|ids|split, task|task_type
            entry["labels"][None, parts[1], (parts[2:] or [None])[0]] = arrays[key]
        elif parts[2] in LABEL_KINDS:  # task|seed|y|split, ...
            entry["labels"][int(parts[1]), parts[2], (parts[3:] or [None])[0]] = arrays[key]
        else:  # task|seed|method|split; a blend's method name holds a "|"
            method, split = "|".join(parts[2:-1]), parts[-1]
            entry["scores"].setdefault((int(parts[1]), method), {})[split] = arrays[key]
    return out


def load_scores(paths: list[str]) -> dict[str, dict]:
    """:func:`collect` over the ``--save-scores`` files at ``paths``."""
    out: dict[str, dict] = {}
    for path in paths:
        saved = np.load(path)
        collect({key: saved[key] for key in saved.files}, out)
    return out


def label(entry: dict, seed: int, kind: str, split: str | None) -> np.ndarray | None:
    """A seed's labels, ids or task type (its own, else the ones every seed shares)."""
    found = entry["labels"].get((seed, kind, split))
    return entry["labels"].get((None, kind, split)) if found is None else found


class RelBenchFallback:
    """Entity ids, task type and blends for score files written before they held them.

    Such files came from rel-f1 runs: the task tables give each row's driver, and the
    quality benchmark's own rule rebuilds the blend (the weight best on val).
    """

    def __init__(self, relf1: str) -> None:
        self.relf1 = relf1
        self._dataset = None

    def task(self, name: str) -> tuple[Any, dict]:
        import relbench

        if self._dataset is None:
            self._dataset = relbench.load_dataset(self.relf1)
        task = self._dataset.load_task(name)
        return task, {s: task.get_table(s, mask_input_cols=False) for s in ("val", "test")}

    def complete(self, name: str, entry: dict) -> None:
        if label(entry, 0, "ids", "val") is not None and label(entry, 0, "task_type", None):
            return
        task, tables = self.task(name)
        for split in ("val", "test"):
            entry["labels"][None, "ids", split] = tables[split].df[task.entity_col].to_numpy()
        entry["labels"][None, "task_type", None] = np.array(task.task_type.value)
        blend, network = BLEND
        for seed in sorted({seed for seed, method in entry["scores"] if method == network}):
            if (seed, AGGREGATES) not in entry["scores"] or (seed, blend) in entry["scores"]:
                continue
            first = {"scores": entry["scores"][seed, network]}
            second = {"scores": entry["scores"][seed, AGGREGATES]}
            outcome = blend_and_test(first, second, task, tables, BLEND_WEIGHTS)
            entry["scores"][seed, blend] = outcome["scores"]


def summarise(
    name: str, entry: dict, n_resamples: int, baseline: str = AGGREGATES
) -> list[dict[str, Any]]:
    rows = []
    methods = sorted({method for _, method in entry["scores"]})
    for split in ("val", "test", "test_cut"):
        labelled = "val" if split == "val" else "test"  # the cut changes features, not labels
        for method in methods:
            seeds = sorted(
                seed
                for seed, m in entry["scores"]
                if m == method and split in entry["scores"][seed, m]
            )
            if not seeds:
                continue
            alone, against = [], []
            for seed in seeds:
                y = label(entry, seed, "y", labelled)
                groups = label(entry, seed, "ids", labelled)
                binary = str(label(entry, seed, "task_type", None)) == "binary_classification"
                metric = "roc_auc" if binary else "mae"
                scores = entry["scores"][seed, method][split]
                common = {"groups": groups, "n_resamples": n_resamples, "random_state": seed}
                alone.append(metric_interval(y, scores, metric, **common))
                if method != baseline and (seed, baseline) in entry["scores"]:
                    other = entry["scores"][seed, baseline][split]
                    against.append(paired_difference(y, scores, other, metric, **common))
            scale = 100.0 if metric == "roc_auc" else 1.0  # AUROC in points, as the tables
            row = {
                "task": name,
                "split": split,
                "method": method,
                "seeds": seeds,
                "metric": metric,
                "n_rows": round(float(np.mean([a["n_rows"] for a in alone])), 1),
                "n_entities": round(float(np.mean([a["n_groups"] for a in alone])), 1),
                "value": round(scale * float(np.mean([a["value"] for a in alone])), 4),
                "se": round(scale * float(np.mean([a["se"] for a in alone])), 4),
            }
            if against:
                row.update(
                    minus_baseline=round(
                        scale * float(np.mean([d["difference"] for d in against])), 4
                    ),
                    minus_baseline_se=round(scale * float(np.mean([d["se"] for d in against])), 4),
                    share_better_than_baseline=round(
                        float(np.mean([d["share_first_better"] for d in against])), 3
                    ),
                )
            rows.append(row)
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "Standard errors over entities (each resample draws the split's entities with all "
        f"their rows; {result['n_resamples']} resamples, mean over seeds). AUROC in points.",
        "",
        f"| task | split | method | entities / rows | value ± SE | minus {result['baseline']} "
        "± SE (paired) | share of resamples better |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        diff = (
            f"{r['minus_baseline']:+.3f} ± {r['minus_baseline_se']:.3f}"
            if "minus_baseline" in r
            else ""
        )
        share = f"{r['share_better_than_baseline']:.2f}" if "minus_baseline" in r else ""
        method = r["method"].replace("|", "\\|")  # a bare "|" would end the table cell
        lines.append(
            f"| {r['task']} | {r['split']} | {method} | "
            f"{r['n_entities']:g} / {r['n_rows']:g} | "
            f"{r['value']:.3f} ± {r['se']:.3f} | {diff} | {share} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relf1", default=str(HERE.parents[1] / "shared" / "data" / "rel-f1"))
    parser.add_argument("--scores", nargs="+", required=True, help=".npz files of --save-scores")
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument(
        "--baseline", default=AGGREGATES, help="the method every other is compared with"
    )
    parser.add_argument("--out-dir", default=str(HERE / "results"))
    parser.add_argument("--name", default="split_noise")
    args = parser.parse_args()

    saved = load_scores(args.scores)
    fallback = RelBenchFallback(args.relf1)
    for name, entry in saved.items():
        fallback.complete(name, entry)
    rows = write_noise(
        saved,
        [Path(p).name for p in args.scores],
        Path(args.out_dir),
        args.name,
        args.n_resamples,
        args.baseline,
    )
    print(pd.DataFrame(rows).to_string(index=False))


def write_noise(
    saved: dict[str, dict],
    sources: list[str],
    out_dir: Path,
    name: str,
    n_resamples: int = 1000,
    baseline: str = AGGREGATES,
) -> list[dict[str, Any]]:
    """Summarise every task of ``saved`` (see :func:`collect`); write ``name`` .json and .md."""
    rows: list[dict[str, Any]] = []
    for task_name, entry in saved.items():
        rows.extend(summarise(task_name, entry, n_resamples, baseline))
    result = {
        "benchmark": "split_noise",
        "scores": sources,
        "n_resamples": n_resamples,
        "baseline": baseline,
        "resampling": "entities with all their rows (sktve.bootstrap), seeded by the run's seed",
        "machine": machine(),
        "rows": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2))
    (out_dir / f"{name}.md").write_text(markdown(result))
    return rows


if __name__ == "__main__":
    main()
