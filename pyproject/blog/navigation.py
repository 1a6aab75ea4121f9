"""The header and footer menus (#17): ordered links to a page, a tag, the archive or a URL.

/admin/navigation edits them without JavaScript (add, remove, move up or down: one form
each); static/js/navigation.js adds drag to reorder, which sends the same form's new
order. Menus are read with the site settings (one object per content version), and every
change bumps the content version, so every worker shows the new menu at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from pyproject.blog.auth import admin_required
from pyproject.blog.db import begin_write, get_db
from pyproject.blog.forms import Form
from pyproject.blog.models import NavLink, Post, Tag
from pyproject.blog.settings import bump_content_version, is_web_url
from pyproject.lib import App, Request, flash, redirect, render_template, url_for
from pyproject.lib.exceptions import BadRequest

MENUS = {"header": "Header", "footer": "Footer"}
TARGET_KINDS = {"page": "A page", "tag": "A tag", "archive": "The archive", "url": "An address"}
LINKS_MAX = 20  # per menu: a header that never wraps on a desktop holds a handful
LABEL_MAX = 80
ADD_FIELDS = ("menu", "label", "target_kind", "page", "tag", "url")


@dataclass(frozen=True, slots=True)
class MenuItem:
    """A menu link as pages show it: its label and the path or URL it leads to."""

    label: str
    href: str
    external: bool


def read_menus(db: Session, app: App) -> dict[str, tuple[MenuItem, ...]]:
    """Give each menu's links in order, their addresses resolved (a page by its slug now)."""
    page_url = app.url_builder("show_page", "slug")
    tag_url = app.url_builder("show_tag", "tag")
    rows = db.execute(
        select(NavLink.menu, NavLink.label, NavLink.target_kind, NavLink.target, Post.slug)
        # (the id as text: a cast of a tag's name to a number fails on PostgreSQL)
        .outerjoin(
            Post, (NavLink.target_kind == "page") & (cast(Post.id, String) == NavLink.target)
        )
        .order_by(NavLink.menu, NavLink.position, NavLink.id)
    )
    menus: dict[str, list[MenuItem]] = {name: [] for name in MENUS}
    for menu, label, kind, target, slug in rows:
        if kind == "page":
            if slug is None:  # the page was purged: its link goes with it
                continue
            item = MenuItem(label, page_url(slug), False)
        elif kind == "tag":
            item = MenuItem(label, tag_url(target), False)
        elif kind == "archive":
            item = MenuItem(label, app.url_for("archive"), False)
        else:
            item = MenuItem(label, target, True)
        menus.setdefault(menu, []).append(item)
    return {name: tuple(items) for name, items in menus.items()}


# --- editing -----------------------------------------------------------------------------


def links_of(db: Session) -> dict[str, list[NavLink]]:
    links: dict[str, list[NavLink]] = {name: [] for name in MENUS}
    for link in db.scalars(select(NavLink).order_by(NavLink.menu, NavLink.position, NavLink.id)):
        links.setdefault(link.menu, []).append(link)
    return links


def page_choices(db: Session) -> list[tuple[int, str]]:
    """Give the pages a menu may link to (id, title), by title; trashed ones aside."""
    rows = db.execute(
        select(Post.id, Post.title)
        .where(Post.kind == "page", Post.deleted_at.is_(None))
        .order_by(Post.title, Post.id)
    )
    return [(page_id, title) for page_id, title in rows]


def describe(link: NavLink, pages: dict[int, str]) -> str:
    """Give what a link leads to, in words, for the editing page."""
    if link.target_kind == "page":
        title = pages.get(int(link.target)) if link.target.isdigit() else None
        return f"the page “{title}”" if title else "a page that is gone"
    if link.target_kind == "tag":
        return f"the tag “{link.target}”"
    if link.target_kind == "archive":
        return "the archive"
    return link.target


def navigation_page(request: Request, form: Form | None = None, status: int = 200) -> Any:
    db = get_db(request)
    pages = page_choices(db)
    tags = [
        (slug, name) for slug, name in db.execute(select(Tag.slug, Tag.name).order_by(Tag.name))
    ]
    titles = dict(pages)
    links = links_of(db)
    return render_template(
        "admin/navigation.html",
        menus=MENUS,
        links=links,
        described={link.id: describe(link, titles) for items in links.values() for link in items},
        form=form or Form({"menu": "header", "target_kind": "page"}, ADD_FIELDS),
        pages=pages,
        tags=tags,
        target_kinds=TARGET_KINDS,
    ), status


