"""SFT of the multi-candidate rewriter with TRL's ``SFTTrainer`` (METHOD.md part B, step 2).

The SFT set (:mod:`.sft_data`: the best-of-n rewrites as numbered-list answers to the rewriter's own
prompt) is TRL's conversational prompt-completion format, so the loss covers only the answer
(``completion_only_loss``) and the prompt is rendered by the model's chat template exactly as
:class:`~shopsearch.synthesis.llm.transformers_lm.TransformersBackend` renders it at inference.
LoRA via peft on a GPU (r 32, alpha 64 by default), full fine-tuning on a CPU (tiny test models);
see :mod:`.policy` for what is saved and how to load it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.rewriter_training.config import RewriterTrainConfig
from shopsearch.synthesis.rewriter_training.policy import (
    MODEL_DIR,
    common_trainer_args,
    load_policy,
    lora_config,
    save_stage,
)
from shopsearch.synthesis.rewriter_training.sft_data import read_sft_set

KIND = "synthesis-rewriter-sft-model"


@dataclass(frozen=True)
class StageResult:
    """Where a trained stage went and its headline figures."""

    stage_dir: Path
    model_dir: Path
    adapter_dir: Path | None
    steps: int
    train_loss: float | None
    seconds: float
    log_history: list[dict[str, Any]]


def sft_dataset(examples: pd.DataFrame | str | Path) -> Any:
    """A ``datasets.Dataset`` of ``prompt`` / ``completion`` message lists from an SFT set (frame,
    directory or file); the other columns stay out (TRL would try to tokenize or collate them)."""
    from datasets import Dataset

    frame = examples if isinstance(examples, pd.DataFrame) else read_sft_set(examples)
    missing = [c for c in ("prompt", "completion") if c not in frame.columns]
    if missing:
        raise SynthesisError(f"the SFT set lacks columns {missing}; build it with build_sft_examples()")
    if frame.empty:
        raise SynthesisError("the SFT set is empty: nothing to train on")
    rows = [{"prompt": [dict(m) for m in p], "completion": [dict(m) for m in c]}
            for p, c in zip(frame["prompt"], frame["completion"], strict=True)]
    return Dataset.from_list(rows)


def train_sft(
    config: RewriterTrainConfig,
    examples: pd.DataFrame | str | Path,
    *,
    base_model: str | Path | None = None,
    output_dir: str | Path | None = None,
    callbacks: list[Any] | None = None,
) -> StageResult:
    """Fine-tune ``base_model`` (default ``config.base_model``) on the SFT set; write ``output_dir``
    (default ``config.output_dir/sft``) as described in :mod:`.policy`."""
    chosen = base_model or config.base_model
    if chosen is None or not str(chosen):
        raise SynthesisError("no base model: set base_model (a local causal LM directory) in synth.rewriter_training")
    from trl import SFTConfig, SFTTrainer

    base = Path(chosen)
    stage_dir = Path(output_dir) if output_dir is not None else config.output_dir / "sft"
    dataset = sft_dataset(examples)
    model, tokenizer = load_policy(base, config)
    s = config.sft
    args = SFTConfig(
        **common_trainer_args(config, stage_dir.with_name(stage_dir.name + "_checkpoints"), s.save_steps),
        learning_rate=config.sft_learning_rate(),
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        warmup_steps=s.warmup_ratio,  # a float < 1 is a ratio of the total steps (transformers >= 5)
        lr_scheduler_type="cosine",
        max_length=s.max_length,
        completion_only_loss=True,
        packing=False,  # packing would let a prompt attend to another example's answer
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(config), callbacks=callbacks)
    start = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - start
    history = list(trainer.state.log_history)
    loss = float(output.training_loss) if output.training_loss is not None else None
    save_stage(
        stage_dir, trainer.model, tokenizer, kind=KIND, base_model=base, log_history=history,
        config=config.model_dump(mode="json"), examples=len(dataset), steps=int(trainer.state.global_step),
        train_loss=loss, seconds=round(seconds, 2), learning_rate=config.sft_learning_rate(),
    )
    return StageResult(stage_dir, stage_dir / MODEL_DIR, stage_dir / "adapter" if config.use_lora() else None,
                       int(trainer.state.global_step), loss, seconds, history)
