"""Model profiles: stronger public models a user fetches once, on request, into the cache.

The default install runs only the models packaged in wheels (engines/registry.py). A profile
names a published model file, pinned to its authors' revision and to a checksum, that
``moodwire models fetch PROFILE`` downloads (pipeline/runtime/model_fetch.py). Nothing here
downloads: nodes call ``fetched_file`` and get the checked path, or ModelMissing with the
fetch command. A fetched profile lies under ``<user cache>/moodwire/profiles/<name>/<revision>/``
with a manifest, written last, that records every file's sha256 and the profile's labels and
preprocessing; a file that no longer matches its manifest is refused.

Pins: a file is checked by its sha256 where one is recorded, and by its git blob id (the
SHA-1 git stores for the file's content in the authors' repository at that revision) where the
authors publish through a git repository. The blob ids below were read from the repository's
own tree at the pinned commit; the files' sha256 could not be read without downloading them,
so the first fetch records it in the manifest after the blob id matched.

Profiles on the Hugging Face hub are pinned to a full commit id. A hub commit fixes its whole tree,
and the tree fixes each file's digest: the LFS sha256 of a weights file, the git blob id of a small
one. ``models fetch`` asks the hub (through ``huggingface_hub``) for that digest at the pinned
commit, refuses an answer for any other commit, and checks the downloaded bytes against it; the
manifest then records every sha256. Their weights are PyTorch files, so the fetch also exports
them to ONNX (``exported``, with a parity check) for the nodes' engines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from moodwire.engines.registry import ModelError, ModelMissing, sha256_of
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.labels import AFFECTNET_TO_LABELS, GOEMOTIONS_LABELS, IEMOCAP4_TO_LABELS
from moodwire.pipeline.core.paths import cache_dir

MANIFEST = "moodwire-profile.json"
HUB_HOST = "https://huggingface.co"
HUB_URL_FORM = "{repo}/resolve/{revision}/{path}"  # what huggingface_hub.hf_hub_url builds


@dataclass(frozen=True)
class RemoteFile:
    """One published file of a profile and what it must hash to."""

    path: str  # under the repository at the profile's revision
    git_blob: str = ""  # git's blob SHA-1 of the content, from the authors' tree at the revision
    sha256: str = ""  # where the publisher records one (the hub's LFS id)
    hub_checked: bool = False  # checked against the digest the hub reports for it at the profile's pinned commit

    def __post_init__(self) -> None:
        if not (self.git_blob or self.sha256 or self.hub_checked):
            raise ValueError(f"{self.path}: a profile file needs a recorded checksum")

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ModelProfile:
    """A stronger model for one modality, as its authors publish it."""

    name: str
    modality: str  # face | voice | text: the config's ``<modality>.profile`` selects it
    description: str
    host: str  # where the files are published, e.g. https://github.com
    repo: str  # owner/name
    revision: str  # the commit the files are pinned to
    url_form: str  # path after the host: {repo}, {revision} and {path} are filled in
    files: tuple[RemoteFile, ...]
    license: str
    commercial_use: bool  # False: the licence forbids commercial use (shown in red, named in the docs)
    labels: tuple[str, ...] = ()  # the model's own class labels, in its output order
    preprocessing: str = ""
    latency: str = ""  # measured model-call cost on the 2-core CPU machine, and what it means for 30 fps
    every_nth: int = 1  # a face model's default face.expression_every: it sees each face every Nth frame
    exported: str = ""  # the ONNX `models fetch` makes from fetched PyTorch weights; "" = the first file is the model
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def on_hub(self) -> bool:
        return self.url_form == HUB_URL_FORM

    @property
    def model_name(self) -> str:
        """The file a node loads: the exported ONNX, or the published model file itself."""
        return self.exported or self.files[0].name

    @property
    def stored_names(self) -> tuple[str, ...]:
        """Every file the manifest records: the fetched ones, then the exported model."""
        return (*(f.name for f in self.files), *((self.exported,) if self.exported else ()))

    def url(self, file: RemoteFile, base_url: str = "") -> str:
        """Where ``file`` is downloaded from; ``base_url`` replaces the host (a mirror that serves the same paths)."""
        path = self.url_form.format(repo=self.repo, revision=self.revision, path=file.path)
        return f"{(base_url or self.host).rstrip('/')}/{path}"

    @property
    def folder(self) -> Path:
        """The cache folder of this profile at its pinned revision."""
        return cache_dir() / "profiles" / self.name / self.revision[:12]

    def fetch_command(self) -> str:
        return f"moodwire models fetch {self.name}"

    @property
    def licence_label(self) -> str:
        """The licence, marked NON-COMMERCIAL where it forbids commercial use."""
        return self.license if self.commercial_use else f"NON-COMMERCIAL: {self.license}"


HSEMOTION_B0_VA = ModelProfile(
    name="hsemotion-enet-b0-8-va-mtl",
    modality="face",
    description=("HSEmotion EfficientNet-B0 (AffectNet): 8 expression classes including contempt, and valence and "
                 "arousal from a trained regression head; ONNX as the authors publish it"),
    host="https://github.com",
    repo="av-savchenko/face-emotion-recognition",
    revision="207ed4981625d1f643e25b4a3014e2eed20a0b46",
    url_form="{repo}/raw/{revision}/{path}",
    files=(RemoteFile("models/affectnet_emotions/onnx/enet_b0_8_va_mtl.onnx",
                      git_blob="7ce9d6dd5b82b260bc19bfe7822a6ffa1abb6011"),),
    license="Apache-2.0 (repository licence; model by Andrey Savchenko, trained on AffectNet)",
    commercial_use=True,
    labels=tuple(AFFECTNET_TO_LABELS),  # the model's output order
    preprocessing=("RGB face box resized to 224x224 (cv2 bilinear), /255, per channel (x - mean) / std with "
                   "ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); outputs 8 logits then "
                   "valence and arousal (hsemotion-onnx 0.3.1)"),
    latency=("20 ms a face on 1 thread (14 ms on 2) against 0.5 ms for the packaged model; the face step then "
             "takes 43 ms a frame, too slow for 30 fps, so by default it sees each face every 3rd frame (face step "
             "p50 20 ms); `python -m tools.bench_profiles`, docs/models.md"),
    every_nth=3,
    notes=("The repository, weights included, carries an Apache-2.0 licence; AffectNet, the data set they were "
           "trained on, is licensed for non-commercial research. Check both for your use.",),
)

SUPERB_WAV2VEC2_ER = ModelProfile(
    name="superb-wav2vec2-base-er",
    modality="voice",
    description=("wav2vec2-base fine-tuned for SUPERB emotion recognition on IEMOCAP: 4 classes (neutral, happy, "
                 "angry, sad) from the waveform; PyTorch weights, exported to ONNX on this machine after the fetch"),
    host=HUB_HOST,
    repo="superb/wav2vec2-base-superb-er",
    revision="441a7599c3b22107314dcbd9166621c5c83f2cc5",
    url_form=HUB_URL_FORM,
    files=(RemoteFile("config.json", hub_checked=True), RemoteFile("preprocessor_config.json", hub_checked=True),
           RemoteFile("pytorch_model.bin", hub_checked=True)),
    exported="model.onnx",
    license="Apache-2.0 (model card; a port of S3PRL's SUPERB model, trained on IEMOCAP)",
    commercial_use=True,
    labels=tuple(IEMOCAP4_TO_LABELS),
    preprocessing=("16 kHz mono samples as float (int16 / 32768), normalised to zero mean and unit variance over "
                   "the utterance when preprocessor_config.json says do_normalize (eps 1e-7), input_values (1, T); "
                   "softmax over 4 logits (neu, hap, ang, sad)"),
    latency=("0.21 s per second of speech on 1 thread (a 3 s utterance: 0.64 s; 0.36 s on 2), once per utterance "
             "after it ends: voice.affect comes that much later, and the video path keeps its frame rate. "
             "`python -m tools.bench_profiles`, docs/models.md"),
    notes=("IEMOCAP, the data set it was trained on, is licensed by USC for research; check it for your use.",
           "IEMOCAP's four classes carry no fear, disgust or surprise: the voice gives those 0 and fusion's "
           "face and text supply them.",
           "Valence and arousal are not trained outputs: valence is derived by a rule from the class "
           "probabilities (circumplex placement, low confidence); arousal stays the prosody rule's."),
)

GOEMOTIONS_ROBERTA = ModelProfile(
    name="roberta-base-go-emotions",
    modality="text",
    description=("RoBERTa-base fine-tuned on GoEmotions (Reddit comments, 28 labels, multi-label); folded onto "
                 "the 7 classes by the GoEmotions authors' Ekman grouping; exported to ONNX after the fetch"),
    host=HUB_HOST,
    repo="SamLowe/roberta-base-go_emotions",
    revision="58b6c5b44a7a12093f782442969019c7e2982299",
    url_form=HUB_URL_FORM,
    files=tuple(RemoteFile(name, hub_checked=True) for name in (
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")),
    exported="model.onnx",
    license="MIT (model card; trained on GoEmotions, Google Research)",
    commercial_use=True,
    labels=GOEMOTIONS_LABELS,
    preprocessing=("RoBERTa byte-level BPE from the repository's tokenizer.json (<s> ... </s>, at most 512 tokens), "
                   "input_ids and attention_mask; an independent sigmoid per label (config problem_type "
                   "multi_label_classification)"),
    latency=("62 ms for a 12-word transcript (16 tokens) on 1 thread, 172 ms for 64 tokens, once per final "
             "transcript; the video path keeps its frame rate. `python -m tools.bench_profiles`, docs/models.md"),
    notes=("j-hartmann/emotion-english-distilroberta-base has moodwire's very 7 classes, but its model card "
           "states no licence, so it is not offered: this MIT-licensed GoEmotions model is, with the authors' "
           "documented Ekman mapping (pipeline/core/labels.py).",
           "Valence and arousal are derived by a rule from the folded class probabilities (circumplex "
           "placement), as for the packaged text method."),
)

PROFILES: dict[str, ModelProfile] = {p.name: p for p in (HSEMOTION_B0_VA, SUPERB_WAV2VEC2_ER, GOEMOTIONS_ROBERTA)}


def get_profile(name: str, modality: str = "") -> ModelProfile:
    """The profile called ``name`` (for ``modality`` when given); ModelError lists the known ones."""
    known = [p.name for p in PROFILES.values() if not modality or p.modality == modality]
    profile = PROFILES.get(name)
    if profile is None or (modality and profile.modality != modality):
        what = f"{modality} profile" if modality else "profile"
        raise ModelError(f"no {what} {name!r}; known: {', '.join(known) or 'none'} (`moodwire models` lists them)")
    return profile


def read_manifest(profile: ModelProfile) -> dict | None:
    """The fetched profile's manifest, or None when it was never completely fetched."""
    try:
        data = json.loads((profile.folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("revision") == profile.revision else None


def fetched_file(profile: ModelProfile, file: RemoteFile | str = "") -> Path:
    """The checked path of a fetched (or exported) file, by default the one a node loads; ModelMissing with
    the fetch command when it was not fetched, or has changed since."""
    name = (file.name if isinstance(file, RemoteFile) else file) or profile.model_name
    manifest = read_manifest(profile)
    path = profile.folder / name
    if manifest is None or not path.is_file():
        raise ModelMissing(f"model profile {profile.name} is not fetched; run `{profile.fetch_command()}` once "
                           f"(it downloads {profile.repo} at {profile.revision[:12]}; licence: {profile.license}), "
                           f"or set the {profile.modality} profile back to \"\" for the packaged model")
    recorded = manifest.get("sha256", {}).get(name)
    actual = sha256_of(path)
    if recorded != actual:
        raise ModelMissing(f"{path} changed since it was fetched (sha256 {actual}, manifest {recorded}); "
                           f"run `{profile.fetch_command()}` again")
    return path


def fetched_json(profile: ModelProfile, name: str) -> dict:
    """A fetched JSON file of the profile (a config, a preprocessor config), checked like any fetched file."""
    path = fetched_file(profile, name)
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); run `{profile.fetch_command()} --force`") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object; run `{profile.fetch_command()} --force`")
    return data


