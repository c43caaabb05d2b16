"""Topic clusters of training queries for topic-aware batches (TAS)."""

from __future__ import annotations

import numpy as np
import pytest

from shopsearch.training.topics import cluster_sizes, query_topic_clusters


class WordEncoder:
    """A bag-of-words encoder over a fixed vocabulary: queries sharing words are close."""

    def __init__(self, vocabulary: list[str]) -> None:
        self.vocabulary = vocabulary
        self.calls: list[list[str]] = []

    def encode(self, texts, *, is_query=False, show_progress=False):
        assert is_query
        self.calls.append(list(texts))
        out = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                out[i, self.vocabulary.index(word)] += 1
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_similar_queries_share_a_cluster_and_rows_of_one_query_share_its_cluster():
    tools = [f"drill {w}" for w in ("cordless", "bit", "battery", "hammer", "set", "kit")]
    bath = [f"toilet {w}" for w in ("seat", "tank", "flapper", "bowl", "handle", "wax")]
    vocabulary = ["drill", "toilet", "cordless", "bit", "battery", "hammer", "set", "kit",
                  "seat", "tank", "flapper", "bowl", "handle", "wax"]  # fmt: skip
    rows = tools + bath + ["Drill  Cordless", "TOILET seat"]  # repeats, as typed differently
    encoder = WordEncoder(vocabulary)
    clusters = query_topic_clusters(rows, encoder, queries_per_cluster=6, seed=0)
    assert len(encoder.calls) == 1 and len(encoder.calls[0]) == 12  # distinct normalised queries, once
    assert len(set(clusters[:6])) == 1 and len(set(clusters[6:12])) == 1 and clusters[0] != clusters[6]
    assert clusters[12] == clusters[0] and clusters[13] == clusters[6]
    again = query_topic_clusters(rows, WordEncoder(vocabulary), queries_per_cluster=6, seed=0)
    assert np.array_equal(clusters, again)
    assert cluster_sizes(clusters) == {"clusters": 2, "rows_min": 7, "rows_median": 7.0, "rows_max": 7}


def test_too_few_queries_give_one_cluster_and_bad_settings_are_refused():
    encoder = WordEncoder(["a", "b"])
    assert query_topic_clusters(["a", "b", "a"], encoder, queries_per_cluster=2).tolist() == [0, 0, 0]
    assert encoder.calls == []
    with pytest.raises(ValueError, match="queries_per_cluster"):
        query_topic_clusters(["a"], encoder, queries_per_cluster=0)
    assert cluster_sizes(np.zeros(0, dtype=np.int64)) == {"clusters": 0}
