"""The placeholder home page (the blog's own pages replace it)."""

from __future__ import annotations

from pyproject.lib import App, Request, render_template


def register(app: App) -> None:
    """Add the home page route to the app."""
    app.add_route("/", index, endpoint="home")


def index(request: Request) -> str:
    """Give the home page."""
    return render_template("home.html")
