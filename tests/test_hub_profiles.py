"""The voice and text model profiles, published on the Hugging Face hub as PyTorch weights.

The real weights cannot be downloaded here, so stand-ins in each repository's exact format (the real
architecture and config, random weights, made with transformers: exporters/hub_profiles.py) are served
by a real HTTP server started in the test, which answers as the hub does: ``/{repo}/resolve/{commit}/
{path}``, the commit in ``X-Repo-Commit``, a small file's git blob id as its ETag, a weights file's
sha256 as ``X-Linked-Etag`` on a redirect to another host (the hub's CDN). ``moodwire models fetch``
checks, downloads and exports them; the parity tests then hold moodwire's path (its preprocessing, the
exported ONNX through the engine interface, its postprocessing) against transformers' own pipelines on
the same weights and inputs.
"""

from __future__ import annotations

import hashlib
import http.server
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from moodwire.engines import goemotions_spec, profiles, wav2vec2_er_spec
from moodwire.engines.activations import softmax
from moodwire.engines.registry import ChecksumMismatch, ModelError
from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.labels import GOEMOTIONS_LABELS, LABELS
from moodwire.pipeline.runtime import model_fetch
from tests.test_profiles import serving

transformers = pytest.importorskip("transformers", reason="transformers is installed by tools/setup.sh --dev "
                                                          "(the profiles extra)")

VOICE = profiles.SUPERB_WAV2VEC2_ER
TEXT = profiles.GOEMOTIONS_ROBERTA
LFS = {"pytorch_model.bin", "model.safetensors"}  # what the hub keeps in LFS (sha256 ETag, served from its CDN)
PARITY_TOLERANCE = 1e-5  # absolute, on probabilities (both sides run the same weights in float32)
INPUT_TOLERANCE = 1e-5  # absolute, on the normalised waveform
SENTENCES = ("I am so happy to see you again today!", "This is terrible and I hate it.",
             "Oh no, I am really scared of that.", "The meeting is at three o'clock.", "ok")


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> dict[str, Path]:
    from moodwire.exporters.hub_profiles import make_roberta_standin, make_wav2vec2_er_standin

    root = tmp_path_factory.mktemp("hub-standins")
    return {VOICE.name: make_wav2vec2_er_standin(root / "voice", VOICE.labels),
            TEXT.name: make_roberta_standin(root / "text", TEXT.labels)}


