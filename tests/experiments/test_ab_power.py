"""The analysis holds its size on A/A experiments and finds a planted 3% CTR lift at the traffic
its own MDE says is enough. Vectorised simulations; the long versions are marked slow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopsearch.experiments import ClickModel, ExperimentConfig, Traffic, replicate, simulate
from shopsearch.experiments.analysis import PRIMARY
from shopsearch.experiments.stats import preference_test

ALPHA = 0.05
LIFT = 0.03


def _config(unit: str = "user") -> ExperimentConfig:
    return ExperimentConfig(name="power", unit=unit, variants=[{"name": "control"}, {"name": "treatment"}])


def traffic_for_mde(rankings, config, model, target: float, pilot_users: int = 6000) -> int:
    """Users an A/A pilot's MDE says are needed for a relative MDE of ``target`` (MDE ~ 1/sqrt(n))."""
    pilot = simulate(rankings, config, Traffic(pilot_users), model, seed=999, assignment="random")
    mde = pilot.analyze(labels=False).comparison("treatment", PRIMARY)["mde_rel"]
    return math.ceil(pilot_users * (mde / target) ** 2)


@pytest.mark.parametrize(("unit", "kind"), [("user", "pbm"), ("session", "cascade")])
def test_aa_false_positive_rate(aa_rankings, unit, kind):
    reps = replicate(aa_rankings, _config(unit), Traffic(1500), ClickModel(kind=kind), n=250, seed=11)
    fpr = float((reps["p_value"] < ALPHA).mean())
    assert 0.02 <= fpr <= 0.08, fpr
    assert float((reps["srm_p"] < 0.001).mean()) <= 0.01  # random assignment never looks broken


def test_planted_lift_is_detected_at_the_traffic_the_mde_asks_for(aa_rankings):
    """25% above the traffic at which MDE = 3%: the reported MDE is below 3%, expected power ~0.88."""
    cfg, model = _config(), ClickModel()
    users = math.ceil(1.25 * traffic_for_mde(aa_rankings, cfg, model, LIFT))
    reps = replicate(aa_rankings, cfg, Traffic(users), model, lift=LIFT, n=60, seed=5)
    assert float(reps["mde_rel"].mean()) < LIFT  # the MDE computation says this traffic suffices
    power = float(reps["detected"].mean())
    assert power >= 0.8, (users, power)
    assert abs(float(reps["lift"].mean()) - LIFT) < 3 * float(reps["lift"].std()) / math.sqrt(len(reps))


@pytest.mark.slow
def test_power_calibration(aa_rankings):
    """At exactly the traffic where MDE = 3%, power is 0.8 by construction (within binomial noise
    of 400 replicates); 25% more traffic gives >= 0.8."""
    cfg, model = _config(), ClickModel()
    users = traffic_for_mde(aa_rankings, cfg, model, LIFT, pilot_users=20000)
    at = replicate(aa_rankings, cfg, Traffic(users), model, lift=LIFT, n=400, seed=21)
    power = float(at["detected"].mean())
    assert abs(power - 0.8) < 3 * math.sqrt(0.8 * 0.2 / 400), (users, power)
    above = replicate(aa_rankings, cfg, Traffic(math.ceil(1.25 * users)), model, lift=LIFT, n=400, seed=22)
    assert float(above["detected"].mean()) >= 0.8


@pytest.mark.slow
def test_aa_false_positive_rate_large(aa_rankings):
    reps = replicate(aa_rankings, _config(), Traffic(5000), ClickModel(), n=1000, seed=31)
    fpr = float((reps["p_value"] < ALPHA).mean())
    assert 0.035 <= fpr <= 0.065, fpr
    assert np.histogram(reps["p_value"], bins=10, range=(0, 1))[0].min() > 60  # p-values uniform


def test_interleaving_preference_test_holds_its_size(aa_rankings, interleaving_config):
    """Both teams draft from the same ranking: clicks carry no preference, so p < 0.05 in about 5%
    of experiments (at most, the exact binomial test being slightly conservative)."""
    p = []
    for seed in range(200):
        sim = simulate(aa_rankings, interleaving_config, Traffic(60), seed=seed)
        wins = [(sim.clicks & (sim.teams == t)).sum(axis=1) for t in ("a", "b")]
        p.append(preference_test(*wins).p_value)
    fpr = float(np.mean(np.array(p) < ALPHA))
    assert 0.01 <= fpr <= 0.08, fpr
