"""The voice node's logic: prosody of each utterance, a documented arousal rule, and an optional
trained voice-emotion model (ONNX, trained by tools/train_voice.py). numpy only at run time."""
