"""LoRA adapters and activation checkpointing on the encoder's Hugging Face backbone.

Adapters are added with sentence-transformers' own PEFT support (``SentenceTransformer.add_adapter``,
which calls transformers' ``PeftAdapterMixin.add_adapter`` -> ``peft.inject_adapter_in_model``): the
LoRA layers live inside the HF model that the ST ``Transformer`` module wraps, base weights are frozen,
and the ST module stack, tokenizer handling and trainer integration stay unchanged.

transformers' integration has no merge, so :func:`merged_lora` merges by hand for saving: each LoRA
layer's base weight gets ``W + scale * B @ A`` (peft's own ``merge``) and the wrapper is swapped for
its base layer, so ``save_pretrained`` writes a plain checkpoint; on exit the exact original weights
(kept on CPU) and the wrappers come back, so training can go on with the adapters untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from shopsearch.data.errors import ShopsearchError

if TYPE_CHECKING:
    from shopsearch.models.encoder_config import EncoderConfig


def backbone(model: Any) -> Any:
    """The Hugging Face model inside the encoder's first (Transformer) module."""
    from sentence_transformers.sentence_transformer.modules import Transformer

    first = model[0]
    if not isinstance(first, Transformer):
        raise ShopsearchError(f"the encoder's first module is {type(first).__name__}, not a Transformer")
    return first.auto_model


def lora_layers(model: nn.Module) -> list[tuple[str, Any]]:
    """``(qualified name, layer)`` of every peft tuner layer inside ``model``."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return []
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def has_lora(model: Any) -> bool:
    return bool(lora_layers(backbone(model)))


def add_lora(model: Any, config: EncoderConfig) -> None:
    """Attach a fresh LoRA adapter (named ``default``) and freeze everything else."""
    try:
        from peft import LoraConfig
    except ImportError:
        raise ShopsearchError("LoRA needs the 'peft' package (pip install peft)") from None
    targets: Any = config.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
    )
    try:
        model.add_adapter(lora)
    except ValueError as exc:  # e.g. peft has no default target modules for this architecture
        raise ShopsearchError(f"could not add LoRA adapters: {exc}; set lora_target_modules") from exc
    # Keep the adapters in float32 under a bf16 backbone (peft casts inputs to the adapter dtype).
    for name, param in backbone(model).named_parameters():
        if "lora_" in name:
            param.data = param.data.float()
            param.requires_grad_(True)
        else:
            param.requires_grad_(False)


def trainable_parameter_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def enable_gradient_checkpointing(model: Any) -> None:
    """Activation checkpointing on the HF backbone (non-reentrant, so frozen inputs are fine)."""
    hf = backbone(model)
    if not getattr(hf, "supports_gradient_checkpointing", False):
        raise ShopsearchError(f"{type(hf).__name__} does not support gradient checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(hf, "activation_checkpointing_enable"):  # transformers >= 5.x name
        hf.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # pragma: no cover - older transformers
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def gradient_checkpointing_enabled(model: Any) -> bool:
    hf = backbone(model)
    flag = getattr(hf, "is_activation_checkpointing", None)
    if flag is None:
        flag = getattr(hf, "is_gradient_checkpointing", False)
    return bool(flag)


def _set_child(root: nn.Module, qualified: str, child: nn.Module) -> None:
    parent_name, _, attr = qualified.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, child)


@contextlib.contextmanager
def merged_lora(model: Any) -> Iterator[Any]:
    """Within the block the backbone is a plain HF model with the adapters merged into its weights.

    Used to save a checkpoint that loads without peft. Nothing is lost: the original base weights
    are restored bit for bit and the LoRA wrappers put back on exit, even on error.
    """
    hf = backbone(model)
    layers = lora_layers(hf)
    if not layers:
        yield model
        return
    saved: list[tuple[str, Any, nn.Module, dict[str, torch.Tensor]]] = []
    peft_flag = getattr(hf, "_hf_peft_config_loaded", False)
    try:
        for name, layer in layers:
            base = layer.get_base_layer()
            originals = {k: v.detach().to("cpu", copy=True) for k, v in base.named_parameters(recurse=False)}
            saved.append((name, layer, base, originals))
            layer.merge(safe_merge=True)
            _set_child(hf, name, base)
        hf._hf_peft_config_loaded = False  # so save_pretrained writes full weights, not an adapter
        yield model
    finally:
        hf._hf_peft_config_loaded = peft_flag
        for name, layer, base, originals in reversed(saved):
            with torch.no_grad():
                for k, v in base.named_parameters(recurse=False):
                    v.copy_(originals[k].to(v.device))
            layer.merged_adapters.clear()
            _set_child(hf, name, layer)


def merge_lora_(model: Any) -> Any:
    """Merge the adapters into the weights for good and drop peft from the model (in place)."""
    hf = backbone(model)
    for name, layer in lora_layers(hf):
        layer.merge(safe_merge=True)
        _set_child(hf, name, layer.get_base_layer())
    if getattr(hf, "_hf_peft_config_loaded", False):
        hf._hf_peft_config_loaded = False
        if hasattr(hf, "peft_config"):
            del hf.peft_config
    for p in model.parameters():
        p.requires_grad_(True)
    return model
