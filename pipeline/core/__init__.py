"""The core every other part stands on: messages, wire format, topic registry, config schema,
bus, clock, labels, keys and the node loop. It imports nothing else of moodwire."""
