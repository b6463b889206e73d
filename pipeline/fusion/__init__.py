"""Fusion: face, voice and text estimates joined per person (``affect.frame``) and per utterance
(``affect.utterance``). The node is pipeline/nodes/fusion.py; its logic is ``step.FusionStep``."""
