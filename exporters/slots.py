"""Which exporter makes the derived files of each model slot (``moodwire export <slot>``)."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from engines.registry import ModelError, ResolvedModel

Progress = Callable[[str], None]

# slot name -> "module:function"; the function takes (source, source_sha256, out_dir, progress).
EXPORTERS: dict[str, str] = {
    "face-expression": "exporters.face_expression:export_face_expression",
}


def export_slot(model: ResolvedModel, progress: Progress = print) -> Any:
    """Export the slot's ONNX (parity-checked, sidecar with its checksum), then a TensorRT engine where possible."""
    if model.slot.name not in EXPORTERS:
        raise ModelError(f"slot {model.slot.name!r} is used as it is; nothing to export "
                         f"(exportable: {', '.join(EXPORTERS)})")
    module_name, func_name = EXPORTERS[model.slot.name].split(":")
    export = getattr(importlib.import_module(module_name), func_name)
    model.derived_dir.mkdir(parents=True, exist_ok=True)
    result = export(model.path, model.sha256, model.derived_dir, progress)
    from exporters.tensorrt_build import build_fp16_engine

    build_fp16_engine(result.onnx_path, model.derived_dir / "tensorrt", progress)
    return result
