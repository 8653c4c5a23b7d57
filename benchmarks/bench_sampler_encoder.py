"""Benchmark the temporal neighbour sampler and the relational encoder.

Measures, on rel-f1 (seeds = drivers at the driver-top3 train cutoffs) and on the
synthetic database at ``--synthetic-orders`` fact rows:

- graph build time (featurizer fit + transform);
- sampler throughput (seeds/s, sampled edges/s) for index sampling alone and with the
  feature gather, and its ratio to a lower bound measured in the same run: the time to
  gather the same number of edges with plain numpy fancy indexing
  (``neighbours[random_positions]``, positions uniform over all CSR neighbour arrays, in
  calls of up to 10M). A stricter bound is reported next to it: the same gathers done
  batch by batch (one fancy-indexing call per sampled batch, of that batch's size), as
  the sampler has to. Sampler and bounds are timed in paired rounds (see
  ``bench_sampler``) and a ratio is the median over rounds;
- encoder forward + backward throughput (seeds/s) at width 128, 2 layers, on CPU with
  ``torch.set_num_threads(2)``; and the cost of ``recency_means`` (recency-weighted means at
  30 and 360 days beside the plain mean), as the ratio of the encoder's time with them to
  its time without, both timed in alternating rounds in the same process;
- with ``--cases merge``: the sampler's ``merge_repeats`` (one node per (seed, row) at a
  hop) against the full tree, on rel-f1 at ``--merge-fanouts`` with the default encoder
  (history counts, recency means): nodes and edges per seed, sampling time, and encoder
  forward + backward time per batch of 256 seeds, tree and merged alternating on the same
  batches and weights (median ratio), checking that both give the same embeddings;
- peak resident memory.

Usage::

    python benchmarks/bench_sampler_encoder.py --relf1 ../shared/data/rel-f1 \\
        --synthetic-orders 10000000
    python benchmarks/bench_sampler_encoder.py --quick
    python benchmarks/bench_sampler_encoder.py --cases relf1 \
        --out benchmarks/results/encoder_recency.json   # rel-f1 only
    python benchmarks/bench_sampler_encoder.py --cases merge --threads 1 \
        --out benchmarks/results/merge_repeats.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from sktve import load_database  # noqa: E402
from sktve.graph import GraphFeaturizer, TemporalNeighborSampler  # noqa: E402
from sktve.nn import RelationalEncoder, keep_freed_memory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_gib() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine() -> dict:
    """The quality benchmarks' machine record (processor model, package versions) and
    this run's torch threads and CUDA."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_pretrainer_relf1 import machine as base_machine

    return {
        **base_machine(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def sampler_pass(sample, table, positions, times, batch_size) -> list[int]:
    """One pass of ``sample`` through the seeds in batches; edges of each batch."""
    sizes = []
    for sl in batches(len(positions), batch_size):
        out = sample(table, positions[sl], times[sl])
        sizes.append(int(sum(e.shape[1] for e in out["edges"].values())))
    return sizes


def bench_sampler(sampler, graph, table, positions, times, batch_size, min_seconds, rounds=12):
    """Sampler throughput and its ratio to the numpy gather bounds, in paired rounds.

    Each round times, back to back: some passes of index sampling, the same passes with
    features, then the two bounds for the same number of edges (one fancy-indexing call
    per up-to-10M edges; one call per sampled batch, of that batch's size). A ratio is
    the median over rounds of (sampler time / bound time) within a round, so drifts in
    the machine's speed between rounds cancel. Within a round each mode runs its passes
    back to back, as the bound's gathers do.
    """

    def with_features(table, positions, times):
        return {"edges": sampler.sample(table, positions, times).edge_index}

    modes = {"index_only": sampler.sample_subgraph, "with_features": with_features}
    # untimed warm-up (first-touch page faults, lazily built indexes); sizes of a pass
    sizes = sampler_pass(sampler.sample_subgraph, table, positions, times, batch_size)
    t0 = time.perf_counter()
    assert sampler_pass(with_features, table, positions, times, batch_size) == sizes
    per_pass_s = time.perf_counter() - t0
    per_pass = sum(sizes)
    passes = max(1, int(min_seconds / rounds / (2 * per_pass_s)))  # per mode and round
    nbr = np.concatenate([a.nbr for a in graph.adj.values()])
    rng = np.random.default_rng(0)
    chunk = min(10_000_000, passes * per_pass)
    idx = rng.integers(0, len(nbr), chunk)
    idx_batched = [rng.integers(0, len(nbr), m) for m in sizes]
    nbr[idx]  # untimed: the first gather faults its output's pages in
    seconds = {k: [] for k in (*modes, "bound", "batched_bound")}
    for _ in range(rounds):
        for name, sample in modes.items():
            t0 = time.perf_counter()
            for _ in range(passes):
                sampler_pass(sample, table, positions, times, batch_size)
            seconds[name].append(time.perf_counter() - t0)
        left = passes * per_pass
        t0 = time.perf_counter()
        while left > 0:
            nbr[idx[: min(left, chunk)]]
            left -= chunk
        seconds["bound"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(passes):
            for i in idx_batched:
                nbr[i]
        seconds["batched_bound"].append(time.perf_counter() - t0)
    sec = {k: np.asarray(v) for k, v in seconds.items()}
    n_edges = rounds * passes * per_pass
    n_seeds = rounds * passes * len(positions)

    def ratio(mode: str, bound: str) -> float:
        return float(np.median(sec[mode] / sec[bound]))

    result = {"edges_per_seed": per_pass / len(positions), "passes": rounds * passes}
    for mode in modes:
        result[mode] = {
            "seeds_per_s": n_seeds / sec[mode].sum(),
            "edges_per_s": n_edges / sec[mode].sum(),
            "ratio_to_gather_bound": ratio(mode, "bound"),
            "ratio_per_round": [round(float(r), 3) for r in sec[mode] / sec["bound"]],
        }
    result["gather_bound_edges_per_s"] = n_edges / sec["bound"].sum()
    result["batched_gather_bound"] = {
        "edges_per_s": n_edges / sec["batched_bound"].sum(),
        "index_only_ratio": ratio("index_only", "batched_bound"),
        "with_features_ratio": ratio("with_features", "batched_bound"),
    }
    return result


def bench_encoder(encoder, sampler, table, positions, times, batch_size, n_batches):
    opt = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    encoder.train()
    prepared = []
    for i, sl in enumerate(batches(len(positions), batch_size)):
        if i >= n_batches + 1:
            break
        prepared.append(sampler.sample(table, positions[sl], times[sl]))
    # first batch warms up the allocator; not timed
    timed, seeds = 0.0, 0
    for i, batch in enumerate(prepared):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = encoder(batch, corruption_rate=0.15, generator=gen).pow(2).mean()
        loss.backward()
        opt.step()
        if i > 0 or len(prepared) == 1:
            timed += time.perf_counter() - t0
            seeds += batch.num_seeds
    nodes = float(np.mean([sum(b.num_nodes.values()) for b in prepared]))
    return {"seeds_per_s": seeds / timed, "seconds": timed, "mean_nodes_per_batch": nodes}


def recency_cost(featurizer, sampler, table, positions, times, args, rounds=3):
    """Encoder time with recency means over time without, alternating rounds, median ratio."""

    def encoder(recency_days):
        torch.manual_seed(0)
        return RelationalEncoder(
            featurizer.metadata_, channels=128, num_layers=2, recency_days=recency_days
        )

    plain, recent = encoder(()), encoder((30.0, 360.0))
    ratios, speeds = [], {"plain": [], "recency": []}
    for _ in range(rounds):
        pair = {}
        for key, model in (("plain", plain), ("recency", recent)):
            pair[key] = bench_encoder(
                model, sampler, table, positions, times, args.batch_size, args.encoder_batches
            )["seeds_per_s"]
            speeds[key].append(pair[key])
        ratios.append(pair["plain"] / pair["recency"])
    return {
        "plain_seeds_per_s": float(np.median(speeds["plain"])),
        "recency_seeds_per_s": float(np.median(speeds["recency"])),
        "time_ratio_median": float(np.median(ratios)),
        "time_ratios": ratios,
    }


def run_case(name, db, table, positions, times, args, boundary=None):
    print(f"[{name}] {db.num_rows():,} rows, {len(positions):,} seeds", flush=True)
    t0 = time.perf_counter()
    featurizer = GraphFeaturizer().fit(db, boundary=boundary)
    t1 = time.perf_counter()
    graph = featurizer.transform(db)
    t2 = time.perf_counter()
    sampler = TemporalNeighborSampler(graph, fanouts=args.fanouts, random_state=0)
    sampled = bench_sampler(
        sampler, graph, table, positions, times, args.batch_size, args.min_seconds
    )
    torch.manual_seed(0)
    encoder = RelationalEncoder(featurizer.metadata_, channels=128, num_layers=2, dropout=0.0)
    enc = bench_encoder(
        encoder, sampler, table, positions, times, args.batch_size, args.encoder_batches
    )
    recency = recency_cost(featurizer, sampler, table, positions, times, args)
    result = {
        "rows": db.num_rows(),
        "seeds": int(len(positions)),
        "fanouts": args.fanouts,
        "batch_size": args.batch_size,
        "featurizer_fit_s": t1 - t0,
        "graph_build_s": t2 - t1,
        "sampler": sampled,
        "encoder_fwd_bwd_width128_2layers": enc,
        "encoder_recency_cost": recency,
        "peak_rss_gib": peak_rss_gib(),
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def relf1_seeds(args):
    """rel-f1 and the driver-top3 train rows as seeds (positions, times, train boundary),
    or None when the folder is absent."""
    path = Path(args.relf1)
    if not (path / "manifest.yaml").exists():
        print(f"rel-f1 not found at {path}; skipped")
        return None
    db = load_database(path)
    train = pd.read_parquet(path / "tasks/driver-top3/train.parquet")
    positions = db.entity_positions("drivers", train["driverId"].to_numpy())
    times = train["date"].to_numpy().astype("datetime64[ns]").view(np.int64)
    return db, positions, times, train["date"].max()


def relf1_case(args):
    seeds = relf1_seeds(args)
    if seeds is None:
        return None
    db, positions, times, boundary = seeds
    return run_case("rel-f1", db, "drivers", positions, times, args, boundary=boundary)


def synthetic_case(args):
    from sktve.datasets import make_synthetic_database

    n_orders = args.synthetic_orders
    n_customers = max(300, n_orders // 50)  # about 50 orders per customer
    t0 = time.perf_counter()
    db = make_synthetic_database(n_customers=n_customers, n_orders=n_orders, random_state=0)
    gen_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    n_seeds = args.synthetic_seeds
    positions = rng.integers(0, n_customers, n_seeds)
    lo, hi = pd.Timestamp("2021-01-01").value, pd.Timestamp("2023-12-31").value
    times = rng.integers(lo, hi, n_seeds)
    result = run_case(
        f"synthetic-{n_orders}",
        db,
        "customers",
        positions,
        times,
        args,
        boundary=pd.Timestamp("2022-12-31"),
    )
    result["generate_s"] = gen_s
    result["n_customers"] = n_customers
    return result


def merge_case(args):
    """``merge_repeats`` against the full tree on rel-f1 (see the module docstring)."""
    seeds = relf1_seeds(args)
    if seeds is None:
        return None
    db, positions, times, boundary = seeds
    featurizer = GraphFeaturizer().fit(db, boundary=boundary)
    graph = featurizer.transform(db)
    order = np.random.default_rng(0).permutation(len(positions))
    size = 256
    full = [order[i : i + size] for i in range(0, len(order) - size + 1, size)]
    day = 86_400 * 10**9
    windows = [30 * day, 360 * day]  # driver-top3's window and twelve of it
    out = {}
    for fanouts in args.merge_fanouts:
        torch.manual_seed(0)
        encoder = RelationalEncoder(
            featurizer.metadata_,
            channels=128,
            num_layers=len(fanouts),
            history_counts=True,
            n_history_windows=len(windows),
            recency_days=(30.0, 360.0),
        )
        samplers = {
            name: TemporalNeighborSampler(
                graph,
                fanouts,
                random_state=0,
                temporal_strategy="last",
                history_windows=windows,
                merge_repeats=name == "merged",
            )
            for name in ("tree", "merged")
        }
        stats = {
            name: {"sample_s": [], "encoder_s": [], "nodes": [], "edges": []} for name in samplers
        }
        max_diff = 0.0
        for _ in range(args.merge_rounds):
            for idx in full:
                emb = {}
                for name, sampler in samplers.items():
                    t0 = time.perf_counter()
                    batch = sampler.sample("drivers", positions[idx], times[idx])
                    t1 = time.perf_counter()
                    encoder.zero_grad()
                    emb[name] = encoder(batch)
                    emb[name].pow(2).mean().backward()
                    t2 = time.perf_counter()
                    st = stats[name]
                    st["sample_s"].append(t1 - t0)
                    st["encoder_s"].append(t2 - t1)
                    st["nodes"].append(sum(batch.num_nodes.values()) / len(idx))
                    st["edges"].append(batch.num_edges / len(idx))
                diff = (emb["tree"] - emb["merged"]).abs().max().item()
                max_diff = max(max_diff, diff)
        ratio = np.asarray(stats["tree"]["encoder_s"]) / np.asarray(stats["merged"]["encoder_s"])
        result = {
            name: {k: float(np.median(v)) for k, v in st.items()} for name, st in stats.items()
        }
        result["encoder_time_ratio_tree_to_merged"] = float(np.median(ratio))
        result["max_abs_embedding_difference"] = max_diff
        result["batches"] = len(ratio)
        out[",".join(map(str, fanouts))] = result
        print(fanouts, json.dumps(result), flush=True)
    return {"seeds_per_batch": size, "fanouts": out, "peak_rss_gib": peak_rss_gib()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--relf1", default=str(ROOT.parent / "shared/data/rel-f1"))
    parser.add_argument("--synthetic-orders", type=int, default=10_000_000)
    parser.add_argument("--synthetic-seeds", type=int, default=8192)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--min-seconds", type=float, default=6.0)
    parser.add_argument("--encoder-batches", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small synthetic, short runs")
    parser.add_argument(
        "--cases", default="relf1,synthetic", help="comma-separated: relf1, synthetic, merge"
    )
    parser.add_argument(
        "--merge-fanouts",
        type=lambda v: [[int(k) for k in f.split(",")] for f in v.split(";")],
        default=[[32, 16], [32, 16, 1], [32, 16, 4]],
        help="fan-outs of the merge case, e.g. '32,16;32,16,1'",
    )
    parser.add_argument("--merge-rounds", type=int, default=3)
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="skip sktve.nn.keep_freed_memory() (glibc then unmaps freed blocks; much "
        "slower training on VMs)",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/sampler_encoder.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.synthetic_orders = min(args.synthetic_orders, 200_000)
        args.synthetic_seeds = min(args.synthetic_seeds, 2048)
        args.min_seconds = 0.5
        args.encoder_batches = 2
    torch.set_num_threads(args.threads)
    allocator_tuned = False if args.default_allocator else keep_freed_memory()
    report = {
        "machine": machine(),
        "args": vars(args),
        "quick": args.quick,
        "keep_freed_memory": allocator_tuned,
    }
    cases = args.cases.split(",")
    unknown = set(cases) - {"relf1", "synthetic", "merge"}
    if unknown:
        raise SystemExit(f"--cases takes relf1, synthetic and merge; got {sorted(unknown)}")
    report["relf1"] = relf1_case(args) if "relf1" in cases else None
    report["synthetic"] = synthetic_case(args) if "synthetic" in cases else None
    if "merge" in cases:
        report["merge_repeats"] = merge_case(args)
    report["peak_rss_gib"] = peak_rss_gib()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
