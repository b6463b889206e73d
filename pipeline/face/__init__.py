"""Face node: per-face geometry (tracking, alignment, head pose) and the valence/arousal rule."""
