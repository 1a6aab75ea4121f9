"""Site settings changed in the browser (/admin/settings), read by every page in one call.

The environment (pyproject/config.py: defaults < .env < environment) gives each setting's
default and everything this page does not cover (database, secrets, hosts). A value saved
here is a row of `site_settings`; every change is logged in `setting_changes` (who, when,
old and new) and bumps the site's content version in the same transaction, so every
worker and host reads the new values on its next request (`site_settings()` is cached
per content version: a page asks it for nothing more than the version it already reads).
"""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

import tinycss2
from markupsafe import Markup
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from pyproject.blog import audit, cover
from pyproject.blog.auth import admin_required, current_user
from pyproject.blog.db import begin_write, end_transaction, get_database, get_db
from pyproject.blog.forms import Form
from pyproject.blog.markup import RenderRefused
from pyproject.blog.models import Media, SettingChange, SiteSetting, SiteState, User, utcnow
from pyproject.blog.rendering import RenderTimeout, render_post
from pyproject.lib import App, Request, Response, current_app, flash, redirect, url_for
from pyproject.lib.app import current_request, render_template
from pyproject.lib.exceptions import BadRequest, NotFound

# The page backgrounds of the two colour schemes (static/css/site.css --bg): an accent
# colour must reach WCAG AA's 4.5:1 against its scheme's background to be saved.
LIGHT_BACKGROUND, DARK_BACKGROUND = "#ffffff", "#15161a"
AA_CONTRAST = 4.5
CSS_MAX_BYTES = 64 * 1024
SOCIAL_LINKS_MAX = 10
SECOND_FACTOR_CHOICES = {
    "none": "Nobody is required to",
    "admins": "Administrators",
    "everyone": "Everyone who signs in",
}
CHANGES_SHOWN = 50
try:
    from psycopg import Error as _PostgresError
except ImportError:  # pragma: no cover
    _PostgresError = sqlite3.Error  # type: ignore[misc,assignment]
# What a database without the settings table yet (not migrated) raises, on either driver.
DATABASE_ERRORS = (SQLAlchemyError, sqlite3.Error, _PostgresError)


@dataclass(frozen=True)
class Field:
    """One setting of the page: its form name, label, and the config key of its default."""

    name: str
    label: str
    default_key: str | None = None
    default: str = ""


