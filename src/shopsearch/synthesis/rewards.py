"""Rewards for the multi-candidate query rewriter (METHOD.md part B, step 2), one function per component.

The paper names three rewards (semantic relevance, product-side distribution alignment, diversity) and
a format penalty but publishes no formula. Reconstruction, per candidate rewrite r_k of seed query q,
with unit embeddings e(.) from one sentence encoder (cosines clipped to [0, 1]):

    relevance_k   = cos(e(q), e(r_k)) - w_neg * lost_k        lost_k: share of q's negations r_k loses
    goodrate_k    = #{p in TopK(r_k) : judge accepts (q, p)} / K     judged for the ORIGINAL query
    product_lang_k= mean_{p in TopK(r_k)} cos(e(r_k), e(p))      closeness to product language
    diversity_k   = 1 - mean_{l != k} cos(e(r_k), e(r_l))        over the group's non-empty candidates
    novelty_k     = #{good products of r_k not in r_1..r_{k-1}} / K
    reward_k      = sum_c w_c * component_c,k - w_format * penalty_k,   or -w_format for an empty r_k

penalty_k in [0, 1] is the rewriter parser's graded format penalty (``shopsearch.synthesis.parsing``;
0 exactly when the answer kept to the format), or 1 - format_ok when only the flag is known. An empty
candidate has nothing to score: it earns the full penalty alone, is not searched, and is left out of
the others' diversity and novelty; an answer with no candidate at all is logged as one empty candidate,
so every seed keeps a group reward. Because reward_k is linear, the mean over a group is the group
reward of METHOD.md's reconstruction, R = w1 mean_k Rel + w2 mean_k goodrate + w3 (1 - mean pairwise
cos) - penalty (+ the extra terms): :func:`group_rewards`.

Product language, why cosine to the top-K and not a catalogue unigram LM: it is bounded and on the scale
of the other cosine terms, it reuses the encoder, and it measures the rewrite against the products it
actually retrieves. A catalogue-wide unigram LM rewards frequent title words ("set", "black") whatever
the query, and scores rare brand and model tokens (what knowledge queries need) as out of vocabulary.
Known weakness: with a dense retriever the top-K are close by construction, so the term mostly
separates question-style or chatty rewrites from title-style ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import Stemmer
from pydantic import BaseModel, ConfigDict, Field

from shopsearch.data.errors import ShopsearchError
from shopsearch.retrieval.base import NO_ID, Retriever
from shopsearch.retrieval.encoder import SentenceEncoder
from shopsearch.synthesis.judges.base import RelevanceJudge, score_unique
from shopsearch.synthesis.judges.embedding import EmbeddingCache


class RewardWeights(BaseModel):
    """Weights of the reward components (all >= 0; set one to 0 to switch its term off)."""

    model_config = ConfigDict(extra="forbid")

    relevance: float = Field(1.0, ge=0)
    goodrate: float = Field(1.0, ge=0)
    product_language: float = Field(0.25, ge=0)
    diversity: float = Field(0.5, ge=0)
    novelty: float = Field(0.5, ge=0)
    format: float = Field(1.0, ge=0)  # times the format penalty in [0, 1]; an empty candidate gets -format
    negation: float = Field(1.0, ge=0)  # subtracted from relevance, times the share of negations lost


# ---------------------------------------------------------------------------------------------
# Negation (METHOD.md part B names negative queries as a type: "sofa without wood legs").
# ---------------------------------------------------------------------------------------------

# Cues that open a negation in the seed query; the negated term is the next content word.
PREFIX_CUES = frozenset({"without", "no", "not", "non", "except", "excluding", "exclude", "sans"})
# "free" after a word negates it ("sugar-free", "bpa free"); "free of X" negates X.
SUFFIX_CUES = frozenset({"free"})
# Extra cues that also count as keeping a negation in a rewrite ("anti slip" for "non slip",
# "slip resistant", "water proof"); too broad to detect negations in seeds ("water resistant watch").
# One-word forms ("cordless", "waterproof") are other words than the term, so they count as dropping it.
REWRITE_PREFIX_CUES = PREFIX_CUES | {"anti"}
REWRITE_SUFFIX_CUES = SUFFIX_CUES | {"proof", "resistant"}
# Words a cue may skip before its term: "without any wood", "not for kids", "not made of plastic".
_SKIPPABLE = frozenset({"a", "an", "the", "any", "for", "of", "with", "to", "made", "in", "from", "added"})
_SKIP_MAX = 2
# A term in a rewrite is under a prefix cue when it follows the cue within this many tokens
# ("sofa without solid wood legs" keeps "wood" negated).
_SCOPE = 3
_TOKEN = re.compile(r"[a-z0-9]+")


class NegatedTerm(NamedTuple):
    cue: str
    term: str
    stem: str


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    return Stemmer.Stemmer("english")


def _tokens(text: str) -> list[str]:
    # hyphens split ("non-slip" -> non slip, "sugar-free" -> sugar free); "w/o" is "without"
    return _TOKEN.findall(text.lower().replace("w/o", " without "))


def _is_content(token: str) -> bool:
    return token.isalpha() and len(token) > 1 and token not in _SKIPPABLE and token not in PREFIX_CUES


def _negations(tokens: Sequence[str], prefix: frozenset[str], suffix: frozenset[str]) -> list[tuple[str, int]]:
    """(cue, position of the negated term) for every negation in ``tokens``."""
    found: list[tuple[str, int]] = []
    for i, tok in enumerate(tokens):
        opens = tok in prefix or (tok in suffix and i + 1 < len(tokens) and tokens[i + 1] == "of")
        if opens:
            j = i + 1 + (tok in suffix)  # "free of X": skip the "of"
            skipped = 0
            while j < len(tokens) and tokens[j] in _SKIPPABLE and skipped < _SKIP_MAX:
                j, skipped = j + 1, skipped + 1
            if j < len(tokens) and _is_content(tokens[j]):  # "no 2 pencil" is a number, not a negation
                found.append((tok, j))
        elif tok in suffix and i > 0 and _is_content(tokens[i - 1]):
            found.append((tok, i - 1))
    return found


def negated_terms(text: str) -> list[NegatedTerm]:
    """The terms a query negates: the first content word after without / w/o / no / not / non /
    except / excluding / sans / "free of" (up to two filler words skipped: "without any wood" ->
    wood), and the word before a "-free" / "free" suffix ("sugar-free" -> sugar). A number after the
    cue is not a negation ("no. 2 pencil"). Only the head word is checked: "without wood legs"
    negates "wood", so a rewrite may still say "legs"."""
    tokens = _tokens(text)
    stem = _stemmer().stemWord
    return [NegatedTerm(cue, tokens[j], stem(tokens[j])) for cue, j in _negations(tokens, PREFIX_CUES, SUFFIX_CUES)]


def lost_negations(query: str, rewrite: str) -> list[str]:
    """The negated terms of ``query`` that ``rewrite`` states affirmatively.

    A negation of term t (stem match) is KEPT when the rewrite either drops t altogether ("sofa with
    metal legs") or mentions it only under a negation cue: as the term of a cue, or within 3 tokens
    after a prefix cue ("without solid wood legs"), or right before a suffix cue ("wood-free",
    "slip resistant"); rewrites may also use "anti", "proof" and "resistant" as cues. It is LOST when
    some mention of t is outside every such scope ("wood leg sofa").
    """
    terms = negated_terms(query)
    if not terms:
        return []
    tokens = _tokens(rewrite)
    stem = _stemmer().stemWord
    stems = [stem(t) for t in tokens]
    covered = {j for _, j in _negations(tokens, REWRITE_PREFIX_CUES, REWRITE_SUFFIX_CUES)}
    for i, tok in enumerate(tokens):
        if tok in REWRITE_PREFIX_CUES:
            covered.update(range(i + 1, min(i + 1 + _SCOPE, len(tokens))))
        if tok in REWRITE_SUFFIX_CUES and i > 0:
            covered.add(i - 1)
    lost = []
    for t in terms:
        mentions = [i for i, s in enumerate(stems) if s == t.stem]
        if any(i not in covered for i in mentions):
            lost.append(t.term)
    return lost


def negation_loss(query: str, rewrite: str) -> float:
    """Share of the query's negated terms that the rewrite loses (0 when the query negates nothing)."""
    terms = negated_terms(query)
    return len(lost_negations(query, rewrite)) / len(terms) if terms else 0.0


# ---------------------------------------------------------------------------------------------
# Components: pure functions of arrays.
# ---------------------------------------------------------------------------------------------


def semantic_relevance(similarity: np.ndarray, negation_lost: np.ndarray, penalty: float) -> np.ndarray:
    """relevance = clip(similarity, 0, 1) - penalty * negation_lost (a share in [0, 1])."""
    sim = np.clip(np.asarray(similarity, dtype=np.float64), 0.0, 1.0)
    return sim - penalty * np.asarray(negation_lost, dtype=np.float64)


def good_rate(good: np.ndarray, k: int) -> np.ndarray:
    """goodrate = #good in the top-K / K, for a ``(n, K)`` bool array (padding False). Dividing by K,
    not by the number retrieved, gives a rewrite that retrieves nothing 0 rather than an undefined or
    inflated share."""
    return np.asarray(good, dtype=bool).sum(axis=1) / float(k)


def product_language(rewrite_vecs: np.ndarray, product_vecs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean clipped cosine of each rewrite ``(n, d)`` to its retrieved products ``(n, K, d)`` where
    ``valid`` ``(n, K)``; 0 for a rewrite that retrieved nothing."""
    cos = np.clip(np.einsum("nd,nkd->nk", rewrite_vecs, product_vecs), 0.0, 1.0)
    count = valid.sum(axis=1)
    return np.where(count > 0, (cos * valid).sum(axis=1) / np.maximum(count, 1), 0.0)


def pairwise_diversity(vecs: np.ndarray, groups: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """1 - mean clipped cosine to the other valid candidates of the same group; 0 for a candidate
    without a valid partner (a single rewrite earns no diversity) or that is itself invalid."""
    groups = np.asarray(groups)
    out = np.zeros(len(vecs))
    for g in np.unique(groups):
        idx = np.flatnonzero((groups == g) & valid)
        if len(idx) < 2:
            continue
        cos = np.clip(vecs[idx] @ vecs[idx].T, 0.0, 1.0)
        out[idx] = 1.0 - (cos.sum(axis=1) - np.diag(cos)) / (len(idx) - 1)
    return out


def novel_good(good_ids: Sequence[Sequence[str]], groups: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """Good products a candidate adds over the earlier valid candidates of its group, / K.

    Order-dependent by design (the rewriter's first candidate gets credit for what it finds); the sum
    over a group is the number of distinct good products / K.
    """
    out = np.zeros(len(good_ids))
    seen: dict[Any, set[str]] = {}
    for i, (ids, g) in enumerate(zip(good_ids, groups, strict=True)):
        if not valid[i]:
            continue
        prior = seen.setdefault(g, set())
        new = set(ids) - prior
        out[i] = len(new) / float(k)
        prior.update(new)
    return out


def resolve_format_penalty(format_ok: np.ndarray, graded: np.ndarray | None = None) -> np.ndarray:
    """The parser's graded penalty in [0, 1] where given (NaN = not given), else 1 - format_ok."""
    flag = (~np.asarray(format_ok, dtype=bool)).astype(np.float64)
    if graded is None:
        return flag
    graded = np.asarray(graded, dtype=np.float64)
    return np.where(np.isnan(graded), flag, graded)


def combine_rewards(frame: pd.DataFrame, weights: RewardWeights) -> np.ndarray:
    """reward = w . components - w_format * format_penalty; -w_format for an empty rewrite."""
    total = (
        weights.relevance * frame["relevance"]
        + weights.goodrate * frame["goodrate"]
        + weights.product_language * frame["product_language"]
        + weights.diversity * frame["diversity"]
        + weights.novelty * frame["novelty"]
    ).to_numpy(dtype=np.float64)
    total = total - weights.format * frame["format_penalty"].to_numpy(dtype=np.float64)
    return np.where(frame["rewrite"].str.len().to_numpy() > 0, total, -weights.format)


def group_rewards(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per seed (group): the mean of each component and of the reward, the GRPO group score."""
    cols = ["relevance", "goodrate", "product_language", "diversity", "novelty", "format_penalty", "reward"]
    out = frame.groupby("seed_id", sort=True)[cols].mean()
    out.insert(0, "seed_query", frame.groupby("seed_id", sort=True)["seed_query"].first())
    out.insert(1, "n_candidates", frame.groupby("seed_id", sort=True).size())
    return out.reset_index()


# ---------------------------------------------------------------------------------------------
# Batched scoring of many seeds' candidates.
# ---------------------------------------------------------------------------------------------


class RewardError(ShopsearchError):
    """Reward inputs that do not fit together (candidates without seeds, unknown product ids...)."""


@dataclass
class RewardModels:
    """What the rewards need, loaded once and reused across batches.

    Args:
        encoder: embeddings for intent similarity, diversity and product language (bundled MiniLM).
        retriever: finds each rewrite's top-K products (BM25, dense or hybrid).
        judge: the business relevance classifier, judging (ORIGINAL query, product text).
        product_texts: product_id -> the text the judge and the encoder see.
        intent_judge: replaces the embedding cosine of (query, rewrite) in the relevance reward, e.g.
            an LLM judge; its scores should lie in [0, 1].
    """

    encoder: SentenceEncoder
    retriever: Retriever
    judge: RelevanceJudge
    product_texts: Mapping[str, str]
    intent_judge: RelevanceJudge | None = None
    cache: EmbeddingCache = field(init=False)

    def __post_init__(self) -> None:
        self.cache = EmbeddingCache(self.encoder)


def _per_candidate(value: Any, sizes: list[int], single: bool, name: str) -> list[list[Any]]:
    """One value per candidate from None, a scalar (for all), one per seed, or one per candidate."""
    if value is None or np.isscalar(value):
        return [[value] * n for n in sizes]
    per_seed = [list(value)] if single else list(value)
    if len(per_seed) != len(sizes):
        raise RewardError(f"{len(per_seed)} {name} entries for {len(sizes)} seed queries")
    out = []
    for s, (v, n) in enumerate(zip(per_seed, sizes, strict=True)):
        values = [v] * n if v is None or np.isscalar(v) else list(v)
        if len(values) != n:
            raise RewardError(f"seed {s}: {len(values)} {name} values for {n} candidates")
        out.append(values)
    return out


def _flatten(
    seed_queries: str | Sequence[str], candidates: Sequence[str] | Sequence[Sequence[str]],
    format_ok: Any, penalties: Any,
) -> pd.DataFrame:
    single = isinstance(seed_queries, str)  # one seed: candidates is its list of rewrites
    seeds = [str(seed_queries)] if single else [str(q) for q in seed_queries]
    groups: list[list[Any]] = [list(candidates)] if single else [list(c) for c in candidates]
    if len(groups) != len(seeds):
        raise RewardError(f"{len(seeds)} seed queries but {len(groups)} candidate lists")
    for s, cands in enumerate(groups):
        if any(not isinstance(c, str) for c in cands):
            raise RewardError(f"seed {s}: candidates must be strings; pass a list of seeds for a batch")
    sizes = [len(c) for c in groups]
    oks = _per_candidate(format_ok, sizes, single, "format_ok")
    pens = _per_candidate(penalties, sizes, single, "format_penalty")
    rows = []
    for s, seed in enumerate(seeds):
        for c, (text, ok, pen) in enumerate(zip(groups[s], oks[s], pens[s], strict=True)):
            text = str(text).strip()
            if pen is not None and not 0.0 <= float(pen) <= 1.0:
                raise RewardError(f"seed {s}, candidate {c}: format_penalty {pen} is outside [0, 1]")
            flag = (ok is None or bool(ok)) and bool(text)
            graded = 1.0 if not text else (np.nan if pen is None else float(pen))
            rows.append((s, seed, c, text, flag, graded))
        if not groups[s]:  # nothing parsed: one empty candidate carries the seed's penalty
            rows.append((s, seed, 0, "", False, 1.0))
    return pd.DataFrame(rows, columns=["seed_id", "seed_query", "candidate_id", "rewrite", "format_ok", "graded"])


def score_candidates(
    seed_queries: str | Sequence[str],
    candidates: Sequence[str] | Sequence[Sequence[str]],
    models: RewardModels,
    *,
    format_ok: bool | Sequence[bool] | Sequence[Sequence[bool]] | None = None,
    format_penalty: float | Sequence[float] | Sequence[Sequence[float]] | None = None,
    weights: RewardWeights | None = None,
    k: int = 10,
) -> pd.DataFrame:
    """Every reward component and the total for each candidate rewrite; one row per candidate.

    ``seed_queries`` is one seed with its list of rewrites, or a list of seeds with one list each;
    a whole batch is encoded, retrieved and judged in one call per model. ``format_ok`` and the graded
    ``format_penalty`` in [0, 1] (``RewriteCandidates.format_ok`` / ``.format_penalty`` of the
    rewriter) are each one value for all, one per seed, or one per candidate; without a graded
    penalty it is 1 - format_ok. An empty rewrite is malformed whatever they say. Columns: seed_id, seed_query, candidate_id, rewrite, format_ok,
    intent_similarity, negation_lost, lost_terms, relevance, n_retrieved, n_good, goodrate,
    mean_judge_score, product_language, diversity, novelty, format_penalty, reward, top_ids, good_ids.
    """
    weights = weights or RewardWeights()
    if k < 1:
        raise RewardError(f"k must be >= 1, got {k}")
    frame = _flatten(seed_queries, candidates, format_ok, format_penalty)
    graded = frame.pop("graded").to_numpy(dtype=np.float64)
    if frame.empty:
        return frame
    seeds, rewrites = frame["seed_query"].tolist(), frame["rewrite"].tolist()
    valid = np.array([bool(r) for r in rewrites])  # something to search and compare

    # semantic relevance: intent similarity minus the negation penalty
    rewrite_vecs = models.cache.encode(rewrites, is_query=True)
    if models.intent_judge is not None:
        similarity = score_unique(models.intent_judge, seeds, rewrites)
    else:
        similarity = np.einsum("nd,nd->n", models.cache.encode(seeds, is_query=True), rewrite_vecs)
    lost = [lost_negations(q, r) for q, r in zip(seeds, rewrites, strict=True)]
    n_negated = [len(negated_terms(q)) for q in seeds]
    lost_share = np.array([len(lt) / n if n else 0.0 for lt, n in zip(lost, n_negated, strict=True)])
    frame["intent_similarity"] = similarity
    frame["negation_lost"] = lost_share
    frame["lost_terms"] = [tuple(x) for x in lost]
    frame["relevance"] = semantic_relevance(similarity, lost_share, weights.negation)

    # product-side alignment: the rewrite's top-K judged against the ORIGINAL query
    ids = np.full((len(frame), k), NO_ID, dtype=object)
    searched = np.flatnonzero(valid)
    if len(searched):
        result = models.retriever.search([rewrites[i] for i in searched], k)
        width = min(k, result.ids.shape[1])
        ids[searched, :width] = result.ids[:, :width]
    present = ids != NO_ID
    unknown = {str(p) for p in ids[present]} - set(models.product_texts)
    if unknown:
        raise RewardError(f"the retriever returned {len(unknown)} products without a text (e.g. {sorted(unknown)[:3]})")
    rows, cols = np.nonzero(present)
    texts = [models.product_texts[str(ids[r, c])] for r, c in zip(rows, cols, strict=True)]
    judge_scores = np.zeros((len(frame), k))
    judge_scores[rows, cols] = score_unique(models.judge, [seeds[r] for r in rows], texts)
    good = present & (judge_scores >= models.judge.threshold)
    frame["n_retrieved"] = present.sum(axis=1)
    frame["n_good"] = good.sum(axis=1)
    frame["goodrate"] = good_rate(good, k)
    frame["mean_judge_score"] = judge_scores.sum(axis=1) / k
    product_vecs = np.zeros((len(frame), k, rewrite_vecs.shape[1]), dtype=np.float32)
    if len(texts):
        product_vecs[rows, cols] = models.cache.encode(texts, is_query=False)
    frame["product_language"] = product_language(rewrite_vecs, product_vecs, present)

    # diversity within each seed's candidates, format, total
    groups = frame["seed_id"].to_numpy()
    good_ids = [tuple(str(p) for p in ids[i][good[i]]) for i in range(len(frame))]
    frame["diversity"] = pairwise_diversity(rewrite_vecs, groups, valid)
    frame["novelty"] = novel_good(good_ids, groups, valid, k)
    frame["format_penalty"] = resolve_format_penalty(frame["format_ok"].to_numpy(dtype=bool), graded)
    frame["reward"] = combine_rewards(frame, weights)
    frame["top_ids"] = [tuple(str(p) for p in ids[i][present[i]]) for i in range(len(frame))]
    frame["good_ids"] = good_ids
    return frame
