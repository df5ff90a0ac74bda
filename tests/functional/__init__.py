"""Functional tests: the embedded backend (files, SQLite, process pool) on temp dirs."""
