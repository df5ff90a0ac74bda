"""The REST API over the embedded backend, through ``chalice.test.Client``.

The same blueprint that serves AWS here drives SQLite, a directory of ``.npy`` files and
a process pool in a temp dir.
"""
