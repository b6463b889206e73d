"""The live status line of ``moodwire run``: what it says from the messages it saw."""

from __future__ import annotations

import io

from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.core.messages import AffectFrame, AffectUtterance, NodeHealth, PersonAffect, SystemHealth
from moodwire.pipeline.runtime.cli import build_parser
from moodwire.pipeline.runtime.status_line import StatusCounts, StatusLine, utterance_summary


def frame(latency_ms: float, track_ids=(1,), missing=()) -> AffectFrame:
    persons = [PersonAffect(track_id=t, labels=list(LABELS), probs=[1 / 7] * 7, valence=0, arousal=0, confidence=0)
               for t in track_ids]
    return AffectFrame(frame_index=0, persons=persons, missing=list(missing), latency_ms=latency_ms)


def test_the_line_gives_rate_median_latency_faces_nodes_missing_and_the_last_words():
    counts = StatusCounts(interval_s=2.0)
    for k in range(60):
        counts.add(frame(10.0 + (k % 3) * 5, track_ids=(1, None), missing=("text",)))
    counts.add(SystemHealth(nodes=[NodeHealth(name=n, alive=n != "asr", pid=1, restarts=0, uptime_s=1, rate_hz=1)
                                   for n in ("face", "asr", "fusion")]))
    probs = [0.0] * 7
    probs[LABELS.index("happy")] = 1.0
    counts.add(AffectUtterance(utterance_id=1, t_start=0, t_end=1, text="I am really happy to see you again today.",
                               labels=list(LABELS), probs=probs, speaker_track_id=1))
    assert counts.line() == ('moodwire: 30.0 fps | latency 15 ms | faces 1 | missing text | nodes 2/3 up | '
                             'last: #1 happy "I am really happy to see you again to..."')
    counts.next_interval()
    assert counts.line().startswith("moodwire:  0.0 fps | faces 1")


def test_an_unattributed_utterance_and_no_frames_say_so():
    utt = AffectUtterance(utterance_id=1, t_start=0, t_end=1, text="hi")
    assert utterance_summary(utt) == '? ? "hi"'
    assert "no affect.frame" in StatusCounts(1.0).line()


def test_into_a_file_whole_lines_every_ten_seconds_on_a_terminal_rewritten_each_second():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log, tty = StatusLine("tcp://127.0.0.1:1", io.StringIO()), StatusLine("tcp://127.0.0.1:1", Terminal())
    assert (log.interval_s, tty.interval_s) == (10.0, 1.0)
    log._write("a")
    tty._write("b")
    assert log.out.getvalue() == "a\n" and tty.out.getvalue() == "\rb\033[K"


def test_quiet_turns_it_off():
    assert build_parser().parse_args(["run", "--quiet"]).quiet
    assert not build_parser().parse_args(["run"]).quiet
