import pytest

from shopsearch.config import ConfigError, merge_settings
from shopsearch.data.schema import ESCI


def test_flags_override_file_which_overrides_defaults(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  format: esci\n  scheme: esci\n  gain: exponential\neval:\n  depth: 50\n  systems: [bm25]\n")
    s = merge_settings(cfg, data={"format": None}, eval={"depth": 200, "systems": None})
    assert s.data.format == "esci" and s.eval.depth == 200 and s.eval.systems == ["bm25"]
    assert s.data.grade_scheme() == ESCI.with_gain("exponential")
    assert s.eval.protocol == "full"  # default kept


def test_toml_and_custom_labels(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nlabels = { good = 2, meh = 1, bad = 0 }\nrelevant_min = 1\n')
    scheme = merge_settings(cfg).data.grade_scheme()
    assert scheme.to_grade("meh") == 1 and scheme.relevant_min == 1


def test_unknown_keys_and_bad_values_are_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("eval:\n  dept: 50\n")
    with pytest.raises(ConfigError, match="dept"):
        merge_settings(cfg)
    with pytest.raises(ConfigError, match="protocol"):
        merge_settings(None, eval={"protocol": "sideways"})
    with pytest.raises(ConfigError, match="not found"):
        merge_settings(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown grade scheme"):
        merge_settings(None, data={"scheme": "stars"}).data.grade_scheme()


def test_one_file_configures_every_command_but_unknown_sections_fail(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text("data:\n  format: esci\ntrain:\n  stage1:\n    tau: 0.05\nserve:\n  port: 9000\n")
    assert merge_settings(path).data.format == "esci"  # train/serve belong to their own commands
    path.write_text("data:\n  format: esci\ntrian:\n  stage: '1'\n")
    with pytest.raises(ConfigError, match="trian"):
        merge_settings(path)
