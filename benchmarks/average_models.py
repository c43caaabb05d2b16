"""Write the weight average of two sentence-transformers models of one architecture (a "model soup").

    python benchmarks/average_models.py A B --alpha 0.5 --out runs/soup/model

The new model's weights are ``(1 - alpha) * A + alpha * B``, tensor by tensor (Wortsman et al.,
"Model soups", ICML 2022: fine-tunes from one initialisation average into one model; WiSE-FT, CVPR
2022: a fine-tune averaged with its base). Integer buffers (position ids) are taken from A. Judge the
result like any model: ``python benchmarks/homedepot_model_dev.py runs/soup/model --weights 0.5
--rescore-union``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from shopsearch.artifacts import atomic_dir


def average_models(a: str, b: str, alpha: float, out: Path) -> None:
    from sentence_transformers import SentenceTransformer

    if not 0.0 <= alpha <= 1.0:
        raise SystemExit(f"--alpha must lie in [0, 1], got {alpha}")
    first = SentenceTransformer(a, device="cpu")
    second = SentenceTransformer(b, device="cpu").state_dict()
    weights = first.state_dict()
    if weights.keys() != second.keys():
        raise SystemExit(f"{a} and {b} do not share one architecture (their weight names differ)")
    first.load_state_dict(
        {k: (1 - alpha) * v + alpha * second[k] if v.is_floating_point() else v for k, v in weights.items()}
    )
    with atomic_dir(out) as tmp:  # a failed save leaves an earlier soup at ``out`` intact
        first.save(str(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="model directory A (its non-weight files are kept)")
    parser.add_argument("b", help="model directory B")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of B (default 0.5)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    average_models(args.a, args.b, args.alpha, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
