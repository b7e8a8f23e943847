"""What the server's log says about requests: one line each, and webhooks summed up.

A refused request (403, 404, 400 …) is the client's business, not a fault of the server:
Django logs the ones raised as exceptions (PermissionDenied) with a 30-line traceback. Under
`serve` daphne's access log has the request's line already; elsewhere Django's own line stays,
on one line with the reason.
"""

from __future__ import annotations

import logging

# Set by dashboard.server.run while daphne writes its access log in this process.
access_log: dict[str, bool] = {"on": False}


class ClientErrorsOnOneLine(logging.Filter):
    """For django.request: a 4xx response is one line, or none next to an access log."""

    # Django's request line repeats what the access log says: dropped beside one.
    beside_access_log = False

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if not isinstance(status, int) or not 400 <= status < 500:
            return True  # 5xx keep their traceback: those are the server's faults
        if access_log["on"] and not self.beside_access_log:
            return False
        if record.exc_info and record.exc_info[1] is not None and str(record.exc_info[1]):
            # The reason, in the words the refused user saw ("Only admins can do that.").
            record.msg = f"{record.msg} (%s)"
            record.args = (*(record.args or ()), str(record.exc_info[1]))
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


class SuspiciousOnOneLine(ClientErrorsOnOneLine):
    """For django.security.*: a refused request (a foreign Host header, a body too big) is
    one line with its reason, kept beside the access log, which does not say why."""

    beside_access_log = True
