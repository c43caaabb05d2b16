"""Experiment configs validate and load from files; assignment is deterministic, stable across
processes, follows the split, and reshuffles with the salt."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from shopsearch.config import ConfigError, merge_settings
from shopsearch.experiments import INTERLEAVED, ExperimentConfig, assign, assign_many
from shopsearch.experiments.assignment import unit_bucket

VARIANTS = [{"name": "control", "index": "index/a", "mode": "bm25"}, {"name": "treatment", "mode": "hybrid"}]


def test_defaults_and_control():
    cfg = ExperimentConfig(name="e", variants=VARIANTS)
    assert cfg.weights == [0.5, 0.5] and cfg.unit == "user" and cfg.design == "ab"
    assert cfg.control_name == "control" and cfg.variant("treatment").mode == "hybrid"
    assert str(cfg.variant("control").index) == "index/a"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": [0.5, 0.6]}, "sum to 1"),
        ({"split": [1.0]}, "1 weights for 2 variants"),
        ({"split": [1.5, -0.5]}, ">= 0"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"variants": [{"name": "a"}, {"name": INTERLEAVED}]}, "reserved"),
        ({"variants": [{"name": "a"}]}, "at least 2"),
        ({"design": "interleaving", "variants": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}, "exactly two"),
        ({"control": "nope"}, "control 'nope'"),
        ({"unit": "device"}, "ab.unit"),
        ({"variants": [{"name": "a", "mode": "sparse"}, {"name": "b"}]}, "ab.variants.0.mode"),
        ({"colour": "red"}, "ab.colour"),
    ],
)
def test_invalid_configs_say_what_is_wrong(change, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict({"name": "e", "variants": VARIANTS} | change)


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_loads_the_ab_section_of_a_config_file(tmp_path, suffix):
    section = {"name": "e1", "salt": "x", "unit": "session", "split": [0.25, 0.75], "variants": VARIANTS}
    full = {"data": {"format": "homedepot"}, "ab": section}
    path = tmp_path / f"shop{suffix}"
    if suffix == ".yaml":
        import yaml

        path.write_text(yaml.safe_dump(full))
    elif suffix == ".json":
        path.write_text(json.dumps(full))
    else:
        path.write_text('[data]\nformat = "homedepot"\n\n[ab]\nname = "e1"\nsalt = "x"\nunit = "session"\n'
                        'split = [0.25, 0.75]\n\n[[ab.variants]]\nname = "control"\nindex = "index/a"\nmode = "bm25"\n\n'
                        '[[ab.variants]]\nname = "treatment"\nmode = "hybrid"\n')
    cfg = ExperimentConfig.from_file(path)
    assert cfg.name == "e1" and cfg.unit == "session" and cfg.weights == [0.25, 0.75] and cfg.names == ["control", "treatment"]
    # the other commands read the same file and ignore the section reserved for experiments
    assert merge_settings(path).data.format == "homedepot"


def test_a_file_without_the_section_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {format: homedepot}\n")
    with pytest.raises(ConfigError, match="no 'ab' section"):
        ExperimentConfig.from_file(path)


def test_assignment_is_deterministic_and_follows_the_split():
    cfg = ExperimentConfig(name="e", variants=VARIANTS, split=[0.2, 0.8], salt="s")
    ids = [f"user-{i}" for i in range(20000)]
    got = [assign(cfg, u) for u in ids]
    assert got == [assign(cfg, u) for u in ids]
    assert [cfg.names[i] for i in assign_many(cfg, ids)] == got
    n_control = got.count("control")
    assert stats.binomtest(n_control, len(ids), 0.2).pvalue > 0.001
    assert abs(n_control / len(ids) - 0.2) < 0.01


def test_assignment_is_the_same_in_another_process():
    ids = [f"u{i}" for i in range(200)]
    cfg = ExperimentConfig(name="e", variants=VARIANTS, salt="s")
    code = (
        "import json,sys\nfrom shopsearch.experiments import ExperimentConfig, assign\n"
        f"cfg = ExperimentConfig.model_validate_json({cfg.model_dump_json()!r})\n"
        f"print(json.dumps([assign(cfg, u) for u in {ids!r}]))\n"
    )
    env = {"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(done.stdout) == [assign(cfg, u) for u in ids]


def test_the_salt_and_the_name_reshuffle_units():
    ids = [f"u{i}" for i in range(4000)]
    base = ExperimentConfig(name="e", variants=VARIANTS, salt="one")
    for other in (base.model_copy(update={"salt": "two"}), base.model_copy(update={"name": "e2"})):
        same = np.mean([assign(base, u) == assign(other, u) for u in ids])
        assert 0.45 < same < 0.55  # independent coin flips agree half the time


def test_bucket_is_uniform_in_the_unit_interval():
    u = np.array([unit_bucket("e", "s", str(i)) for i in range(5000)])
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 0.001


def test_zero_weight_variants_get_nobody_and_interleaving_gets_everyone():
    cfg = ExperimentConfig(name="e", variants=[*VARIANTS, {"name": "off"}], split=[0.5, 0.5, 0.0])
    assert "off" not in {assign(cfg, f"u{i}") for i in range(3000)}
    il = ExperimentConfig(name="e", variants=VARIANTS, design="interleaving")
    assert assign(il, "anyone") == INTERLEAVED
    with pytest.raises(ValueError, match="non-empty"):
        assign(cfg, "")
