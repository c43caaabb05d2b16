"""Settings of rewriter training (METHOD.md part B, step 2): SFT data, SFT, then GRPO.

One validated object, :class:`RewriterTrainConfig`, read from the ``synth.rewriter_training``
subsection of a shopsearch config file (the ``synth`` section also holds the other synthesis
steps' settings, so each step owns a subsection). Defaults are the GPU recipe for a small instruct
model (0.1B-1.5B) with LoRA; the CPU test path overrides sizes and steps. Where the paper gives no
number (it publishes none for the rewriter's training) the default is a reconstruction, said so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shopsearch.config import ConfigError, read_config_file
from shopsearch.synthesis.parsing import MAX_WORDS
from shopsearch.synthesis.rewards import RewardWeights

SECTION = "synth"
SUBSECTION = "rewriter_training"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PromptSettings(_Strict):
    """The rewriter prompt the policy is trained on; inference must use the same
    (``RewriterConfig(n=n_candidates, style=style, shots=shots)``)."""

    n_candidates: int = Field(5, ge=1, description="rewrites asked for per query (the numbered list's length)")
    style: Literal["list", "single"] = Field("list", description="list: one answer with n rewrites; single: one")
    shots: int = Field(
        0, ge=0, description="few-shot examples per prompt; 0 after fine-tuning (shorter prompts, faster GRPO). "
        "The untuned rewriter uses 2: set the same value at inference as here",
    )
    max_words: int = Field(MAX_WORDS, ge=1, description="longer candidate lines are explanations, not rewrites")


class SelectionSettings(_Strict):
    """Best-of-n rejection sampling of rewriter outputs into the SFT set."""

    min_reward: float = Field(
        1.0, description="keep a seed only if its best candidate's reward is at least this (reconstruction: about "
        "the reward of a faithful rewrite that finds a few good products under the default weights)",
    )
    top_m: int | None = Field(
        None, ge=1, description="candidates in the target list (None: prompt.n_candidates); style single: 1",
    )
    min_candidate_reward: float | None = Field(
        None, description="candidates below this never enter a target list (None: all of the top m)",
    )
    min_candidates: int = Field(1, ge=1, description="drop a seed with fewer usable candidates than this")


class LoraSettings(_Strict):
    """peft LoRA (paper-like: r 16..64; r 32 / alpha 64 as the project's encoder recipe)."""

    r: int = Field(32, ge=1)
    alpha: int = Field(64, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = Field("all-linear", description="'all-linear' or module names (q_proj, ...)")


class SftSettings(_Strict):
    """Supervised fine-tuning on the selected rewrites (TRL SFTTrainer, completion-only loss)."""

    learning_rate: float | None = Field(None, gt=0, description="None: 2e-4 with LoRA, 2e-5 full fine-tuning")
    epochs: float = Field(2.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    batch_size: int = Field(16, ge=1, description="examples per device per micro-batch")
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=16, description="prompt + completion tokens; longer examples are truncated")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    save_steps: int | None = Field(None, ge=1, description="checkpoint every N steps (None: only the final model)")


class GrpoSettings(_Strict):
    """RL by GRPO (TRL GRPOTrainer): num_generations answers per prompt, group-normalised advantages,
    clipped ratio, KL to the SFT policy (METHOD.md part B, step 2)."""

    learning_rate: float | None = Field(None, gt=0, description="None: 1e-5 with LoRA, 1e-6 full fine-tuning")
    max_steps: int = Field(300, ge=1)
    num_generations: int = Field(8, ge=2, description="G: answers sampled per prompt, one GRPO group")
    batch_size: int = Field(16, ge=1, description="completions per device per micro-batch")
    gradient_accumulation_steps: int = Field(2, ge=1)
    max_completion_length: int = Field(96, ge=4, description="tokens per answer (5 short rewrites fit in ~60)")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    beta: float = Field(0.04, ge=0, description="KL coefficient to the reference (SFT) policy; 0 drops the reference")
    epsilon: float = Field(0.2, gt=0, description="clipping range of the probability ratio")
    num_iterations: int = Field(1, ge=1, description="policy updates per generation batch (mu)")
    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = Field(
        "dapo", description="token aggregation of the GRPO loss; dapo (TRL's default) has no length bias, which "
        "matters here: per-sequence normalisation (grpo) favours short answers, i.e. fewer rewrites",
    )
    scale_rewards: Literal["group", "batch", "none"] = "group"
    save_steps: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _groups_fit(self) -> GrpoSettings:
        per_step = self.batch_size * self.gradient_accumulation_steps
        if per_step % self.num_generations:
            raise ValueError(
                f"batch_size x gradient_accumulation_steps ({per_step}) must be a multiple of num_generations "
                f"({self.num_generations}): GRPO needs whole groups of answers per prompt in each generation batch"
            )
        return self


class RewardSettings(_Strict):
    """How GRPO rewards an answer: the rewriter rewards (:mod:`shopsearch.synthesis.rewards`),
    each component one TRL reward function weighted by ``weights``."""

    weights: RewardWeights = Field(default_factory=RewardWeights)
    k: int = Field(10, ge=1, description="top-K products retrieved per rewrite for goodrate / product language")


class RewriterTrainConfig(_Strict):
    """Everything rewriter training does, as one validated object (section ``synth.rewriter_training``).

    ``base_model`` is a local causal-LM directory with a chat template (an instruct model); it is
    trained by SFT into ``output_dir/sft`` and then by GRPO into ``output_dir/grpo`` (from the SFT
    model unless ``grpo_from`` says otherwise). ``finetune``: ``auto`` is LoRA on a GPU and full
    fine-tuning on a CPU (tiny test models); ``bf16`` None means on a GPU only.
    """

    base_model: Path | None = Field(None, description="local directory of the causal LM to fine-tune")
    output_dir: Path = Path("runs/rewriter")
    grpo_from: Path | None = Field(None, description="policy GRPO starts from (None: output_dir/sft/model)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    finetune: Literal["auto", "lora", "full"] = "auto"
    bf16: bool | None = None
    gradient_checkpointing: bool | None = Field(None, description="None: on a GPU only")
    seed: int = 0
    logging_steps: int = Field(5, ge=1)
    prompt: PromptSettings = Field(default_factory=PromptSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    sft: SftSettings = Field(default_factory=SftSettings)
    grpo: GrpoSettings = Field(default_factory=GrpoSettings)
    reward: RewardSettings = Field(default_factory=RewardSettings)

    def resolved_device(self) -> str:
        """``cuda`` or ``cpu``; asking for cuda without one is an error the user can act on."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but torch sees no GPU; use device: cpu or auto")
        return self.device

    def use_lora(self) -> bool:
        return self.finetune == "lora" or (self.finetune == "auto" and self.resolved_device() == "cuda")

    def use_bf16(self) -> bool:
        return self.bf16 if self.bf16 is not None else self.resolved_device() == "cuda"

    def use_gradient_checkpointing(self) -> bool:
        if self.gradient_checkpointing is not None:
            return self.gradient_checkpointing
        return self.resolved_device() == "cuda"

    def top_m(self) -> int:
        """Candidates per SFT target: 1 for the single style, else ``selection.top_m`` or n."""
        if self.prompt.style == "single":
            return 1
        return self.selection.top_m or self.prompt.n_candidates

    def sft_learning_rate(self) -> float:
        return self.sft.learning_rate or (2e-4 if self.use_lora() else 2e-5)

    def grpo_learning_rate(self) -> float:
        return self.grpo.learning_rate or (1e-5 if self.use_lora() else 1e-6)

    @classmethod
    def from_file(cls, path: str | Path | None, **overrides: Any) -> RewriterTrainConfig:
        """The ``synth.rewriter_training`` subsection of a YAML/TOML/JSON config file, then
        ``overrides`` (top-level fields, e.g. ``base_model=...``; None values are ignored)."""
        raw = read_config_file(path)
        section = raw.get(SECTION) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: section {SECTION!r} must be a mapping")
        values = section.get(SUBSECTION) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {SECTION}.{SUBSECTION} must be a mapping")
        values = {**values, **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            where = f"{path}: " if path else ""
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{where}invalid {SECTION}.{SUBSECTION} settings: {problems}") from None
