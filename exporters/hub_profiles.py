"""Hub profiles' PyTorch weights -> ONNX, and stand-ins in their exact format made here.

``models fetch`` (pipeline/runtime/model_fetch.py) calls ``export_hub_profile`` once the files of a
voice or text profile are fetched and checked: transformers loads them as their authors publish them
(``AutoModelFor...Classification.from_pretrained`` on the folder), the model's labels must be the
profile's, and the ONNX is written only when ONNX Runtime agrees with PyTorch within the tolerance
(exporters/onnx_export.py). Attention runs as transformers' "eager" implementation, which the
TorchScript exporter traces into plain ops.

The stand-ins: the real architecture and config (wav2vec2-base's, RoBERTa-base's) with random
weights, shrunk for the tests (``size="tiny"``) or at full size for the latency benchmark, saved the
way the repositories hold them (pytorch_model.bin / model.safetensors, config.json, the preprocessor
config, a RoBERTa byte-level BPE tokenizer trained here on a few sentences). They prove the plumbing,
the preprocessing and the parity with transformers' own pipelines; they say nothing about accuracy.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from moodwire.engines import goemotions_spec, wav2vec2_er_spec
from moodwire.engines.profiles import ModelProfile, check_labels
from moodwire.exporters.onnx_export import export_parity_checked, max_abs_diff_vs_torch

OPSET = 17
PARITY_TOLERANCE = 1e-4  # absolute, on the logits
TINY = "tiny"


class ProfileExportError(ValueError):
    """Fetched files that cannot become the profile's ONNX; the text says why."""


def export_hub_profile(profile: ModelProfile, folder: Path) -> float:
    """Write ``folder / profile.exported`` from the fetched files; returns the parity figure."""
    from transformers.utils import logging

    logging.disable_progress_bar()  # its per-tensor loading bars; models fetch prints its own lines
    exporters = {"voice": _export_audio_classifier, "text": _export_text_classifier}
    if profile.modality not in exporters or not profile.exported:
        raise ProfileExportError(f"{profile.name}: no ONNX export for a {profile.modality} profile")
    config_path = folder / "config.json"
    check_labels(profile, json.loads(config_path.read_text()), config_path)
    with warnings.catch_warnings():
        # the tracer's notes on Python-level shape checks: the graph is checked at a second input length instead
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*aten::index operator of advanced indexing.*")
        return exporters[profile.modality](folder, folder / profile.exported)


def _export_audio_classifier(folder: Path, target: Path) -> float:
    from transformers import AutoModelForAudioClassification

    name, out = wav2vec2_er_spec.INPUT_NAME, wav2vec2_er_spec.OUTPUT_NAME
    model = _LogitsOnly(AutoModelForAudioClassification.from_pretrained(folder, attn_implementation="eager"), (name,))
    generator = torch.Generator().manual_seed(0)
    traced = torch.randn(1, 16000, generator=generator)
    check = {name: torch.randn(1, 37_000, generator=generator).numpy()}  # another length than traced
    return export_parity_checked(model, (traced,), target, [name], [out],
                                 {name: {0: "batch", 1: "samples"}, out: {0: "batch"}}, OPSET,
                                 lambda candidate: max_abs_diff_vs_torch(candidate, model, check), PARITY_TOLERANCE)


def _export_text_classifier(folder: Path, target: Path) -> float:
    from transformers import AutoModelForSequenceClassification

    names, out = goemotions_spec.INPUT_NAMES, goemotions_spec.OUTPUT_NAME
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    model = _LogitsOnly(classifier, names)
    vocab = classifier.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (1, 9), generator=generator)
    check_ids = torch.randint(3, vocab, (1, 23), generator=generator).numpy()  # another length than traced
    check = dict(zip(names, (check_ids, np.ones_like(check_ids))))
    return export_parity_checked(model, (ids, torch.ones_like(ids)), target, list(names), [out],
                                 {**{n: {0: "batch", 1: "tokens"} for n in names}, out: {0: "batch"}}, OPSET,
                                 lambda candidate: max_abs_diff_vs_torch(candidate, model, check), PARITY_TOLERANCE)


class _LogitsOnly(torch.nn.Module):
    """The classifier (in eval mode) with positional inputs, named ``names``, and one tensor out, as the
    exporter and the parity check call it."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model.eval()
        self.names = names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits


# wav2vec2-base's published architecture (facebook/wav2vec2-base, as SUPERB's port keeps it); "tiny" shrinks the
# widths and depth for tests and keeps the conv front end's kernels and strides (its 320x downsampling).
WAV2VEC2_SIZES = {
    "full": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 conv_dim=(512,) * 7, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                 classifier_proj_size=256),
    TINY: dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(32,) * 7,
               num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, classifier_proj_size=16),
}
# RoBERTa-base's published architecture; "tiny" for tests.
ROBERTA_SIZES = {
    "full": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    TINY: dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37),
}
TOKENIZER_TEXT = (  # what the stand-in's byte-level BPE learns its merges from (any English does)
    "I am so happy to see you again today. This is terrible and I hate it. Oh no, I am really scared of that. "
    "What a surprise, I did not expect this at all! It makes me sad that you are leaving. That is disgusting. "
    "The meeting is at three o'clock in the main room. Thank you so much for your help, I love it.")


def _labels(names: tuple[str, ...]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def make_wav2vec2_er_standin(folder: Path, labels: tuple[str, ...], size: str = TINY, seed: int = 0) -> Path:
    """config.json, preprocessor_config.json and pytorch_model.bin as superb/wav2vec2-base-superb-er holds them."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    folder = Path(folder)
    config = Wav2Vec2Config(**WAV2VEC2_SIZES[size], conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                            conv_stride=(5, 2, 2, 2, 2, 2, 2), feat_extract_norm="group", do_stable_layer_norm=False,
                            use_weighted_layer_sum=True, **_labels(labels))
    torch.manual_seed(seed)
    model = Wav2Vec2ForSequenceClassification(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(folder)
    return folder


def make_roberta_standin(folder: Path, labels: tuple[str, ...], size: str = TINY, seed: int = 0,
                         multi_label: bool = True) -> Path:
    """config.json, model.safetensors and the tokenizer files as SamLowe/roberta-base-go_emotions holds them."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    folder = Path(folder)
    tokenizer = _roberta_tokenizer()
    config = RobertaConfig(**ROBERTA_SIZES[size], vocab_size=len(tokenizer), max_position_embeddings=514,
                           type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                           problem_type="multi_label_classification" if multi_label else None, **_labels(labels))
    torch.manual_seed(seed)
    model = RobertaForSequenceClassification(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # config.json and model.safetensors
    tokenizer.save_pretrained(folder)
    special = folder / "special_tokens_map.json"
    if not special.exists():  # the repository has one; newer transformers no longer writes it
        special.write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                       "sep_token": "</s>", "pad_token": "<pad>", "cls_token": "<s>",
                                       "mask_token": "<mask>"}, indent=2))
    return folder


def _roberta_tokenizer():
    """A RoBERTa fast tokenizer (byte-level BPE, RoBERTa's special tokens and post-processor), trained here."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([TOKENIZER_TEXT] * 4, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                      add_prefix_space=False)
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                model_max_length=512)
