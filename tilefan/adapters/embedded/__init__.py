"""The embedded backend: a directory of files (``.npy``, Zarr, HDF5), SQLite (WAL) for records,
and the home's lease."""
