"""The two-stage trainer: masked contrastive learning, then ROAR (Flipkart 2026, METHOD.md part A).

Both stages run on sentence-transformers' trainer (one code path for CPU, one GPU or several under
``torchrun``: it is the HF trainer underneath), with shopsearch's losses, its no-duplicates batch
sampler, the dev evaluator and a JSONL metrics log. Each stage writes checkpoints every
``save_steps`` and resumes exactly from the latest one (optimizer, scheduler, RNG, sampler
position); a finished stage leaves ``stageN/model`` (its best checkpoint by dev NDCG@10) and is
skipped on a rerun. The final model is the last stage's (``final_model: last_stage``) or the best
stage's by dev NDCG@10 (``best_dev``), saved in the sentence-transformers format.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shopsearch.artifacts import atomic_write_text
from shopsearch.data.render import ProductTextRenderer
from shopsearch.data.schema import Dataset
from shopsearch.hardware import cpu_info
from shopsearch.training.callbacks import FinalStepCallback, JsonlMetricsCallback
from shopsearch.training.config import TrainConfig
from shopsearch.training.dev_eval import DevRetrievalEvaluator, ModelEncoder
from shopsearch.training.stage_data import stage1_data, stage2_data


@dataclass
class TrainResult:
    """Where the model went and what happened on the way."""

    model_dir: Path
    manifest: dict[str, Any]
    dev_history: list[dict[str, Any]] = field(default_factory=list)


def _loss(config: TrainConfig, stage: str, model: Any, prior: Any = None) -> Any:
    from shopsearch.training.losses import (
        BradleyTerryLoss,
        CachedGradientLoss,
        InfoNCELoss,
        ListMLELoss,
        ListwiseDistillationLoss,
        MaskedInfoNCELoss,
        RoarLoss,
    )

    loss: Any
    rows = config.length_bucket_rows
    if stage == "1":
        s1 = config.stage1
        loss = (
            MaskedInfoNCELoss(model, tau=s1.tau, delta=s1.delta, bucket_rows=rows)
            if s1.loss == "masked_infonce" and s1.delta is not None
            else InfoNCELoss(
                model, tau=s1.tau, bucket_rows=rows, directions=tuple(s1.directions),
                partition_mode=s1.partition_mode, prior=prior, prior_share=s1.bm25_prior_share,
            )
        )
        if s1.mini_batch_size is not None:
            loss = CachedGradientLoss(loss, mini_batch_size=s1.mini_batch_size)
    else:
        s2 = config.stage2
        common: dict[str, Any] = {
            "tau": s2.tau, "delta": s2.delta, "beta": s2.beta, "bucket_rows": rows,
            "prior": prior, "prior_share": s2.bm25_prior_share,
        }
        if s2.loss == "roar":
            loss = RoarLoss(model, tau_a=s2.tau_a, **common)
        elif s2.loss == "bradley_terry":
            loss = BradleyTerryLoss(model, tau_r=s2.tau_r, **common)
        else:
            loss = ListMLELoss(model, tau_r=s2.tau_r, **common)
        if s2.distill_weight > 0:
            loss = ListwiseDistillationLoss(
                model, loss, gamma=s2.distill_weight, tau_student=s2.distill_tau_student,
                tau_teacher=s2.distill_tau_teacher,
            )
    dims = config.encoder.matryoshka_dims
    if dims:
        from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

        loss = MatryoshkaLoss(model, loss, matryoshka_dims=dims)
    return loss


def native_bf16(*, cuda: bool) -> bool:
    """Whether this device computes bf16 natively. Elsewhere bf16 is emulated, and its speed-up
    (measured only on an AVX512-BF16 CPU) is not to be expected."""
    if cuda:
        return bool(torch.cuda.is_bf16_supported())
    cpu = cpu_info()
    return cpu.has("avx512_bf16") or cpu.has("amx_bf16")


def bf16_reason(*, cuda: bool) -> str:
    """Why ``mixed_precision: auto`` does or does not train in bf16 here (``shopsearch doctor``)."""
    if cuda:
        return f"the GPU {'computes' if native_bf16(cuda=True) else 'does not compute'} bf16 natively"
    cpu = cpu_info()
    found = [f for f in ("avx512_bf16", "amx_bf16") if cpu.has(f)]
    if found:
        return f"the CPU has {' and '.join(found)}"
    return "the CPU has neither avx512_bf16 nor amx_bf16: bf16 would be emulated, so float32"


def use_bf16(setting: str, *, cuda: bool) -> bool:
    """``mixed_precision`` resolved for this device."""
    return setting == "bf16" or (setting == "auto" and native_bf16(cuda=cuda))


def _run_stage(
    stage: str,
    model: Any,
    train_data: Any,
    keys: Sequence[Any],
    config: TrainConfig,
    stage_dir: Path,
    evaluator: DevRetrievalEvaluator | None,
    log_path: Path,
    *,
    bf16: bool,
    resume: bool,
    show_progress: bool,
    extra_callbacks: Sequence[Any] = (),
    clusters: np.ndarray | None = None,
    prior: Any = None,
) -> dict[str, Any]:
    """One stage on the sentence-transformers trainer; ``bf16``: autocast, as resolved by :func:`use_bf16`."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from shopsearch.training.sampler import NoDuplicatesBatchSampler

    s = config.stage1 if stage == "1" else config.stage2
    cuda = torch.cuda.is_available() and str(next(model.parameters()).device).startswith("cuda")
    ckpt_dir = stage_dir / "checkpoints"
    every = config.dev.eval_steps or config.save_steps
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=s.epochs,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        per_device_train_batch_size=s.batch_size,
        learning_rate=s.learning_rate,
        warmup_steps=s.warmup_ratio,  # a float < 1 is a ratio of the total steps (transformers v5)
        lr_scheduler_type="cosine",
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=every,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if evaluator is not None else "no",
        eval_steps=every if evaluator is not None else None,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model="eval_dev_ndcg@10" if evaluator is not None else None,
        greater_is_better=True,
        logging_steps=config.logging_steps,
        report_to="none",
        dataloader_drop_last=True,
        dataloader_num_workers=config.dataloader_workers,
        batch_sampler=NoDuplicatesBatchSampler.factory(keys=keys, clusters=clusters),
        use_cpu=not cuda,
        bf16=bf16 or (cuda and config.encoder.dtype == "bfloat16"),
        disable_tqdm=not show_progress,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        loss=_loss(config, stage, model, prior),
        evaluator=evaluator,
        callbacks=[FinalStepCallback(), JsonlMetricsCallback(log_path, stage, s.batch_size), *extra_callbacks],
    )
    has_ckpt = resume and any(ckpt_dir.glob("checkpoint-*"))
    started = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=True if has_ckpt else None)
    return {
        "dev_best": _best_eval(trainer.state),
        "stage": stage,
        "steps": int(trainer.state.global_step),
        "seconds": time.perf_counter() - started,
        "train_loss": float(out.training_loss),
        "bf16_autocast": bool(args.bf16),
        "best_metric": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "resumed": bool(has_ckpt),
        "rows": len(train_data),
    }