def config_labels(config: dict) -> tuple[str, ...]:
    """A hub model's class names in output order (config.json ``id2label``)."""
    id2label = config.get("id2label") or {}
    return tuple(str(id2label[k]) for k in sorted(id2label, key=int))


def check_labels(profile: ModelProfile, config: dict, source: object) -> None:
    """ModelError unless a hub model's config (read from ``source``) has the profile's labels, in its order."""
    labels = config_labels(config)
    if labels != profile.labels:
        raise ModelError(f"{source}: labels {labels} differ from the profile's {profile.labels}; the repository "
                         "changed, so the profile needs a new pin")


def require_fetched(profile: ModelProfile) -> None:
    """ModelMissing, with the fetch command, unless every file of the profile is fetched and intact."""
    for name in profile.stored_names:
        fetched_file(profile, name)


def profile_ready(profile: ModelProfile) -> bool:
    """Every file of the profile is fetched and matches its manifest."""
    try:
        require_fetched(profile)
    except ModelMissing:
        return False
    return True


def selected_profiles(config: Config) -> list[ModelProfile]:
    """The profiles the config switches on (``<modality>.profile``); ModelError for a name that is not one."""
    chosen = {"face": config.face.profile, "voice": config.voice.profile, "text": config.text.profile}
    return [get_profile(name, modality) for modality, name in chosen.items() if name]


def check_selected(config: Config) -> None:
    """ModelMissing, with the fetch command, for a selected profile that is not fetched and intact."""
    for profile in selected_profiles(config):
        require_fetched(profile)


def selected_names(config: Config) -> tuple[str, ...]:
    """Names of the profiles the config switches on: fusion's parameters and export depend on them."""
    return tuple(p.name for p in selected_profiles(config))
