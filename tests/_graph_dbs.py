"""Small random relational databases for the graph / sampler / encoder tests.

Random schemas: static entity tables, an optional timestamped entity table (like
rel-f1's races, referenced by facts), and fact tables with foreign keys (some null),
numeric columns with NaN, categorical strings, booleans and short texts. Times are
rounded to days so that ties with seed times occur.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sktve import load_database

WORDS = np.array(["red", "blue", "fast", "slow", "big", "tiny", "old", "new", "good", "bad"])
START = pd.Timestamp("2020-01-01")


def _texts(rng, n):
    lengths = rng.integers(1, 6, n)
    return [" ".join(rng.choice(WORDS, k)) for k in lengths]


def _features(rng, n, prefix):
    x = rng.normal(size=n) * 10
    x[rng.random(n) < 0.1] = np.nan
    return {
        f"{prefix}_num": x,
        f"{prefix}_int": rng.integers(0, 50, n),
        f"{prefix}_cat": rng.choice(["a", "b", "c", "d", None], n),
        f"{prefix}_flag": rng.random(n) < 0.5,
        f"{prefix}_text": _texts(rng, n),
    }


def _times(rng, n, days=720):
    return START + pd.to_timedelta(rng.integers(0, days, n), unit="D")


def random_frames(seed: int):
    """(frames, schema) of a random database."""
    rng = np.random.default_rng(seed)
    frames, schema = {}, {}
    n_static = int(rng.integers(1, 3))
    referenced = []
    for i in range(n_static):
        n = int(rng.integers(5, 30))
        name = f"ent{i}"
        frames[name] = pd.DataFrame({f"{name}_id": np.arange(n) * 7 + 3, **_features(rng, n, name)})
        schema[name] = {"pkey": f"{name}_id"}
        referenced.append(name)
    if rng.random() < 0.7:  # a timestamped entity, referenced by facts (like races)
        n = int(rng.integers(10, 40))
        frames["event"] = pd.DataFrame(
            {
                "event_id": np.arange(n),
                "when": _times(rng, n),
                "ent0_id": rng.choice(frames["ent0"]["ent0_id"].to_numpy(), n),
                **_features(rng, n, "event"),
            }
        )
        schema["event"] = {"pkey": "event_id", "time_col": "when", "fkeys": {"ent0_id": "ent0"}}
        referenced.append("event")
    for j in range(int(rng.integers(1, 4))):
        n = int(rng.integers(50, 400))
        name = f"fact{j}"
        targets = list(rng.choice(referenced, size=min(len(referenced), 2), replace=False))
        cols = {f"{name}_id": np.arange(n), "ts": _times(rng, n)}
        fkeys = {}
        for target in targets:
            col = f"{target}_ref"
            keys = frames[target][schema[target]["pkey"]].to_numpy().astype(float)
            values = rng.choice(keys, n)
            values[rng.random(n) < 0.05] = np.nan
            cols[col] = pd.array(values, dtype="Int64")
            fkeys[col] = target
        cols.update(_features(rng, n, name))
        frames[name] = pd.DataFrame(cols)
        schema[name] = {"pkey": f"{name}_id", "time_col": "ts", "fkeys": fkeys}
    return frames, schema


def random_database(seed: int):
    frames, schema = random_frames(seed)
    return load_database(frames, schema=schema), frames, schema


def perturb_future(frames, schema, cutoff: pd.Timestamp, seed: int):
    """Copy of ``frames`` where every row later than ``cutoff`` has new values and a new
    (still later) time, and new later rows are appended to every timestamped table."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, frame in frames.items():
        time_col = schema[name].get("time_col")
        if time_col is None:
            out[name] = frame
            continue
        frame = frame.copy()
        future = (frame[time_col] > cutoff).to_numpy()
        n_future = int(future.sum())
        pkey = schema[name]["pkey"]
        fkeys = schema[name].get("fkeys", {})
        for col in frame.columns:
            if col in (pkey, time_col) or n_future == 0:
                continue
            if col in fkeys:
                keys = frames[fkeys[col]][schema[fkeys[col]]["pkey"]].to_numpy()
                frame.loc[future, col] = rng.choice(keys, n_future)
            elif frame[col].dtype.kind == "f":
                frame.loc[future, col] = rng.normal(size=n_future) * 1000
            elif frame[col].dtype.kind in "iu":
                frame.loc[future, col] = rng.integers(1000, 2000, n_future)
            elif frame[col].dtype.kind == "b":
                frame.loc[future, col] = ~frame.loc[future, col].to_numpy()
            else:
                frame.loc[future, col] = [f"zz{i}" for i in rng.integers(0, 99, n_future)]
        shift = pd.to_timedelta(rng.integers(1, 400, n_future), unit="D")
        frame.loc[future, time_col] = cutoff + shift
        n_new = 25
        new = frame.sample(n_new, replace=True, random_state=seed).reset_index(drop=True)
        new[pkey] = frame[pkey].max() + 1 + np.arange(n_new)
        new[time_col] = cutoff + pd.to_timedelta(rng.integers(1, 400, n_new), unit="D")
        out[name] = pd.concat([frame, new], ignore_index=True)
    return out
