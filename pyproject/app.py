"""The app factory: the one place that wires settings, the framework and the blog together."""

from __future__ import annotations

import logging
from typing import Any

from pyproject.blog import caching, db, mediastore, rendering
from pyproject.blog.db import Database
from pyproject.blog.session_store import DatabaseSessionStore
from pyproject.config import ROOT, load_config
from pyproject.lib import App, Request
from pyproject.lib.proxies import ProxyHeaders
from pyproject.lib.security import origin_of
from pyproject.lib.sessions import SessionInterface
from pyproject.lib.static import StaticFiles


def create_app(overrides: dict[str, Any] | None = None) -> App:
    """Give the blog's WSGI app, configured and with every area's routes registered."""
    config = load_config(overrides)
    configure_logging(config["LOG_LEVEL"])
    app = App(config, template_folder=str(ROOT / "templates"))
    app.request_class = type(
        "SiteRequest",
        (Request,),
        {
            "max_content_length": config["MAX_CONTENT_LENGTH"],
            "max_form_fields": config["MAX_FORM_FIELDS"],
            "max_form_parts": config["MAX_FORM_PARTS"],
            "max_form_memory_size": config["MAX_FORM_MEMORY_SIZE"],
            "allowed_hosts": config["ALLOWED_HOSTS"],
        },
    )
    app.trusted_origins = [origin_of(config["BASE_URL"])]
    database = Database(config["DATABASE_URL"])
    db.init_app(app, database)
    rendering.init_app(app)
    caching.init_app(app, ROOT, database)
    # Feed readers' subscriber counts (#22), noted in front of the page cache (a 304 counts),
    # behind the proxy layer (so the client is the one it gives) and the static files.
    from pyproject.blog.stats import FeedReaders

    app.wsgi_app = FeedReaders(app.wsgi_app, app)
    app.session_interface = SessionInterface(
        config.get("SESSION_STORE") or DatabaseSessionStore(database),
        cookie_name=config["SESSION_COOKIE_NAME"],
        max_age=config["SESSION_MAX_AGE"],
    )
    app.static_files = StaticFiles(
        app.wsgi_app,
        str(ROOT / "static"),
        extra_headers=app.security_headers,
        check_changes=bool(config["DEBUG"]),
        allowed_hosts=config["ALLOWED_HOSTS"],
    )
    app.wsgi_app = app.static_files
    # Uploaded pictures in the local media folder (MEDIA_ROOT), at MEDIA_URL (#15).
    app.wsgi_app = mediastore.mount(app, config, app.wsgi_app)
    if config["TRUSTED_PROXIES"]:  # outermost: everything inside reads the client it gives
        app.wsgi_app = ProxyHeaders(app.wsgi_app, config["TRUSTED_PROXIES"])

    from pyproject.blog import (
        activitypub,
        api,
        audit,
        auth,
        backups,
        commands,
        comments,
        cover,
        devices,
        editor,
        exporting,
        feeds,
        health,
        importing,
        invitations,
        jobs,
        mail,
        media,
        metrics,
        micropub,
        navigation,
        pages,
        passkeys,
        posts,
        reading,
        recovery,
        review,
        revisions,
        roles,
        search,
        series,
        settings,
        site,
        stats,
        subscriptions,
        throttle,  # noqa: F401 (no routes: imported for its periodic job)
        tokens,
        trash,
        twofactor,
        webmention,
    )

    areas = (
        *(site, auth, recovery, invitations, posts, editor, revisions, trash, search, feeds),
        *(api, commands, jobs, mail, subscriptions, media, cover, health, metrics, backups),
        *(twofactor, devices, exporting, importing, stats),
        audit,
        roles,  # roles, the second-factor rule (#20)
        passkeys,  # passkeys at /account/security and /login (#20)
        review,  # contributors' posts reviewed (#20)
        comments,
        webmention,
        activitypub,  # the fediverse (#19)
        tokens,  # API tokens, and Micropub with them (#20)
        micropub,
        reading,  # the end of a post, the archive by month, dates (#23)
        settings,  # site settings (#17)
        pages,  # standalone pages (#17)
        navigation,  # header and footer menus (#17)
        series,  # series, pinned posts, post options (#17)
    )
    for area in areas:
        area.register(app)
    pages.register_last(app)  # /<slug>: after every other route, which all win over it
    pages.check_page_slugs(app, database)  # a route that takes a page's slug stops here
    jobs.init_app(app, database)  # after the areas: their jobs are registered by now
    metrics.init_app(app)  # after the queue exists: it counts the queue's jobs too
    return app


def configure_logging(level: str) -> None:
    """Send the app's logs to stderr at `level` (once per process)."""
    logger = logging.getLogger("pyproject")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
