"""The embedded runtime: one scheduler per home, its job queue and its process pool."""
