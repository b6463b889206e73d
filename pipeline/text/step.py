"""The text node's logic: speech.transcript in, text.affect out.

Final transcripts are always scored; partial ones only with ``text.partials``
(a partial is usually rewritten a moment later, and each one costs an encoder
call). A transcript that is empty, failed, or itself not valid still gets a
``text.affect``, with ``valid: false``, so fusion sees the utterance was heard.
"""

from __future__ import annotations

from moodwire.engines.engine import Stopwatch
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.messages import Message, TextAffect, Transcript
from moodwire.pipeline.core.node import Outputs
from moodwire.pipeline.text.classifier import TextClassifier
from moodwire.pipeline.text.profile_model import ProfileTextClassifier, load_profile_text_classifier


class TextStep:
    inputs = ("speech.transcript",)

    def __init__(self, classifier: TextClassifier | ProfileTextClassifier, backend: str, partials: bool = False) -> None:
        self.classifier = classifier
        self.backend = backend
        self.partials = partials
        self.watch = Stopwatch()  # milliseconds of the last scored transcript

    def fresh(self) -> "TextStep":
        """For another stream (a transcript is scored on its own: only the classifier, shared)."""
        return TextStep(self.classifier, self.backend, self.partials)

    def process(self, topic: str, msg: Message) -> Outputs:
        assert isinstance(msg, Transcript)
        if msg.final or self.partials:
            yield "text.affect", self.analyse(msg)

    def idle(self, now: int) -> Outputs:
        return ()

    def analyse(self, msg: Transcript) -> TextAffect:
        problem = _problem(msg)
        if problem:
            return self._invalid(msg, problem)
        with self.watch:
            score = self.classifier.score(msg.text.strip())
        return self._affect(msg, probs=[float(p) for p in score.probs], valence=score.valence,
                            arousal=score.arousal, confidence=score.confidence)

    def _affect(self, msg: Transcript, **estimate: object) -> TextAffect:
        return TextAffect(utterance_id=msg.utterance_id, t_start=msg.t_start, t_end=msg.t_end, text=msg.text,
                          final=msg.final, labels=list(self.classifier.labels), method=self.classifier.method,
                          backend=self.backend, t_capture=msg.t_capture, **estimate)

    def _invalid(self, msg: Transcript, note: str) -> TextAffect:
        uniform = [1.0 / len(self.classifier.labels)] * len(self.classifier.labels)
        return self._affect(msg, probs=uniform, valence=0.0, arousal=0.0, confidence=0.0, valid=False, note=note)


def _problem(msg: Transcript) -> str:
    """Why a transcript cannot be scored, or "" when it can."""
    if not msg.valid:  # with valid True, ``error`` is only a note on the audio (a gap); the words stand
        return f"transcription failed: {msg.error}" if msg.error else "the transcript is not valid"
    if not msg.text.strip():
        return "empty transcript: no words to score"
    return ""


def build_classifier(config: Config | None = None, negation_rule: bool = True) -> tuple[TextClassifier, str]:
    """Checked encoder (the ONNX ``moodwire export`` made), tokenizer and prototypes;
    returns the classifier and what the encoder runs on."""
    from moodwire.engines.loader import exported, load_engine
    from moodwire.engines.registry import sha256_of
    from moodwire.pipeline.core.paths import cache_dir
    from moodwire.pipeline.text.encoder import SentenceEmbedder
    from moodwire.pipeline.text.prototypes import load_prototypes
    from moodwire.pipeline.text.tokenizer import TextTokenizer, packaged_tokenizer_path

    config = config or Config()
    prototypes = load_prototypes(config.text.prototypes)  # first: a bad file fails before any model work
    onnx_path = exported("text-encoder", config.models.text_encoder)
    engine = load_engine(onnx_path, config.text.engine, config.text.threads)
    engine.warm_up()
    embedder = SentenceEmbedder(engine, TextTokenizer(packaged_tokenizer_path()), sha256_of(onnx_path))
    classifier = TextClassifier(embedder, prototypes, negation_rule, cache_dir() / "text")
    return classifier, engine.backend


def build_text_step(config: Config | None = None) -> TextStep:
    """The step with its models loaded and warmed up (one sentence scored), ready for the first transcript:
    the profile's classifier when ``text.profile`` names one, else the packaged prototype method."""
    config = config or Config()
    if config.text.profile:
        classifier, backend = load_profile_text_classifier(config.text.profile, config.text.engine,
                                                           config.text.threads)
    else:
        classifier, backend = build_classifier(config)
    classifier.score("Warming up the text encoder.")
    return TextStep(classifier, backend, config.text.partials)
