"""Pure values and arithmetic: tiling, regions, plans, routing, the cost model, the NumPy
reference kernels and records. No I/O, no threads, no library loading; it imports nothing of
ours but ``tilefan.errors``."""
