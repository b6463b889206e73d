"""The ASR stage: utterance audio (speech.audio) to text with word times (speech.transcript).

``models`` turns ``[asr]`` config into a checked CTranslate2 directory, ``transcriber`` wraps
faster-whisper, ``step`` holds the node's logic (tests drive it without sockets).
"""