def train(
    train_set: Dataset,
    config: TrainConfig,
    output: str | Path,
    *,
    dev_set: Dataset | None = None,
    resume: bool = True,
    show_progress: bool = True,
    extra_callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train the Siamese encoder on ``train_set`` (and dev-evaluate on ``dev_set``) into ``output``.

    ``output/model`` is the chosen model (open it with ``SentenceTransformer(path)``);
    ``output/manifest.json`` records the config, data and mining statistics, dev figures and timings;
    ``output/metrics.jsonl`` the training log. Rerunning with ``resume=True`` continues a killed run.
    """
    from shopsearch.models.siamese import build_siamese_encoder, save_encoder

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    renderer = ProductTextRenderer(fields=tuple(config.text_fields))
    texts = renderer.render(train_set.catalog)
    product_text = dict(zip(train_set.catalog.ids, texts, strict=True))
    evaluator = None
    if dev_set is not None and len(dev_set.judgments):
        dev_texts = texts if dev_set.catalog is train_set.catalog else renderer.render(dev_set.catalog)
        evaluator = DevRetrievalEvaluator(
            dev_set, dev_texts, pool_size=config.dev.pool_size, depth=config.dev.depth, seed=config.seed
        )
    stages: list[str] = ["1", "2"] if config.stage == "both" else [str(config.stage)]
    log_path = output / "metrics.jsonl"
    manifest: dict[str, Any] = {
        "kind": "trained-encoder",
        "config": json.loads(config.model_dump_json()),
        "train": {"products": len(train_set.catalog), "queries": len(train_set.queries), "judgments": len(train_set.judgments)},
        "dev": {"queries": len(evaluator.query_ids), "pool": evaluator.pool} if evaluator else None,
        "stages": {},
    }
    model = None
    stage_models: dict[str, Path] = {}
    for stage in stages:
        stage_dir = output / f"stage{stage}"
        done = stage_dir / "model"
        if resume and (done / "shopsearch_model.json").is_file():
            stage_models[stage] = done
            manifest["stages"][stage] = json.loads((stage_dir / "stage.json").read_text())
            model = None  # the next stage loads it from disk
            continue
        if model is None:
            # A later stage rebuilds from the previous stage's saved (LoRA-merged) model, so the
            # prefix, serving dim, LoRA, checkpointing, dtype and device are applied again.
            previous = stage_models.get(str(int(stage) - 1))
            encoder_config = (
                config.encoder.model_copy(update={"base_model": str(previous)}) if previous else config.encoder
            )
            model = build_siamese_encoder(encoder_config)
        bf16 = use_bf16(config.mixed_precision, cuda=next(model.parameters()).is_cuda)
        miner = ModelEncoder(model, bf16=bf16)
        prior = None
        if stage == "1":
            data, keys, stats, prior = stage1_data(train_set, config, product_text, miner)
        else:
            data, keys, stats, prior = stage2_data(train_set, config, product_text, miner, stage_dir)
        if isinstance(stats.get("mining"), dict):
            stats["mining"]["bf16"] = miner.bf16
        clusters = _topic_clusters(stage, data, config, miner, stats)
        run = _run_stage(
            stage, model, data, keys, config, stage_dir, evaluator, log_path,
            bf16=bf16, resume=resume, show_progress=show_progress, extra_callbacks=extra_callbacks,
            clusters=clusters, prior=prior,
        )
        # the best checkpoint is loaded at the end of the stage; its dev figures are in the log
        dev = run.pop("dev_best")
        info = {**run, "data": stats, "dev_final": dev}
        save_encoder(model, done, metadata={"stage": stage, "dev": dev})
        atomic_write_text(stage_dir / "stage.json", json.dumps(info, indent=2, default=str))
        manifest["stages"][stage] = info
        stage_models[stage] = done
        shutil.rmtree(stage_dir / "checkpoints", ignore_errors=True)  # the stage is done: free the disk

    chosen = _choose(manifest["stages"], stages) if config.final_model == "best_dev" else stages[-1]
    final = output / "model"
    from shopsearch.artifacts import atomic_dir

    with atomic_dir(final) as tmp:
        shutil.copytree(stage_models[chosen], tmp, dirs_exist_ok=True)
    manifest["chosen_stage"] = chosen
    manifest["model"] = str(final)
    atomic_write_text(output / "manifest.json", json.dumps(manifest, indent=2, default=str))
    return TrainResult(final, manifest, evaluator.history if evaluator else [])


def _topic_clusters(
    stage: str, data: Any, config: TrainConfig, encoder: ModelEncoder, stats: dict[str, Any]
) -> np.ndarray | None:
    """Each row's topic cluster under ``batch_sampling: topic`` (None: random batches)."""
    s = config.stage1 if stage == "1" else config.stage2
    if s.batch_sampling != "topic":
        return None
    from shopsearch.training.topics import cluster_sizes, query_topic_clusters

    clusters = query_topic_clusters(
        data["anchor" if stage == "1" else "query"], encoder,
        queries_per_cluster=s.topic_queries_per_cluster or s.batch_size, seed=config.seed,
    )  # fmt: skip
    stats["topics"] = cluster_sizes(clusters)
    return clusters


def _best_eval(state: Any) -> dict[str, float] | None:
    """Dev metrics logged at the best checkpoint's step (None without dev evaluation)."""
    if not state.best_model_checkpoint:
        return None
    step = int(Path(state.best_model_checkpoint).name.rsplit("-", 1)[-1])
    for entry in state.log_history:
        if entry.get("step") == step and "eval_dev_ndcg@10" in entry:
            return {k[len("eval_"):]: float(v) for k, v in entry.items() if k.startswith("eval_dev_")}
    return None


def _choose(stages: dict[str, dict[str, Any]], order: list[str]) -> str:
    """The stage whose final model has the best dev NDCG@10 (the last stage without dev figures).

    Only under ``final_model: best_dev``. The default keeps the last stage: the dev pool scores the
    dense model alone, a figure stage 2's BM25 prior deliberately trades for the hybrid's.
    """
    scored = [(s, (stages[s].get("dev_final") or {}).get("dev_ndcg@10")) for s in order]
    values = [float(v) for _, v in scored if v is not None]
    if len(values) < len(scored):
        return order[-1]
    best = max(values)
    return next(s for s, v in reversed(scored) if v == best)
