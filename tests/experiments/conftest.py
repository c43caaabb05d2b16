"""Shared fixtures of the experiments tests: rankings with known grades, experiment configs, a tiny shop."""

from __future__ import annotations

import numpy as np
import pytest

from shopsearch.experiments import ExperimentConfig, Rankings, rankings_from_grades


def grade_rankings(n_queries: int = 200, k: int = 10, seed: int = 0) -> Rankings:
    """The same ranking for both systems (an A/A pair): grades 0..3 drawn per slot, Zipf-like traffic."""
    rng = np.random.default_rng(seed)
    grades = rng.choice([0, 1, 2, 3], size=(n_queries, k), p=[0.4, 0.2, 0.2, 0.2])
    weights = 1.0 / (np.arange(n_queries) + 5.0)
    return rankings_from_grades(grades, grades, weights=weights, max_grade=3, systems=("control", "treatment"))


@pytest.fixture(scope="session")
def aa_rankings() -> Rankings:
    return grade_rankings()


@pytest.fixture
def ab_config() -> ExperimentConfig:
    return ExperimentConfig(name="exp1", variants=[{"name": "control"}, {"name": "treatment"}], salt="s1")


@pytest.fixture
def interleaving_config() -> ExperimentConfig:
    return ExperimentConfig(name="il1", design="interleaving", variants=[{"name": "good"}, {"name": "bad"}])