class Hub(http.server.ThreadingHTTPServer):
    """Answers HEAD and GET on the hub's resolve paths of the files ``publish`` was given."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}  # resolve path -> content
        self.cdn: dict[str, bytes] = {}  # sha256 -> what the CDN serves under it
        self.commit = ""  # answer for this commit instead of the one asked for
        self.requests: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def publish(self, profile: profiles.ModelProfile, folder: Path) -> None:
        for file in profile.files:
            body = (folder / file.path).read_bytes()
            self.files[profile.url(file, self.url).removeprefix(self.url)] = body
            self.cdn[hashlib.sha256(body).hexdigest()] = body


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Hub

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server API
        self._answer(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        self.server.requests.append((self.command, self.path))
        if self.path.startswith("/cdn/"):
            body = self.server.cdn.get(self.path.removeprefix("/cdn/"))
            return self._send(404, b"", {}, send_body) if body is None else self._send(200, body, {}, send_body)
        body = self.server.files.get(self.path)
        if body is None:
            return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, send_body)
        name = self.path.rsplit("/", 1)[-1]
        commit = self.server.commit or self.path.split("/resolve/", 1)[1].split("/", 1)[0]
        headers = {"X-Repo-Commit": commit}
        if name in LFS:
            sha = hashlib.sha256(body).hexdigest()
            port = self.server.server_address[1]
            headers.update({"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(body)),
                            "Location": f"http://localhost:{port}/cdn/{sha}"})  # another host, as the CDN is
            return self._send(302, b"", headers, send_body)
        blob = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()  # git's blob id
        headers["ETag"] = f'"{blob}"'
        self._send(200, body, headers, send_body)

    def _send(self, status: int, body: bytes, headers: dict[str, str], send_body: bool) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def hub_with(standins: dict[str, Path]) -> Hub:
    server = Hub()
    for profile in (VOICE, TEXT):
        server.publish(profile, standins[profile.name])
    return server


@pytest.fixture
def hub(standins) -> Iterator[Hub]:
    with serving(hub_with(standins)) as server:
        yield server


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ------------------------------------------------------------------ fetch


def test_hub_profiles_are_pinned_to_full_commits_and_resolve_as_huggingface_hub_builds_urls():
    from huggingface_hub import hf_hub_url

    for profile in (VOICE, TEXT):
        assert len(profile.revision) == 40 and profile.on_hub and profile.exported == "model.onnx"
        for file in profile.files:
            assert file.hub_checked and not (file.sha256 or file.git_blob)
            assert profile.url(file) == hf_hub_url(profile.repo, file.path, revision=profile.revision)


def test_fetch_checks_each_file_against_the_hub_then_exports_the_onnx(hub, cache):
    model_fetch.fetch_profile(VOICE, hub.url, progress=lambda line: None)
    manifest = profiles.read_manifest(VOICE)
    assert set(manifest["sha256"]) == {"config.json", "preprocessor_config.json", "pytorch_model.bin", "model.onnx"}
    for name, sha in manifest["sha256"].items():
        assert hashlib.sha256((VOICE.folder / name).read_bytes()).hexdigest() == sha
    assert profiles.profile_ready(VOICE) and profiles.fetched_file(VOICE).name == "model.onnx"
    asked = {(method, path.rsplit("/", 1)[-1]) for method, path in hub.requests}
    assert ("HEAD", "pytorch_model.bin") in asked and ("HEAD", "config.json") in asked  # the hub's digests
    weights_sha = manifest["sha256"]["pytorch_model.bin"]
    assert ("GET", weights_sha) in asked  # the weights came from the "CDN" the hub redirected to


def test_bytes_that_differ_from_the_hub_s_digest_are_refused_and_nothing_is_installed(hub, cache, standins):
    body = (standins[TEXT.name] / "model.safetensors").read_bytes()
    hub.cdn[hashlib.sha256(body).hexdigest()] = body[:-8] + b"\0" * 8  # the CDN serves other bytes
    with pytest.raises(ChecksumMismatch, match="hub's sha256 at the pinned commit"):
        model_fetch.fetch_profile(TEXT, hub.url, progress=lambda line: None)
    assert not profiles.profile_ready(TEXT)
    assert not list(TEXT.folder.glob("*.part")) and not (TEXT.folder / "model.safetensors").exists()


def test_an_answer_for_another_commit_is_refused(hub, cache):
    hub.commit = "0" * 40
    with pytest.raises(ChecksumMismatch, match=f"answered for commit {'0' * 40}.*pinned to {VOICE.revision}"):
        model_fetch.fetch_profile(VOICE, hub.url, progress=lambda line: None)
    assert profiles.read_manifest(VOICE) is None


def test_a_file_the_hub_does_not_have_names_the_url(hub, cache):
    hub.files = {path: body for path, body in hub.files.items() if not path.endswith("/tokenizer.json")}
    with pytest.raises(ModelError, match=r"tokenizer\.json: the hub answered"):
        model_fetch.fetch_profile(TEXT, hub.url, progress=lambda line: None)


def test_a_repository_whose_labels_changed_is_refused_at_export(cache, tmp_path):
    from moodwire.exporters.hub_profiles import make_wav2vec2_er_standin

    server = Hub()
    server.publish(VOICE, make_wav2vec2_er_standin(tmp_path / "other", ("a", "b", "c", "d")))
    with serving(server), pytest.raises(ModelError, match=r"labels \('a', 'b', 'c', 'd'\) differ.*needs a new pin"):
        model_fetch.fetch_profile(VOICE, server.url, progress=lambda line: None)
    assert profiles.read_manifest(VOICE) is None


def test_without_transformers_nothing_downloads_and_the_error_names_the_extra(hub, cache, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    with pytest.raises(ModelError, match=r"needs transformers; run `pip install 'moodwire\[profiles\]'`"):
        model_fetch.fetch_profile(TEXT, hub.url, progress=lambda line: None)
    assert hub.requests == []


def test_the_voice_and_text_switches_select_their_profiles(cache):
    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.runtime.process_table import get_node

    config = Config()
    config.voice.profile, config.text.profile = VOICE.name, TEXT.name
    assert profiles.selected_names(config) == (VOICE.name, TEXT.name)
    assert get_node("text").exports(config) == ()  # the packaged text encoder is not needed
    with pytest.raises(ModelError, match=f"models fetch {VOICE.name}"):
        profiles.check_selected(config)
    config.voice.profile = TEXT.name
    with pytest.raises(ModelError, match=f"no voice profile '{TEXT.name}'"):
        profiles.selected_profiles(config)


# ------------------------------------------------------------------ parity with transformers' pipelines


@pytest.fixture(scope="module")
def fetched(standins, tmp_path_factory) -> Iterator[Path]:
    """Both profiles fetched by the ``moodwire models fetch`` command into a cache of their own (the env set for
    this module)."""
    cache_home = tmp_path_factory.mktemp("hub-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache_home))
        from moodwire.pipeline.runtime.cli import main

        with serving(hub_with(standins)) as server:
            for profile in (VOICE, TEXT):
                assert main(["models", "fetch", profile.name, "--base-url", server.url]) == 0
        yield cache_home


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    """Real speech: three 16 kHz int16 stretches of different lengths."""
    from moodwire.tools.media.real_speech import FetchError, real_speech_clips

    try:
        samples = [c for c in real_speech_clips() if c.name == "jfk"][0].samples()
    except FetchError as exc:
        pytest.skip(f"the real speech packages cannot be fetched here: {exc}")
    return [samples[:16000 * 2], samples[16000 * 3:16000 * 6 + 123], samples[16000 * 7:]]


def test_the_waveform_is_normalised_as_the_feature_extractor_does(fetched, standins, speech):
    from transformers import AutoFeatureExtractor

    extractor = AutoFeatureExtractor.from_pretrained(standins[VOICE.name])
    for clip in speech:
        audio = clip.astype(np.float32) / 32768
        want = extractor(audio, sampling_rate=16000, return_tensors="np").input_values
        ours = wav2vec2_er_spec.preprocess(clip, do_normalize=True)
        assert ours.shape == want.shape and np.max(np.abs(ours - want)) < INPUT_TOLERANCE
        # a preprocessing that skips the normalisation fails the same check
        assert np.max(np.abs(wav2vec2_er_spec.preprocess(clip, do_normalize=False) - want)) > 100 * INPUT_TOLERANCE


def test_voice_probabilities_match_the_audio_classification_pipeline(fetched, standins, speech):
    from transformers import pipeline

    from moodwire.pipeline.voice.profile_model import load_profile_voice_model

    reference = pipeline("audio-classification", model=str(standins[VOICE.name]), top_k=None, device="cpu")
    ours = load_profile_voice_model(VOICE.name)
    assert ours.raw_labels == VOICE.labels and ours.do_normalize
    for clip in speech:
        got = {d["label"]: d["score"] for d in reference({"raw": clip.astype(np.float32) / 32768,
                                                          "sampling_rate": 16000})}
        want = np.array([got[label] for label in VOICE.labels])
        x = wav2vec2_er_spec.preprocess(clip, ours.do_normalize)
        (logits,) = ours.engine.run({wav2vec2_er_spec.INPUT_NAME: x})
        raw = softmax(np.asarray(logits, np.float64)[0])
        assert np.max(np.abs(raw - want)) < PARITY_TOLERANCE
        prediction = ours.predict(clip, 16000)
        assert prediction.labels == list(LABELS) and np.allclose(prediction.probs, raw @ ours._fold, atol=1e-6)
        assert prediction.probs[LABELS.index("fear")] == 0.0  # IEMOCAP's four classes have no fear
        assert 0 < prediction.valence_confidence <= 0.3


def test_text_tokens_and_scores_match_the_text_classification_pipeline(fetched, standins):
    from transformers import AutoTokenizer, pipeline

    from moodwire.pipeline.text.profile_model import load_profile_text_classifier

    folder = str(standins[TEXT.name])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    reference = pipeline("text-classification", model=folder, top_k=None, device="cpu")
    ours, backend = load_profile_text_classifier(TEXT.name)
    assert ours.sigmoid and ours.raw_labels == GOEMOTIONS_LABELS and backend
    for sentence in SENTENCES:
        assert goemotions_spec.encode(ours.tokenizer, sentence)["input_ids"][0].tolist() == \
            tokenizer(sentence)["input_ids"]
        got = {d["label"]: d["score"] for d in reference([sentence])[0]}
        want = np.array([got[label] for label in GOEMOTIONS_LABELS])
        score = ours.score(sentence)
        assert np.max(np.abs(score.raw - want)) < PARITY_TOLERANCE
        assert np.isclose(score.probs.sum(), 1, atol=1e-5) and len(score.probs) == len(LABELS)
        # a softmax where the model's labels are independent fails the same check
        (logits,) = ours.engine.run(goemotions_spec.encode(ours.tokenizer, sentence))
        assert np.max(np.abs(goemotions_spec.activate(logits[0], sigmoid=False) - want)) > 100 * PARITY_TOLERANCE


def test_goemotions_labels_fold_onto_the_seven_by_ekman_group():
    from moodwire.pipeline.core.labels import GOEMOTIONS_TO_LABELS, fold_matrix
    from moodwire.pipeline.text.profile_model import fold

    matrix = fold_matrix(GOEMOTIONS_LABELS, GOEMOTIONS_TO_LABELS)
    for name, expected in (("gratitude", "happy"), ("annoyance", "angry"), ("nervousness", "fear"),
                           ("remorse", "sad"), ("curiosity", "surprise"), ("neutral", "neutral")):
        raw = np.full(len(GOEMOTIONS_LABELS), 0.01)
        raw[GOEMOTIONS_LABELS.index(name)] = 0.9
        probs = fold(raw, matrix, independent=True)
        assert LABELS[int(np.argmax(probs))] == expected and np.isclose(probs.sum(), 1)
    # two members of one group: at least one applies, 1 - (1 - 0.5)(1 - 0.5) = 0.75, not 1.0
    raw = np.zeros(len(GOEMOTIONS_LABELS))
    raw[[GOEMOTIONS_LABELS.index("anger"), GOEMOTIONS_LABELS.index("annoyance")]] = 0.5
    raw[GOEMOTIONS_LABELS.index("neutral")] = 0.75
    probs = fold(raw, matrix, independent=True)
    assert np.isclose(probs[LABELS.index("angry")], probs[LABELS.index("neutral")])


# ------------------------------------------------------------------ all three profiles in one run


@pytest.fixture
def all_fetched(fetched, tmp_path, monkeypatch, session_cache) -> Path:
    """A user cache with the voice and text stand-ins fetched (above) and the face stand-in fetched by the
    face profile's own fixture's route; the packaged exported models shared with the session's cache."""
    from tests.test_profiles import PROFILE as FACE
    from tests.test_profiles import fetch_face_standin

    cache = tmp_path / "xdg"
    (cache / "moodwire" / "profiles").mkdir(parents=True)
    (cache / "moodwire" / "models").symlink_to(session_cache / "moodwire" / "models", target_is_directory=True)
    for profile in (VOICE, TEXT):
        (cache / "moodwire" / "profiles" / profile.name).symlink_to(
            fetched / "moodwire" / "profiles" / profile.name, target_is_directory=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    fetch_face_standin(monkeypatch, cache)
    assert all(profiles.profile_ready(profiles.get_profile(n)) for n in (FACE.name, VOICE.name, TEXT.name))
    return cache


@pytest.mark.slow
def test_moodwire_run_with_all_three_profiles_carries_their_outputs_and_names_them(
        all_fetched, start_pipeline, isolated_env, talking_face):
    from tests.test_profiles import PROFILE as FACE
    from tests.test_profiles import SOURCE as FACE_SOURCE

    isolated_env["XDG_CACHE_HOME"] = str(all_fetched)
    pipeline = start_pipeline("--source", str(talking_face), "--set", f"face.profile={FACE.name}",
                              "--set", f"voice.profile={VOICE.name}", "--set", f"text.profile={TEXT.name}")
    pipeline.collect("face.tracks", 5, timeout=60.0)  # the face node is up
    sub = Subscriber(pipeline.endpoint, ["affect.utterance", "voice.affect", "text.affect"], queue_everything=True)
    got: dict[str, list] = {"affect.utterance": [], "voice.affect": [], "text.affect": []}
    try:
        frames = pipeline.collect("affect.frame", 30, timeout=30.0)
        faces = [i for m in frames for p in m.persons for i in p.inputs if i.modality == "face" and i.present]
        assert faces and all(i.source == FACE_SOURCE for i in faces), pipeline.output()
        while not _has_all_three(got["affect.utterance"]):
            item = sub.recv(timeout=40.0)
            if item is None:
                break
            got[item.topic].append(item.msg)
    finally:
        sub.close()
    assert _has_all_three(got["affect.utterance"]), (
        f"{len(got['affect.utterance'])} affect.utterance without all three; output:\n{pipeline.output()}")
    voice = [v for v in got["voice.affect"] if v.valid]
    assert voice and all(v.model.startswith(VOICE.name) and len(v.probs) == 7 and v.valence is not None
                         for v in voice)
    text = [t for t in got["text.affect"] if t.valid]
    assert text and all(t.method.startswith(TEXT.name) for t in text)
    utterance = next(u for u in got["affect.utterance"] if _has_all_three([u]))
    inputs = {i.modality: i for i in utterance.inputs}
    assert inputs["face"].source == FACE_SOURCE
    assert VOICE.name in inputs["voice"].source and len(inputs["voice"].probs) == 7
    assert inputs["text"].source.startswith(TEXT.name) and len(inputs["text"].probs) == 7


def _has_all_three(utterances: list) -> bool:
    return any(all(i.present for i in u.inputs) and len(u.inputs) == 3 for u in utterances)


@pytest.fixture(scope="module")
def talking_face(reference_clips, tmp_path_factory) -> Path:
    from tests.test_profiles import make_talking_face

    return make_talking_face(reference_clips, tmp_path_factory)

