"""Jinja2 glue: one environment per process, autoescaped, with the framework's globals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape


def make_environment(
    directory: str, *, debug: bool, globals_: dict[str, Callable[..., Any] | Any]
) -> Environment:
    """Give the process's template environment.

    Autoescape is on for HTML and XML files and for templates built from strings;
    templates are reloaded from disk only with DEBUG, compiled once otherwise.
    """
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml", "atom", "rss", "svg"),
            default_for_string=True,
            default=True,
        ),
        auto_reload=debug,
        # A missing variable is a bug the tests should see, not an empty string.
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        cache_size=400,
    )
    env.globals.update(globals_)
    return env