def check_new_link(db: Session, form: Form) -> NavLink | None:
    """Give the link the add form describes, or None with errors beside the fields."""
    menu = form.get("menu")
    if menu not in MENUS:
        form.error("menu", "Choose the header or the footer menu.")
    label = form.text("label", label="Label", required=True, max_length=LABEL_MAX)
    kind = form.get("target_kind")
    target = ""
    if kind == "page":
        raw = form.get("page")
        page = db.get(Post, int(raw)) if raw.isascii() and raw.isdigit() and len(raw) < 12 else None
        if page is None or page.kind != "page" or page.deleted_at is not None:
            form.error("page", "Choose one of the site's pages.")
        else:
            target = str(page.id)
    elif kind == "tag":
        slug = form.get("tag")
        if db.scalar(select(Tag.id).where(Tag.slug == slug)) is None:
            form.error("tag", "Choose one of the site's tags.")
        target = slug
    elif kind == "url":
        target = form.text("url", label="Address", required=True, max_length=500)
        local = target.startswith("/") and not target.startswith(("//", "/\\"))
        if target and not local and not is_web_url(target):
            form.error("url", "Give an http(s) address, or a path on this site like /about.")
    elif kind != "archive":
        form.error("target_kind", "Choose what the link leads to.")
    if menu in MENUS and db.scalar(select(func.count()).where(NavLink.menu == menu)) >= LINKS_MAX:
        form.error("menu", f"A menu holds at most {LINKS_MAX} links.")
    if not form.ok:
        return None
    position = db.scalar(select(func.max(NavLink.position)).where(NavLink.menu == menu))
    return NavLink(
        menu=menu,
        label=label,
        target_kind=kind,
        target=target,
        position=(position or 0) + 1,
    )


def _link_or_400(db: Session, raw: str) -> NavLink:
    link = db.get(NavLink, int(raw)) if raw.isascii() and raw.isdigit() and len(raw) < 12 else None
    if link is None:
        raise BadRequest("There is no such link (it may have been removed a moment ago).")
    return link


def renumber(items: list[NavLink]) -> None:
    for number, item in enumerate(items, 1):
        item.position = number


@admin_required
def admin_navigation(request: Request) -> Any:
    """Show the menus (GET), or add, remove, move or reorder links (POST, then 303)."""
    if request.method == "GET":
        return navigation_page(request)
    db = get_db(request)
    begin_write(db)
    action = request.form.get("action", "")
    if action == "add":
        form = Form(request.form, ADD_FIELDS)
        link = check_new_link(db, form)
        if link is None:
            db.rollback()
            return navigation_page(request, form, 422)
        db.add(link)
        message = f"Added “{link.label}” to the {link.menu} menu."
    elif action in ("up", "down", "remove"):
        link = _link_or_400(db, request.form.get("link", ""))
        items = links_of(db)[link.menu]
        index = items.index(link)
        if action == "remove":
            db.delete(link)
            items.pop(index)
            message = f"Removed “{link.label}”."
        else:
            other = index - 1 if action == "up" else index + 1
            if 0 <= other < len(items):
                items[index], items[other] = items[other], items[index]
            message = f"Moved “{link.label}” {action}."
        renumber(items)
    elif action == "reorder":
        menu = request.form.get("menu", "")
        if menu not in MENUS:
            raise BadRequest("Choose the header or the footer menu.")
        items = links_of(db)[menu]
        by_id = {str(item.id): item for item in items}
        order = [part for part in request.form.get("order", "").split(",") if part]
        if sorted(order) != sorted(by_id):
            raise BadRequest("The menu changed meanwhile: reload the page and try again.")
        renumber([by_id[part] for part in order])
        message = f"The {menu} menu is in its new order."
    else:
        raise BadRequest("Unknown action.")
    bump_content_version(db)
    db.commit()
    flash(message, "success")
    return redirect(url_for("admin_navigation"))


def register(app: App) -> None:
    """Add /admin/navigation."""
    app.add_route("/admin/navigation", admin_navigation, methods=["GET", "POST"])
