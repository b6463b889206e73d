"""Config schema: defaults, TOML files, --set overrides, and rejection of bad keys and values."""

from __future__ import annotations

from pathlib import Path

import pytest

from moodwire.pipeline.core.config import (Config, ConfigError, describe_schema, load_config, parse_override,
                                           schema_markdown)

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


def test_no_file_means_the_schema_defaults():
    assert load_config() == Config()


def test_default_toml_is_the_built_in_default():
    assert load_config(CONFIGS[0].parent / "default.toml") == Config()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    load_config(path)


def test_overrides_are_typed_like_toml():
    cfg = load_config(overrides=["sources.fps=25", "sources.video=synthetic", "sources.loop=true",
                                 "bus.public=tcp://127.0.0.1:6000", "sources.mic=3"])
    assert cfg.sources.fps == 25.0 and isinstance(cfg.sources.fps, float)
    assert cfg.sources.video == "synthetic" and cfg.sources.loop is True
    assert cfg.bus.public == "tcp://127.0.0.1:6000"
    assert cfg.sources.mic == "3"  # a device index typed bare is still the str setting


def test_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[sources]\nvideo = "synthetic"\nfps = 10\n')
    cfg = load_config(path, ["sources.fps=12"])
    assert (cfg.sources.video, cfg.sources.fps) == ("synthetic", 12.0)


@pytest.mark.parametrize("toml, message", [
    ('[sources]\nvidoe = "file"\n', "unknown key 'sources.vidoe'; allowed keys in sources: video, audio"),
    ('[source]\nvideo = "file"\n', "unknown key 'source'; allowed keys in the config: bus, sources"),
    ('[sources]\nvideo = "camera"\n', "sources.video = 'camera' is not allowed; allowed values: webcam, file"),
    ('[sources]\nfps = 0\n', "sources.fps = 0.0 is out of range; allowed: 1.0 to 240.0"),
    ('[sources]\nfps = "fast"\n', "sources.fps must be float, got 'fast'"),
    ('[sources]\nloop = 1\n', "sources.loop must be bool, got 1"),
    ('[manager]\ngrace_s = true\n', "manager.grace_s must be float, got True"),
    ('sources = 3\n', "sources must be a table"),
])
def test_bad_files_name_the_key_and_what_is_allowed(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)


@pytest.mark.parametrize("item", ["novalue", "=3", "fps=3"])
def test_malformed_overrides_are_rejected(item):
    with pytest.raises(ConfigError, match="--set"):
        load_config(overrides=[item])


def test_bare_words_are_strings():
    assert parse_override("sources.video=synthetic") == ("sources.video", "synthetic")
    assert parse_override("sources.fps=2.5") == ("sources.fps", 2.5)


def test_schema_description_covers_every_key_and_the_doc_is_current():
    keys = {r[0] for r in describe_schema()}
    assert {"sources.video", "bus.public", "manager.grace_s", "nodes.fusion"} <= keys
    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    assert doc == schema_markdown(), "docs/config.md is stale: run python -m tools.gen_config_doc"
