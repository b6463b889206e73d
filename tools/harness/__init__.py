"""The one harness every tool stands on.

- ``launch``: start ``moodwire run`` as a real process tree, watch its public endpoint, stop it as
  Ctrl-C does and check that nothing is left;
- ``monitor``: a background subscriber that keeps every message's header and ``system.health``, and
  waits for a steady pipeline;
- ``stats``: the one percentile summary, the one ``seq`` gap counter (one definition of "lost"),
  frame-index gaps, CPU share;
- ``memory``: the one memory sampler (RSS of named processes over time, PSS, a process's peak);
- ``machine``: the machine and command line every figure is printed with;
- ``json_tool``: run a tool whose last stdout line is JSON (the naive loop and fer peers).

``stats`` and ``memory`` import only numpy at module level: tools/fer_baseline.py runs them in the fer
venv, which has no moodwire.
"""
