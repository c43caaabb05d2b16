"""Training of the multi-candidate query rewriter (METHOD.md part B, step 2): best-of-n rejection
sampling into an SFT set, SFT, then RL by GRPO, on TRL.

Modules: ``config`` (:class:`RewriterTrainConfig`, section ``synth.rewriter_training``),
``sft_data`` (rewards-based selection of SFT examples), ``sft`` (TRL SFTTrainer), ``grpo``
(TRL GRPOTrainer with one reward function per reward component), ``policy`` (loading, LoRA,
saving in a form :class:`~shopsearch.synthesis.llm.transformers_lm.TransformersBackend` loads),
``tiny_lm`` (a tiny random chat LM for CPU tests). Import from the modules: this package imports
nothing heavy (TRL and transformers load only when a trainer runs).
"""
