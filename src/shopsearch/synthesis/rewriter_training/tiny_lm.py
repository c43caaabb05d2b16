"""A tiny random chat LM directory for CPU runs of rewriter training (tests, smoke runs).

Nothing is downloaded. The tokenizer is a byte-level BPE trained in a second on the rewriter's own
prompt texts plus any extra ``corpus`` (e.g. a catalogue's titles), with ChatML special tokens and a
ChatML chat template (``<|im_start|>role\\n...<|im_end|>``, the Qwen family's), so prompts render
through ``apply_chat_template`` exactly as a real instruct model's would, and byte-level decoding
round-trips any text the policy generates. The model is the project's tiny seeded Qwen3 decoder
(:func:`shopsearch.models.tiny.tiny_decoder_config_dir`, 2 layers, width 64) with a language-model
head added: ``Qwen3ForCausalLM``. It is random: it tests the training plumbing, not rewriting.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def prompt_corpus() -> list[str]:
    """Every text of the rewriter prompts (system text, guidance, formats, few-shot examples)."""
    from shopsearch.synthesis.prompts import FEW_SHOT, FORMAT, GUIDANCE, SYSTEM

    texts = [SYSTEM, *GUIDANCE.values(), *FORMAT.values(), "Query: Write rewrites. one rewrite."]
    for examples in FEW_SHOT.values():
        for ex in examples:
            texts += [ex.query, *ex.rewrites]
    texts += [f"{i}. " for i in range(1, 10)]
    return texts


def build_chat_tokenizer(out_dir: str | Path, corpus: Iterable[str] = (), *, vocab_size: int = 1024) -> Path:
    """Train a byte-level BPE with ChatML tokens and template on the prompts + ``corpus``; save it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown tokens
    )
    bpe.train_from_iterator([*prompt_corpus(), *corpus], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHATML_TEMPLATE
    tok.padding_side = "left"
    out = Path(out_dir)
    tok.save_pretrained(str(out))
    return out


def tiny_chat_lm_dir(
    out_dir: str | Path,
    corpus: Iterable[str] = (),
    *,
    seed: int = 0,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Write a seeded tiny ``Qwen3ForCausalLM`` + chat tokenizer to ``out_dir`` (replaced atomically)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    from shopsearch.artifacts import atomic_dir
    from shopsearch.models.tiny import tiny_decoder_config_dir

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".tiny-lm-") as work:
        tok_dir = build_chat_tokenizer(Path(work) / "tokenizer", corpus, vocab_size=vocab_size)
        base = tiny_decoder_config_dir(Path(work) / "base", vocab_from=tok_dir, seed=seed,
                                       hidden_size=hidden_size, num_layers=num_layers)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the new lm_head is initialised here: seed it too
            model = Qwen3ForCausalLM.from_pretrained(str(base), local_files_only=True)
        model.config.use_cache = True  # models.tiny switches the cache off (an encoder needs none); generate wants it
        model.generation_config.use_cache = True
        model.generation_config.eos_token_id = model.config.eos_token_id
        model.generation_config.pad_token_id = model.config.pad_token_id
        tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        with atomic_dir(out) as tmp:
            model.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))
    return out
