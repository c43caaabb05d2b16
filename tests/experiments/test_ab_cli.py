"""``shopsearch ab simulate / analyze`` and ``shopsearch sbs report`` end to end (apps invoked
directly: registering them in ``cli/main.py`` is one line each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shopsearch.cli import ab_cmd, sbs_cmd
from shopsearch.config import ConfigError
from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.store import save_dataset
from shopsearch.eval.runs import write_trec_run
from shopsearch.experiments import EventStore, SbsStore, SbsVerdict, blind_pair

cli = typer.Typer()
cli.add_typer(ab_cmd.app, name="ab")
cli.add_typer(sbs_cmd.app, name="sbs")
runner = CliRunner()


def invoke(*args):
    result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> dict[str, Path]:
    """A saved tiny demo shop and two TREC runs over its judged products: by grade, and reversed."""
    root = tmp_path_factory.mktemp("abshop")
    dataset = generate_demo_shop(DemoShopConfig(n_products=300, n_queries=60, seed=9))
    save_dataset(dataset, root / "dataset")
    qrels = dataset.judgments.qrels()
    best = {q: sorted(g, key=lambda p: (-g[p], p)) for q, g in qrels.items()}
    write_trec_run(best, root / "best.run")
    write_trec_run({q: list(reversed(ids)) for q, ids in best.items()}, root / "worst.run")
    (root / "exp.yaml").write_text("ab:\n  name: simulated\n  variants:\n    - {name: best}\n    - {name: worst}\n")
    return {"root": root, "dataset": root / "dataset", "best": root / "best.run", "worst": root / "worst.run",
            "config": root / "exp.yaml"}


def test_help():
    for args, words in ((["ab", "--help"], ["analyze", "simulate"]), (["ab", "simulate", "--help"], ["--run-a", "--demo", "--lift"]),
                        (["ab", "analyze", "--help"], ["--events", "--config"]), (["sbs", "report", "--help"], ["--store"])):
        out = invoke(*args).output
        assert all(w in out for w in words)


def test_simulate_then_analyze_from_the_store_and_from_ubi(shop, tmp_path):
    result = invoke("ab", "simulate", "--catalog", shop["dataset"], "--run-a", shop["best"], "--run-b", shop["worst"],
                    "--users", 600, "--store", tmp_path / "ev.db", "--ubi", tmp_path / "ev.ndjson",
                    "--json", tmp_path / "sim.json", "--markdown", tmp_path / "sim.md")
    assert "SIMULATED TRAFFIC" in result.output and "## Comparisons" in (tmp_path / "sim.md").read_text()
    sim = json.loads((tmp_path / "sim.json").read_text())
    ctr = next(c for c in sim["comparisons"] if c["metric"] == "ctr")
    assert ctr["variant"] == "worst" and ctr["lift"] < 0 and ctr["significant"]  # reversed rankings lose
    with EventStore(tmp_path / "ev.db") as store:
        assert store.experiments() == {"simulated": sim["data"]["events_used"]}
    for events in (tmp_path / "ev.db", tmp_path / "ev.ndjson"):
        out = tmp_path / f"{events.suffix[1:]}.json"
        invoke("ab", "analyze", "--events", events, "--config", shop["config"], "--json", out)
        again = json.loads(out.read_text())
        assert again["comparisons"] == sim["comparisons"] and again["srm"] == sim["srm"]


def test_simulate_interleaving_and_replicates(shop, tmp_path):
    invoke("ab", "simulate", "--catalog", shop["dataset"], "--run-a", shop["best"], "--run-b", shop["worst"],
           "--design", "interleaving", "--users", 300, "--click-model", "cascade", "--json", tmp_path / "il.json")
    il = json.loads((tmp_path / "il.json").read_text())["interleaving"]
    assert il["preferred"] == "best" and il["wins_a"] > il["wins_b"]
    out = invoke("ab", "simulate", "--catalog", shop["dataset"], "--run-a", shop["best"], "--run-b", shop["best"],
                 "--users", 300, "--repeat", 30).output
    assert "30 replicate experiments at this traffic: false-positive rate" in out


def test_demo_simulation(tmp_path):
    out = invoke("ab", "simulate", "--demo", "--demo-products", 300, "--demo-queries", 40, "--system-a", "bm25",
                 "--system-b", "bm25", "--lift", 0.1, "--users", 500, "--json", tmp_path / "d.json").output
    assert "SYNTHETIC demo shop" in out
    assert json.loads((tmp_path / "d.json").read_text())["truth"]["expected_lift_bm25 (b)"] == pytest.approx(0.1)


def test_analyze_needs_an_experiment(shop, tmp_path):
    with EventStore(tmp_path / "empty.db"):
        pass
    with pytest.raises(ConfigError, match="--config"):
        runner.invoke(cli, ["ab", "analyze", "--events", str(tmp_path / "empty.db")], catch_exceptions=False)


def test_sbs_report(tmp_path):
    with SbsStore(tmp_path / "sbs.db") as store:
        for i in range(30):
            pair = blind_pair(f"q{i}", "hybrid", "bm25")
            store.record(SbsVerdict.from_pair(pair, "left" if pair.left == "hybrid" else "right", rater="ann"))
    out = invoke("sbs", "report", "--store", tmp_path / "sbs.db", "--n-resamples", 500, "--json", tmp_path / "s.json").output
    assert "| bm25 | hybrid | 30 | 30 | 0 | 0 | 30 | -1.000 |" in out
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["pairs"][0]["gsb"] == -1.0 and data["verdicts"] == 30
    only = invoke("sbs", "report", "--store", tmp_path / "sbs.db", "--system-a", "hybrid", "--system-b", "bm25",
                  "--n-resamples", 500).output
    assert "| hybrid | bm25 | 30 | 30 | 30 | 0 | 0 | +1.000 |" in only
