"""Log output: human-readable lines by default, one JSON object a line with GATEWAY_LOG_FORMAT=json.

Handlers write from a thread of their own (a QueueHandler in front): a log line costs the
event loop a queue put, not a write to a pipe a slow log shipper may be holding up.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
from datetime import datetime, timezone

# The attributes every LogRecord has; anything else on a record came in `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "message", ...the record's `extra` fields, "exception"}."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                payload[name] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """The classic line, with a request log's fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "request", None)
        if isinstance(fields, dict):
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
        return line


class BackgroundHandler(logging.handlers.QueueHandler):
    """Puts records on a bounded queue a listener thread writes to stderr from; a full queue
    drops the record (counted) rather than stall the caller."""

    def __init__(self, output: str = "plain", capacity: int = 10_000) -> None:
        super().__init__(queue.Queue(capacity))
        target = logging.StreamHandler()
        target.setFormatter(JsonFormatter() if output == "json" else
                            PlainFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        self.dropped = 0
        self._capacity, self._target = capacity, target
        self._listener = logging.handlers.QueueListener(self.queue, target, respect_handler_level=False)
        self._listener.start()
        atexit.register(self._stop)
        # A forked child (Celery's prefork pool) has no listener thread: it starts its own.
        os.register_at_fork(after_in_child=self._restart_in_child)

    def _restart_in_child(self) -> None:
        self.queue = queue.Queue(self._capacity)
        self._listener = logging.handlers.QueueListener(self.queue, self._target, respect_handler_level=False)
        self._listener.start()

    def _stop(self) -> None:
        try:
            self._listener.stop()  # writes what is queued, then ends the thread
        except Exception:
            pass

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The record as it is (the formatter runs in the listener thread): only the message and
        # the traceback are made text now, as they may refer to objects that change.
        record.message = record.getMessage()
        record.msg, record.args = record.message, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
