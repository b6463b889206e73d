"""Benchmarks, soak, fault injection, evaluation and training tools, over one shared harness
(tools/harness/). Run from the repository as ``python -m tools.NAME``."""
