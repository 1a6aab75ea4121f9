"""Tests for pyproject/blog/review.py: a contributor's post goes through review to readers."""

from __future__ import annotations

import email
from email import policy

from sqlalchemy import select

from blog.conftest import Cast, create_author, csrf_token, edit_post, form_of, login, slug_of
from blog.conftest import write_post as write
from pyproject.blog.db import get_database
from pyproject.blog.models import AuditEntry, Post, Review, SentMessage, utcnow
from pyproject.lib.testing import TestClient

PASSWORD = "contributor passphrase 1"


def contributor(cast: Cast, name: str = "carl") -> TestClient:
    assert create_author(cast.admin, name, password=PASSWORD, role="contributor").status_code == 303
    client = cast.app.test_client()
    assert login(client, name, PASSWORD).status_code == 303
    return client


def editor(cast: Cast) -> TestClient:
    assert create_author(cast.admin, "edna", password=PASSWORD, role="editor").status_code == 303
    client = cast.app.test_client()
    assert login(client, "edna", PASSWORD).status_code == 303
    return client


def row(cast: Cast, slug: str) -> tuple[Post, Review | None]:
    with get_database(cast.app).read() as db:
        post = db.scalar(select(Post).where(Post.slug == slug))
        review = db.get(Review, post.id)
        db.expunge_all()
        return post, review


def mails(cast: Cast, kind: str) -> list[email.message.EmailMessage]:
    with get_database(cast.app).read() as db:
        rows = db.scalars(select(SentMessage).where(SentMessage.kind == kind)).all()
        return [email.message_from_bytes(r.message, policy=policy.default) for r in rows]


def submit(client: TestClient, slug: str):
    values = form_of(client.get("/drafts"), f'form[action="/posts/{slug}/submit"]')
    return client.post(f"/posts/{slug}/submit", data=values)


def answer(client: TestClient, post_id: int, how: str, **fields: str):
    page = client.get(f"/review/{post_id}")
    values = form_of(page, f'form[action="/review/{post_id}/approve"]')
    values.update(fields)
    return client.post(f"/review/{post_id}/{how}", data=values)


def test_a_draft_goes_through_review_to_readers(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="Carl's first", body="Hello readers.", status="draft"))
    assert submit(carl, slug).status_code == 303
    post, review = row(cast, slug)
    assert review.state == "submitted" and post.status == "draft"
    queue = edna.get("/review")
    assert "Carl&#39;s first" in queue.text or "Carl's first" in queue.text
    page = edna.get(f"/review/{post.id}")
    assert [i.get_text() for i in page.html.select("pre.diff ins")] == ["Hello readers."]
    assert answer(edna, post.id, "approve").status_code == 303
    post, review = row(cast, slug)
    assert post.status == "published" and post.is_published
    assert (review.state, review.reviewed_revision) == ("approved", post.revision)
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 200
    [told] = mails(cast, "review-approved")
    assert told["To"].addresses[0].addr_spec == "carl@example.com"
    assert "now published" in told.get_body(("plain",)).get_content()
    assert "Nothing is waiting" in edna.get("/review").text


def test_choosing_published_submits_for_review(cast: Cast) -> None:
    carl = contributor(cast)
    saved = write(carl, title="Straight out", status="published")
    post, review = row(cast, slug_of(saved))
    assert post.status == "draft" and review.state == "submitted"
    assert "Submitted for review" in carl.get("/drafts").text


def test_request_changes_needs_a_note_and_tells_the_author(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="Rough", body="Teh text.", status="published"))
    post, _ = row(cast, slug)
    empty = answer(edna, post.id, "changes", note="  ")
    assert empty.status_code == 422
    assert empty.html.select_one("#e-note") is not None
    done = answer(edna, post.id, "changes", note="Spell “the” right.")
    assert done.status_code == 303
    post, review = row(cast, slug)
    assert (review.state, review.note, post.status) == ("changes", "Spell “the” right.", "draft")
    [told] = mails(cast, "review-changes")
    assert "Spell “the” right." in told.get_body(("plain",)).get_content()
    drafts = carl.get("/drafts").text
    assert "changes requested" in drafts and "Spell “the” right." in drafts
    assert edit_post(carl, slug, body="The text.").status_code == 303
    assert submit(carl, slug).status_code == 303
    assert row(cast, slug)[1].state == "submitted"


