"""Rewriter training on a GPU: best-of-n SFT set -> SFT -> GRPO, with reward curves and before/after.

METHOD.md part B, step 2 (the Taobao multi-candidate rewriter, trained by SFT then GRPO with several
rewards). On a real small instruct model given by path (e.g. a SmolLM2-135M-Instruct or
Qwen2.5-0.5B-Instruct checkpoint saved with ``save_pretrained``; nothing is downloaded):

1. seeds: long-tail queries of the shop (``--data demo``: the SYNTHETIC demo shop; ``homedepot``:
   ../shared/data/home-depot), split into training and held-out seeds;
2. rewards: the bundled all-MiniLM-L6-v2 (relevance, diversity, product language), BM25 top-K, and a
   judge for goodrate (``--judge DIR``: a trained cross-encoder; default the embedding judge);
3. candidates: the base model with the few-shot rewriter prompt, ``--pool`` rewrites per answer and
   ``--samples`` answers per seed, scored; best-of-n selection into the SFT set;
4. SFT (LoRA) from the base model, then GRPO (LoRA, ``num_generations`` answers per prompt) from the
   merged SFT model;
5. the base model (few-shot and zero-shot), the SFT and the GRPO policies rewrite the held-out seeds
   greedily and are scored by the same rewards.

Writes ``--out`` (runs: sft set, models, metrics) and ``--results`` (JSON: settings, counts, timings,
the SFT loss curve, the GRPO reward curves per component, KL, the before/after table). Run by hand on
a GPU machine::

    python benchmarks/rewriter_gpu.py --model /models/SmolLM2-135M-Instruct --out runs/rewriter-gpu
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_HD = HERE.parent.parent / "shared" / "data" / "home-depot"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="local directory of a causal instruct LM (with tokenizer)")
    p.add_argument("--out", type=Path, default=Path("runs/rewriter-gpu"), help="run directory")
    p.add_argument("--results", type=Path, default=HERE / "results" / "rewriter_gpu.json", help="results JSON")
    p.add_argument("--config", type=Path, help="config file with a synth.rewriter_training section")
    p.add_argument("--data", choices=["demo", "homedepot"], default="demo")
    p.add_argument("--hd-dir", type=Path, default=DEFAULT_HD)
    p.add_argument("--judge", type=Path, help="trained cross-encoder judge directory (default: embedding judge)")
    p.add_argument("--train-seeds", type=int, default=512)
    p.add_argument("--eval-seeds", type=int, default=128)
    p.add_argument("--pool", type=int, default=10, help="rewrites asked per candidate-generation answer")
    p.add_argument("--samples", type=int, default=2, help="answers per seed for best-of-n")
    p.add_argument("--sft-epochs", type=float, help="override sft.epochs")
    p.add_argument("--grpo-steps", type=int, help="override grpo.max_steps")
    p.add_argument("--min-reward", type=float, help="override selection.min_reward")
    p.add_argument("--allow-cpu", action="store_true", help="run without a GPU (slow; for a smoke test)")
    return p.parse_args(argv)


def check_model_dir(path: Path) -> str | None:
    """Why ``path`` is not a usable model directory, or None."""
    if not path.exists():
        return f"model path {path} does not exist: pass --model DIR, a causal LM saved with save_pretrained()"
    if not path.is_dir():
        return f"model path {path} is a file: pass the directory holding config.json and the tokenizer"
    if not (path / "config.json").is_file():
        return f"{path} has no config.json: not a transformers model directory"
    return None


def load_shop(args: argparse.Namespace) -> Any:
    if args.data == "demo":
        from shopsearch.data.demo import DemoShopConfig, generate_demo_shop

        return generate_demo_shop(DemoShopConfig(n_products=3000, n_queries=2000))
    from shopsearch.data.loaders import load_homedepot

    if not (args.hd_dir / "products.csv").is_file():
        sys.exit(f"error: no Home Depot data in {args.hd_dir} (products.csv, judgments_train.csv)")
    return load_homedepot(products=args.hd_dir / "products.csv", judgments=args.hd_dir / "judgments_train.csv")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check_model_dir(args.model)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("error: no GPU visible to torch; this benchmark is sized for one (pass --allow-cpu to run anyway)",
              file=sys.stderr)
        return 2

    from shopsearch.artifacts import atomic_write_text
    from shopsearch.retrieval.bm25 import BM25Retriever
    from shopsearch.retrieval.encoder import SentenceEncoder
    from shopsearch.synthesis.judges import CrossEncoderJudge, EmbeddingJudge, product_text_map
    from shopsearch.synthesis.llm.transformers_lm import TransformersBackend
    from shopsearch.synthesis.rewards import RewardModels
    from shopsearch.synthesis.rewriter import (
        MultiCandidateRewriter,
        RewriterConfig,
        read_rewrites,
        rewrite_seeds,
    )
    from shopsearch.synthesis.rewriter_training.config import RewriterTrainConfig
    from shopsearch.synthesis.rewriter_training.evaluation import evaluate_rewriter, rewriter_for
    from shopsearch.synthesis.rewriter_training.grpo import reward_curves, train_grpo
    from shopsearch.synthesis.rewriter_training.sft import train_sft
    from shopsearch.synthesis.rewriter_training.sft_data import (
        build_sft_examples,
        score_rewrites,
        write_sft_set,
    )
    from shopsearch.synthesis.seeds import SeedConfig, seeds_from_dataset

    config = RewriterTrainConfig.from_file(args.config, base_model=args.model, output_dir=args.out)
    if args.sft_epochs is not None:
        config.sft.epochs = args.sft_epochs
    if args.grpo_steps is not None:
        config.grpo.max_steps = args.grpo_steps
    if args.min_reward is not None:
        config.selection.min_reward = args.min_reward
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now
        print(f"[{name}] {timings[name]} s", flush=True)

    shop = load_shop(args)
    seeds = seeds_from_dataset(shop, SeedConfig(max_seeds=args.train_seeds + args.eval_seeds)).df
    seeds = seeds.sample(frac=1.0, random_state=config.seed).reset_index(drop=True)
    eval_seeds, train_seeds = seeds.head(args.eval_seeds), seeds.iloc[args.eval_seeds:]
    texts = product_text_map(shop.catalog)
    encoder = SentenceEncoder(device="cuda" if torch.cuda.is_available() else "cpu")
    judge = (CrossEncoderJudge.load(args.judge, device="cuda" if torch.cuda.is_available() else "cpu")
             if args.judge else EmbeddingJudge(encoder))
    models = RewardModels(encoder=encoder, retriever=BM25Retriever(shop.catalog.ids, [texts[p] for p in shop.catalog.ids]),
                          judge=judge, product_texts=texts)
    lap("data_and_reward_models")

    # best-of-n candidates from the base model with the untuned (few-shot) prompt
    base = TransformersBackend(args.model, batch_size=32)
    pool = MultiCandidateRewriter(base, RewriterConfig(n=args.pool, samples=args.samples, shots=2, temperature=0.9,
                                                       max_tokens=32 * args.pool // 2))
    rewrites = read_rewrites(rewrite_seeds(train_seeds, args.out / "rewrites", pool, batch_size=64, overwrite=True))
    lap("candidates")
    scores = score_rewrites(rewrites, models, weights=config.reward.weights, k=config.reward.k)
    examples, counts = build_sft_examples(scores, config)
    write_sft_set(examples, counts, args.out / "sft_data", config, model=str(args.model))
    lap("selection")

    evals: dict[str, Any] = {
        "base_fewshot": evaluate_rewriter(rewriter_for(base, config, shots=2), eval_seeds, models, config),
        "base_zeroshot": evaluate_rewriter(rewriter_for(base, config), eval_seeds, models, config),
    }
    del base, pool
    torch.cuda.empty_cache()
    lap("eval_base")

    sft = train_sft(config, examples)
    lap("sft")
    evals["sft"] = evaluate_rewriter(rewriter_for(TransformersBackend(sft.model_dir, batch_size=32), config),
                                     eval_seeds, models, config)
    lap("eval_sft")
    grpo = train_grpo(config, train_seeds, models, policy=sft.model_dir)
    lap("grpo")
    evals["grpo"] = evaluate_rewriter(rewriter_for(TransformersBackend(grpo.model_dir, batch_size=32), config),
                                      eval_seeds, models, config)
    lap("eval_grpo")

    result = {
        "benchmark": "rewriter_gpu",
        "date": dt.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else None, "torch": torch.__version__},
        "model": str(args.model.resolve()),
        "data": args.data + (" (SYNTHETIC)" if args.data == "demo" else ""),
        "judge": judge.describe(),
        "seeds": {"train": len(train_seeds), "eval": len(eval_seeds)},
        "selection": counts.as_dict(),
        "config": config.model_dump(mode="json"),
        "timings_s": timings,
        "sft": {"steps": sft.steps, "train_loss": sft.train_loss,
                "loss_curve": reward_curves(sft.log_history).get("loss", [])},
        "grpo": {"steps": grpo.steps, "train_loss": grpo.train_loss, "curves": reward_curves(grpo.log_history)},
        "eval": evals,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results, json.dumps(result, indent=2))
    print(json.dumps({k: {m: v[m] for m in ("reward", "format_ok_rate", "goodrate")} for k, v in evals.items()},
                     indent=2))
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
