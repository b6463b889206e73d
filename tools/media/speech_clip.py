"""The benchmarks' clip: the real one-face footage with espeak-ng sentences in its audio track.

Sentences of about 5 s each (espeak-ng, en-us, 140 wpm), with 2.5 s pauses after a 5 s lead of
silence (the nodes load meanwhile), as a WAV; and the same speech muxed (PCM, lossless) into a Matroska
file with the carphone footage of reference.py (640x480, 30 fps, played forward and backward for as
long as the speech lasts). Both are made once into the user cache, keyed by the speech's content.
Used by tools/bench_speech.py, bench_affect.py, bench.py, soak.py and faults.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

SENTENCES = (  # each about 5 s at 140 wpm (4.4 to 5.4 s)
    "I was thinking we could go for a long walk by the river this afternoon.",
    "The printer on the second floor has been broken since last Tuesday morning.",
    "Could you please send me the notes from the meeting before the end of the day?",
    "My neighbour has a small brown dog that barks every time the doorbell rings.",
    "We should book the train tickets early because the prices go up in the summer.",
    "After dinner we watched an old film and then went to bed quite late.",
    "The weather forecast says it will be sunny and warm for the rest of the week.",
    "I have to pick up my brother from the airport at seven this evening.",
)
GAP_S, LEAD_S, WPM = 2.5, 5.0, 140
FPS = 30


def make_media(count: int) -> tuple[Path, Path, list, float]:
    """(wav, mkv with the face video, sentence spans, seconds) for the first ``count`` sentences."""
    from moodwire.pipeline.core.paths import cache_dir
    from moodwire.pipeline.sources.spoken import Voice, spoken_script, write_wav

    script = spoken_script(list(SENTENCES[:count]), gap_s=GAP_S, lead_s=LEAD_S, voice=Voice(speed_wpm=WPM))
    key = hashlib.sha256(script.samples.tobytes()).hexdigest()[:12]
    folder = cache_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    wav, mkv = folder / f"speech_{key}.wav", folder / f"speech_face_{key}.mkv"
    if not wav.is_file():
        write_wav(wav.with_suffix(".part.wav"), script.samples).replace(wav)
    if not mkv.is_file():
        mux_face_video(mkv, script.samples)
    return wav, mkv, script.spans, script.samples.size / 16000


def face_frames() -> list[np.ndarray]:
    """The carphone face, forward then backward (no jump when repeated)."""
    from moodwire.pipeline.core.paths import cache_dir

    from .reference import carphone_640x480, read_frames

    forward = read_frames(carphone_640x480(cache_dir() / "reference"))[:120]
    return forward + forward[::-1]


def mux_face_video(path: Path, audio: np.ndarray) -> None:
    """H.264 video of the face for as long as ``audio`` lasts, plus ``audio`` as 16-bit PCM."""
    import av

    frames = face_frames()
    count = int(np.ceil(audio.size / 16000 * FPS))
    per_frame = 16000 // FPS
    tmp = path.with_suffix(".part.mkv")
    with av.open(str(tmp), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": "veryfast", "crf": "20"})
        video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        for i in range(count):
            out.mux(video.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="bgr24")))
            block = audio[i * per_frame:(i + 1) * per_frame]
            if block.size:
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block.reshape(1, -1)), format="s16",
                                                   layout="mono")
                frame.sample_rate, frame.pts = 16000, i * per_frame
                out.mux(sound.encode(frame))
        out.mux(video.encode(None))
        out.mux(sound.encode(None))
    tmp.replace(path)
