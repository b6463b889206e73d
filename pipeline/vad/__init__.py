"""Voice activity detection: 16 kHz audio.chunk in, utterances (speech.vad events, speech.audio pieces) out.

``segmenter`` is the backend-independent state machine over per-frame speech decisions;
``webrtc`` and ``silero`` are the frame classifiers; ``step`` joins them into the node's step.
Nothing is imported or loaded here: a backend's library is touched only when it is built.
"""

SAMPLE_RATE = 16000  # the only rate the VAD accepts (both backends are 16 kHz models)
