"""``shopsearch serve --experiment/--events-db/--sbs-db`` wiring, and the serve command the demo prints
(uvicorn.run is replaced by a capture, so the app the command would serve is tested in-process)."""

from __future__ import annotations

import shlex

import pytest
import typer
import uvicorn
from fastapi.testclient import TestClient
from serve_support import write_experiment
from typer.testing import CliRunner

from shopsearch.cli import demo_cmd, serve_cmd
from shopsearch.serve.sbs_tokens import SBS_SECRET_ENV


@pytest.fixture
def served(monkeypatch):
    """Runs ``shopsearch serve ARGS`` and returns the app it would have handed to uvicorn."""
    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    # serve sets the pair-token secret for its workers; keep that out of the other tests
    monkeypatch.setenv(SBS_SECRET_ENV, "a-secret-for-the-cli-tests-only")
    cli = typer.Typer()
    cli.command("serve")(serve_cmd.serve)
    cli.command("other")(lambda: None)  # two commands: `serve` stays a sub-command

    def run(*args):
        result = CliRunner().invoke(cli, ["serve", "--encoder", "torch", *map(str, args)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return captured["app"], result.output

    return run


def test_serve_loads_the_experiment_and_opens_the_stores_before_binding(served, index_a, index_b, tmp_path):
    exp = write_experiment(tmp_path / "exp.yaml", name="cli-exp", variants=[
        {"name": "control", "index": index_a, "mode": "bm25"}, {"name": "treatment", "index": index_b, "mode": "hybrid"}])
    app, output = served("--experiment", exp, "--events-db", tmp_path / "ev.db", "--sbs-db", tmp_path / "sbs.db",
                         "--port", "0")  # fmt: skip
    assert "experiment cli-exp (ab, by user)" in output and "2 index(es) loaded" in output
    assert (tmp_path / "ev.db").is_file() and (tmp_path / "sbs.db").is_file()
    ctx = app.state.shopsearch
    assert ctx.experiment.ready and ctx.holder.ready  # loaded before uvicorn would bind the port
    with TestClient(app) as c:
        info = c.get("/info").json()
        assert info["features"] == {"events": True, "sbs": True, "experiment": True}
        assert info["index"]["name"] == "a"  # no --index: the control's index is the served one
        body = c.get("/search", params={"q": "sofa", "user_id": "someone"}).json()
        assert body["experiment"] == "cli-exp" and body["variant"] in {"control", "treatment"}


def test_the_command_the_demo_prints_serves_its_outputs(served, index_a, shop_dir, tmp_path):
    options = demo_cmd.serve_options(tmp_path, index_a, shop_dir)
    command = demo_cmd.serve_command(options)
    args = shlex.split(command)
    assert args[:2] == ["shopsearch", "serve"]
    app, output = served(*args[2:])
    assert "search page: http://127.0.0.1:8000/" in output
    with TestClient(app) as c:
        info = c.get("/info").json()
        assert info["features"] == {"events": True, "sbs": True} and info["judgments"]["queries"] == 40
    assert (tmp_path / "events.db").is_file() and (tmp_path / "sbs.db").is_file()
