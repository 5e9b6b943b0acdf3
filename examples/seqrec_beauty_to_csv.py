"""Convert a one-user-per-line sequence file (S3-Rec/ICLRec format, e.g. the shipped Amazon Beauty) into an
interaction log CSV with string ids, the shape of a real export: ``user_id,item_id,timestamp``.

User ``u`` becomes ``A0000000u`` and item ``i`` becomes ``B0000000i`` (zero-padded, so text order = number
order and the log's internal ids equal the file's); the item at position ``p`` of a line gets the timestamp
``2014-01-01 + p days`` (Unix seconds). ``--shuffle`` writes the rows in random order: the time column alone
then carries the order.

    python examples/seqrec_beauty_to_csv.py /work/shared/data/seqrec/Amazon_Beauty.txt.gz beauty.csv --shuffle
    cl-domains run recipes/sasrec_beauty.yaml --set data.sequences=null --set data.interactions=beauty.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from cl_domains.seqrec import read_sequences

START = 1_388_534_400  # 2014-01-01 UTC
DAY = 86_400


def to_frame(path: str | Path, shuffle_seed: int | None = None) -> pd.DataFrame:
    """The interaction log of a sequence file; rows in file order, or shuffled with ``shuffle_seed``."""
    s = read_sequences(path)
    users = np.repeat(np.arange(1, s.n_users + 1), s.lengths)
    position = np.arange(len(s.items)) - np.repeat(s.offsets[:-1], s.lengths)
    df = pd.DataFrame(
        {
            "user_id": np.char.add("A", np.char.zfill(users.astype(str), 9)),
            "item_id": np.char.add("B", np.char.zfill(s.items.astype(str), 9)),
            "timestamp": START + DAY * position,
        }
    )
    if shuffle_seed is not None:
        df = df.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="one-user-per-line file (.gz accepted)")
    ap.add_argument("target", help="CSV to write (.csv or .csv.gz)")
    ap.add_argument("--shuffle", action="store_true", help="write the rows in random order (seed 0)")
    args = ap.parse_args()
    df = to_frame(args.source, 0 if args.shuffle else None)
    df.to_csv(args.target, index=False)
    print(f"{args.target}: {len(df):,} interactions, {df.user_id.nunique():,} users, {df.item_id.nunique():,} items")


if __name__ == "__main__":
    main()
