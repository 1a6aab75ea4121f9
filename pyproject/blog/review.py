"""Review: contributors' posts go through an editor or admin before readers see them.

A contributor's save never publishes: "Submit for review" (or saving with "published"
chosen) puts the post in the queue at /review, where editors and admins see what changed
since the last review as a word diff (pyproject/blog/diffing.py). "Approve" publishes it
(at a time given, or now); "Request changes" sends it back with a note. Either way the
contributor gets an email (a mail job). Once approved, a contributor's further edit
takes the post back to a draft in the queue: nothing they write reaches readers unseen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pyproject.blog import audit, auth, roles, webmention
from pyproject.blog.db import get_db
from pyproject.blog.diffing import word_diff
from pyproject.blog.forms import Form
from pyproject.blog.models import Post, Review, Revision, User, utcnow
from pyproject.lib import App, Request, Response, flash, redirect, render_template, url_for
from pyproject.lib.app import current_request
from pyproject.lib.exceptions import Forbidden, NotFound

NOTE_MAX = 2000


def review_of(db: Session, post: Post) -> Review | None:
    return db.get(Review, post.id) if post.id is not None else None


def submit(db: Session, post: Post, user: User) -> Review:
    """Put the post in the review queue (again); the caller commits."""
    review = review_of(db, post)
    if review is None:
        review = Review(post_id=post.id, reviewed_revision=0, note="")
        db.add(review)
    review.state = "submitted"
    review.submitted_by = user.id
    review.submitted_at = utcnow()
    audit.record(db, user, "review_submitted", {"post": post.slug})
    return review


def hold_for_review(user: User, data: Any) -> bool:
    """Before a save: a contributor's post stays a draft. Give whether they asked to publish.

    `data` is the editor's PostInput (its status and publish time are changed here).
    """
    if roles.can_publish(user):
        return False
    asked = data.status == "published"
    data.status = "draft"
    data.publish_at = None
    return asked


def after_save(db: Session, post: Post, user: User, asked: bool) -> None:
    """After a save: a contributor's publish request, or edit of an approved post, is queued.

    An editor's or admin's save that publishes a post waiting in the queue approves it.
    """
    if roles.can_publish(user):
        review = review_of(db, post)
        if review is not None and review.state == "submitted" and post.status == "published":
            _mark_approved(review, post, user, utcnow())
            audit.record(db, user, "review_approved", {"post": post.slug, "by": "saving it"})
        return
    review = review_of(db, post)
    if asked or (review is not None and review.state == "approved"):
        submit(db, post, user)
        request = current_request()
        if request is not None and request.session is not None:
            flash("Submitted for review: an editor or administrator will publish it.", "info")


def _mark_approved(review: Review, post: Post, reviewer: User, now: datetime) -> None:
    review.state = "approved"
    review.reviewer_id = reviewer.id
    review.reviewed_at = now
    review.reviewed_revision = post.revision


def after_restore(db: Session, post: Post, user: User) -> None:
    """After a contributor restores a revision: as after an edit, readers see nothing new."""
    if roles.can_publish(user):
        return
    if post.status == "published":
        post.status = "draft"
    after_save(db, post, user, asked=False)


def reviews_by_post(db: Session, post_ids: list[int]) -> dict[int, Review]:
    """Give the review rows of these posts (for the lists that show a post's state)."""
    if not post_ids:
        return {}
    rows = db.scalars(select(Review).where(Review.post_id.in_(post_ids)))
    return {row.post_id: row for row in rows}


# --- views --------------------------------------------------------------------------------


def _post_or_404(db: Session, post_id: int) -> Post:
    post = db.get(Post, post_id)
    if post is None or post.deleted_at is not None:
        raise NotFound("There is no such post.")
    return post


def _reviewer(request: Request) -> User:
    user = auth.current_user(request)
    if not roles.can_review(user):
        raise Forbidden("Only editors and administrators review posts.")
    return user


@auth.login_required
def submit_post(request: Request, slug: str) -> Response:
    """The author's "Submit for review" on their own draft."""
    from pyproject.blog.posts import get_post_or_404  # (posts builds on roles, as we do)

    db = get_db(request)
    user = auth.current_user(request)
    post = get_post_or_404(request, slug, check_author=True)
    if post.author_id != user.id:
        raise Forbidden("Only the post's author submits it for review.")
    if post.status == "published" and roles.can_publish(user):
        flash("This post is published already.", "info")
        return redirect(url_for("drafts"))
    review = review_of(db, post)
    if review is not None and review.state == "submitted":
        flash("This post is waiting for review already.", "info")
        return redirect(url_for("drafts"))
    submit(db, post, user)
    db.commit()
    flash(f"“{post.title}” is submitted for review.", "success")
    return redirect(url_for("drafts"))


@auth.login_required
def queue(request: Request) -> Any:
    """/review: the posts waiting for review, oldest first (editors and admins)."""
    _reviewer(request)
    db = get_db(request)
    waiting = db.scalars(
        select(Review)
        .join(Post, Post.id == Review.post_id)
        .where(Review.state == "submitted", Post.deleted_at.is_(None))
        .order_by(Review.submitted_at, Review.post_id)
    ).all()
    return render_template("review/queue.html", reviews=waiting)


def _revision(db: Session, post: Post, number: int) -> Revision | None:
    if number <= 0:
        return None
    return db.scalar(
        select(Revision).where(
            Revision.post_id == post.id, Revision.number == number, Revision.kind != "autosave"
        )
    )


def _review_page(
    request: Request, post: Post, review: Review, form: Form, status: int = 200
) -> tuple[str, int]:
    db = get_db(request)
    before = _revision(db, post, review.reviewed_revision)
    old = before or Revision(title="", body_md="", tags="", summary="")
    tags_now = " ".join(tag.name for tag in post.tags)
    page = render_template(
        "review/show.html",
        post=post,
        review=review,
        before=before,
        form=form,
        title_diff=word_diff(old.title, post.title),
        tags_diff=word_diff(old.tags, tags_now),
        body_diff=word_diff(old.body_md, post.body_md),
    )
    return page, status


REVIEW_FIELDS = ("note", "publish_at")


@auth.login_required
def show_review(request: Request, post_id: int) -> Any:
    """One post in review: what changed since the last review, and the two answers."""
    _reviewer(request)
    db = get_db(request)
    post = _post_or_404(db, post_id)
    review = review_of(db, post)
    if review is None:
        raise NotFound("This post was never submitted for review.")
    return _review_page(request, post, review, Form(None, REVIEW_FIELDS))


def _answerable(request: Request, post_id: int) -> tuple[Session, User, Post, Review, Form]:
    reviewer = _reviewer(request)
    db = get_db(request)
    post = _post_or_404(db, post_id)
    review = review_of(db, post)
    if review is None:
        raise NotFound("This post was never submitted for review.")
    return db, reviewer, post, review, Form(request.form, REVIEW_FIELDS)


def _tell_author(db: Session, post: Post, review: Review, subject: str, message: str) -> None:
    from pyproject.blog.subscriptions import notify_author  # (it builds on much of the blog)

    stamp = int(review.reviewed_at.timestamp()) if review.reviewed_at else 0
    notify_author(
        db,
        post.id,
        f"review-{review.state}",
        object_id=f"{post.id}-{post.revision}-{stamp}",
        subject=subject,
        message=message,
    )


@auth.login_required
def approve(request: Request, post_id: int) -> Any:
    """Publish the post now, or schedule it for the time given; tell its author."""
    from pyproject.blog.editor import parse_local_time, set_tags, site_zone
    from pyproject.blog.subscriptions import announce_when_public

    db, reviewer, post, review, form = _answerable(request, post_id)
    note = form.text("note", label="Note", max_length=NOTE_MAX)
    publish_at: datetime | None = None
    if form.text("publish_at", label="Publish at", max_length=40):
        publish_at = parse_local_time(form["publish_at"])
        if publish_at is None:
            form.error("publish_at", "Enter a date and time like 2026-12-24T09:00.")
    if review.state != "submitted":
        form.error("note", "This post is not waiting for review (someone answered already).")
    if not form.ok:
        return _review_page(
            request, post, review, form, 422 if review.state == "submitted" else 409
        )
    now = utcnow()
    post.status = "published"
    if publish_at is not None:
        post.published_at = publish_at
    elif post.published_at is None or post.published_at > now:
        post.published_at = now  # (an edit approved again keeps its first date)
    post.updated_at = now
    set_tags(db, post, [(tag.name, tag.slug) for tag in post.tags], public=True)
    _mark_approved(review, post, reviewer, now)
    review.note = note
    announce_when_public(db, post)
    webmention.send_when_public(db, post)
    audit.record(db, reviewer, "review_approved", {"post": post.slug}, request=request)
    when = "now published"
    if post.published_at > now:
        local = post.published_at.astimezone(site_zone()).strftime("%-d %B %Y at %H:%M")
        when = f"scheduled for {local}"
    _tell_author(
        db,
        post,
        review,
        f"Approved: {post.title}",
        f"{reviewer.name} approved your post; it is {when}." + (f"\n\n{note}" if note else ""),
    )
    db.commit()
    flash(f"“{post.title}” is approved and {when}.", "success")
    return redirect(url_for("review_queue"))


@auth.login_required
def request_changes(request: Request, post_id: int) -> Any:
    """Send the post back to its author with a note saying what to change."""
    db, reviewer, post, review, form = _answerable(request, post_id)
    note = form.text("note", label="Note", required=True, max_length=NOTE_MAX)
    if review.state != "submitted":
        form.error("note", "This post is not waiting for review (someone answered already).")
    if not form.ok:
        return _review_page(
            request, post, review, form, 422 if review.state == "submitted" else 409
        )
    review.state = "changes"
    review.reviewer_id = reviewer.id
    review.reviewed_at = utcnow()
    review.note = note
    audit.record(db, reviewer, "review_changes_requested", {"post": post.slug}, request=request)
    _tell_author(
        db,
        post,
        review,
        f"Changes requested: {post.title}",
        f"{reviewer.name} asks for changes before publishing your post:\n\n{note}",
    )
    db.commit()
    flash(f"“{post.title}” is sent back to its author.", "success")
    return redirect(url_for("review_queue"))


def register(app: App) -> None:
    app.add_route("/posts/<slug:slug>/submit", submit_post, methods=["POST"])
    app.add_route("/review", queue, endpoint="review_queue")
    app.add_route("/review/<int:post_id>", show_review)
    app.add_route("/review/<int:post_id>/approve", approve, methods=["POST"])
    app.add_route("/review/<int:post_id>/changes", request_changes, methods=["POST"])

    def reviews_of(posts: list[Post]) -> dict[int, Review]:
        request = current_request()
        if request is None:
            return {}
        return reviews_by_post(get_db(request), [post.id for post in posts])

    app.jinja_env.globals["reviews_of"] = reviews_of
