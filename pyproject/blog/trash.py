"""The trash: deleted posts wait here, restorable, until purged after TRASH_DAYS days."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from huey import crontab
from sqlalchemy import select
from sqlalchemy.orm import Session

from pyproject.blog import jobs
from pyproject.blog.auth import current_user, login_required
from pyproject.blog.db import Database, ViewCounts, get_database, get_db, get_view_counts
from pyproject.blog.jobs import job
from pyproject.blog.models import GoneSlug, OldSlug, Post, utcnow
from pyproject.blog.posts import can_edit, prune_unused_tags
from pyproject.cli import PREPARE_STEPS, command
from pyproject.lib import (
    App,
    Request,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from pyproject.lib.exceptions import Forbidden, NotFound


def trashed_post_or_404(request: Request, slug: str) -> Post:
    """Give a post in the trash that the signed-in user may restore or purge."""
    post = get_db(request).scalar(
        select(Post).where(Post.slug == slug, Post.deleted_at.is_not(None))
    )
    if post is None:
        raise NotFound("There is no post with that slug in the trash.")
    if not can_edit(current_user(request), post):
        raise Forbidden("Only the post's author or an administrator can do that.")
    return post


def _delete_for_good(db: Session, post: Post) -> None:
    """Delete a post; its URLs (current and earlier slugs) answer 410 from now on."""
    slugs = [post.slug, *db.scalars(select(OldSlug.slug).where(OldSlug.post_id == post.id))]
    for slug in slugs:
        if db.get(GoneSlug, slug) is None:
            db.add(GoneSlug(slug=slug, title=post.title, gone_at=utcnow()))
    db.delete(post)


def purge(db: Session, post: Post) -> None:
    """Delete a post for good, and the tags only it carried."""
    tag_ids = [tag.id for tag in post.tags]
    _delete_for_good(db, post)
    prune_unused_tags(db, tag_ids)


def purge_expired(database: Database, days: int) -> int:
    """Purge every post that has been in the trash longer than `days`; give how many.

    Every tag no post carries goes too: the purged posts' own, and any an earlier
    version of the blog left behind.
    """
    cutoff = utcnow() - timedelta(days=days)
    with database.write() as db:
        posts = list(db.scalars(select(Post).where(Post.deleted_at < cutoff)))
        ids = [post.id for post in posts]
        for post in posts:
            _delete_for_good(db, post)
        prune_unused_tags(db)
    counts = ViewCounts(database)
    try:
        counts.forget(ids)  # a new post may get a purged one's id
    finally:
        counts.close()
    return len(ids)


@login_required
def trash(request: Request) -> str:
    """The signed-in author's trashed posts (admins: everyone's)."""
    user = current_user(request)
    query = select(Post).where(Post.deleted_at.is_not(None)).order_by(Post.deleted_at.desc())
    if user.role not in ("admin", "editor"):  # editors see everyone's (#20 roles)
        query = query.where(Post.author_id == user.id)
    posts = list(get_db(request).scalars(query))
    days = int(current_app().config["TRASH_DAYS"])
    return render_template("trash/index.html", posts=posts, purge_after=timedelta(days=days))


@login_required
def restore_post(request: Request, slug: str) -> Response:
    """Take a post out of the trash, as it was."""
    post = trashed_post_or_404(request, slug)
    post.deleted_at = None
    get_db(request).commit()
    flash(f"“{post.title}” is restored.", "success")
    return redirect(url_for("show_post", slug=post.slug))


@login_required
def purge_post(request: Request, slug: str) -> Response:
    """Delete a trashed post for good."""
    post = trashed_post_or_404(request, slug)
    db = get_db(request)
    title, post_id = post.title, post.id
    purge(db, post)
    db.commit()
    get_view_counts(current_app()).forget([post_id])
    flash(f"“{title}” is deleted for good.", "success")
    return redirect(url_for("trash"))


@command("purge-trash", "delete for good the posts in the trash for longer than TRASH_DAYS")
def purge_trash_command(app: App, args: Any) -> int:
    count = purge_expired(get_database(app), int(app.config["TRASH_DAYS"]))
    print(f"Purged {count} post{'s' if count != 1 else ''} from the trash.")
    return 0


@job(periodic=crontab(minute="17", hour="*/6"))
def purge_trash_job() -> None:
    """Every six hours (the worker's scheduler): purge what has been in the trash too long."""
    app = jobs.current_app()
    purge_expired(get_database(app), int(app.config["TRASH_DAYS"]))


def _purge_on_start(app: App) -> None:
    purge_expired(get_database(app), int(app.config["TRASH_DAYS"]))


def register(app: App) -> None:
    app.add_route("/trash", trash)
    app.add_route("/posts/<slug:slug>/restore", restore_post, methods=["POST"])
    app.add_route("/posts/<slug:slug>/purge", purge_post, methods=["POST"])
    if _purge_on_start not in PREPARE_STEPS:
        PREPARE_STEPS.append(_purge_on_start)
