"""The Python doors: ``tilefan.matmul``/``add``/``atoms`` and ``tilefan.Client``."""
