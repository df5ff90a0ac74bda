"""End-to-end tests: the real tilefan command in subprocesses."""
