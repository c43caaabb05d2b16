"""ServeSettings from config files and flags, the admin key's sources, and the `serve` command."""

from __future__ import annotations

import json
import os

import pytest
import typer
from typer.testing import CliRunner

from shopsearch.cli.serve_cmd import serve
from shopsearch.config import ConfigError
from shopsearch.serve.security import ADMIN_KEY_ENV, AdminKey, AdminKeyError
from shopsearch.serve.settings import ServeSettings, load_serve_settings


def test_flags_override_the_config_file_section(tmp_path):
    config = tmp_path / "shop.yaml"
    config.write_text("data: {format: homedepot}\nserve:\n  port: 9000\n  cache_size: 10\n  index: idx\n")
    s = load_serve_settings(config, port=9100, host=None)
    assert (s.port, s.cache_size, str(s.index), s.host) == (9100, 10, "idx", "127.0.0.1")
    toml = tmp_path / "shop.toml"
    toml.write_text("[serve]\nworkers = 2\n")
    assert load_serve_settings(toml).workers == 2


@pytest.mark.parametrize(
    ("section", "flags", "mention"),
    [
        ({"prot": 1}, {}, "serve.prot"),
        ({}, {"k_max": 500}, "k_max"),
        ({"k_max": 5, "k_default": 10}, {}, "k_default"),
        ({"encoder": "gpu"}, {}, "encoder"),
        ({"encoder": "torch", "onnx": "x"}, {}, "onnx"),
        ({"hybrid_weighting": "coverage", "hybrid_rescore_union": False}, {}, "hybrid_rescore_union"),
        ({"hybrid_weighting": "idf"}, {}, "hybrid_weighting"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_field(tmp_path, section, flags, mention):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"serve": section}))
    with pytest.raises(ConfigError, match="invalid serve settings") as err:
        load_serve_settings(config, **flags)
    assert mention.split(".")[-1] in str(err.value)


def test_settings_round_trip_through_json_for_worker_processes():
    s = ServeSettings(index="idx", workers=3, int8=False)
    assert ServeSettings.model_validate_json(s.model_dump_json()) == s
    assert "key" not in s.model_dump_json().replace("admin_key_file", "")


def test_admin_key_from_file_or_environment(tmp_path):
    key_file = tmp_path / "admin.key"
    key_file.write_text("  file-key-0123456789abcdef  \n")
    key_file.chmod(0o600)
    from_file = AdminKey.from_sources(key_file, environ={ADMIN_KEY_ENV: "env-key-0123456789abcdef"})
    assert from_file.matches("file-key-0123456789abcdef") and not from_file.matches("env-key-0123456789abcdef")
    from_env = AdminKey.from_sources(None, environ={ADMIN_KEY_ENV: "env-key-0123456789abcdef"})
    assert from_env.matches("env-key-0123456789abcdef")
    off = AdminKey.from_sources(None, environ={})
    assert not off.enabled and not off.matches("")
    assert "0123" not in repr(from_env) and "0123" not in str(vars(from_env))


@pytest.mark.parametrize("content", ["", "\n\n", "short"])
def test_unusable_key_files_are_refused(tmp_path, content):
    key_file = tmp_path / "k"
    key_file.write_text(content)
    with pytest.raises(AdminKeyError):
        AdminKey.from_sources(key_file)
    with pytest.raises(AdminKeyError, match="not found"):
        AdminKey.from_sources(tmp_path / "missing")


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(serve)
    return app


def test_serve_command_explains_itself():
    result = CliRunner().invoke(_cli(), ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--index", "--host", "--port", "--workers", "--admin-key-file", "--judgments", "--format", "--encoder"):
        assert flag in result.output


def test_serve_command_without_index_or_with_a_bad_one(tmp_path):
    result = CliRunner().invoke(_cli(), [])
    assert result.exit_code == 2 and "--index" in result.output
    from shopsearch.artifacts import ArtifactError

    result = CliRunner().invoke(_cli(), ["--index", str(tmp_path / "none")])
    assert isinstance(result.exception, ArtifactError)  # the real CLI prints it and exits 2


def test_serve_command_starts_uvicorn_with_the_loaded_app(index_a, monkeypatch):
    import uvicorn

    seen = {}

    def fake_run(app, **kwargs):
        seen.update(kwargs, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setenv(ADMIN_KEY_ENV, "env-key-0123456789abcdef")
    result = CliRunner().invoke(_cli(), ["--index", str(index_a), "--port", "8123", "--encoder", "torch", "--cache-size", "0"])
    assert result.exit_code == 0, result.output
    assert seen["port"] == 8123 and seen["host"] == "127.0.0.1"
    context = seen["app"].state.shopsearch
    assert context.holder.ready and context.admin_key.enabled and context.settings.cache_size == 0
    assert "env-key" not in result.output
    assert os.environ.get("SHOPSEARCH_SERVE_SETTINGS") is None  # one worker: no hand-over needed


def test_worker_processes_build_their_app_from_the_parents_settings(index_a, monkeypatch):
    """What each uvicorn worker runs when --workers > 1 (the factory, called in-process here)."""
    from fastapi.testclient import TestClient

    from shopsearch.serve.app import app_from_env
    from shopsearch.serve.settings import SETTINGS_ENV

    settings = ServeSettings(index=index_a, encoder="torch", k_max=7, k_default=7)
    monkeypatch.setenv(SETTINGS_ENV, settings.model_dump_json())
    with TestClient(app_from_env()) as c:  # the index is loaded at startup
        assert c.get("/readyz").json()["n_products"] == 300
        assert c.get("/search", params={"q": "lamp", "k": 7}).status_code == 200
        assert c.get("/search", params={"q": "lamp", "k": 8}).status_code == 422
    monkeypatch.delenv(SETTINGS_ENV)
    with pytest.raises(ConfigError, match=SETTINGS_ENV):
        app_from_env()


def test_judgments_need_their_catalogue(index_a, tmp_path):
    judgments = tmp_path / "judgments_dev.csv"
    judgments.write_text("query_id,query,product_id,relevance\nq1,drill,P1,3\n")
    result = CliRunner().invoke(_cli(), ["--index", str(index_a), "--judgments", str(judgments), "--format", "homedepot"])
    assert result.exit_code != 0 and "--catalog" in str(result.exception)
