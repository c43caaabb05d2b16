"""Loading, adapting and saving the rewriter policy for TRL training (SFT and GRPO alike).

A trained stage directory (``RUN/sft`` or ``RUN/grpo``) holds:

- ``model/``: the full causal LM with any LoRA adapter merged in, plus its tokenizer and chat
  template. This is what :class:`shopsearch.synthesis.llm.transformers_lm.TransformersBackend`
  loads (``build_backend("transformers", model="RUN/grpo/model")``) and what the next stage starts
  from: GRPO's KL reference is then exactly the SFT policy (TRL computes the reference with the
  adapter disabled, i.e. the merged SFT weights).
- ``adapter/`` (LoRA runs only): the peft adapter alone (``adapter_config.json`` names the absolute
  base path) with the tokenizer; small to ship, loadable with ``peft.AutoPeftModelForCausalLM`` or
  transformers' PEFT integration when the base directory is present.
- ``metrics.jsonl`` (the trainer's log history: losses, rewards per component, KL...) and
  ``manifest.json`` (settings, data counts, final figures, checksums).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shopsearch.artifacts import atomic_dir, write_manifest
from shopsearch.synthesis.errors import SynthesisError
from shopsearch.synthesis.rewriter_training.config import RewriterTrainConfig

MODEL_DIR = "model"
ADAPTER_DIR = "adapter"
METRICS_FILE = "metrics.jsonl"


def load_policy(path: str | Path, config: RewriterTrainConfig) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the causal LM in ``path``, ready for a TRL trainer.

    Weights load in bf16 only for LoRA with bf16 (frozen base, fp32 adapters); full fine-tuning
    keeps fp32 master weights and lets the trainer autocast, since AdamW on bf16 weights loses
    small updates.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SynthesisError(
            f"base model {str(path)!r} is not a local directory: save the causal LM and its tokenizer with "
            "save_pretrained() to a directory and set base_model to it (shopsearch never downloads models)"
        )
    if not (root / "config.json").is_file():
        raise SynthesisError(f"{root} has no config.json: not a transformers model directory")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if (config.use_lora() and config.use_bf16()) else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(root), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(root), local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise SynthesisError(f"could not load a causal LM and tokenizer from {root}: {exc}") from exc
    if not getattr(tokenizer, "chat_template", None):
        raise SynthesisError(
            f"the tokenizer in {root} has no chat template; the rewriter is trained on chat prompts, so use an "
            "instruct model, or set tokenizer.chat_template and save the tokenizer again"
        )
    if tokenizer.pad_token is None:
        # batches need a pad id; the end token is the usual stand-in and is masked out of the loss
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def lora_config(config: RewriterTrainConfig) -> Any:
    """The peft ``LoraConfig`` of ``config.lora`` (causal LM task), or None when not fine-tuning with LoRA."""
    if not config.use_lora():
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise SynthesisError("LoRA needs the 'peft' package (pip install peft)") from None
    s = config.lora
    return LoraConfig(task_type="CAUSAL_LM", r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                      target_modules=s.target_modules, bias="none")


def common_trainer_args(config: RewriterTrainConfig, work_dir: Path, save_steps: int | None) -> dict[str, Any]:
    """TrainingArguments shared by the SFT and GRPO configs (TRL's defaults differ from ours on a CPU:
    TRL turns bf16 and gradient checkpointing on unless told)."""
    import dataclasses

    from transformers import TrainingArguments

    cpu = config.resolved_device() == "cpu"
    # transformers >= 5.x renamed gradient checkpointing to activation checkpointing (the old name warns)
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {
        "output_dir": str(work_dir),
        "seed": config.seed,
        "logging_steps": config.logging_steps,
        "report_to": "none",
        "bf16": config.use_bf16(),
        "use_cpu": cpu,
        checkpointing: config.use_gradient_checkpointing(),
        "save_strategy": "steps" if save_steps else "no",
        "save_steps": save_steps or 500,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def unwrap_merged(model: Any) -> Any:
    """The plain transformers model, LoRA merged in when the model is a peft model."""
    if hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        return model.merge_and_unload()
    return model


def save_stage(
    stage_dir: Path,
    model: Any,
    tokenizer: Any,
    *,
    kind: str,
    base_model: Path,
    log_history: list[dict[str, Any]],
    **info: Any,
) -> Path:
    """Write ``stage_dir`` (``model/``, ``adapter/`` for LoRA, ``metrics.jsonl``, manifest) atomically."""
    peft = hasattr(model, "peft_config")
    with atomic_dir(stage_dir) as tmp:
        if peft:
            adapter = tmp / ADAPTER_DIR
            model.save_pretrained(str(adapter))
            tokenizer.save_pretrained(str(adapter))
            _point_adapter_at(adapter, base_model)
        merged = unwrap_merged(model)
        merged.config.use_cache = True  # training switches the KV cache off; generation wants it back
        if getattr(merged, "generation_config", None) is not None:
            merged.generation_config.use_cache = True
        merged.save_pretrained(str(tmp / MODEL_DIR))
        tokenizer.save_pretrained(str(tmp / MODEL_DIR))
        lines = "".join(json.dumps(_finite(r)) + "\n" for r in log_history)
        (tmp / METRICS_FILE).write_text(lines, encoding="utf-8")
        write_manifest(tmp, kind, base_model=str(base_model.resolve()), lora=peft, model_dir=MODEL_DIR,
                       adapter_dir=ADAPTER_DIR if peft else None, **info)
    return stage_dir


def _point_adapter_at(adapter: Path, base_model: Path) -> None:
    """peft writes the base's ``name_or_path`` as the model was loaded; make it absolute so the
    adapter loads from any working directory."""
    cfg_path = adapter / "adapter_config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["base_model_name_or_path"] = str(base_model.resolve())
        cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN/inf: such values (e.g. a reward std of one sample) become null."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            v = None
        out[k] = v
    return out
