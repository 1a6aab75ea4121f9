"""Comments (#18): the form, moderation, spam defence, feeds and notifications."""

from __future__ import annotations

from sqlalchemy import select

from pyproject.blog import comments
from pyproject.blog.db import get_database
from pyproject.blog.models import Comment, SentMessage
from tests.blog.conftest import Cast, make_world


def test_a_remote_reply_is_held_as_escaped_text_and_replaced_by_its_source(cast: Cast) -> None:
    world = make_world(cast)
    app = cast.app
    with get_database(app).write() as db:
        post_id = db.scalar(select(comments.Post.id).where(comments.Post.slug == world.published))
        reply = comments.add_remote_reply(
            db,
            post_id,
            author_name="Eve\nRemote",
            author_url="https://eve.example/",
            body_text="<script>alert(1)</script>\n\nsecond",
            source_url="https://eve.example/reply",
            published=None,
            app=app,
        )
        assert reply.state == "held" and reply.kind == "webmention"
        assert reply.name == "Eve Remote"
        assert "<script>" not in reply.body_html and "&lt;script&gt;" in reply.body_html
        again = comments.add_remote_reply(
            db,
            post_id,
            author_name="Eve",
            author_url="https://eve.example/",
            body_text="changed",
            source_url="https://eve.example/reply",
            published=None,
            app=app,
        )
        assert again.id == reply.id and again.body_md == "changed"
    with get_database(app).read() as db:
        held_mail = db.scalars(select(SentMessage).where(SentMessage.kind == "comment-held"))
        assert [m.recipient for m in held_mail] == ["alice@example.com"]
    with get_database(app).write() as db:
        comments.remove_remote_reply(db, "https://eve.example/reply", post_id)
    with get_database(app).read() as db:
        assert db.scalar(select(Comment.id)) is None