FIELDS: tuple[Field, ...] = (
    Field("title", "Site title", "SITE_NAME"),
    Field("description", "Description", "SITE_DESCRIPTION"),
    Field("language", "Language", "SITE_LANGUAGE", "en"),
    Field("timezone", "Time zone", "TIMEZONE", "UTC"),
    Field("posts_per_page", "Posts per page", "POSTS_PER_PAGE", "10"),
    Field("intro", "Home page intro"),
    Field("footer", "Footer"),
    Field("social_links", "Social profile links"),
    Field("logo", "Logo"),
    Field("favicon", "Favicon"),
    Field("accent", "Accent colour (light scheme)", "ACCENT_COLOR", "#1a56b8"),
    Field("accent_dark", "Accent colour (dark scheme)", "ACCENT_COLOR_DARK", "#8ab4ff"),
    Field("custom_css", "Custom CSS"),
    Field("second_factor", "Require a second factor", "REQUIRE_SECOND_FACTOR", "none"),
    Field("smart_punctuation", "Smart punctuation", "SMART_PUNCTUATION", "off"),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
LABELS = {f.name: f.label for f in FIELDS}
# Kept beside the Markdown they come from (made at save time, never logged).
DERIVED = ("intro_html", "footer_html")


@dataclass(frozen=True)
class SiteSettings:
    """Every site setting as pages use it (one object per content version, shared)."""

    values: dict[str, str]
    title: str
    description: str
    language: str
    timezone: str
    zone: ZoneInfo
    posts_per_page: int
    intro_html: Markup
    footer_html: Markup
    social_links: tuple[str, ...]
    logo_url: str
    favicon_url: str
    favicon_type: str
    accent: str
    accent_dark: str
    custom_css: str
    stylesheet: str  # the accent properties and the custom CSS: served by `site_stylesheet`
    stylesheet_hash: str
    require_second_factor: str  # "none", "admins" or "everyone"
    smart_punctuation: bool
    # The header and footer menus (navigation.py), each a tuple of MenuItem.
    menus: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def second_factor_required(self, user: User) -> bool:
        """Give whether this user must sign in with a second factor (#20)."""
        if self.require_second_factor == "everyone":
            return True
        return self.require_second_factor == "admins" and user.is_admin


# --- colour -------------------------------------------------------------------------------

_HEX = re.compile(r"#(?:[0-9a-f]{3}|[0-9a-f]{6})")


def parse_colour(text: str) -> str | None:
    """Give a #rgb or #rrggbb colour as lower-case #rrggbb, or None."""
    text = text.strip().lower()
    if not _HEX.fullmatch(text):
        return None
    if len(text) == 4:
        text = "#" + "".join(c * 2 for c in text[1:])
    return text


def relative_luminance(colour: str) -> float:
    """Give the WCAG 2 relative luminance of a #rrggbb colour."""

    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    """Give the WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    a, b = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def text_on(colour: str) -> str:
    """Give the text colour (white or near-black) that reads best on `colour` (buttons)."""
    white, black = contrast_ratio(colour, "#ffffff"), contrast_ratio(colour, "#10121a")
    return "#ffffff" if white >= black else "#10121a"


# --- custom CSS ---------------------------------------------------------------------------


def _url_problem(url: str) -> str | None:
    """Give why a URL in custom CSS would reach another host, or None if it stays here."""
    # Browsers drop tabs and newlines from URLs and read a backslash as a slash.
    cleaned = re.sub(r"[\t\n\r]", "", url).strip().replace("\\", "/")
    if cleaned.lower().startswith("data:"):
        return None
    parts = urlsplit(cleaned)
    if parts.scheme or parts.netloc or cleaned.startswith("//"):
        return f"url({url}) points to another host; only this site's own files may be used."
    return None


_URL_FUNCTIONS = {"url", "src", "image-set", "-webkit-image-set", "image"}


def css_problems(css: str) -> list[str]:
    """Give why custom CSS may not be served, one message per problem, naming its line.

    Refused: @import, url() (or image-set() / src()) to another host, and what the
    parser cannot read (a reader's browser might read it otherwise).
    """
    problems: list[str] = []
    size = len(css.encode("utf-8"))
    if size > CSS_MAX_BYTES:
        return [f"Custom CSS is {size:,} bytes; at most {CSS_MAX_BYTES:,} are allowed."]

    def walk(nodes: Iterable[Any], in_url_function: bool = False) -> None:
        for node in nodes or ():
            kind = node.type
            line = getattr(node, "source_line", "?")
            if kind == "error":
                problems.append(f"Line {line}: the CSS cannot be read here ({node.message}).")
            elif (kind == "at-rule" and node.lower_at_keyword == "import") or (
                kind == "at-keyword" and node.lower_value == "import"
            ):
                problems.append(
                    f"Line {line}: @import is not allowed (it loads another stylesheet)."
                )
            elif kind == "url" or (kind == "string" and in_url_function):
                problem = _url_problem(node.value)
                if problem:
                    problems.append(f"Line {line}: {problem}")
            if kind == "function":
                walk(node.arguments, node.lower_name in _URL_FUNCTIONS)
            elif kind in ("() block", "[] block", "{} block"):
                walk(node.content, in_url_function)
            elif kind == "qualified-rule":
                walk(node.prelude)
                walk(node.content)
            elif kind == "at-rule":
                walk(node.prelude)
                walk(node.content or ())

    walk(tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True))
    return problems


def stylesheet_for(accent: str, accent_dark: str, custom_css: str) -> str:
    """Give the site's own stylesheet: the accent as `--accent`, then the custom CSS."""
    own = (
        f":root {{ --accent: {accent}; --accent-fg: {text_on(accent)}; }}\n"
        "@media (prefers-color-scheme: dark) {\n"
        f"  :root {{ --accent: {accent_dark}; --accent-fg: {text_on(accent_dark)}; }}\n"
        "}\n"
    )
    return own + ("\n/* custom CSS (/admin/settings) */\n" + custom_css if custom_css else "")


# --- reading ------------------------------------------------------------------------------


def defaults(config: dict[str, Any]) -> dict[str, str]:
    """Give each setting's value from the environment's configuration (or its default)."""
    found = {}
    for f in FIELDS:
        value = config.get(f.default_key) if f.default_key else None
        found[f.name] = str(value) if value not in (None, "") else f.default
    return found


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def build(
    values: dict[str, str],
    app: App,
    media: dict[int, Media],
    menus: dict[str, tuple[Any, ...]] | None = None,
) -> SiteSettings:
    """Give the settings object from stored values (media: the pictures they name)."""
    zone_name = values["timezone"] if values["timezone"] in _zones() else "UTC"
    try:
        per_page = min(100, max(1, int(values["posts_per_page"])))
    except ValueError:
        per_page = 10
    accent = parse_colour(values["accent"]) or "#1a56b8"
    accent_dark = parse_colour(values["accent_dark"]) or "#8ab4ff"
    stylesheet = stylesheet_for(accent, accent_dark, values["custom_css"])
    second = values["second_factor"]
    return SiteSettings(
        values=values,
        title=values["title"],
        description=values["description"],
        language=values["language"] if is_language_tag(values["language"]) else "en",
        timezone=zone_name,
        zone=ZoneInfo(zone_name),
        posts_per_page=per_page,
        # Made by the Markdown renderer's sanitiser when saved (render_post).
        intro_html=Markup(values.get("intro_html", "")),  # noqa: S704  # nosec B704
        footer_html=Markup(values.get("footer_html", "")),  # noqa: S704  # nosec B704
        social_links=tuple(line for line in values["social_links"].splitlines() if line),
        logo_url=_media_url(app, media.get(_media_id(values["logo"]))),
        favicon_url=_media_url(app, media.get(_media_id(values["favicon"]))),
        favicon_type=_media_type(media.get(_media_id(values["favicon"]))),
        accent=accent,
        accent_dark=accent_dark,
        custom_css=values["custom_css"],
        stylesheet=stylesheet,
        stylesheet_hash=hashlib.sha256(stylesheet.encode()).hexdigest()[:16],
        require_second_factor=second if second in SECOND_FACTOR_CHOICES else "none",
        smart_punctuation=values["smart_punctuation"] == "on",
        menus=menus or {"header": (), "footer": ()},
    )


def _media_id(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 12 else None


def _media_url(app: App, media: Media | None) -> str:
    if media is None:
        return ""
    from pyproject.blog.media import get_store

    return get_store(app).url(media.original_name)


def _media_type(media: Media | None) -> str:
    return media.content_type if media is not None else ""


def load(app: App) -> SiteSettings:
    """Read the settings from the database (defaults from the configuration).

    Within a request, on the request's own session: a second connection beside it could
    wait on the first (SQLite) or hold a pool slot twice.
    """
    request = current_request()
    if request is not None:
        return _read(app, get_db(request))
    with get_database(app).read() as db:
        return _read(app, db)


def _read(app: App, db: Session) -> SiteSettings:
    values = defaults(app.config)
    values.update(intro_html="", footer_html="")
    from pyproject.blog.navigation import read_menus  # (it builds on this module)

    media: dict[int, Media] = {}
    menus = read_menus(db, app)
    for name, value in db.execute(select(SiteSetting.name, SiteSetting.value)):
        if name in values:
            values[name] = value
    ids = [i for i in (_media_id(values["logo"]), _media_id(values["favicon"])) if i]
    if ids:
        for item in db.scalars(select(Media).where(Media.id.in_(ids))):
            db.expunge(item)  # kept beyond this session, with the settings
            media[item.id] = item
    return build(values, app, media, menus)


def site_settings(app: App | None = None) -> SiteSettings:
    """Give the site's settings now: one object per content version, read once per worker.

    Within a request it is asked of the content state once (the version readers' pages
    read anyway); a change saved on any worker or host bumps that version, so every
    worker reads the new values on its next request.
    """
    app = app or current_app()
    request = current_request()
    if request is not None and "site_settings" in request.context:
        return request.context["site_settings"]
    state = app.extensions.get("content_state")
    try:
        key = state.validators()[0] if state is not None else None
    except DATABASE_ERRORS:  # a database not migrated yet: the configuration's values
        key = None
    cached = app.extensions.get("site_settings")
    if key is not None and cached is not None and cached[0] == key:
        settings = cached[1]
    else:
        try:
            settings = load(app)
        except DATABASE_ERRORS:
            settings = build({**defaults(app.config)}, app, {})
            key = None
        if key is not None:
            app.extensions["site_settings"] = (key, settings)
    if request is not None:
        request.context["site_settings"] = settings
    return settings


# --- checking the form --------------------------------------------------------------------

# BCP 47 (RFC 5646) language tags, well-formed: language[-extlang][-script][-region]
# [-variant]*[-extension]*[-privateuse], or a private-use tag alone.
_LANGUAGE_TAG = re.compile(
    r"(?:(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})"
    r"(?:-[a-z]{4})?"
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"
    r"(?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*"
    r"(?:-x(?:-[a-z0-9]{1,8})+)?"
    r"|x(?:-[a-z0-9]{1,8})+)",
    re.IGNORECASE,
)


def is_language_tag(text: str) -> bool:
    """Give whether text is a well-formed BCP 47 language tag (en, pt-BR, zh-Hant-TW...)."""
    return len(text) <= 35 and _LANGUAGE_TAG.fullmatch(text) is not None


def is_web_url(text: str) -> bool:
    """Give whether text is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not re.search(r"[\s<>\"]", text)
    )


def check_form(db: Session, form: Form, admin: User) -> dict[str, str]:
    """Give the cleaned values of the settings form, each error beside its field."""
    clean: dict[str, str] = {}
    clean["title"] = form.text("title", label="Site title", required=True, max_length=100)
    clean["description"] = form.text("description", label="Description", max_length=300)
    language = form.text("language", label="Language", required=True, max_length=35)
    if language and not is_language_tag(language):
        form.error("language", f"“{language}” is not a BCP 47 language tag (like en, fr or pt-BR).")
    clean["language"] = language
    zone = form.text("timezone", label="Time zone", required=True, max_length=64)
    if zone and zone not in _zones():
        form.error(
            "timezone", f"“{zone}” is not a known time zone (an IANA name like Europe/Paris)."
        )
    clean["timezone"] = zone
    per_page = form.text("posts_per_page", label="Posts per page", required=True, max_length=6)
    if per_page and not (per_page.isascii() and per_page.isdigit() and 1 <= int(per_page) <= 100):
        form.error("posts_per_page", "Posts per page must be a whole number from 1 to 100.")
    if per_page and "posts_per_page" not in form.errors:
        per_page = str(int(per_page))
    clean["posts_per_page"] = per_page
    clean["intro"] = form.text("intro", label="Home page intro", max_length=20_000, strip=False)
    clean["footer"] = form.text("footer", label="Footer", max_length=5_000, strip=False)
    links = form.text("social_links", label="Social profile links", max_length=5_000)
    lines = [line.strip() for line in links.splitlines() if line.strip()]
    bad = [line for line in lines if not is_web_url(line) or len(line) > 500]
    if bad:
        form.error("social_links", f"“{bad[0][:100]}” is not an http(s) address.")
    elif len(lines) > SOCIAL_LINKS_MAX:
        form.error("social_links", f"At most {SOCIAL_LINKS_MAX} links (you have {len(lines)}).")
    clean["social_links"] = "\n".join(lines)
    for name in ("logo", "favicon"):
        raw = form.get(name).strip()
        if raw and (_media_id(raw) is None or db.get(Media, _media_id(raw)) is None):
            form.error(name, f"Choose the {name} from the media library's pictures.")
        clean[name] = raw
    for name, background, scheme in (
        ("accent", LIGHT_BACKGROUND, "light"),
        ("accent_dark", DARK_BACKGROUND, "dark"),
    ):
        typed = form.text(name, label=LABELS[name], required=True, max_length=20)
        colour = parse_colour(typed)
        if typed and colour is None:
            form.error(name, f"“{typed}” is not a colour like #1a56b8.")
        elif colour is not None:
            ratio = contrast_ratio(colour, background)
            if ratio < AA_CONTRAST:
                form.error(
                    name,
                    f"{colour} has a contrast of {ratio:.2f}:1 against the {scheme} scheme's"
                    f" background ({background}); WCAG AA needs at least {AA_CONTRAST}:1.",
                )
        clean[name] = colour or typed
    css = form.text("custom_css", label="Custom CSS", strip=False)
    css = css.replace("\r\n", "\n")
    problems = css_problems(css) if css.strip() else []
    if problems:
        form.error("custom_css", " ".join(problems[:5]))
    clean["custom_css"] = css if css.strip() else ""
    second = form.get("second_factor") or "none"
    if second not in SECOND_FACTOR_CHOICES:
        form.error("second_factor", "Choose who must use a second factor.")
    clean["second_factor"] = second
    smart = form.get("smart_punctuation") or "off"
    if smart not in ("on", "off"):
        form.error("smart_punctuation", "Choose on or off.")
    clean["smart_punctuation"] = smart
    return clean


def render_markdown_field(form: Form, name: str, text: str) -> str:
    """Give the sanitised HTML of a Markdown setting, or "" with the reason beside it."""
    if not text.strip():
        return ""
    try:
        return render_post(text).html
    except (RenderRefused, RenderTimeout) as refused:
        form.error(name, f"{getattr(refused, 'message', refused)} Your text is kept below.")
        return ""


# --- writing ------------------------------------------------------------------------------


def bump_content_version(db: Session) -> None:
    """Make every worker's pages and settings fresh (in the caller's transaction)."""
    db.execute(
        update(SiteState)
        .where(SiteState.id == 1)
        .values(version=SiteState.version + 1, changed_at=utcnow())
    )


def save(
    db: Session,
    changed: dict[str, str],
    derived: dict[str, str],
    user: User | None,
    request: Request | None = None,
) -> list[str]:
    """Store changed settings, log each change, bump the content version; give the names.

    `changed` holds the new values (compared with the current ones: equal ones are not
    logged); `derived` the HTML made from them. The caller commits.
    """
    now = utcnow()
    current = defaults(current_app().config)
    stored = {row.name: row for row in db.scalars(select(SiteSetting))}
    current.update({name: row.value for name, row in stored.items() if name in current})
    names = []
    for name, value in changed.items():
        if current.get(name) == value:
            continue
        names.append(name)
        db.add(
            SettingChange(
                name=name,
                old_value=current.get(name, ""),
                new_value=value,
                user_id=user.id if user else None,
                changed_at=now,
            )
        )
        _store(db, stored, name, value, now)
    for name, value in derived.items():
        if stored.get(name) is None or stored[name].value != value:
            _store(db, stored, name, value, now)
    if names:
        bump_content_version(db)
        # The site's audit log (#20) too; the values themselves are in the settings log.
        audit.record(db, user, "settings_changed", {"settings": ", ".join(names)}, request=request)
    return names


def _store(db: Session, stored: dict[str, SiteSetting], name: str, value: str, now: Any) -> None:
    row = stored.get(name)
    if row is None:
        row = stored[name] = SiteSetting(name=name, value=value, updated_at=now)
        db.add(row)
    else:
        row.value, row.updated_at = value, now


# --- the page -----------------------------------------------------------------------------


def settings_page(request: Request, form: Form, status: int = 200) -> tuple[str, int]:
    db = get_db(request)
    changes = db.scalars(
        select(SettingChange)
        .order_by(SettingChange.changed_at.desc(), SettingChange.id.desc())
        .limit(CHANGES_SHOWN)
    ).all()
    user = current_user(request)
    return render_template(
        "admin/settings.html",
        form=form,
        changes=changes,
        labels=LABELS,
        picture_choices=cover.choices_for(db, user.id),
        second_factor_choices=SECOND_FACTOR_CHOICES,
        zones=sorted(_zones()),
        env_defaults=defaults(current_app().config),
    ), status


@admin_required
def admin_settings(request: Request) -> Any:
    """Show the settings (GET) or check and save them (POST), logging every change."""
    if request.method == "GET":
        values = dict(site_settings().values)
        return settings_page(request, Form(values, FIELD_NAMES))
    form = Form(request.form, FIELD_NAMES)
    db = get_db(request)
    clean = check_form(db, form, current_user(request))
    derived = {}
    end_transaction(db)  # no lock held while Markdown renders
    if form.ok:
        derived = {
            "intro_html": render_markdown_field(form, "intro", clean["intro"]),
            "footer_html": render_markdown_field(form, "footer", clean["footer"]),
        }
    if not form.ok:
        return settings_page(request, form, 422)
    begin_write(db)
    user = current_user(request)
    names = save(db, clean, derived, user, request)
    db.commit()
    if names:
        flash("Saved: " + ", ".join(LABELS[n].lower() for n in names) + ".", "success")
    else:
        flash("Nothing changed.", "info")
    return redirect(url_for("admin_settings"))


def site_stylesheet(request: Request, fingerprint: str) -> Response:
    """The site's own stylesheet (accent colour, custom CSS), cached for good by its hash."""
    settings = site_settings()
    if fingerprint != settings.stylesheet_hash:
        if not re.fullmatch(r"[0-9a-f]{16}", fingerprint):
            raise NotFound("There is no such stylesheet.")
        # An older page asks for an older version: give the current one, briefly cached.
        return Response(
            "", 302, {"Location": stylesheet_url(settings), "Cache-Control": "no-cache"}
        )
    return Response(
        settings.stylesheet,
        200,
        {
            "Content-Type": "text/css; charset=utf-8",
            "Cache-Control": "public, max-age=31536000, immutable",
        },
    )


def stylesheet_url(settings: SiteSettings) -> str:
    return url_for("site_stylesheet", fingerprint=settings.stylesheet_hash)


def social_label(url: str) -> str:
    """Give a profile link as shown: its host and path, like mastodon.social/@ada."""
    parts = urlsplit(url)
    return ((parts.hostname or "") + parts.path.rstrip("/")).removeprefix("www.")


def register(app: App) -> None:
    """Add /admin/settings and the site stylesheet; give templates `site`."""
    app.add_route("/admin/settings", admin_settings, methods=["GET", "POST"])
    app.add_route("/site-style/<fingerprint>.css", site_stylesheet)

    app.jinja_env.filters["social_label"] = social_label

    @app.context_processor
    def settings_context(request: Request | None) -> dict[str, Any]:
        try:  # for aria-current="page" in the menus
            path = request.path if request is not None else ""
        except BadRequest:  # an error page for an address that is not even UTF-8
            path = ""
        return {"site": site_settings(app), "current_path": path}
