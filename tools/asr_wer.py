"""Word error rate of the speech path as it really runs: espeak-ng speech through VAD and ASR.

The sentences (default ``tools/data/speech_sentences.txt``: everyday English, not picked for
the recogniser) are spoken by espeak-ng one after another with silences between them
(``pipeline/sources/spoken.py``), written to a WAV, and played by the real pipeline:
``moodwire run --source WAV`` with the audio source, VAD and ASR as separate processes over
ZeroMQ (face, voice, text and fusion off). This tool subscribes to the public
endpoint, collects ``speech.vad`` and the final ``speech.transcript`` of every utterance,
checks that every sentence became exactly one utterance (by overlap of capture times with
where the sentence lies in the WAV), and scores each sentence's transcript.

WER = word-level Levenshtein distance (substitutions + deletions + insertions) summed over
sentences / reference words. Both sides are normalised the same way first: lower case, hyphens
to spaces, every character but letters, digits and apostrophes removed, and a number written in
digits from 0 to 99 spelled out ("10" -> "ten"); nothing else (no spelling variants).

    .venv/bin/python -m tools.asr_wer [--quick] [--model tiny.en|base] [--speed WPM] [--voice NAME]
    .venv/bin/python -m tools.asr_wer --real [--model tiny.en|base]

``--real``: instead of espeak-ng, the 11 real recordings of tools/media/real_speech.py (LibriVox,
CMU and JFK clips with their transcripts), and beside the pipeline's WER the WER faster-whisper gives
on each clip alone (the same model, faster-whisper's own defaults: beam 5, no VAD, the whole clip at
once), so the cost of streaming (VAD cuts, greedy decoding per utterance) is one difference of two
figures on the same audio.

The speech is paced in real time, so a run lasts about as long as the speech (about 65 s; the
first ``--lead`` seconds of silence let the nodes load). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moodwire.pipeline.core.messages import AudioChunk, FaceTracks, SpeechEvent, Transcript, VoiceAffect

from .harness.baseline import Baseline
from .harness.launch import PipelineRun, log_tail
from .harness.machine import announce, shown_path
from .harness.stats import summary

SENTENCES = Path(__file__).resolve().parent / "data" / "speech_sentences.txt"
QUICK_SENTENCES = 4
TARGET_WER = 0.15
CHUNK_S = 0.02  # audio.chunk length (pipeline/sources: 320 samples at 16 kHz)
NORMALISATION = ("lower case; hyphens to spaces; characters other than letters, digits and apostrophes "
                 "removed; numbers 0-99 written in digits spelled out")

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


# ---------------------------------------------------------------- scoring


def spell_number(token: str) -> list[str]:
    """'7' -> ['seven'], '42' -> ['forty', 'two']; other tokens unchanged."""
    if not token.isdigit() or int(token) > 99:
        return [token]
    n = int(token)
    if n < 20:
        return [_ONES[n]]
    return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])


def normalise(text: str) -> list[str]:
    """The words compared (see NORMALISATION)."""
    text = re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " "))
    words = [w.strip("'") for w in text.split()]
    return [part for w in words if w for part in spell_number(w)]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance over words: substitutions + deletions + insertions."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


# ---------------------------------------------------------------- running the pipeline


@dataclass
class Collected:
    """What the public endpoint carried during one run."""

    t0_ns: int | None = None  # capture time of second 0 of the media file
    media_end_s: float = 0.0  # media time just after the last audio chunk seen
    vad: list[SpeechEvent] = field(default_factory=list)
    finals: dict[int, Transcript] = field(default_factory=dict)  # by utterance_id
    partials: list[Transcript] = field(default_factory=list)
    faces: list[FaceTracks] = field(default_factory=list)  # when subscribed
    voice: list[VoiceAffect] = field(default_factory=list)  # when subscribed
    log: str = ""
    stopped_by: str = ""

    def ends(self) -> list[SpeechEvent]:
        return [e for e in self.vad if e.kind == "end"]

    def media_s(self, t_ns: int) -> float:
        return (t_ns - (self.t0_ns or 0)) / 1e9

    def settled(self, transcripts: bool = True) -> bool:
        """Every utterance that started has ended (and has its final transcript)."""
        started = {e.utterance_id for e in self.vad if e.kind == "start"}
        ended = {e.utterance_id for e in self.ends()}
        return started <= ended and (not transcripts or all(uid in self.finals for uid in ended))


def run_pipeline(media: Path, sets: list[str], duration_s: float, topics: tuple[str, ...] = (),
                 transcripts: bool = True, grace_s: float = 60.0, other: Baseline | None = None) -> Collected:
    """``moodwire run --source media`` until the media has played and every utterance has ended and,
    with ``transcripts``, has its final transcript (or ``duration_s + grace_s`` passes); then
    SIGINT, as a user's Ctrl-C. ``other``: run another revision's code (tools/harness/baseline.py)."""
    got = Collected()
    run = PipelineRun.start(["--source", str(media), "--set", "manager.drain_s=60",
                             *[a for s in sets for a in ("--set", s)]],
                            subscribe=["speech.vad", "speech.transcript", "audio.chunk", *topics],
                            env=other.env if other else None, cwd=other.cwd if other else None)
    finished_at: list[float] = []

    def done() -> bool:  # a moment for stragglers once everything is in
        if not (got.media_end_s >= duration_s - 2 * CHUNK_S and got.settled(transcripts)):
            finished_at.clear()
            return False
        finished_at[:] = finished_at or [time.monotonic()]
        return time.monotonic() - finished_at[0] > 1.0

    try:
        why = run.watch(lambda received: _collect(got, received.msg), done, duration_s + grace_s)
        got.stopped_by = why
        run.stop()
        got.log = run.output()
    finally:
        run.close()
    return got


def _collect(got: Collected, msg: Any) -> None:
    if isinstance(msg, AudioChunk):
        if got.t0_ns is None:
            got.t0_ns = msg.t_capture - round(msg.chunk_index * CHUNK_S * 1e9)
        got.media_end_s = max(got.media_end_s, got.media_s(msg.t_capture) + CHUNK_S)
    elif isinstance(msg, SpeechEvent):
        got.vad.append(msg)
    elif isinstance(msg, Transcript):
        if msg.final:
            got.finals[msg.utterance_id] = msg
        else:
            got.partials.append(msg)
    elif isinstance(msg, FaceTracks):
        got.faces.append(msg)
    elif isinstance(msg, VoiceAffect):
        got.voice.append(msg)


# ---------------------------------------------------------------- matching and report


def utterances_per_sentence(spans: list, got: Collected) -> list[list[SpeechEvent]]:
    """For each sentence, the VAD end events whose [t_start, t_end] overlaps its span."""
    return [[e for e in got.ends() if got.media_s(e.t_start) < span.end_s and got.media_s(e.t_end) > span.start_s]
            for span in spans]


def score(spans: list, got: Collected) -> dict[str, Any]:
    matched = utterances_per_sentence(spans, got)
    rows, problems = [], []
    for index, (span, events) in enumerate(zip(spans, matched)):
        hyp_text = " ".join(got.finals[e.utterance_id].text for e in events if e.utterance_id in got.finals)
        ref, hyp = normalise(span.text), normalise(hyp_text)
        rows.append({"sentence": index, "reference": span.text, "hypothesis": hyp_text, "words": len(ref),
                     "errors": edit_distance(ref, hyp), "utterances": len(events)})
        if len(events) != 1:
            problems.append(f"sentence {index} became {len(events)} utterances")
        missing = [e.utterance_id for e in events if e.utterance_id not in got.finals]
        if missing:
            problems.append(f"sentence {index}: no final transcript for utterance(s) {missing}")
    used = {e.utterance_id for events in matched for e in events}
    stray = [e for e in got.ends() if e.utterance_id not in used]
    problems += [f"utterance at {got.media_s(e.t_start):.2f}-{got.media_s(e.t_end):.2f} s overlaps no sentence"
                 for e in stray]
    if sum(len(events) > 0 for events in matched) < len(spans) and got.t0_ns is None:
        problems.append("no audio.chunk seen: the audio source did not run")
    words = sum(r["words"] for r in rows)
    errors = sum(r["errors"] for r in rows)
    return {"rows": rows, "problems": problems, "ref_words": words, "errors": errors,
            "wer": round(errors / words, 4) if words else None, "stray_utterances": len(stray)}


def decode_summary(got: Collected) -> dict[str, Any]:
    return summary((t.decode_ms for t in got.finals.values()), 1)


def print_rows(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        mark = "ok" if r["utterances"] == 1 else f"{r['utterances']} utterances"
        print(f"[{r['sentence']:2d}] {r['errors']}/{r['words']} errors, {mark}")
        print(f"     ref: {r['reference']}")
        print(f"     hyp: {r['hypothesis']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=Path, default=SENTENCES, help="one sentence per line")
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK_SENTENCES} sentences only")
    parser.add_argument("--model", default="tiny.en", choices=("tiny.en", "base"), help="asr.model")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice")
    parser.add_argument("--speed", type=int, default=140, help="espeak-ng words per minute")
    parser.add_argument("--gap", type=float, default=1.5, help="silence after each sentence (s)")
    parser.add_argument("--lead", type=float, default=4.0, help="silence before the first sentence (s)")
    parser.add_argument("--keep-wav", type=Path, help="also write the spoken script here")
    parser.add_argument("--real", action="store_true",
                        help="real recordings (tools/media/real_speech.py) instead of espeak-ng, and WER alone")
    return parser.parse_args(argv)


def real_script(gap_s: float, lead_s: float) -> tuple[Any, list[Any]]:
    """The real clips joined with silences, and the clips."""
    from moodwire.pipeline.sources.spoken import joined_script

    from .media.real_speech import real_speech_clips

    clips = real_speech_clips()
    return joined_script([(c.samples(), c.text) for c in clips], gap_s, lead_s), clips


def wer_alone(clips: list[Any], model_name: str) -> dict[str, Any]:
    """faster-whisper on each clip alone, with its own defaults (beam 5, no VAD), scored as the pipeline is."""
    from faster_whisper import WhisperModel

    from moodwire.pipeline.asr.models import asr_model
    from moodwire.pipeline.core.config import AsrConfig

    config = AsrConfig(model=model_name)
    whisper = WhisperModel(str(asr_model(config).directory), device="cpu", compute_type=config.compute_type,
                           local_files_only=True)
    rows = []
    for clip in clips:
        segments, _ = whisper.transcribe(clip.samples().astype("float32") / 32768.0, language=config.language)
        hyp_text = " ".join(seg.text.strip() for seg in segments)
        ref, hyp = normalise(clip.text), normalise(hyp_text)
        rows.append({"clip": clip.name, "reference": clip.text, "hypothesis": hyp_text, "words": len(ref),
                     "errors": edit_distance(ref, hyp)})
    words, errors = sum(r["words"] for r in rows), sum(r["errors"] for r in rows)
    return {"rows": rows, "ref_words": words, "errors": errors, "wer": round(errors / words, 4) if words else None}


def main(argv: list[str] | None = None) -> int:
    from moodwire.pipeline.sources.spoken import Voice, load_sentences, spoken_script, write_wav

    args = parse_args(argv)
    voice = Voice(speed_wpm=args.speed, name=args.voice)
    host, command = announce()
    if args.real:
        script, clips = real_script(args.gap, args.lead)
        sentences = [c.text for c in clips]
        print(f"speech: {len(clips)} real recordings (tools/media/real_speech.py); {args.lead} s lead, "
              f"{args.gap} s gaps; {script.samples.size / 16000:.1f} s in all", flush=True)
    else:
        sentences = load_sentences(args.sentences)[:QUICK_SENTENCES if args.quick else None]
        script = spoken_script(sentences, gap_s=args.gap, lead_s=args.lead, voice=voice)
        print(f"speech: {len(sentences)} sentences from {shown_path(args.sentences)}, espeak-ng voice {voice.name}, "
              f"{voice.speed_wpm} wpm, pitch {voice.pitch}, amplitude {voice.amplitude}; {args.lead} s lead, "
              f"{args.gap} s gaps; {script.samples.size / 16000:.1f} s in all", flush=True)
    duration = script.samples.size / 16000
    sets = ["nodes.voice=false", "nodes.text=false", "nodes.fusion=false", f"asr.model={args.model}"]
    print(f"pipeline: moodwire run --source WAV --set {' --set '.join(sets)} (real time)", flush=True)
    with tempfile.TemporaryDirectory(prefix="asr-wer-") as tmp:
        wav = write_wav(args.keep_wav or Path(tmp) / "speech.wav", script.samples)
        got = run_pipeline(wav, sets, duration)
    result = score(script.spans, got)
    print_rows(result["rows"])
    model = next((t.model for t in got.finals.values()), args.model)
    segmentation_ok = not result["problems"]
    seg_fail = "differs (real speakers pause inside a sentence: see the problems)" if args.real else "FAILED"
    print(f"\nWER {result['wer']:.1%} ({result['errors']} errors / {result['ref_words']} words), model {model}, "
          f"target < {TARGET_WER:.0%}; segmentation {'ok: one utterance per sentence' if segmentation_ok else seg_fail}"
          if result["wer"] is not None else "\nno words scored")
    for problem in result["problems"]:
        print(f"  problem: {problem}")
    alone = wer_alone(clips, args.model) if args.real else None
    if alone is not None and result["wer"] is not None:
        print(f"faster-whisper on each clip alone: WER {alone['wer']:.1%} ({alone['errors']} / {alone['ref_words']}); "
              f"the pipeline {100 * (result['wer'] - alone['wer']):+.1f} points")
    if not got.finals:
        print(f"no transcript came back (stopped by {got.stopped_by}); pipeline log tail:\n{log_tail(got.log)}")
    print(json.dumps({
        "tool": "asr_wer", "command": command, "machine": host, "model": model,
        "voice": None if args.real else {"name": voice.name, "speed_wpm": voice.speed_wpm, "pitch": voice.pitch,
                                         "amplitude": voice.amplitude}, "gap_s": args.gap, "lead_s": args.lead,
        "sentences": len(sentences), "utterances": len(got.ends()), "segmentation_ok": segmentation_ok,
        "problems": result["problems"], "wer": result["wer"], "errors": result["errors"],
        "ref_words": result["ref_words"], "target_wer": TARGET_WER,
        "meets_target": result["wer"] is not None and result["wer"] < TARGET_WER,
        "normalisation": NORMALISATION, "decode_ms": decode_summary(got), "stopped_by": got.stopped_by,
        "per_sentence": result["rows"], "speech": "real recordings" if args.real else "espeak-ng",
        "alone": alone}))
    return 0 if got.finals else 1


if __name__ == "__main__":
    sys.exit(main())
