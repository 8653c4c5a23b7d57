import duckdb
import pandas as pd

from sktve._task_sql import label_select


def test_label_select_keeps_every_active_row_and_labels_from_its_future_row():
    active = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01"] * 3), "member_id": [0, 1, 2]})
    future = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-01"]),
            "member_id": [1, 5],
            "n": [3, 7],
        }
    )
    sql = label_select("member_id", "CAST(COALESCE(f.n, 0) AS DOUBLE)", "n_loans")
    con = duckdb.connect()
    con.register("active", active)
    con.register("future", future)
    out = con.execute(sql + " ORDER BY member_id").df()
    # Member 0 and 2 have no future row (label from NULL), member 5 is not active (dropped).
    assert out.columns.tolist() == ["timestamp", "member_id", "n_loans"]
    assert out["member_id"].tolist() == [0, 1, 2]
    assert out["n_loans"].tolist() == [0.0, 3.0, 0.0]
    assert "{" not in sql  # nothing for RelBench's .format() to fill or choke on
