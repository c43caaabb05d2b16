"""A transformers causal LM as a backend: for GPUs, and for the rewriter's SFT/RL policy.

``n`` candidates are ``num_return_sequences=n`` samples of one prompt in a single ``generate`` call,
and ``chat_many`` batches several prompts (left padding), which is how a GPU is kept busy and how
GRPO draws a group of completions per query (METHOD.md part B, step 2). The prompt is the
tokenizer's chat template; a tokenizer without one (a base model, the tiny test model) gets a plain
``System:/User:/Assistant:`` transcript, stated in ``describe()``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from shopsearch.synthesis.llm.base import LLMError, Message, check_messages, check_sampling

FALLBACK_TEMPLATE = "plain transcript (System:/User:/Assistant:)"


def render_plain(messages: Sequence[Message]) -> str:
    """The transcript used when a tokenizer has no chat template."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


class TransformersBackend:
    """Chat completions from a local causal LM directory (or a model object already in memory).

    Args:
        model: a local directory with a causal LM and its tokenizer (never a hub id: offline).
        device: ``cpu``, ``cuda``, ``cuda:1``... (default: cuda when available).
        dtype: torch dtype name (``bfloat16``...); default: float32 on CPU, bfloat16 on GPU.
        batch_size: prompts per ``generate`` call in ``chat_many``.
        top_p: nucleus sampling cut (1.0: off).
    Use :meth:`from_model` to wrap a model being trained (RL), without reloading it.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        top_p: float = 1.0,
        name: str | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = Path(model).expanduser()
        if not path.is_dir():
            raise LLMError(f"transformers model {str(model)!r} is not a local directory; shopsearch does not "
                           "download models: save the model and its tokenizer to a directory and pass its path")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        try:
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            lm: Any = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise LLMError(f"could not load a causal LM from {path}: {exc}") from exc
        self._init(lm.to(device).eval(), tok, batch_size=batch_size, top_p=top_p,
                   name=name or f"transformers:{path.name}", source=str(path.resolve()))

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, *, batch_size: int = 8, top_p: float = 1.0,
                   name: str = "transformers:in-memory") -> TransformersBackend:
        """Wrap a model and tokenizer already loaded (e.g. the policy during RL)."""
        self = cls.__new__(cls)
        self._init(model, tokenizer, batch_size=batch_size, top_p=top_p, name=name, source="in-memory")
        return self

    def _init(self, model: Any, tokenizer: Any, *, batch_size: int, top_p: float, name: str, source: str) -> None:
        if batch_size < 1:
            raise LLMError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            # generate() needs a pad id for batches; the end token is the usual stand-in
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
        tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        self.batch_size = batch_size
        self.top_p = top_p
        self.name = name
        self.source = source
        self._lock = threading.Lock()

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def describe(self) -> dict[str, Any]:
        params = sum(p.numel() for p in self.model.parameters())
        return {
            "backend": "transformers",
            "name": self.name,
            "model": self.source,
            "architecture": type(self.model).__name__,
            "parameters": int(params),
            "device": str(next(self.model.parameters()).device),
            "dtype": str(next(self.model.parameters()).dtype),
            "chat_template": "tokenizer" if self.has_chat_template else FALLBACK_TEMPLATE,
            "top_p": self.top_p,
            "batch_size": self.batch_size,
        }

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees."""
        if self.has_chat_template:
            text: str = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
            return text
        return render_plain(messages)

    def chat(
        self,
        messages: Sequence[Message],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> list[str]:
        return self.chat_many([messages], n=n, temperature=temperature, max_tokens=max_tokens, seed=seed)[0]

    def chat_many(
        self,
        requests: Sequence[Sequence[Message]],
        *,
        n: int = 1,
        temperature: float = 0.7,
        max_tokens: int = 256,
        seed: int | None = None,
        on_done: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """``n`` completions for each request, ``batch_size`` prompts per ``generate`` call."""
        check_sampling(n, temperature, max_tokens)
        prompts = [self.render(check_messages(m)) for m in requests]
        out: list[list[str]] = []
        with self._lock, self._seeded(seed):
            for start in range(0, len(prompts), self.batch_size):
                chunk = prompts[start : start + self.batch_size]
                out.extend(self._generate(chunk, n, temperature, max_tokens))
                if on_done is not None:
                    on_done(len(chunk))
        return out

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        import torch

        if seed is None:
            yield
            return
        device = next(self.model.parameters()).device
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # do not disturb the caller's (trainer's) RNG
            torch.manual_seed(seed)
            yield

    def _generate(self, prompts: list[str], n: int, temperature: float, max_tokens: int) -> list[list[str]]:
        import torch

        tok = self.tokenizer
        # the chat template already holds the special tokens; plain transcripts get the tokenizer's own
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=not self.has_chat_template)
        device = next(self.model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_p": self.top_p}
            if temperature > 0 else {"do_sample": False}
        )
        # greedy decoding gives one answer per prompt: decode once and repeat it (generate refuses
        # num_return_sequences > 1 without sampling)
        per_prompt = n if temperature > 0 else 1
        with torch.inference_mode():
            ids = self.model.generate(
                **enc, max_new_tokens=max_tokens, num_return_sequences=per_prompt, pad_token_id=tok.pad_token_id,
                **sampling,
            )
        new = ids[:, enc["input_ids"].shape[1] :]
        texts = [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
        if per_prompt == 1:
            return [[t] * n for t in texts]
        return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]
