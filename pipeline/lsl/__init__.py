"""Lab Streaming Layer outlets for moodwire's affect stream (docs/lsl.md)."""
