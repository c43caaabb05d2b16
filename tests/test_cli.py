"""The `shopsearch` command end to end on small real-format data and a tiny demo shop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopsearch.cli.main import cli
from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.store import save_dataset

os.environ["HF_HUB_OFFLINE"] = "1"
FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def tiny_shop(tmp_path_factory) -> Path:
    """A saved 300-product demo shop, shared by the tests of this module."""
    out = tmp_path_factory.mktemp("shop") / "dataset"
    save_dataset(generate_demo_shop(DemoShopConfig(n_products=300, n_queries=80, seed=5)), out)
    return out


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], ["data", "index", "search", "eval", "demo", "train", "serve", "synth", "ab", "sbs"]),
        (["synth", "pairs"], ["--config"]),
        (["serve"], ["--index", "--port", "--workers"]),
        (["ab", "analyze"], ["--config"]),
        (["ab", "simulate"], ["--demo"]),
        (["sbs", "report"], ["GSB"]),
        (["eval"], ["--catalog", "--judgments", "--system", "--json", "--html", "--config", "--format"]),
        (["data", "import"], ["--out", "--on-error", "--scheme"]),
        (["index", "build"], ["--output", "--model", "--kind", "--nprobe"]),
        (["search"], ["--index", "--mode", "interactive"]),
        (["demo"], ["SYNTHETIC", "--output"]),
    ],
)
def test_every_command_explains_itself(command, expected):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    for word in expected:
        assert word in result.output


def test_data_import_writes_parquet_and_a_bad_row_report(tmp_path):
    out = tmp_path / "esci"
    result = invoke(
        "data", "import", "--catalog", FIXTURES / "esci" / "shopping_queries_dataset_products.parquet",
        "--judgments", FIXTURES / "esci" / "shopping_queries_dataset_examples.parquet", "--out", out,
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "dataset"
    assert {"catalog.parquet", "queries.parquet", "judgments.parquet", "bad_rows.jsonl"} <= set(manifest["files"])


def test_index_build_search_and_eval_on_the_same_index(tmp_path, tiny_shop):
    index = tmp_path / "index"
    result = invoke("index", "build", "--catalog", tiny_shop, "--output", index, "--text-field", "title",
                    "--text-field", "brand")
    assert result.exit_code == 0, result.output
    assert invoke("index", "info", index).exit_code == 0

    result = invoke("search", "--index", index, "--mode", "bm25", "-k", "3", "--json", "sofa")
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.strip().splitlines()]
    assert len(hits) == 3 and [h["rank"] for h in hits] == [1, 2, 3]
    # a misspelt query is searched corrected (the default), or as typed with --no-spell
    result = invoke("search", "--index", index, "--mode", "bm25", "-k", "3", "--json", "sfoa")
    typo_hits = [json.loads(line) for line in result.output.strip().splitlines()]
    assert {h["searched"] for h in typo_hits} == {"sofa"} and typo_hits[0]["query"] == "sfoa"
    assert [h["product_id"] for h in typo_hits] == [h["product_id"] for h in hits]
    result = invoke("search", "--index", index, "--mode", "bm25", "--json", "--no-spell", "sfoa")
    assert result.exit_code == 0 and result.output.strip() == ""

    report_json, report_html = tmp_path / "r.json", tmp_path / "r.html"
    result = invoke(
        "eval", "--catalog", tiny_shop, "--index", index, "--system", "bm25", "--system", "dense",
        "--system", "hybrid", "--system", "hybrid+spell", "--n-resamples", "500", "--json", report_json,
        "--html", report_html,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_json.read_text())
    assert report["synthetic"] is True
    assert set(report["systems"]) == {"bm25", "dense", "hybrid", "hybrid+spell"}
    assert set(report["systems"]["bm25"]["metrics"]) >= {"ndcg@10", "recall@100", "mrr@10", "map@10", "auc"}
    assert "data:image/png;base64" in report_html.read_text()
    assert "| bm25 |" in result.output


def test_config_file_with_flag_override(tmp_path, tiny_shop):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"data:\n  catalog: {tiny_shop}\n  format: shopsearch\neval:\n  systems: [bm25]\n  depth: 50\n")
    out = tmp_path / "r.json"
    result = invoke("eval", "--config", cfg, "--n-resamples", "200", "--json", out, "--metric", "ndcg@10")
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert list(report["systems"]) == ["bm25"] and list(report["systems"]["bm25"]["metrics"]) == ["ndcg@10"]


def test_demo_runs_end_to_end_and_says_it_is_synthetic(tmp_path):
    out = tmp_path / "demo"
    result = invoke("demo", "--output", out, "--products", "300", "--queries", "60", "--n-resamples", "300")
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.output
    assert json.loads((out / "report.json").read_text())["synthetic"] is True
    assert (out / "index" / "manifest.json").is_file() and (out / "report.html").is_file()


def test_console_entry_point_turns_errors_into_a_message_not_a_traceback(tmp_path):
    missing = tmp_path / "nope.csv"
    proc = subprocess.run(
        [sys.executable, "-c", "from shopsearch.cli.main import app; app()", "eval", "--catalog", str(missing),
         "--judgments", str(missing), "--format", "homedepot"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "nope.csv" in proc.stderr and "Traceback" not in proc.stderr
