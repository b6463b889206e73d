"""Text affect: emotion and valence/arousal of a transcript, by nearest labelled prototypes.

Zero-shot: the all-MiniLM-L6-v2 sentence encoder (a general-purpose embedding
model, not an emotion classifier) embeds the transcript, and the emotion comes
from its cosine similarity to embeddings of prototype sentences per label, kept
in a user-editable data file (prototypes.json). See classifier.py for the rule.
"""
