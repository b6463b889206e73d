"""Active-speaker attribution: the rule on constructed series, mouth openness on real faces, and
the two-face clip (tools/media/two_faces.py: two real faces side by side, the left one
talking; its audio is CONSTRUCTED to follow the left mouth, so these tests check attribution on
real faces and real mouth movement, not lip-reading of real speech)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from moodwire.pipeline.core.audio import AUDIO_CHUNK, AUDIO_RATE
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.messages import AudioChunk, VideoFrame
from moodwire.pipeline.fusion.speaker import MOTION_FULL, attribute_speaker, audio_envelope, mouth_openness
from moodwire.pipeline.sources.spoken import espeak_available

T0 = 10**12
FRAME_NS = 1_000_000_000 // 30
FUSION = Config().fusion
MIN, MARGIN = FUSION.speaker_min_score, FUSION.speaker_margin

# ---------------------------------------------------------------- the rule on constructed series


def voice_level(t: np.ndarray) -> np.ndarray:
    """A syllable-like loudness: bursts at about 4 Hz with uneven heights, silent between."""
    return np.clip(np.sin(2 * np.pi * 4.1 * t), 0, None) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t))


def envelope(seconds: float = 3.0) -> list[tuple[int, float]]:
    t = np.arange(int(seconds / 0.02)) * 0.02 + 0.01
    return [(T0 + int(s * 1e9), 0.002 + 0.2 * float(v)) for s, v in zip(t, voice_level(t))]


def mouth(values, seconds: float = 3.0, start_s: float = 0.0) -> list[tuple[int, float]]:
    """Frames at 30 fps from ``start_s`` to ``seconds``; ``values(t)`` gives each openness."""
    t = np.arange(int(start_s * 30), int(seconds * 30)) / 30
    return [(T0 + int(s * 1e9), float(v)) for s, v in zip(t, values(t))]


def SPEAKING(t: np.ndarray) -> np.ndarray:
    """Opens with the voice, plus landmarker-like jitter."""
    return 0.05 + 0.4 * voice_level(t) + np.random.default_rng(7).normal(0, 0.03, t.size)


def OTHER_TALK(t: np.ndarray) -> np.ndarray:
    """Moves as much, at its own rhythm."""
    return 0.05 + 0.2 * np.clip(np.sin(2 * np.pi * 2.3 * t + 1.0), 0, None)


def STILL(t: np.ndarray) -> np.ndarray:
    return 0.03 + np.random.default_rng(8).normal(0, 0.002, t.size)
END = T0 + 3 * 10**9


def attribute(tracks: dict[int, list[tuple[int, float]]], env=None):
    return attribute_speaker(tracks, envelope() if env is None else env, T0, END, MIN, MARGIN)


def test_the_face_whose_mouth_moves_with_the_voice_is_named():
    result = attribute({3: mouth(OTHER_TALK), 7: mouth(SPEAKING)})
    assert result.track_id == 7, result
    assert result.scores[7] > 0.8 and result.scores[7] - result.scores[3] > MARGIN
    assert result.reason.startswith("mouth moved with the voice")


def test_a_single_face_speaking_is_named_as_the_only_face_in_view():
    result = attribute({4: mouth(SPEAKING)})
    assert result.track_id == 4 and "only face in view" in result.reason


def test_two_equally_good_faces_are_ambiguous_not_a_guess():
    series = mouth(SPEAKING)
    result = attribute({1: series, 2: [(t + 1, v) for t, v in series]})
    assert result.track_id is None and result.reason.startswith("ambiguous: scores")
    assert abs(result.scores[1] - result.scores[2]) < 0.01


def test_no_face_in_view():
    result = attribute({})
    assert result.track_id is None and result.reason == "no face in view during the utterance"
    assert result.scores == {}
    outside = [(END + 10**9, 0.5), (END + 2 * 10**9, 0.1)]  # frames after the utterance do not count
    assert attribute({5: outside}).reason == "no face in view during the utterance"


def test_a_track_seen_for_a_fraction_of_the_utterance_is_not_a_candidate():
    partial = mouth(SPEAKING, seconds=3.0, start_s=2.0)  # only the last third
    alone = attribute({9: partial})
    assert alone.track_id is None and alone.scores == {}
    assert alone.reason.startswith("no face in view for most of the utterance") and "track 9 3" in alone.reason
    with_other = attribute({9: partial, 2: mouth(OTHER_TALK)})
    assert 9 not in with_other.scores and 2 in with_other.scores


def test_a_track_with_a_short_dropout_is_still_a_candidate():
    series = [p for p in mouth(SPEAKING) if not T0 + 10**9 <= p[0] < T0 + 1_200_000_000]
    assert attribute({1: series}).track_id == 1


def test_a_still_face_scores_low_even_when_its_jitter_follows_the_voice():
    # jitter perfectly correlated with the voice, but tiny: the movement cue keeps it low
    def jitter(t: np.ndarray) -> np.ndarray:
        return 0.03 + 0.004 * voice_level(t)

    result = attribute({1: mouth(jitter), 2: mouth(STILL)})
    assert result.track_id is None
    assert result.reason.startswith("no face moved its mouth with the voice (best score")
    assert max(result.scores.values()) < 0.1 < MIN
    assert np.std([v for _, v in mouth(jitter)]) < MOTION_FULL


def test_a_moving_mouth_out_of_step_with_the_voice_is_not_named():
    result = attribute({1: mouth(OTHER_TALK)})
    assert result.track_id is None and result.scores[1] < MIN


def test_a_flat_envelope_names_nobody():
    flat = [(t, 0.01) for t, _ in envelope()]
    result = attribute({1: mouth(SPEAKING)}, env=flat)
    assert result.track_id is None and "no voice envelope" in result.reason


def test_audio_envelope_is_rms_per_20ms_frame_at_frame_centres():
    t = np.arange(AUDIO_RATE) / AUDIO_RATE
    tone = (np.sin(2 * np.pi * 200 * t) * 16384).astype(np.int16)
    tone[AUDIO_RATE // 2:] = 0
    env = audio_envelope(tone[:-100], T0, AUDIO_RATE)  # a trailing partial frame is dropped
    assert len(env) == 49
    assert env[0][0] == T0 + 10_000_000 and env[1][0] - env[0][0] == 20_000_000
    assert env[0][1] == pytest.approx(0.5 / np.sqrt(2), abs=0.01)
    assert env[-1][1] == 0.0
    floats = audio_envelope(tone.astype(np.float32) / 32768, T0, AUDIO_RATE)
    assert floats[0][1] == pytest.approx(env[0][1], abs=1e-4)


def test_mouth_openness_weights_jaw_and_lower_lip():
    names = ["jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthClose"]
    assert mouth_openness(np.array([0.4, 0.2, 0.6, 0.9]), names) == pytest.approx(0.4)
    assert mouth_openness(np.zeros(4), names) == 0.0
    with pytest.raises(KeyError, match="jawOpen"):
        mouth_openness(np.zeros(2), ["mouthLowerDownLeft", "mouthLowerDownRight"])


# ---------------------------------------------------------------- real faces


@pytest.fixture(scope="module")
def step(face_models):
    from moodwire.pipeline.face.step import build_face_step

    built = build_face_step()
    yield built
    built.close()


def video_frames(images: list[np.ndarray]) -> list[VideoFrame]:
    return [VideoFrame(frame_index=i, width=img.shape[1], height=img.shape[0], fps_nominal=30.0, image=img,
                       t_capture=T0 + i * FRAME_NS) for i, img in enumerate(images)]


def test_mouth_openness_on_a_real_face_tells_open_from_closed(step):
    from moodwire.pipeline.face.tracking import FaceTracker
    from moodwire.tools.media.reference import packaged_clip, read_frames

    step.tracker = FaceTracker(step.tracker.settings)
    found = [step.analyse(f) for f in video_frames(read_frames(packaged_clip("carphone_pristine.mp4")))]
    names = found[0].blendshape_names
    shapes = np.stack([m.faces[0].blendshapes for m in found if m.faces])
    jaw = shapes[:, names.index("jawOpen")]
    openness = np.array([mouth_openness(s, names) for s in shapes])
    assert len(shapes) >= 115 and 0 <= openness.min() and openness.max() <= 1
    assert openness[jaw.argmax()] > 0.4 and openness[jaw.argmin()] < 0.1  # widest vs most closed jaw
    assert np.corrcoef(openness, jaw)[0, 1] > 0.8
    assert (openness > 0.2).sum() >= 15 and (openness < 0.05).sum() >= 40  # he talks, with pauses


# ---------------------------------------------------------------- the two-face clip


@dataclass
class Faces:
    left_id: int
    right_id: int
    mouth: dict[int, list[tuple[int, float]]]  # track id -> (capture ns, openness) per frame


def faces_of(step, path: Path) -> Faces:
    """The face step over every frame: two tracks, told apart by which half of the picture they are in."""
    from moodwire.pipeline.face.tracking import FaceTracker
    from moodwire.tools.media.reference import read_frames

    step.tracker = FaceTracker(step.tracker.settings)
    mouth: dict[int, list[tuple[int, float]]] = {}
    xs: dict[int, list[float]] = {}
    frames = video_frames(read_frames(path, size=None))
    for frame in frames:
        msg = step.analyse(frame)
        for face in msg.faces:
            mouth.setdefault(face.track_id, []).append((msg.t_capture, mouth_openness(face.blendshapes,
                                                                                        msg.blendshape_names)))
            xs.setdefault(face.track_id, []).append((face.box[0] + face.box[2]) / 2)
    assert len(mouth) == 2 and all(len(s) >= 0.95 * len(frames) for s in mouth.values()), \
        {k: len(v) for k, v in mouth.items()}
    left_id, right_id = sorted(mouth, key=lambda k: np.mean(xs[k]))
    assert np.max(xs[left_id]) < 320 < np.min(xs[right_id])
    return Faces(left_id, right_id, mouth)


def speech_of(path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, int]]]:
    """The clip's audio: its envelope, and its utterances (capture ns spans) as the VAD step finds them."""
    from moodwire.pipeline.vad.step import build_vad_step
    from moodwire.tools.media.two_faces import read_audio

    samples = read_audio(path)
    vad = build_vad_step()
    events = []
    for k in range(samples.size // AUDIO_CHUNK):
        chunk = AudioChunk(chunk_index=k, sample_rate=AUDIO_RATE, t_capture=T0 + k * 20_000_000,
                           samples=samples[k * AUDIO_CHUNK:(k + 1) * AUDIO_CHUNK])
        events += [m for topic, m in vad.process("audio.chunk", chunk) if topic == "speech.vad"]
    events += [m for topic, m in vad.finish() if topic == "speech.vad"]
    return audio_envelope(samples, T0, AUDIO_RATE), [(e.t_start, e.t_end) for e in events if e.kind == "end"]


@pytest.fixture(scope="module")
def clips(session_cache):
    from moodwire.tools.media.two_faces import two_faces

    folder = session_cache / "reference"
    folder.mkdir(exist_ok=True)
    return lambda right, audio: two_faces(folder, right, audio)


@pytest.fixture(scope="module")
def faces(step, clips):
    """Face analysis per right-face variant, done once: the picture does not depend on the audio variant."""
    done: dict[str, Faces] = {}

    def get(right: str) -> Faces:
        if right not in done:
            done[right] = faces_of(step, clips(right, "shaped").path)
        return done[right]
    return get


def check_utterances_follow_spans(clip, utterances: list[tuple[int, int]]) -> None:
    """Each VAD utterance holds at least one constructed speech span, and every span is in one."""
    inside = [[a <= T0 + s * 1e9 and T0 + e * 1e9 <= b for s, e in clip.speech_spans] for a, b in utterances]
    assert len(utterances) >= 3 and all(any(row) for row in inside), (utterances, clip.speech_spans)
    assert all(any(col) for col in zip(*inside))


@pytest.mark.slow
@pytest.mark.skipif(not espeak_available(), reason="the clip's voice is made by espeak-ng")
@pytest.mark.parametrize("right", ["still", "desync"])
def test_two_faces_one_speaking_every_utterance_names_the_left_face(faces, clips, right):
    """still: the right face is a frozen picture; desync: it moves its mouth as much, out of step."""
    clip = clips(right, "shaped")
    seen = faces(right)
    envelope, utterances = speech_of(clip.path)
    check_utterances_follow_spans(clip, utterances)
    for a, b in utterances:
        result = attribute_speaker(seen.mouth, envelope, a, b, MIN, MARGIN)
        print(f"{right}: {(a - T0) / 1e9:.2f}-{(b - T0) / 1e9:.2f} s left {result.scores[seen.left_id]:.2f} "
              f"right {result.scores[seen.right_id]:.2f}")
        assert result.track_id == seen.left_id, result
        assert result.scores[seen.left_id] > 0.6 and result.scores[seen.right_id] < 0.35


@pytest.mark.slow
@pytest.mark.skipif(not espeak_available(), reason="the clip's voice is made by espeak-ng")
def test_gated_voice_with_an_out_of_step_talker_is_never_given_to_the_wrong_face(faces, clips):
    """The hardest variant: the voice is only placed where the left mouth moves (its loudness does not
    follow the mouth) and the right face talks out of step. The rule may find it ambiguous; it must
    not name the right face."""
    clip = clips("desync", "gated")
    seen = faces("desync")  # the same picture as the shaped clip's
    envelope, utterances = speech_of(clip.path)
    check_utterances_follow_spans(clip, utterances)
    results = [attribute_speaker(seen.mouth, envelope, a, b, MIN, MARGIN) for a, b in utterances]
    for (a, b), r in zip(utterances, results):
        print(f"desync gated: {(a - T0) / 1e9:.2f}-{(b - T0) / 1e9:.2f} s {r.track_id} {r.scores} {r.reason}")
    assert all(r.track_id in (seen.left_id, None) for r in results)
    assert all(r.reason.startswith("ambiguous") for r in results if r.track_id is None)
    assert sum(r.track_id == seen.left_id for r in results) >= 2


@pytest.mark.slow
@pytest.mark.skipif(not espeak_available(), reason="the clip's voice is made by espeak-ng")
def test_gated_voice_beside_a_still_face_names_the_left_face(faces, clips):
    """The voice is only placed where the left mouth moves, at full loudness: its loudness does not
    follow the mouth, so the left face's scores are lower than with shaped audio, but still enough."""
    clip = clips("still", "gated")
    seen = faces("still")
    envelope, utterances = speech_of(clip.path)
    check_utterances_follow_spans(clip, utterances)
    for a, b in utterances:
        result = attribute_speaker(seen.mouth, envelope, a, b, MIN, MARGIN)
        print(f"still gated: {(a - T0) / 1e9:.2f}-{(b - T0) / 1e9:.2f} s {result.scores}")
        assert result.track_id == seen.left_id, result
        assert result.scores[seen.right_id] < 0.1
