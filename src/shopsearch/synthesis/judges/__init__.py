"""Relevance judges for the synthetic-data pipeline (METHOD.md part B, steps 2 and 5).

One interface, :class:`RelevanceJudge` (``score``, ``threshold``, ``accepts``), three kinds:

- :class:`CrossEncoderJudge`: the business-specific classifier, a cross-encoder fine-tuned on the
  shop's graded judgments (:func:`train_relevance_classifier`);
- :class:`EmbeddingJudge`: the general semantic judge, off-the-shelf embedding cosine;
- :class:`CallableJudge`: any scoring function, e.g. an LLM asked for a grade.

Thresholds are calibrated on dev judgments to a stated precision (:func:`calibrate_judge`).
"""

from shopsearch.synthesis.judges.base import (
    CallableJudge,
    JudgeError,
    RelevanceJudge,
    judge_pairs,
    score_unique,
)
from shopsearch.synthesis.judges.calibration import (
    ThresholdCalibration,
    binary_report,
    calibrate_judge,
    calibrate_threshold,
)
from shopsearch.synthesis.judges.cross_encoder import CrossEncoderJudge
from shopsearch.synthesis.judges.embedding import EmbeddingCache, EmbeddingJudge
from shopsearch.synthesis.judges.pairs import classifier_training_pairs, judged_pairs, product_text_map
from shopsearch.synthesis.judges.training import (
    ClassifierRun,
    ClassifierTrainConfig,
    train_relevance_classifier,
)
from shopsearch.training.cross_encoder import LengthGroupedBatchSampler, new_cross_encoder

__all__ = [
    "CallableJudge",
    "ClassifierRun",
    "ClassifierTrainConfig",
    "CrossEncoderJudge",
    "EmbeddingCache",
    "EmbeddingJudge",
    "JudgeError",
    "LengthGroupedBatchSampler",
    "RelevanceJudge",
    "ThresholdCalibration",
    "binary_report",
    "calibrate_judge",
    "calibrate_threshold",
    "classifier_training_pairs",
    "judge_pairs",
    "judged_pairs",
    "new_cross_encoder",
    "product_text_map",
    "score_unique",
    "train_relevance_classifier",
]
