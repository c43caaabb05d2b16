"""Fitting a sentence-transformers ``CrossEncoder`` (one logit) on CPU budgets: the re-ranker and the judge.

Shared by :mod:`shopsearch.training.reranker` and the synthesis relevance classifier
(:mod:`shopsearch.synthesis.judges.training`): both train a cross-encoder from the bundled MiniLM body
with ``BinaryCrossEntropyLoss`` on ``CrossEncoderTrainer``. What is written here is what the trainer
does not do for a 2-core machine:

- :class:`LengthGroupedBatchSampler`: batches of similar length (random batches of query + title pairs
  are ~44% padding on Home Depot);
- a time budget: :func:`measure_pairs_per_second` sizes the data to fit it and :class:`TimeBudget`
  stops training cleanly should the estimate be off;
- dev selection: an ``evaluate(step)`` callback every ``eval_steps`` and at the end, the best weights
  kept in memory (the trainer's own ``load_best_model_at_end`` needs its evaluator and a checkpoint
  per evaluation); a resumed run selects among the evaluations made after the resume.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.encoder import resolve_model

try:  # sentence-transformers >= 6 moved the samplers; 4.x-5.x keep the old paths
    from sentence_transformers.base.sampler import BatchSamplers, DefaultBatchSampler
except ImportError:  # pragma: no cover - older sentence-transformers
    from sentence_transformers.sampler import DefaultBatchSampler  # type: ignore[no-redef]
    from sentence_transformers.training_args import BatchSamplers  # type: ignore[no-redef]

# Share of the time budget the timing probe may plan for: the rest absorbs estimate error, the
# warm-up steps' extra cost, evaluations and the saving of the model.
BUDGET_SAFETY = 0.85


class CrossEncoderFitConfig(BaseModel):
    """What every cross-encoder fit here is configured by."""

    model_config = ConfigDict(extra="forbid")

    base_model: str | None = None  # None: the bundled all-MiniLM-L6-v2
    max_seq_length: int = Field(64, ge=8)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_pairs: int | None = Field(None, ge=1)
    time_budget_s: float | None = Field(None, gt=0)  # training time; sizes the data and stops the run
    length_grouped: bool = True
    seed: int = 13
    threads: int | None = Field(None, ge=1)  # torch intra-op threads; None leaves torch's default
    device: str | None = None  # None: CUDA when available, else CPU
    logging_steps: int = Field(50, ge=1)
    loss: Literal["bce", "lambdaloss", "listnet"] = Field(
        "bce", description="bce: pointwise binary cross-entropy on the soft targets; lambdaloss (NDCG-Loss2++) "
        "or listnet: listwise over each query's pairs (needs a query_id column)")


def new_cross_encoder(base_model: str | Path | None = None, *, max_length: int = 64, device: str | None = None,
                      num_layers: int | None = None) -> Any:
    """A ``CrossEncoder`` with one output logit from a local model directory (bundled MiniLM by default).

    From a bi-encoder directory sentence-transformers keeps the transformer body and draws a new
    classification head, so seed torch before calling this for reproducible runs; from a cross-encoder
    directory (e.g. a trained re-ranker) it keeps the head too. ``num_layers`` keeps only the bottom
    that many transformer layers (Sajjad et al. 2023, "On the effect of dropping layers of pre-trained
    transformer models": the top layers go first at little cost): a re-ranker's cost per pair is
    linear in its layers, and on a 2-core server the re-ranker's layers decide how many hits fit a
    latency budget.
    """
    from sentence_transformers.cross_encoder import CrossEncoder

    _, path = resolve_model(base_model)
    try:
        model = CrossEncoder(str(path), num_labels=1, max_length=max_length, device=device, local_files_only=True)
    except Exception as exc:  # OSError, ValueError, safetensors errors...
        raise ShopsearchError(f"could not build a cross-encoder from {path}: {exc}") from exc
    if num_layers is not None:
        drop_top_layers(model.model, num_layers)
    return model


def drop_top_layers(hf_model: Any, num_layers: int) -> None:
    """Keep the bottom ``num_layers`` transformer layers of a BERT-style ``*ForSequenceClassification``."""
    body = getattr(hf_model, hf_model.base_model_prefix, None)
    layers = getattr(getattr(body, "encoder", None), "layer", None)
    if layers is None:
        raise ShopsearchError(f"dropping layers needs a BERT-style encoder (encoder.layer); "
                              f"{type(hf_model).__name__} has none")
    if not 1 <= num_layers <= len(layers):
        raise ShopsearchError(f"num_layers must lie in 1..{len(layers)} for this model, got {num_layers}")
    del layers[num_layers:]
    hf_model.config.num_hidden_layers = num_layers


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Batches of similar-length pairs, in random order (the usual bucketing trick).

    Per epoch: a seeded permutation is cut into windows of ``batch_size * window`` rows, each window
    is sorted by length (characters of query + product, a close proxy of tokens) and cut into
    batches, and the batches are shuffled. Padding shrinks; the loss is per pair, so batch
    composition does not change what is learnt. Every row is yielded once per epoch.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool = False,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
        *,
        window: int = 50,
    ) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        self.lengths = np.array(
            [len(a) + len(b) for a, b in zip(dataset["query"], dataset["product"], strict=True)], dtype=np.int64
        )
        self.window = window

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([int(self.seed), int(self.epoch)])
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.window
        out: list[list[int]] = []
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            out.extend(chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size))
        if self.drop_last:
            out = [b for b in out if len(b) == self.batch_size]
        return [out[i] for i in rng.permutation(len(out))]

    def __iter__(self) -> Any:
        yield from self.batches()

    def __len__(self) -> int:
        n = len(self.lengths)  # windows hold whole batches, so only the last batch can be short
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def measure_pairs_per_second(model: Any, pairs: pd.DataFrame, batch_size: int, n_batches: int = 4) -> float:
    """Training throughput (pairs/s) from forward + backward passes on length-grouped sample batches.

    Gradients are cleared and no optimiser step is taken, so the weights are untouched; the first
    batch is a warm-up and not timed.
    """
    import torch
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    data = {"query": pairs["query"].tolist(), "product": pairs["product_text"].tolist()}
    sampler = LengthGroupedBatchSampler(data, batch_size=batch_size, seed=0)
    batches = [b for b in sampler.batches() if len(b) == batch_size][: n_batches + 1]
    if len(batches) < 2:
        raise ValueError("too few pairs to time a training step")
    loss_fn = BinaryCrossEntropyLoss(model)  # the training loss itself: the same tokenising and forward
    model.train()
    timed, done = 0.0, 0
    for i, batch in enumerate(batches):
        start = time.monotonic()
        columns = [[data["query"][j] for j in batch], [data["product"][j] for j in batch]]
        loss_fn(columns, torch.zeros(len(batch), device=model.device)).backward()
        model.zero_grad(set_to_none=True)
        if i:
            timed += time.monotonic() - start
            done += len(batch)
    return done / timed


class TimeBudget:
    """A trainer callback that stops training after ``seconds`` of it (the step in progress finishes);
    ``excluded()`` is time inside the loop that is not training (dev evaluations)."""

    def __init__(self, seconds: float | None, excluded: Callable[[], float] = lambda: 0.0) -> None:
        self.seconds = seconds
        self.excluded = excluded
        self.stopped_at_step: int | None = None

    def callback(self) -> Any:
        from transformers import TrainerCallback

        budget = self

        class _Callback(TrainerCallback):
            start = 0.0

            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                self.start = time.monotonic()

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                spent = time.monotonic() - self.start - budget.excluded()
                if budget.seconds is not None and spent > budget.seconds:
                    control.should_training_stop = True
                    budget.stopped_at_step = state.global_step

        return _Callback()


class _DevSelection:
    """Calls ``evaluate(step)`` every ``every`` steps and at the end; keeps the best weights."""

    def __init__(self, model: Any, evaluate: Callable[[int], float], every: int | None) -> None:
        self.model, self.evaluate, self.every = model, evaluate, every
        self.best: dict[str, Any] | None = None
        self.last_step: int | None = None
        self.seconds = 0.0

    def run(self, step: int) -> None:
        self.last_step = step
        start = time.monotonic()
        value = self.evaluate(step)
        self.seconds += time.monotonic() - start
        if self.best is None or value > self.best["value"]:
            state = {k: v.detach().cpu().clone() for k, v in self.model.model.state_dict().items()}
            self.best = {"step": step, "value": round(value, 6), "state": state}

    def callback(self) -> Any:
        from transformers import TrainerCallback

        selection = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if selection.every and state.global_step % selection.every == 0:
                    selection.run(state.global_step)

        return _Callback()


def budgeted_pairs(model: Any, pairs: pd.DataFrame, config: CrossEncoderFitConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``pairs`` cut to ``max_pairs`` and to what the time budget affords (the pairs come shuffled)."""
    import torch

    probe: dict[str, Any] = {}
    if config.max_pairs is not None and len(pairs) > config.max_pairs:
        pairs = pairs.iloc[: config.max_pairs].reset_index(drop=True)
    if config.time_budget_s is not None and len(pairs) >= 5 * config.batch_size:
        rate = measure_pairs_per_second(model, pairs, config.batch_size)
        affordable = int(rate * config.time_budget_s * BUDGET_SAFETY / config.epochs)
        probe = {"pairs_per_second": round(rate, 2), "affordable_pairs": affordable}
        if affordable < len(pairs):
            pairs = pairs.iloc[: max(affordable, config.batch_size)].reset_index(drop=True)
        torch.manual_seed(config.seed)
    return pairs, probe


def fit_cross_encoder(
    model: Any,
    pairs: pd.DataFrame,
    config: CrossEncoderFitConfig,
    *,
    show_progress: bool = False,
    checkpoints: Path | None = None,
    resume: bool = False,
    evaluate: Callable[[int], float] | None = None,
    eval_steps: int | None = None,
    sized: bool = False,
) -> dict[str, Any]:
    """One fine-tuning run on ``pairs`` (columns query, product_text, label), first cut by
    :func:`budgeted_pairs` unless ``sized`` (the caller did it).

    ``checkpoints``: a folder for the trainer's checkpoints (every ``eval_steps`` or 500 steps, the two
    newest kept), from which ``resume`` continues; None trains without checkpoints. ``evaluate(step)``
    (higher is better) runs every ``eval_steps`` and at the end, and the returned ``best`` holds the
    best step, its value and its weights. Returns steps, seconds, losses and the budget's figures.
    """
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    available = len(pairs)
    pairs, probe = (pairs, {}) if sized else budgeted_pairs(model, pairs, config)
    data, loss, batch_size = _training_data(model, pairs, config)
    selection = _DevSelection(model, evaluate, eval_steps) if evaluate is not None else None
    budget = TimeBudget(config.time_budget_s, excluded=lambda: selection.seconds if selection else 0.0)
    callbacks = [budget.callback()] + ([selection.callback()] if selection else [])
    with tempfile.TemporaryDirectory(prefix="shopsearch-ce-") as scratch:
        out_dir = str(checkpoints) if checkpoints is not None else scratch
        args = CrossEncoderTrainingArguments(
            output_dir=out_dir,
            num_train_epochs=config.epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of the total steps (transformers v5)
            lr_scheduler_type="linear",
            seed=config.seed,
            data_seed=config.seed,
            save_strategy="steps" if checkpoints is not None else "no",
            save_steps=eval_steps or 500,
            save_total_limit=2,
            logging_steps=config.logging_steps,
            report_to="none",
            dataloader_num_workers=0,  # tokenising is cheap next to the forward pass; workers cost RAM
            use_cpu=not str(model.device).startswith("cuda"),
            disable_tqdm=not show_progress,
            batch_sampler=LengthGroupedBatchSampler if config.length_grouped and config.loss == "bce"
            else BatchSamplers.BATCH_SAMPLER,
        )
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=data,
                                      loss=loss, callbacks=callbacks)
        has_checkpoint = checkpoints is not None and any(checkpoints.glob("checkpoint-*"))
        start = time.monotonic()
        out = trainer.train(resume_from_checkpoint=True if resume and has_checkpoint else None)
        seconds = time.monotonic() - start
    if selection is not None and selection.last_step != out.global_step:
        selection.run(int(out.global_step))  # the end of training is always evaluated
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    figures: dict[str, Any] = {
        "pairs_available": available, "pairs_trained": len(pairs), "probe": probe,
        "steps": int(out.global_step), "seconds": round(seconds, 1),
        "stopped_by_time_budget": budget.stopped_at_step is not None,
        "train_loss": float(out.training_loss), "logged_losses": [float(x) for x in losses],
        "dev_seconds": round(selection.seconds, 1) if selection else 0.0,
        "loss": config.loss, "batch_rows": batch_size,
    }
    if selection is not None:
        figures["best"] = selection.best
    return figures


