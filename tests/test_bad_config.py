"""Bad configs, property-based: random TOML files and --set KEY=VALUE overrides (random keys, wrong types,
out-of-range values, NaN, huge numbers, unknown sections) either load into a config whose every value is
allowed, or raise ConfigError naming the key and what is allowed; never a traceback from deeper inside."""

from __future__ import annotations

import dataclasses
import json
import math
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moodwire.pipeline.core.config import Config, ConfigError, load_config

SCHEMA = {(section.name, f.name): f for section in dataclasses.fields(Config)
          for f in dataclasses.fields(typing.get_type_hints(Config)[section.name])}
KEYS = sorted(f"{s}.{k}" for s, k in SCHEMA)
SECTIONS = sorted({s for s, _ in SCHEMA})

names = st.sampled_from(KEYS) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.", min_size=1, max_size=12)
scalars = (st.integers(-2**63, 2**63 - 1) | st.floats() | st.booleans() | st.text(max_size=10)
           | st.sampled_from([0, -1, 10**18, 1e308, "auto", "synthetic", "tcp://127.0.0.1:1", ""]))
values = scalars | st.lists(scalars, max_size=3)


def toml_value(value: typing.Any) -> str:
    """One value in TOML syntax (tomllib has no writer)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)  # JSON strings are TOML basic strings (a lone surrogate is refused as invalid TOML)


def assert_every_value_is_allowed(config: Config) -> None:
    for (section, key), f in SCHEMA.items():
        value = getattr(getattr(config, section), key)
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None:
            assert math.isfinite(value) and lo <= value <= hi, (section, key, value)
        if f.metadata.get("choices"):
            assert value in f.metadata["choices"], (section, key, value)


def loads_or_names_the_key(path, overrides: list[str], keys: list[str]) -> None:
    try:
        config = load_config(path, overrides)
    except ConfigError as exc:
        text = str(exc)
        assert any(key in text for key in keys) or "--set" in text or "TOML" in text, text
        return
    assert_every_value_is_allowed(config)


@settings(max_examples=60, deadline=1000)
@given(st.lists(st.tuples(names, values), min_size=1, max_size=3))
def test_random_overrides_load_or_name_the_key(pairs):
    overrides = [f"{key}={toml_value(value) if not isinstance(value, str) else value}" for key, value in pairs]
    loads_or_names_the_key(None, overrides, [key for key, _ in pairs] + [k.split(".")[0] for k, _ in pairs])


@st.composite
def toml_documents(draw) -> tuple[str, list[str]]:
    """Tables of random keys and values; sometimes a section that is not a table, or an unknown one."""
    lines, keys = [], []
    for section in draw(st.lists(st.sampled_from(SECTIONS) | st.text("abcdefgh", min_size=1, max_size=6),
                                 min_size=1, max_size=3, unique=True)):
        if draw(st.integers(0, 9)) == 0:
            lines.insert(0, f"{section} = {toml_value(draw(scalars))}")
            keys.append(section)
            continue
        lines.append(f"[{section}]")
        fields = [k for s, k in SCHEMA if s == section] or ["x"]
        for key in draw(st.lists(st.sampled_from(fields) | st.sampled_from(["nope", "fps2"]), max_size=3,
                                 unique=True)):
            lines.append(f"{key} = {toml_value(draw(values))}")
            keys.append(f"{section}.{key}")
        keys.append(section)
    return "\n".join(lines) + "\n", keys


@settings(max_examples=60, deadline=1000)
@given(toml_documents())
def test_random_toml_files_load_or_name_the_key(tmp_path_factory, document):
    text, keys = document
    path = tmp_path_factory.mktemp("cfg") / "random.toml"
    path.write_text(text, errors="surrogatepass")
    loads_or_names_the_key(path, [], keys)


@pytest.mark.parametrize("toml, overrides, message", [
    ('[sources]\nfps = nan\n', [], "sources.fps = nan is not a finite number; allowed: 1.0 to 240.0"),
    ("", ["fusion.smoothing_tau_s=nan"], "fusion.smoothing_tau_s = nan is not a finite number"),
    ("", ["bus.hwm=1e30"], "bus.hwm = 1000000000000000019884624838656 is out of range; allowed: 2 to 100000"),
    ("", ["sources.fps=-inf"], "sources.fps = -inf is not a finite number"),
    ('sources = 3\n', ["sources.fps=2"], "--set 'sources.fps=2': sources must be a table"),
    ("", ["sources.fps=25\nbus.hwm=3"], "a value is one line"),
    ("", ["sources.video.kind=file"], "unknown key 'sources.video.kind'"),
    ("", ["nosuch.key=1"], "unknown key 'nosuch'; allowed keys in the config: bus, sources"),
])
def test_bad_values_name_the_key_and_what_is_allowed(tmp_path, toml, overrides, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    assert message in str(err.value)


def test_a_config_path_that_is_a_directory_or_not_text_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .* cannot be read \(Is a directory\); pass a readable"):
        load_config(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[sources]\x00")
    with pytest.raises(ConfigError, match="binary.toml is not valid TOML"):
        load_config(binary)
