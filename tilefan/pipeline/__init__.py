"""The steps of a job (submit, plan, tile, reduce, report, lifecycle) as functions over the
ports in ``ports.py``; nothing here knows which backend or runtime calls it."""
