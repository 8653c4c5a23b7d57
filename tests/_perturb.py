"""Perturb the future: change every row of a database later than a boundary, and move a
fitted estimator onto the changed database without refitting it."""

import numpy as np
import pandas as pd
from sklearn.base import clone


def with_fitted_state(fitted, **params):
    """A clone of ``fitted`` with ``params`` set and its fitted state (the attributes
    ending in ``_``) copied over: the same fitted model, e.g. on another database."""
    est = clone(fitted).set_params(**params)
    est.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    return est


def perturb_after(frames, schema, boundary):
    """Change every value and time of rows later than ``boundary`` (they stay later)."""
    rng = np.random.default_rng(123)
    out = {}
    for name, frame in frames.items():
        time_col = schema[name].get("time_col") if isinstance(schema[name], dict) else None
        frame = frame.copy()
        if time_col is not None:
            late = (frame[time_col] > boundary).to_numpy()
            keys = {schema[name].get("pkey"), time_col, *schema[name].get("fkeys", {})}
            for col in frame.columns:
                if col in keys:
                    continue
                values = frame[col]
                if values.dtype.kind in "if":
                    frame.loc[late, col] = values[late] * 3 + 7
                elif values.dtype.kind == "b":
                    frame.loc[late, col] = ~values[late]
                elif values.dtype == object:
                    frame.loc[late, col] = "perturbed"
            shift = pd.to_timedelta(rng.integers(0, 5, late.sum()), unit="D")
            frame.loc[late, time_col] = frame.loc[late, time_col] + shift
        out[name] = frame
    return out
