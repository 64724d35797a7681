"""Logs an operator can read: one line per request (service/access_log.py), tracebacks only
for real server errors and tagged with the request id the response carries, optionally one
JSON object per line (`GAN_LOG_FORMAT=json`).

BentoML logs every exception its API wrapper catches at ERROR with a traceback, a client's
schema error included. `ClientErrorFilter` drops those records for client errors (the
access log already has one line naming the field) and tags the rest with the request id.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

# The logger BentoML's API wrapper reports caught exceptions on.
BENTOML_EXCEPTION_LOGGER = "bentoml._internal.server.http_app"
LOGGERS_WITH_HANDLERS = ("", "bentoml", "uvicorn.error", "circus")
# BentoML's access log is replaced by service/access_log.py (one line per request, the field
# at fault on a 4xx, overload summarised): its config needs every key to turn it off.
NO_BENTOML_ACCESS_LOG = {
    "access": {
        "enabled": False,
        "request_content_length": True,
        "request_content_type": True,
        "response_content_length": True,
        "response_content_type": True,
        "skip_paths": ["/metrics", "/healthz", "/livez", "/readyz"],
        "format": {"trace_id": "032x", "span_id": "016x"},
    }
}


def current_request_id() -> str | None:
    """The id BentoML sends back as `X-BentoML-Request-ID` for the request being handled."""
    from bentoml._internal.context import trace_context

    rid = trace_context.request_id
    return format(rid, "016x") if rid else None


def is_client_error(exc: BaseException | None) -> bool:
    """Exceptions BentoML turns into a 4xx answer."""
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError
    from starlette.exceptions import HTTPException

    if isinstance(exc, ValidationError):
        return True
    if isinstance(exc, BentoMLException):
        return int(exc.error_code) < 500
    if isinstance(exc, HTTPException):
        return exc.status_code < 500
    return False


class ClientErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if is_client_error(exc):
            return False
        rid = current_request_id()
        if rid:
            record.msg = f"{record.getMessage()} (request id {rid})"
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, worker, message, ids, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        component = getattr(record, "component", None)  # BentoML's "[entry_service:name:1]"
        if component:
            entry["worker"] = str(component).strip("[]")
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = (
                format(request_id, "016x") if isinstance(request_id, int) else str(request_id)
            )
        for key in ("route", "status", "field", "duration_ms", "client"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(log_format: str) -> None:
    """Called once per process after BentoML configured its logging."""
    exception_logger = logging.getLogger(BENTOML_EXCEPTION_LOGGER)
    if not any(isinstance(f, ClientErrorFilter) for f in exception_logger.filters):
        exception_logger.addFilter(ClientErrorFilter())
    if log_format == "json":
        formatter = JsonFormatter()
        for name in LOGGERS_WITH_HANDLERS:
            for handler in logging.getLogger(name).handlers:
                handler.setFormatter(formatter)
