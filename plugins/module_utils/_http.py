# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One HTTP request with urllib, for the probes (on the nodes too) and report publishing.

Standard library only, Python 3.8+. A request never raises: it returns the status (an HTTP
error status is an answer, not an error), the start of the body as text, the seconds it
took, and the reason when no answer came.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ssl
import time

from urllib.error import HTTPError, URLError
from urllib.request import HTTPSHandler, Request, build_opener

MAX_BODY = 1024 * 1024  # bytes of an answer read


def _opener(validate_certs):
    if validate_certs:
        return build_opener()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return build_opener(HTTPSHandler(context=context))


def request(url, method="GET", headers=None, body=None, timeout=5.0, validate_certs=True, max_body=MAX_BODY,
            clock=time.monotonic):
    """(status or None, body text, seconds, error or None); at most ``max_body`` bytes of the body are read.

    ``body`` is sent as is when bytes, UTF-8 encoded when text.
    """
    data = body.encode("utf-8") if isinstance(body, str) else body
    started = clock()
    try:
        response = _opener(validate_certs).open(Request(url, data=data, method=method, headers=headers or {}),
                                                timeout=timeout)
        try:
            text = response.read(max_body).decode("utf-8", "replace")
            return response.getcode(), text, clock() - started, None
        finally:
            response.close()
    except HTTPError as exc:
        try:
            text = exc.read(max_body).decode("utf-8", "replace")
        except (OSError, ValueError):
            text = ""
        return exc.code, text, clock() - started, None
    except URLError as exc:
        return None, "", clock() - started, str(exc.reason)
    except (OSError, ValueError) as exc:  # timeouts, resets, bad URLs
        return None, "", clock() - started, str(exc) or type(exc).__name__
