"""Which exporter makes the derived files of each model slot (``moodwire export <slot>``)."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from engines.registry import ModelError, ResolvedModel

Progress = Callable[[str], None]

# slot name -> "module:function"; the function takes (model: ResolvedModel, progress) and writes
# the slot's derived files into model.derived_dir.
EXPORTERS: dict[str, str] = {
    "face-expression": "exporters.face_expression:export_from_slot",
    "asr-base": "exporters.whisper_join:join_whisper_base",
    "text-encoder": "exporters.text_encoder:export_text_encoder",
}


def export_slot(model: ResolvedModel, progress: Progress = print) -> Any:
    """Export the slot's ONNX (parity-checked, sidecar with its checksum), then a TensorRT engine where possible."""
    if model.slot.name not in EXPORTERS:
        raise ModelError(f"slot {model.slot.name!r} is used as it is; nothing to export "
                         f"(exportable: {', '.join(EXPORTERS)})")
    module_name, func_name = EXPORTERS[model.slot.name].split(":")
    export = getattr(importlib.import_module(module_name), func_name)
    model.derived_dir.mkdir(parents=True, exist_ok=True)
    result = export(model, progress)
    onnx_path = getattr(result, "onnx_path", None)
    if onnx_path is not None:
        from exporters.tensorrt_build import build_fp16_engine

        build_fp16_engine(onnx_path, model.derived_dir / "tensorrt", progress)
    return result
