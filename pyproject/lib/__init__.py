"""The framework: routing, Request and Response, sessions, CSRF, templates, static files.

It knows nothing about blogs; the blog imports it, never the other way round.
"""

from __future__ import annotations

from pyproject.lib.app import (
    App,
    Observed,
    current_app,
    current_request,
    flash,
    get_flashed_messages,
    render_template,
    static_url,
    url_for,
)
from pyproject.lib.request import Request
from pyproject.lib.response import Response, json_response, not_modified, redirect, with_validators

__all__ = [
    "App",
    "Observed",
    "Request",
    "Response",
    "current_app",
    "current_request",
    "flash",
    "get_flashed_messages",
    "json_response",
    "not_modified",
    "redirect",
    "render_template",
    "static_url",
    "url_for",
    "with_validators",
]
