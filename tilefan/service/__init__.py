"""The application core: what every door asks of a job (submit, follow, cancel, uploads) and
the shapes it answers with, free of any web framework, runtime or backend."""
