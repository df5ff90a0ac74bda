"""The ``tilefan`` command: argument parsing and one module per command group."""
