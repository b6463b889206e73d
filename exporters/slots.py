"""What ``moodwire export NAME`` makes, for every name that has derived files: the registry's slots whose
files are exported or joined, and the fusion model (made from a params file, not a registry slot)."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from moodwire.engines.derived import derived_ready
from moodwire.engines.fusion_spec import FUSION_EXPORT, matches_fusion_export
from moodwire.engines.profiles import selected_names
from moodwire.engines.registry import ModelError, ResolvedModel, get_slot, resolve, slot_override
from moodwire.pipeline.core.config import Config

Progress = Callable[[str], None]

# slot name -> "module:function"; the function takes (model: ResolvedModel, progress) and writes
# the slot's derived files into model.derived_dir.
EXPORTERS: dict[str, str] = {
    "face-expression": "moodwire.exporters.face_expression:export_from_slot",
    "face-expression-faceapi": "moodwire.exporters.faceapi_expression:export_faceapi_expression",
    "asr-base": "moodwire.exporters.whisper_join:join_whisper_base",
    "text-encoder": "moodwire.exporters.text_encoder:export_text_encoder",
}
EXPORT_NAMES: tuple[str, ...] = (*EXPORTERS, FUSION_EXPORT)


def export_slot(model: ResolvedModel, progress: Progress = print) -> Any:
    """Export the slot's ONNX (parity-checked, sidecar with its checksum), then a TensorRT engine where possible."""
    if model.slot.name not in EXPORTERS:
        raise ModelError(f"slot {model.slot.name!r} is used as it is; nothing to export "
                         f"(exportable: {', '.join(EXPORT_NAMES)})")
    module_name, func_name = EXPORTERS[model.slot.name].split(":")
    export = getattr(importlib.import_module(module_name), func_name)
    model.derived_dir.mkdir(parents=True, exist_ok=True)
    result = export(model, progress)
    onnx_path = getattr(result, "onnx_path", None)
    if onnx_path is not None:
        from moodwire.engines.tensorrt_build import build_fp16_engine

        build_fp16_engine(onnx_path, model.derived_dir / "tensorrt", progress)
    return result


def export_named(name: str, config: Config, progress: Progress = print) -> Any:
    """``moodwire export NAME`` with the config's ``[models]`` files and ``fusion.params``."""
    if name == FUSION_EXPORT:
        from moodwire.exporters.fusion import export_fusion_for

        return export_fusion_for(config.fusion.params, progress, selected_names(config))
    if name not in EXPORTERS:
        raise ModelError(f"nothing to export for {name!r}; exportable: {', '.join(EXPORT_NAMES)}")
    return export_slot(resolve(name, slot_override(config.models, get_slot(name))), progress)


def is_exported(name: str, config: Config) -> bool:
    """Whether ``name``'s derived files are in the cache and intact for this config (engines/derived.py)."""
    if name == FUSION_EXPORT:
        return matches_fusion_export(config.fusion.params, selected_names(config))
    return derived_ready(resolve(name, slot_override(config.models, get_slot(name))))
