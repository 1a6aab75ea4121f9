"""How an error becomes a response: an HTML page in the site's layout, or JSON."""

from __future__ import annotations

import logging
import traceback
from html import escape
from typing import TYPE_CHECKING

from pyproject.lib.exceptions import HTTPException, InternalServerError, Redirect
from pyproject.lib.response import Response, json_response

if TYPE_CHECKING:
    from pyproject.lib.app import App
    from pyproject.lib.request import Request

log = logging.getLogger("pyproject.lib.exceptions")

_PLAIN_500 = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>500 Internal Server Error</title>"
    "<h1>Internal Server Error</h1><p>Something went wrong on our side. "
    "The error has been logged.</p></html>"
)


def plain_500() -> Response:
    """Give the last-resort 500 page: no template, no details."""
    response = Response(_PLAIN_500, 500)
    response.headers.set("Cache-Control", "no-store")
    return response


def error_response(
    app: App, request: Request, error: HTTPException, debug_trace: str = ""
) -> Response:
    """Give the page (or JSON) for an HTTP error, with the headers the error carries."""
    if isinstance(error, Redirect):
        response = Response(b"", error.code, mimetype="text/plain")
    elif _wants_json(request):
        response = json_response(
            {"error": {"status": error.code, "message": error.description}}, error.code
        )
    else:
        response = _html_page(app, request, error, debug_trace)
    for name, value in error.headers:
        response.headers.set(name, value)
    if error.code >= 500 or error.code in (400, 413):
        response.headers.set("Cache-Control", "no-store")
    return response


def _wants_json(request: Request) -> bool:
    try:
        return request.wants_json
    except Exception:  # a request too broken to read its headers gets HTML
        return False


def _html_page(app: App, request: Request, error: HTTPException, debug_trace: str) -> Response:
    names = [f"errors/{error.code}.html", "errors/error.html"]
    try:
        body = app.render_template(names, error=error, debug_trace=debug_trace)
    except Exception:
        # The layout itself failed (a broken template, a database that is down for a
        # context processor): say so in the log and fall back to a bare page.
        log.exception("error page template failed for %s", error.code)
        if error.code >= 500:
            return plain_500()
        body = (
            f"<!doctype html><html lang=en><meta charset=utf-8>"
            f"<title>{error.code} {escape(error.name)}</title>"
            f"<h1>{escape(error.name)}</h1><p>{escape(error.description)}</p></html>"
        )
    return Response(body, error.code)


def unexpected_error_response(app: App, request: Request, exc: BaseException) -> Response:
    """Log an unexpected exception with its traceback and give a 500 that reveals nothing."""
    log.error(
        "unhandled exception in %r %r",  # repr: the path may hold CR/LF to forge log lines
        request.environ.get("REQUEST_METHOD"),
        request.environ.get("PATH_INFO"),
        exc_info=exc,
    )
    trace = ""
    if app.config.get("DEBUG"):
        trace = "".join(traceback.format_exception(exc))
    return error_response(app, request, InternalServerError(), trace)
