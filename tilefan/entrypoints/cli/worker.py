"""``tilefan worker``: build a spot worker from configuration and serve the queue.

Logs go to stderr as one JSON object a line (the instance's journal ships them), keeping
each record's ``extra`` fields (job, tile, reason...).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import replace
from typing import Any

from tilefan import bootstrap
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.spot_ports import SpotNotice

_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line, with the ``extra`` fields (job, tile, reason...) kept.

    >>> record = logging.LogRecord("tilefan.worker", logging.INFO, "", 0, "tile done", None, None)
    >>> record.tile_id = 3
    >>> JsonLogFormatter().format(record).endswith('"message": "tile done", "tile_id": 3}')
    True
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname,
                               "logger": record.name, "message": record.getMessage()}
        doc.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def cli_main(args: argparse.Namespace) -> int:
    """``tilefan worker``: build the worker from configuration and serve until idle or interrupted.

    SIGTERM (systemd stopping the service, the instance shutting down) is treated like an
    interruption notice: the current tile is handed back and the worker exits 0.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        settings = bootstrap.aws_settings()
        if args.idle_seconds is not None:
            if args.idle_seconds < 1:
                raise InvalidSpecError("--idle-seconds", f"must be at least 1, got {args.idle_seconds}")
            settings = replace(settings, spot=replace(settings.spot, idle_s=args.idle_seconds))
        worker = bootstrap.build_worker(settings, kernel=bootstrap.load_config().kernel, name=args.name)
    except InvalidSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda signum, frame: worker.interrupt(SpotNotice(action="sigterm", time="")))
    reason = worker.run()
    print(f"tilefan worker {worker.options.name}: {reason}; {worker.stats.outcomes}", file=sys.stderr)
    return 0
