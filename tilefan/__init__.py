"""tilefan: run big numeric jobs as a tiled fan-out (plan → tiles → reduce).

Dependencies point inwards: ``domain`` (pure specs, tiling, kernels) ← ``pipeline``
(plan/tile/reduce over ports) ← ``adapters`` (embedded and AWS implementations of the
ports) ← ``entrypoints`` (CLI, REST, Lambda doors). ``bootstrap`` wires them together.
"""
