"""Revisions: the history of a post, word-level diffs between them, and restoring one."""

from __future__ import annotations

from sqlalchemy import select

from pyproject.blog.auth import current_user, login_required
from pyproject.blog.db import begin_write, end_transaction, get_db
from pyproject.blog.diffing import changes_only, tag_set_diff, word_diff
from pyproject.blog.editor import add_revision, parse_tags, render_body, render_onto, set_tags
from pyproject.blog.forms import Form
from pyproject.blog.models import Post, Revision, utcnow
from pyproject.blog.posts import get_post_or_404
from pyproject.blog.review import after_restore
from pyproject.lib import App, Request, Response, flash, redirect, render_template, url_for
from pyproject.lib.exceptions import NotFound


def get_revision_or_404(request: Request, post: Post, number: int) -> Revision:
    revision = get_db(request).scalar(
        select(Revision).where(Revision.post_id == post.id, Revision.number == number)
    )
    if revision is None:
        raise NotFound("This post has no revision with that number.")
    return revision


@login_required
def list_revisions(request: Request, slug: str) -> str:
    """Every revision of a post, newest first (its author and admins only)."""
    post = get_post_or_404(request, slug, check_author=True)
    revisions = get_db(request).scalars(
        select(Revision).where(Revision.post_id == post.id).order_by(Revision.number.desc())
    )
    return render_template("revisions/list.html", post=post, revisions=list(revisions))


@login_required
def show_revision(request: Request, slug: str, number: int) -> str:
    """A revision as a word-level diff against the one before it."""
    post = get_post_or_404(request, slug, check_author=True)
    revision = get_revision_or_404(request, post, number)
    # Against the saved text it replaced (autosaves were never the post's text), the
    # same text its "words changed" count was taken against.
    previous = get_db(request).scalar(
        select(Revision)
        .where(
            Revision.post_id == post.id,
            Revision.number < number,
            Revision.kind != "autosave",
        )
        .order_by(Revision.number.desc())
        .limit(1)
    )
    before = previous or Revision(title="", body_md="", tags="", summary="")
    return render_template(
        "revisions/show.html",
        post=post,
        revision=revision,
        previous=previous,
        body_diff=word_diff(before.body_md, revision.body_md),
        title_diff=word_diff(before.title, revision.title),
        changes=changes_only(before.body_md, revision.body_md),
        # Tags are a set: the same tags in another order are no change (#23).
        tag_changes=tag_set_diff(before.tags, revision.tags),
        summary_diff=word_diff(before.summary, revision.summary),
    )


@login_required
def restore_revision(request: Request, slug: str, number: int) -> Response:
    """Make a revision's content current again, as a new revision; nothing is overwritten.

    The revision is rendered before the write transaction begins, so that no lock is held
    while it renders; a revision the budgets now refuse is not restored, and the author is
    told why.
    """
    post = get_post_or_404(request, slug, check_author=True)
    revision = get_revision_or_404(request, post, number)
    db = get_db(request)
    end_transaction(db)
    form = Form({"body": revision.body_md, "tags": revision.tags}, ("body", "tags"))
    rendered = render_body(form, revision.body_md)
    if rendered is None:
        flash(f"Revision {number} cannot be restored: {form.errors['body']}", "error")
        return redirect(url_for("show_revision", slug=post.slug, number=number))
    begin_write(db)
    db.refresh(post)
    previous_body = post.body_md
    post.title = revision.title
    render_onto(post, revision.body_md, rendered, revision.summary)
    set_tags(db, post, parse_tags(form))
    post.updated_at = utcnow()
    new = add_revision(db, post, "restore", current_user(request), previous_body)
    after_restore(db, post, current_user(request))  # a contributor's goes to review (#20)
    db.commit()
    flash(f"Restored revision {number} as revision {new.number}.", "success")
    return redirect(url_for("show_post", slug=post.slug))


def register(app: App) -> None:
    app.add_route("/posts/<slug:slug>/revisions", list_revisions)
    app.add_route("/posts/<slug:slug>/revisions/<int:number>", show_revision)
    app.add_route(
        "/posts/<slug:slug>/revisions/<int:number>/restore", restore_revision, methods=["POST"]
    )
