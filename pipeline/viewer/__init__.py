"""``moodwire view``: the live stream drawn over its video (draw.py), fed by the bus (state.py, run.py)."""
