"""Fixtures for the framework's stateful tests: small Apps wired as create_app wires them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyproject.lib import App, Request
from pyproject.lib.security import origin_of, security_headers
from pyproject.lib.sessions import MemoryStore, SessionInterface
from pyproject.lib.static import StaticFiles

BASE_URL = "https://blog.example"

# The framework's own layout and error page, so these tests do not follow the blog's.
TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{% block title %}{{ config.SITE_NAME }}{% endblock %}</title>
  <link rel="stylesheet" href="{{ static_url('css/site.css') }}">
</head>
<body>
  <header class="site-header"><a class="site-name" href="{{ url_for('home') }}">\
{{ config.SITE_NAME }}</a></header>
  <main>
    {% for category, message in get_flashed_messages(with_categories=true) %}
    <p class="flash flash-{{ category }}">{{ message }}</p>
    {% endfor %}
    {% block content %}{% endblock %}
  </main>
</body>
</html>
""",
    "errors/error.html": """{% extends "base.html" %}
{% block title %}{{ error.code }} {{ error.name }} · {{ config.SITE_NAME }}{% endblock %}
{% block content %}
<h1>{{ error.name }}</h1>
<p>{{ error.description }}</p>
{% if debug_trace %}<pre class="traceback">{{ debug_trace }}</pre>{% endif %}
{% endblock %}
""",
    "page.html": """{% extends "base.html" %}
{% block content %}<h1>{{ heading }}</h1>{% endblock %}
""",
}
STATIC_FILES = {"css/site.css": "body { color: #222; }\n"}


@pytest.fixture(scope="session")
def site_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Give a templates folder and a static folder for the test Apps."""
    root = tmp_path_factory.mktemp("site")
    for folder, files in (("templates", TEMPLATES), ("static", STATIC_FILES)):
        for name, text in files.items():
            path = root / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return root / "templates", root / "static"


def build_app(
    *,
    template_folder: str,
    static_folder: str,
    allowed_hosts: tuple[str, ...] = ("localhost", "blog.example"),
    max_content_length: int = 16 * 1024 * 1024,
    session_max_age: int = 3600,
    **config: Any,
) -> App:
    """Give an App with a home page, the site's templates and static files, and no blog."""
    settings = {
        "BASE_URL": BASE_URL,
        "DEBUG": False,
        "SITE_NAME": "Test Site",
        "SITE_DESCRIPTION": "A blog under test.",
        **config,
    }
    app = App(settings, template_folder=template_folder)
    app.request_class = type(
        "TestRequest",
        (Request,),
        {"allowed_hosts": allowed_hosts, "max_content_length": max_content_length},
    )
    app.trusted_origins = [origin_of(settings["BASE_URL"])]
    app.session_interface = SessionInterface(MemoryStore(), max_age=session_max_age)
    app.static_files = StaticFiles(app.wsgi_app, static_folder, extra_headers=security_headers())
    app.wsgi_app = app.static_files
    app.add_route("/", lambda request: "home page", endpoint="home")
    return app


@pytest.fixture
def make_app(site_folders: tuple[Path, Path]) -> Callable[..., App]:
    """Give the factory for small test Apps (see build_app)."""
    templates, static = site_folders
    return functools.partial(build_app, template_folder=str(templates), static_folder=str(static))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Give caplog, capturing the framework's loggers even after create_app stopped propagation."""
    monkeypatch.setattr(logging.getLogger("pyproject"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="pyproject")
    return caplog
