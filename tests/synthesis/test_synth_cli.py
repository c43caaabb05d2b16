"""``shopsearch synth`` end to end on a tiny saved demo shop: seeds, rewrite (through the OpenAI-compatible
backend against a local fake server), train-judge, pairs, evaluate; config files with flags on top; errors
users can act on. The commands are mounted on a bare typer app, as ``cli/main.py`` mounts them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from shopsearch.cli import synth_cmd
from shopsearch.config import ConfigError
from shopsearch.data.demo import DemoShopConfig, generate_demo_shop
from shopsearch.data.errors import ShopsearchError
from shopsearch.data.store import save_dataset

root = typer.Typer()
root.add_typer(synth_cmd.app, name="synth")
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(root, ["synth", *map(str, args)], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dataset = generate_demo_shop(DemoShopConfig(n_products=200, n_queries=60, judged_per_query=8, seed=3,
                                                knowledge_share=0.2, negation_share=0.15, alternative_share=0.1))
    return save_dataset(dataset, tmp_path_factory.mktemp("synth-cli") / "dataset")


@pytest.fixture(scope="module")
def seeds_dir(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seeds") / "seeds"
    result = invoke("seeds", "--catalog", shop, "--format", "shopsearch", "--output", out, "--max-seeds", 8)
    assert result.exit_code == 0, result.output
    return out


class _FakeChat(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions answering every rewriter prompt with a numbered list."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query = body["messages"][-1]["content"].split("\n")[0].removeprefix("Query: ")
        words = query.split()
        answer = f"1. {' '.join(words[:2])} set\n2. {words[-1]} for home\n3. budget {words[0]}"
        payload = {"choices": [{"index": i, "message": {"content": answer}} for i in range(body.get("n", 1))]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def fake_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("command", "expected"), [
    ([], ["seeds", "rewrite", "train-judge", "pairs", "train-rewriter", "evaluate"]),
    (["seeds"], ["--catalog", "--format", "--max-seeds", "--type", "--config", "synth.seeds"]),
    (["rewrite"], ["--seeds", "--backend", "--base-url", "--model", "--overwrite", "Resumable"]),
    (["train-judge"], ["--dev-judgments", "--time-budget", "precision"]),
    (["pairs"], ["--rewrites", "--judge", "--max-pairs-per-seed", "--extra-pairs"]),
    (["train-rewriter"], ["--base-model", "--stage", "GRPO", "synth.rewriter_training"]),
    (["evaluate"], ["--setting", "--system", "QueryGoodRate", "--json"]),
    (["audit"], ["--pairs", "--judgments", "Wilson", "--json"]),
])
def test_every_synth_command_explains_itself(command, expected):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    for word in expected:
        assert word in result.output


def test_seeds_are_long_tail_typed_and_capped(seeds_dir: Path):
    seeds = pd.read_parquet(seeds_dir / "seeds.parquet")
    manifest = json.loads((seeds_dir / "manifest.json").read_text())
    assert 0 < len(seeds) <= 8 and manifest["labels"] == "none"
    assert set(seeds["frequency"]) <= {"TAIL", "ONCE ONLY"}
    assert seeds["query_type"].nunique() > 1  # the cap is filled round-robin over types


def test_config_file_sets_seeds_and_flags_override_it(shop: Path, tmp_path: Path):
    config = tmp_path / "synth.yaml"
    config.write_text(f"data: {{catalog: {shop}, format: shopsearch}}\nsynth:\n  seeds: {{max_seeds: 5, types: "
                      "[negative, knowledge]}\n")
    result = invoke("seeds", "--config", config, "--output", tmp_path / "a")
    assert result.exit_code == 0, result.output
    seeds = pd.read_parquet(tmp_path / "a" / "seeds.parquet")
    assert len(seeds) <= 5 and set(seeds["query_type"]) <= {"negative", "knowledge"}
    result = invoke("seeds", "--config", config, "--output", tmp_path / "b", "--max-seeds", 2)
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "b" / "seeds.parquet")) == 2


@pytest.mark.parametrize(("section", "message"), [
    ("seeds: {max_seedz: 3}", "unknown setting"),
    ("seeds: {types: [bogus]}", "unknown query type"),
    ("rewriter: {n: 0}", "invalid rewriter settings"),
    ("seeding: {}", "unknown synth subsection"),
    ("llm: {backend: gpt}", "synth.llm"),
])
def test_bad_synth_settings_are_errors_users_can_act_on(shop: Path, tmp_path: Path, section: str, message: str):
    config = tmp_path / "bad.yaml"
    config.write_text(f"data: {{catalog: {shop}, format: shopsearch}}\nsynth:\n  {section}\n")
    command = "rewrite" if section.startswith(("rewriter", "llm")) else "seeds"
    extra = ["--seeds", tmp_path] if command == "rewrite" else []
    result = invoke(command, "--config", config, "--output", tmp_path / "out", *extra)
    assert isinstance(result.exception, ShopsearchError), result.output  # the real CLI prints it, exits 2
    assert message in str(result.exception)


def test_rewrite_through_an_openai_compatible_server(seeds_dir: Path, fake_server: str, tmp_path: Path):
    out = tmp_path / "rewrites"
    result = invoke("rewrite", "--seeds", seeds_dir, "--output", out, "--backend", "openai", "--base-url", fake_server,
                    "--model", "fake", "--n", 3, "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert "format ok" in result.output and "openai:fake" in result.output
    rewrites = pd.read_parquet(out / "rewrites.parquet")
    assert len(rewrites) == len(pd.read_parquet(seeds_dir / "seeds.parquet"))
    assert rewrites["candidates"].map(len).min() >= 2
    again = invoke("rewrite", "--seeds", seeds_dir, "--output", out, "--backend", "openai", "--base-url", fake_server,
                   "--model", "fake", "--n", 3)
    assert again.exit_code == 0 and "resumed from" in again.output  # a rerun resumes, nothing redone


def test_openai_backend_without_url_says_what_is_missing(seeds_dir: Path, tmp_path: Path):
    result = invoke("rewrite", "--seeds", seeds_dir, "--output", tmp_path / "r", "--backend", "openai")
    assert isinstance(result.exception, ShopsearchError)
    assert "base_url" in str(result.exception)


def test_pairs_need_a_business_judge(shop: Path, tmp_path: Path):
    result = invoke("pairs", "--rewrites", tmp_path, "--output", tmp_path / "p", "--catalog", shop,
                    "--format", "shopsearch")
    assert isinstance(result.exception, ConfigError) and "train-judge" in str(result.exception)


def test_train_rewriter_checks_its_inputs_before_loading_anything(tmp_path: Path):
    result = invoke("train-rewriter", "--stage", "sft")
    assert result.exit_code == 2 and "--rewrites" in result.output
    assert invoke("train-rewriter", "--stage", "ppo").exit_code == 2


def test_train_judge_then_pairs_then_evaluate(shop: Path, seeds_dir: Path, fake_server: str, tmp_path: Path):
    judge = tmp_path / "judge"
    result = invoke("train-judge", "--catalog", shop, "--format", "shopsearch", "--output", judge,
                    "--dev-fraction", 0.3, "--max-pairs", 32, "--target-precision", 0.5)
    assert result.exit_code == 0, result.output
    assert (judge / "shopsearch_judge.json").is_file() and "threshold" in result.output

    rewrites = tmp_path / "rewrites"
    assert invoke("rewrite", "--seeds", seeds_dir, "--output", rewrites, "--backend", "openai", "--base-url",
                  fake_server, "--n", 3).exit_code == 0
    config = tmp_path / "synth.toml"
    config.write_text("[synth.pipeline]\nmax_pairs_per_seed = 4\nchunk_size = 3\n[synth.pipeline.retrieval]\n"
                      "depth = 20\nper_rewrite_k = 5\n")
    pairs = tmp_path / "pairs"
    result = invoke("pairs", "--rewrites", rewrites, "--output", pairs, "--catalog", shop, "--format", "shopsearch",
                    "--judge", judge, "--semantic-threshold", 0.2, "--max-pairs-per-seed", 3, "--config", config)
    assert result.exit_code == 0, result.output
    manifest = json.loads((pairs / "manifest.json").read_text())
    assert manifest["run"]["config"]["max_pairs_per_seed"] == 3  # the flag beats the file
    assert manifest["run"]["config"]["chunk_size"] == 3  # the file beats the default
    assert manifest["run"]["config"]["retrieval"]["per_rewrite_k"] == 5
    frame = pd.read_parquet(pairs / "pairs.parquet")
    assert {"query", "product_id"} <= set(frame.columns)
    assert "--extra-pairs" in result.output

    audit = tmp_path / "audit.json"  # the demo shop's judgments of the seed queries stand in for held-back ones
    result = invoke("audit", "--pairs", pairs, "--catalog", shop, "--format", "shopsearch", "--json", audit)
    assert result.exit_code == 0, result.output
    data = json.loads(audit.read_text())
    assert data["pairs"] == len(frame) and data["overall"]["judged"] <= len(frame)
    assert "precision" in result.output

    report = tmp_path / "report.json"
    result = invoke("evaluate", "--catalog", shop, "--format", "shopsearch", "--seeds", seeds_dir, "--setting", "a",
                    "--system", "bm25", "--system", "hybrid", "--n-resamples", 200, "--json", report)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["systems"] == ["bm25", "hybrid"] and data["setting"]["name"] == "a"
    assert "QueryGoodRate" in result.output or "query_good_rate" in result.output
