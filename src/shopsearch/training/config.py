"""Settings of ``shopsearch train``: the encoder, the data recipe, and the two stages.

Defaults are the CPU recipe for all-MiniLM-L6-v2 (see docs/training.md); the
paper's values (METHOD.md part A) are noted where they differ. A YAML/TOML file under a ``train``
section and the command's flags share this one definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopsearch.models.encoder_config import EncoderConfig

Direction = Literal["query_to_doc", "doc_to_query", "query_to_query", "doc_to_doc"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stage1Settings(_Strict):
    """In-batch contrastive learning; the paper's false-negative margin mask is ``loss: masked_infonce``
    (paper: tau 0.02, delta 0.1).

    CPU recipe for all-MiniLM-L6-v2, chosen on Home Depot ``dev`` (docs/training.md): plain
    InfoNCE (the mask lowered stage 1 by 0.52 NDCG@10, Holm p 0.004, and the two-stage model by 0.19:
    on short mean-rated queries the products it drops as "false negatives" are mostly the hard
    negatives the model needs), tau 0.05 (the paper's 0.02 suits a 4B LLM's embedding geometry; at
    0.02 MiniLM lost recall), substitutes as positives (the paper's co-click substitutes; on
    mean-rating data grade 4, r = 2.33), and one negative per pair mined with the base model (+0.80
    NDCG@10 dense over in-batch negatives alone, at +60% training time in stage 1; a pair whose candidates all
    fail the mining rules gets a random product). Stage 2's contrastive term keeps the mask
    (``Stage2Settings.delta``).
    """

    loss: Literal["masked_infonce", "infonce"] = "infonce"
    tau: float = Field(0.05, gt=0, description="paper: 0.02")
    delta: float | None = Field(0.1, description="margin of the false-negative mask (loss masked_infonce); None = no mask")
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(64, ge=2)
    mini_batch_size: int | None = Field(
        None, ge=1,
        description="gradient caching (losses.cached, GradCache): embed each batch in mini-batches of this many "
        "rows, so batch_size can grow past memory at one more forward pass per step (None: off)",
    )
    learning_rate: float = Field(5e-5, gt=0, description="paper: 2e-5 peak for a 4B LLM with LoRA")
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    hard_negatives: int = Field(1, ge=0, description="mined hard negatives per pair (0: in-batch only)")
    mining_top_k: int = Field(30, ge=1)
    mining_max_relative_score: float | None = Field(
        0.95, gt=0, description="drop candidates above this x positive score (None: no such rule)"
    )
    mining_exclude_top_grades: int = Field(2, ge=0, description="drop products judged in the top N grades")
    bm25_negative_share: float = Field(
        0.0, ge=0, le=1,
        description="share of the queries whose hard negatives are mined with BM25 instead of the model "
        "(seeded; BM25's near misses, which the hybrid inherits; 0 = the model only; 0.5 on Home Depot dev: "
        "dense -0.2, hybrid +0.0 NDCG@10, docs/training.md)",
    )
    positive_min_grade: int | None = None
    substitutes_as_positives: bool = True
    max_pairs_per_query: int | None = None
    batch_sampling: Literal["random", "topic"] = Field(
        "random",
        description="random batches, or topic-aware ones: each batch from one k-means cluster of similar "
        "queries, so in-batch negatives are hard at no extra cost per step (TAS; training.topics; on Home "
        "Depot dev it lowered stage 1's dev-pool NDCG@10 by 1.8 points, docs/training.md)",
    )
    topic_queries_per_cluster: int | None = Field(
        None, ge=1, description="mean distinct queries per topic cluster (None: the batch size)"
    )
    pseudo_query_ratio: float = Field(
        0.72, ge=0,
        description="keyword pseudo-query pairs per judged pair, each for a catalogue product no judged query "
        "has as positive (title words sampled by how often shoppers type them; training.pseudo_queries; capped "
        "by those products; 0 = off). On Home Depot 0.72 covers all 25,065 such products: dense NDCG@10 +0.7 "
        "on dev (0.34, about half of them: +0.4), docs/training.md",
    )
    directions: list[Direction] = Field(
        default_factory=lambda: list[Direction](["query_to_doc"]),
        description="InfoNCE interaction terms (loss infonce; sentence-transformers' MultipleNegativesRankingLoss "
        "directions): add doc_to_query for the symmetric loss (on held-out Home Depot queries: dense -0.2, "
        "hybrid -0.1..-0.2 NDCG@10, docs/training.md), query_to_query and doc_to_doc for GTE's",
    )
    partition_mode: Literal["joint", "per_direction"] = Field(
        "joint", description="one softmax over all directions, or one per direction averaged"
    )
    bm25_prior: float = Field(
        0.0, ge=0,
        description="weight (cosine units) of BM25's max-normalised score added to every stage-1 logit, so the "
        "encoder learns the residual of BM25 for the hybrid (CLEAR-style; training.lexical_prior; loss infonce, "
        "directions query_to_doc; 0 = off). 0.3 on Home Depot dev: hybrid +0.18 NDCG@10, dense -2.7, docs/training.md",
    )
    bm25_prior_share: float = Field(
        1.0, gt=0, le=1,
        description="share of the stage-1 loss computed with the BM25 prior; the rest on the cosine alone, so the "
        "encoder also serves without BM25 (bm25_prior > 0 only; 0.5 with bm25_prior 0.3 on held-out Home Depot "
        "queries: hybrid +0.1..+0.2, dense -0.3..-0.5 NDCG@10)",
    )
    query_typo_rate: float = Field(
        0.0, ge=0, le=1,
        description="share of pairs whose query is replaced by a misspelt copy (typo-aware training; 0 = off; "
        "0.3 gave no gain on Home Depot dev, docs/training.md)",
    )

    @model_validator(mode="after")
    def _directions_need_plain_infonce(self) -> Stage1Settings:
        if "query_to_doc" not in self.directions:
            raise ValueError(f"stage1.directions must include query_to_doc (the query's positive), got {self.directions}")
        if self.directions != ["query_to_doc"] and self.loss == "masked_infonce" and self.delta is not None:
            raise ValueError("stage1.directions beyond query_to_doc need loss: infonce (the margin mask is query-to-product only)")
        if self.bm25_prior > 0 and (self.loss != "infonce" or self.directions != ["query_to_doc"]):
            raise ValueError("stage1.bm25_prior needs loss: infonce with directions [query_to_doc]")
        return self


class Stage2Settings(_Strict):
    """ROAR (or a ranking baseline) over graded groups, plus the masked contrast.

    The groups also hold ``hard_negatives`` unjudged products that the stage-1 model ranks high for
    the query, at the bottom level: full-corpus ranking is lost to such products, and judged groups
    alone never show them (on Home Depot ``dev``, ROAR on judged groups lowered NDCG@10; with
    3 mined negatives it raised it; 6 in groups of 12 raised the dev-pool figure further but not
    the full-corpus one, at 1.4x the step time — docs/training.md). Half an epoch by default:
    after the stage 1 with mined negatives, the full epoch's best dev checkpoint was at step 200 of
    407, and the half epoch keeps ``shopsearch train`` within its 45-minute budget on 2 CPU cores.
    """

    loss: Literal["roar", "bradley_terry", "listmle"] = "roar"
    tau: float = Field(0.02, gt=0)
    delta: float | None = 0.1
    tau_a: float = Field(0.01, gt=0, description="ROAR's softmax temperature")
    tau_r: float = Field(0.05, gt=0, description="Bradley-Terry / ListMLE temperature")
    beta: float = Field(0.1, ge=0)
    epochs: float = Field(0.5, gt=0)
    batch_size: int = Field(16, ge=2, description="groups (queries) per batch")
    learning_rate: float = Field(1e-5, gt=0, description="paper: 5e-7 for the 4B LLM")
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_per_grade: int = Field(3, ge=1)
    max_group_size: int = Field(8, ge=2, description="judged products (capped per grade) plus the mined negatives")
    min_grades: int = Field(2, ge=2)
    hard_negatives: int = Field(
        3, ge=0, description="unjudged products mined per query with the stage-1 model, added at the bottom level"
    )
    mining_top_k: int = Field(30, ge=1)
    batch_sampling: Literal["random", "topic"] = Field(
        "random",
        description="random batches, or topic-aware ones: each batch from one k-means cluster of similar "
        "queries (TAS; training.topics); not measured in stage 2",
    )
    topic_queries_per_cluster: int | None = Field(
        None, ge=1, description="mean distinct queries per topic cluster (None: the batch size)"
    )
    distill_weight: float = Field(
        0.0, ge=0,
        description="gamma of listwise distillation of stage2.teacher's scores over each group (0 = off; "
        "training.teacher, losses.distillation)",
    )
    teacher: Literal["hybrid", "cross_encoder", "both"] = Field(
        "hybrid",
        description="the distillation teacher: hybrid (BM25 + the stage-1 model), cross_encoder (stage2.teacher_model) "
        "or both (the mean); scores kept in OUTPUT/stage2/teacher_scores.parquet",
    )
    teacher_candidates: int = Field(
        0, ge=0,
        description="unjudged products of the stage-1 model's top mining_top_k added to each group for the "
        "distillation term only (the teacher scores them, no judgment does; 0 = the group's own products)",
    )
    teacher_model: Path | None = Field(
        None, description="the cross-encoder teacher: a `shopsearch train-reranker` model directory or its ONNX export"
    )
    distill_tau_student: float = Field(0.05, gt=0, description="the encoder's softmax temperature in distillation")
    distill_tau_teacher: float = Field(0.1, gt=0, description="the teacher's (scores in [0, 1]) softmax temperature")
    mining_max_relative_score: float | None = Field(
        0.95, gt=0, description="drop unjudged candidates above this x the best judged product's score (None: no "
        "such rule; on Home Depot dev neither 1.0 nor None was a decisive gain, docs/training.md)",
    )
    bm25_prior: float = Field(
        0.3, ge=0,
        description="weight (cosine units) of BM25's max-normalised score added to every stage-2 score before the "
        "contrast and the ranking term: stage 1's bm25_prior for the graded groups (training.lexical_prior; 0 = off). "
        "On Home Depot dev, two seeds: hybrid +0.12 / +0.32 NDCG@10, dense -0.18 / -0.18, docs/training.md",
    )
    bm25_prior_share: float = Field(
        1.0, gt=0, le=1, description="share of the stage-2 loss computed with the BM25 prior (bm25_prior > 0 only)"
    )

    @model_validator(mode="after")
    def _teacher_model_when_needed(self) -> Stage2Settings:
        if self.distill_weight > 0 and self.teacher != "hybrid" and self.teacher_model is None:
            raise ValueError(f"stage2.teacher: {self.teacher} needs stage2.teacher_model (a train-reranker model)")
        return self


class DevEvalSettings(_Strict):
    """Dev evaluation during training, on a pool of products (full-corpus figures come from
    ``shopsearch eval`` on the saved model)."""

    pool_size: int | None = Field(
        10000, description="products in the dev pool: every judged dev product plus random others; None = all"
    )
    eval_steps: int | None = Field(
        None, description="evaluate and checkpoint every N steps (None: every save_steps); each stage also evaluates at its end"
    )
    depth: int = 100


class TrainConfig(_Strict):
    """Everything ``shopsearch train`` does, as one validated object."""

    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    text_fields: list[str] = Field(default_factory=lambda: ["title"])
    stage: Literal["1", "2", "both"] = "both"
    final_model: Literal["last_stage", "best_dev"] = Field(
        "last_stage",
        description="which stage's model OUTPUT/model holds when several stages run: last_stage (each stage "
        "still keeps its own best checkpoint by dev NDCG@10) or best_dev (the stage with the best dev NDCG@10)",
    )
    seed: int = 0
    stage1: Stage1Settings = Field(default_factory=Stage1Settings)
    stage2: Stage2Settings = Field(default_factory=Stage2Settings)
    dev: DevEvalSettings = Field(default_factory=DevEvalSettings)
    events: list[Path] = Field(default_factory=list, description="behaviour logs (query, product_id, event, count) or UBI")
    extra_pairs: list[Path] = Field(default_factory=list, description="extra (query, product_id) pair files")
    extra_pairs_weight: float = 1.0
    save_steps: int = Field(
        400, ge=1,
        description="checkpoint (and evaluate on dev) every N steps, the most work a killed run loses. 400: in eight "
        "Home Depot runs of the default recipe and those before it the kept stage-1 checkpoint was the last or step "
        "800, both still evaluated, and each float32 dev evaluation costs ~1 min on 2 CPU cores",
    )
    save_total_limit: int = Field(2, ge=1)
    logging_steps: int = Field(10, ge=1)
    max_steps: int | None = Field(None, description="stop each stage after this many steps (tests, smoke runs)")
    dataloader_workers: int = 0
    mixed_precision: Literal["auto", "no", "bf16"] = Field(
        "auto",
        description="bf16 autocast for the encoder's forward and backward (weights and the losses stay "
        "float32); auto: on where the hardware computes bf16 natively (a bf16 GPU, a CPU with AVX512-BF16 "
        "or AMX), where it matched float32's dev figures at ~1.8x the speed (docs/training.md)",
    )
    length_bucket_rows: int | None = Field(
        32, ge=1,
        description="rows per length-sorted forward chunk inside a training step: the same embeddings "
        "with less padding (training.losses.length_buckets); None: one padded forward per column",
    )
