"""Split Home Depot ``train`` judgments into two halves by query (seeded), for held-out checks that
``dev`` cannot give once a choice was made on it: train on half A, judge on half B.

    .venv/bin/python benchmarks/homedepot_query_halves.py --out runs/halves   # a.csv, b.csv

Every judgment of a query goes to the same half; the files keep the original columns and row order,
so ``shopsearch train --judgments runs/halves/a.csv`` and ``homedepot_model_dev.py --judgments
runs/halves/b.csv`` read them like the originals. The data's licence forbids committing them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from shopsearch.artifacts import atomic_write_text

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "home-depot"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judgments", type=Path, default=DATA / "judgments_train.csv")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    frame = pd.read_csv(args.judgments, dtype=str, keep_default_na=False)
    queries = frame["query_id"].drop_duplicates().to_numpy()
    in_a = set(queries[np.random.default_rng(args.seed).random(len(queries)) < 0.5])
    args.out.mkdir(parents=True, exist_ok=True)
    mask = frame["query_id"].isin(in_a)
    for name, part in (("a", frame[mask]), ("b", frame[~mask])):
        atomic_write_text(args.out / f"{name}.csv", part.to_csv(index=False))
        print(f"{args.out / f'{name}.csv'}: {part['query_id'].nunique()} queries, {len(part)} judgments")


if __name__ == "__main__":
    main()