def _training_data(model: Any, pairs: pd.DataFrame, config: CrossEncoderFitConfig) -> tuple[Any, Any, int]:
    """The trainer's dataset, loss and rows per batch for ``config.loss``.

    Pointwise: one row per pair, ``batch_size`` pairs a batch. Listwise: one row per query (its
    products and targets as lists), as many queries a batch as make ``batch_size`` pairs on average,
    scored ``batch_size`` pairs per forward pass. The target t = grade / max_grade enters LambdaLoss
    as gain 2^t - 1, within 0.09 of linear in the grade over [0, 1] (the protocol's NDCG gain).
    """
    from datasets import Dataset as HFDataset
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, LambdaLoss, ListNetLoss

    if config.loss == "bce":
        data = HFDataset.from_dict({"query": pairs["query"].tolist(), "product": pairs["product_text"].tolist(),
                                    "label": pairs["label"].astype(float).tolist()})
        return data, BinaryCrossEntropyLoss(model), config.batch_size
    if "query_id" not in pairs.columns:
        raise ShopsearchError(f"loss {config.loss!r} is listwise: the training pairs need a query_id column")
    groups = pairs.groupby("query_id", sort=False)
    data = HFDataset.from_dict({
        "query": groups["query"].first().tolist(),
        "docs": groups["product_text"].agg(list).tolist(),
        "labels": groups["label"].agg(lambda x: [float(v) for v in x]).tolist(),
    })
    per_query = len(pairs) / max(1, len(data))
    rows = max(1, round(config.batch_size / per_query))
    loss = (LambdaLoss(model, mini_batch_size=config.batch_size) if config.loss == "lambdaloss"
            else ListNetLoss(model, mini_batch_size=config.batch_size))
    return data, loss, rows
