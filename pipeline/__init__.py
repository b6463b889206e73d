"""The pipeline: core (the bus and its messages), node logic (face, vad, asr, voice, text,
fusion, sources), the nodes that run it (nodes/), the runtime (manager, CLI) and the apps
(viewer, dashboard). Layers: docs/architecture.md."""