def test_edits_after_approval_go_back_to_review_with_the_diff_since(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="Live", body="First words.", status="published"))
    post, _ = row(cast, slug)
    assert answer(edna, post.id, "approve").status_code == 303
    approved_revision = row(cast, slug)[0].revision
    assert edit_post(carl, slug, body="First words. Sneaky addition.").status_code == 303
    post, review = row(cast, slug)
    assert post.status == "draft" and review.state == "submitted"
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 404
    page = edna.get(f"/review/{post.id}")
    assert f"revision {approved_revision}" in page.text
    assert [i.get_text().strip() for i in page.html.select("pre.diff ins")] == ["Sneaky addition."]


def test_an_approval_can_schedule(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="Later", status="published"))
    post, _ = row(cast, slug)
    year = utcnow().year + 1
    assert answer(edna, post.id, "approve", publish_at=f"{year}-01-01T09:00").status_code == 303
    post, _ = row(cast, slug)
    assert post.is_scheduled and post.published_at.year == year


def test_an_answer_to_a_post_already_answered_is_a_conflict(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="Twice", status="published"))
    post, _ = row(cast, slug)
    values = form_of(edna.get(f"/review/{post.id}"), f'form[action="/review/{post.id}/approve"]')
    assert edna.post(f"/review/{post.id}/approve", data=values).status_code == 303
    again = edna.post(f"/review/{post.id}/changes", data={**values, "note": "late"})
    assert again.status_code == 409
    assert row(cast, slug)[1].state == "approved"


def test_a_bad_publish_time_is_422_with_what_was_typed(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="When", status="published"))
    post, _ = row(cast, slug)
    page = answer(edna, post.id, "approve", publish_at="next tuesday", note="Nice.")
    assert page.status_code == 422
    assert page.form_values(f'form[action="/review/{post.id}/approve"]')["note"] == "Nice."
    assert row(cast, slug)[0].status == "draft"


def test_only_editors_and_admins_review(cast: Cast) -> None:
    carl = contributor(cast)
    slug = slug_of(write(carl, title="Mine", status="published"))
    post, _ = row(cast, slug)
    for client in (carl, cast.author):
        assert client.get("/review").status_code == 403
        assert client.get(f"/review/{post.id}").status_code == 403
        token = csrf_token(client)
        assert (
            client.post(f"/review/{post.id}/approve", data={"csrf_token": token}).status_code == 403
        )
    assert cast.admin.get(f"/review/{post.id}").status_code == 200
    assert cast.anonymous.get("/review").status_code == 303
    assert row(cast, slug)[0].status == "draft"


def test_only_the_author_submits_their_post(cast: Cast) -> None:
    carl = contributor(cast)
    slug = slug_of(write(carl, title="Carl's", status="draft"))
    other = contributor(cast, "cora")
    token = csrf_token(other)
    assert other.post(f"/posts/{slug}/submit", data={"csrf_token": token}).status_code == 404
    assert row(cast, slug)[1] is None


def test_review_answers_are_in_the_audit_log(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="Logged", status="published"))
    post, _ = row(cast, slug)
    answer(edna, post.id, "approve")
    with get_database(cast.app).read() as db:
        actions = [
            (e.actor_name, e.action)
            for e in db.scalars(select(AuditEntry).where(AuditEntry.action.like("review%")))
        ]
    assert actions == [("carl", "review_submitted"), ("edna", "review_approved")]


def test_an_editor_publishing_a_queued_post_in_the_editor_approves_it(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="Via the editor", status="published"))
    assert edit_post(edna, slug, status="published").status_code == 303
    post, review = row(cast, slug)
    assert post.is_published
    assert (review.state, review.reviewed_revision) == ("approved", post.revision)
    assert "Nothing is waiting" in edna.get("/review").text


def test_an_edit_approved_again_keeps_its_first_date(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="Dated", body="One.", status="published"))
    post, _ = row(cast, slug)
    assert answer(edna, post.id, "approve").status_code == 303
    first = row(cast, slug)[0].published_at
    assert edit_post(carl, slug, body="One. Two.").status_code == 303
    assert answer(edna, post.id, "approve").status_code == 303
    post, _ = row(cast, slug)
    assert post.is_published and post.published_at == first


def test_restoring_a_revision_of_an_approved_post_goes_back_to_review(cast: Cast) -> None:
    carl, edna = contributor(cast), editor(cast)
    slug = slug_of(write(carl, title="Restored", body="Old words.", status="published"))
    post, _ = row(cast, slug)
    assert edit_post(carl, slug, body="Approved words.").status_code == 303
    assert answer(edna, post.id, "approve").status_code == 303
    values = {"csrf_token": csrf_token(carl)}
    assert carl.post(f"/posts/{slug}/revisions/1/restore", data=values).status_code == 303
    post, review = row(cast, slug)
    assert (post.status, post.body_md, review.state) == ("draft", "Old words.", "submitted")
    assert cast.anonymous.get(f"/posts/{slug}").status_code == 404
