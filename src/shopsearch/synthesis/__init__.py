"""Synthetic training data for long-tail queries (METHOD.md part B, the Taobao 2026 paper).

seeds (long-tail queries, typed) → multi-candidate LLM rewrites → rewards → offline retrieval →
judges → (original query, product) pairs for the retriever's training data.

Modules: ``query_types`` (rule and LLM taggers), ``seeds`` (seed selection), ``llm`` (backends behind
one ``LLMBackend`` interface), ``prompts`` (few-shot prompts per type), ``parsing`` (robust candidate
parsing with a format penalty), ``rewriter`` (the multi-candidate rewriter, resumable batch rewriting).
Import from the modules; this package imports nothing heavy.
"""
