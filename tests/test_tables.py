"""core.tables: the user's CSV/TSV/JSONL/parquet/.inter files and the columns a recipe names."""

import gzip

import pandas as pd
import pytest

from cl_domains.core.errors import UserError
from cl_domains.core.tables import read_table, require_columns

ROWS = pd.DataFrame({"user": ["u1", "u2", "u1"], "item": ["B00X", "B00Y", "B00Z"], "ts": [3, 1, 2]})


@pytest.mark.parametrize("name", ["log.csv", "log.tsv", "log.jsonl", "log.parquet", "log.csv.gz"])
def test_each_format_reads_the_same_rows(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".parquet"):
        ROWS.to_parquet(path)
    elif name.endswith(".jsonl"):
        ROWS.to_json(path, orient="records", lines=True)
    elif name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            ROWS.to_csv(f, index=False)
    else:
        ROWS.to_csv(path, sep="\t" if name.endswith(".tsv") else ",", index=False)
    df = read_table(path)
    assert list(df.columns) == ["user", "item", "ts"] and df["item"].tolist() == ["B00X", "B00Y", "B00Z"]
    assert df["ts"].tolist() == [3, 1, 2]


def test_recbole_inter_headers_lose_their_types(tmp_path):
    path = tmp_path / "beauty.inter"
    path.write_text("user_id:token\titem_id:token\ttimestamp:float\nA1\tB00X\t5.0\n")
    df = read_table(path)
    assert list(df.columns) == ["user_id", "item_id", "timestamp"] and df["item_id"][0] == "B00X"


def test_errors_name_the_file_the_column_and_the_key(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_table(tmp_path / "nope.csv", what="interaction log")
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(UserError, match=r"cannot tell the table format.*\.csv"):
        read_table(tmp_path / "x.xlsx")
    (tmp_path / "empty.csv").write_text("user,item\n")
    with pytest.raises(UserError, match="has no data rows"):
        read_table(tmp_path / "empty.csv")
    ROWS.to_csv(tmp_path / "log.csv", index=False)
    df = read_table(tmp_path / "log.csv")
    require_columns(df, tmp_path / "log.csv", {"data.user": "user", "data.time": None})
    with pytest.raises(
        UserError, match=r"no column 'itme' \(named by data.item\); did you mean 'item'\?.*Set data.item"
    ):
        require_columns(df, tmp_path / "log.csv", {"data.item": "itme"}, what="interaction log")
