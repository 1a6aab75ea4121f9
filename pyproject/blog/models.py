"""The tables, as SQLAlchemy models. The schema itself is made only by migrations/."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    literal_column,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement


def _system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Callable[[], datetime] = _system_clock


def utcnow() -> datetime:
    """Give the current time as an aware UTC datetime (from the clock tests may set)."""
    return _clock()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Replace the clock (tests move time without sleeping); None restores the real one."""
    global _clock
    _clock = clock or _system_clock


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always given back timezone-aware (SQLite forgets)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


post_tags = Table(
    "post_tags",
    Base.metadata,
    Column("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_post_tags_tag_post", "tag_id", "post_id"),
)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(80), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    # admin, editor, author or contributor (pyproject/blog/roles.py; widened by 0025)
    role: Mapped[str] = mapped_column(String(20), default="author")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # #23 writing desk (0023): a picture shown with the bio (a media id, no reference: a
    # picture gone from the library just stops showing), and the editor's font.
    picture_media_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    editor_font: Mapped[str] = mapped_column(String(5), default="sans", server_default="sans")

    posts: Mapped[list[Post]] = relationship(back_populates="author")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def name(self) -> str:
        """Give the name to show: the display name, else the username."""
        return self.display_name or self.username


class PostView(Base):
    """A post's view count on PostgreSQL, in a narrow table of its own: a reader's view is a
    small write that no author's save waits for. On SQLite the counts live in a database
    file of their own (pyproject.blog.db.ViewCounts), and this table is only read once, to carry
    its counts over."""

    __tablename__ = "post_views"

    post_id: Mapped[int] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    views: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    body_md: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    toc_html: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(String(300), default="")
    summary_is_custom: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(10), default="draft")
    word_count: Mapped[int] = mapped_column(Integer, default=0)
    reading_minutes: Mapped[int] = mapped_column(Integer, default=1)
    render_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The number of the revision this content is; the edit form sends it back, and a save
    # only applies if it still matches (two tabs, two authors: one wins, one gets a 409).
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # The tag names, space-separated, kept beside the link table for the search index.
    tag_names: Mapped[str] = mapped_column(Text, default="")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When subscribers were mailed this post (#14): set once, so later edits mail nobody.
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The picture shown atop the post, in lists, link previews and feeds (#15, 0014).
    cover_media_id: Mapped[int | None] = mapped_column(
        ForeignKey("media.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # Readers' comments (#18, 0015): "auto" (open until COMMENTS_CLOSE_DAYS after
    # publication), "open" or "closed".
    comments: Mapped[str] = mapped_column(String(10), default="auto", server_default="auto")
    # #17 site structure (0022): a standalone page (at /<slug>) is a post of kind "page";
    # per-post options: kept out of search engines, a canonical URL elsewhere, pinned home.
    kind: Mapped[str] = mapped_column(String(10), default="post", server_default="post")
    noindex: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    canonical_override: Mapped[str] = mapped_column(String(500), default="", server_default="")
    pinned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # #23 writing desk (0023): "auto" (a table of contents for posts with headings) or "off".
    toc_mode: Mapped[str] = mapped_column(String(5), default="auto", server_default="auto")

    author: Mapped[User] = relationship(back_populates="posts", lazy="joined")
    # Loaded when asked for (by primary key, so once per picture): most reads of a post
    # never show its cover. Feeds ask for all of theirs at once (selectinload). Templates
    # show it through cover.py (`post|cover`).
    cover_media: Mapped[Media | None] = relationship(lazy="select")
    tags: Mapped[list[Tag]] = relationship(
        secondary=post_tags, back_populates="posts", order_by="Tag.name"
    )

    __table_args__ = (
        Index("ix_posts_author_status_published", "author_id", "status", "published_at"),
        Index(
            "ix_posts_visible",
            "published_at",
            "id",
            "status",
            "deleted_at",
            "kind",  # lists show posts, not pages (#17): still read from the index alone
            sqlite_where=text("status = 'published' AND deleted_at IS NULL"),
            postgresql_where=text("status = 'published' AND deleted_at IS NULL"),
        ),
        # Related posts are ranked from it, by id, reading no post's row (0028, reading.py).
        Index(
            "ix_posts_visible_by_id",
            "id",
            "published_at",
            "kind",
            "status",
            "deleted_at",
            sqlite_where=text("status = 'published' AND deleted_at IS NULL"),
            postgresql_where=text("status = 'published' AND deleted_at IS NULL"),
        ),
        # The sitemap's columns, so listing every visible post reads no post (0006).
        Index(
            "ix_posts_listing",
            "id",
            "slug",
            "author_id",
            "updated_at",
            "published_at",
            "status",
            "deleted_at",
            sqlite_where=text("status = 'published' AND deleted_at IS NULL"),
            postgresql_where=text("status = 'published' AND deleted_at IS NULL"),
        ),
    )

    __mapper_args__ = {"version_id_col": revision, "version_id_generator": False}

    @property
    def is_published(self) -> bool:
        """Give whether readers can see the post now."""
        return (
            self.status == "published"
            and self.deleted_at is None
            and self.published_at is not None
            and self.published_at <= utcnow()
        )

    @property
    def is_scheduled(self) -> bool:
        return (
            self.status == "published"
            and self.published_at is not None
            and self.published_at > utcnow()
        )


def visible(now: Any) -> tuple[ColumnElement[bool], ...]:
    """Give the conditions for posts readers may see: published, due, not in the trash.

    The one definition of the rule: ORM queries use it as `.where(*visible(now))`, raw
    SQL as the text `visible_sql` compiles from it. (`Post.is_published` asks the same of
    a post already loaded.)
    """
    return (Post.status == "published", Post.published_at <= now, Post.deleted_at.is_(None))


_DIALECTS = {"sqlite": sqlite.dialect, "postgresql": postgresql.dialect}


@functools.cache
def visible_sql(dialect: str, now: str = ":now") -> str:
    """Give the rule of `visible` as SQL text for a dialect, `now` its time's placeholder.

    For instance ``posts.status = 'published' AND posts.published_at <= :now AND ...``;
    `now` is written as given (``:now`` for SQLAlchemy's text() and sqlite3,
    ``%(now)s`` for psycopg).
    """
    # Named parameters: the text is used as written, no percent sign doubled.
    compiler = _DIALECTS[dialect](paramstyle="named")
    condition = and_(*visible(literal_column(now)))
    return str(condition.compile(dialect=compiler, compile_kwargs={"literal_binds": True}))


class Revision(Base):
    """One saved (or autosaved, or restored) state of a post. Saved revisions are kept forever."""

    __tablename__ = "revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10), default="save")
    title: Mapped[str] = mapped_column(String(200))
    body_md: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(String(300), default="")
    tags: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    words_changed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User | None] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint("post_id", "number", name="uq_revisions_post_number"),
        Index("ix_revisions_post_kind_author", "post_id", "kind", "author_id"),
    )


class OldSlug(Base):
    """A slug a post had before: its URL answers 301 to the post's current one."""

    __tablename__ = "post_slugs"

    slug: Mapped[str] = mapped_column(String(200), primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GoneSlug(Base):
    """A slug of a purged post: its URL answers 410 Gone."""

    __tablename__ = "gone_slugs"

    slug: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    gone_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    slug: Mapped[str] = mapped_column(String(60), unique=True)

    posts: Mapped[list[Post]] = relationship(secondary=post_tags, back_populates="tags")


class SessionRecord(Base):
    """A server-side session: data kept under the hash of the id in the visitor's cookie."""

    __tablename__ = "sessions"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LoginAttempt(Base):
    """One sign-in attempt, for throttling by account and by client address."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(254))
    remote_addr: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_login_attempts_account", "account", "attempted_at"),
        Index("ix_login_attempts_addr", "remote_addr", "attempted_at"),
    )


class RateEvent(Base):
    """One use of a throttled action (pyproject/blog/throttle.py), under an HMAC of its key."""

    __tablename__ = "rate_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_rate_events_key", "action", "key", "at"),)


class SiteState(Base):
    """One row: a version every change readers could see bumps (for validators and caches)."""

    __tablename__ = "site_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobRecord(Base):
    """A job given to the queue and not yet done: what /admin/jobs shows, what recovery resends.

    Written in the transaction that made the job necessary (so a rolled-back change leaves
    none); the queue gets the job after that commit. The worker marks it running, deletes
    it when done, and marks it failed, with the error, when its retries run out.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the queue's task id
    name: Mapped[str] = mapped_column(String(200))
    args: Mapped[str] = mapped_column(Text, default="[]")  # JSON: ids and strings only
    state: Mapped[str] = mapped_column(String(10), default="waiting")  # running, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String(200), default="")  # host:pid running it
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_jobs_state", "state", "enqueued_at"),)


class WorkerRecord(Base):
    """A job worker's heartbeat: /admin/jobs tells whether one is running."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SentMessage(Base):
    """One email the site means to send, at most once: the message itself and its outcome.

    `key` ("kind:recipient:object id") is unique, so asking twice for the same message
    finds the first row instead of queueing a second. `message` holds the exact bytes
    the job sends. States: queued, sending (claimed by a job since `claimed_at`), sent.
    """

    __tablename__ = "sent_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    message_id: Mapped[str] = mapped_column(String(300))
    message: Mapped[bytes] = mapped_column(LargeBinary)  # the .eml, CRLF line ends
    state: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- subscriptions (#14) ---


class Subscriber(Base):
    """A reader who asked for new posts by email: the address and dates, nothing else.

    `secret` is random and per subscriber: the links in their messages are signed with it
    (and SECRET_KEY), and a new one is drawn when an unsubscribed address subscribes
    again, so links from before stop working.
    """

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lower-case
    state: Mapped[str] = mapped_column(String(12), default="pending")  # confirmed, unsubscribed
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_subscribers_state", "state", "id"),)


# --- invitations (#14) ---


class Invitation(Base):
    """An administrator's invitation to write here: a link, sent by email, that works once.

    Only the SHA-256 of the link's random token is kept, so the table alone lets nobody in.
    Pending while neither used, revoked nor past `expires_at`.
    """

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="author")
    invited_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    inviter: Mapped[User | None] = relationship(foreign_keys=[invited_by], lazy="joined")

    __table_args__ = (Index("ix_invitations_email", "email"),)


# --- media (#15) ---


class Media(Base):
    """An uploaded picture: its cleaned original is stored under `<sha256>/original.<ext>`.

    `sha256` is the upload's hash, so the same bytes uploaded twice are one row and one URL.
    `variants` is the JSON list of the copies the variants job made, each
    {"w": width, "h": height, "ext": "avif"|"webp"|"jpg"|"png"|"gif"}; empty until it ran.
    Which posts use a picture is read from their Markdown (pyproject/blog/media.py).
    """

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255), default="")  # a label, shown escaped
    source_format: Mapped[str] = mapped_column(String(10), default="")  # JPEG, PNG, GIF, ...
    ext: Mapped[str] = mapped_column(String(5))  # the stored original's: jpg, png or gif
    content_type: Mapped[str] = mapped_column(String(40))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    animated: Mapped[bool] = mapped_column(Boolean, default=False)
    alt: Mapped[str] = mapped_column(Text, default="")
    decorative: Mapped[bool] = mapped_column(Boolean, default=False)
    variants: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User] = relationship(lazy="joined")

    @property
    def original_name(self) -> str:
        """Give the media name of the cleaned original."""
        return f"{self.sha256}/original.{self.ext}"


# --- export and import (#16) ---


class Redirect(Base):
    """A path another platform used for a post ("/2019/05/slug/", "/?p=123"): 301 to it."""

    __tablename__ = "redirects"

    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportRun(Base):
    """One web import: the uploaded file kept in the instance folder until the job ran.

    States: checked (dry run shown, waiting for confirmation), queued, running, done, failed.
    `report` is the JSON of the dry run, then of the import.
    """

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255), default="")  # a label, shown escaped
    stored: Mapped[str] = mapped_column(String(255))  # the file's name under instance/imports
    options: Mapped[str] = mapped_column(Text, default="{}")  # JSON: as, on_conflict
    state: Mapped[str] = mapped_column(String(10), default="checked")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- comments (#18) ---


class Comment(Base):
    """A reader's answer under a post, or a Webmention reply from another site.

    `state` is held (awaiting review), approved (shown) or spam. `identity` is an HMAC of
    who wrote it (the email, else name and website) and `client` one of the address it
    came from: the trust rule and the moderation page compare them, nobody reads them.
    `email` is never shown. `body_html` is made once, when the comment is saved, by
    comments.render_comment (or escaped plain text for a Webmention reply).
    """

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), nullable=True, index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254), default="")
    website: Mapped[str] = mapped_column(String(300), default="")
    body_md: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(10), default="held")
    kind: Mapped[str] = mapped_column(String(12), default="comment")
    source_url: Mapped[str] = mapped_column(String(2000), default="")
    identity: Mapped[str] = mapped_column(String(64), default="")
    client: Mapped[str] = mapped_column(String(64), default="")
    notify_replies: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    post: Mapped[Post] = relationship(lazy="select")
    user: Mapped[User | None] = relationship(lazy="joined")

    @property
    def by_admin(self) -> bool:
        """Give whether an admin wrote it (pages mark it; comments.Shown carries the same)."""
        return self.user is not None and self.user.is_admin

    __table_args__ = (
        # A post's shown comments, in order, and its counts (lists count approved ones).
        Index("ix_comments_post_state", "post_id", "state", "parent_id", "id"),
        Index("ix_comments_identity", "identity", "state"),
        Index("ix_comments_state", "state", "id"),
        Index("ix_comments_source", "source_url", "post_id"),
    )


class CommentCount(Base):
    """How many approved comments a post has, and how many of them start a thread.

    Kept by comments.track_changes in the transaction that changes a shown comment, so a
    post page and a list read one row instead of counting the comments (0026). A post
    without approved comments has no row.
    """

    __tablename__ = "comment_counts"

    post_id: Mapped[int] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    approved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    threads: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# --- webmention (#18) ---


class Mention(Base):
    """A Webmention received: another page (`source`) that links to one of our posts.

    Pending until the verification job fetched the source and found the link; then
    verified, with what its h-entry says (`kind`: mention, reply, like or repost). A reply's
    text lives in comments (held for moderation); likes and reposts are listed by name.
    `queued` is true while a verification job waits, so a flood of the same
    (source, target) makes one job.
    """

    __tablename__ = "mentions"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(2000))
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10), default="mention")
    author_name: Mapped[str] = mapped_column(String(100), default="")
    author_url: Mapped[str] = mapped_column(String(2000), default="")
    state: Mapped[str] = mapped_column(String(10), default="pending")
    queued: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("source", "post_id", name="uq_mentions_source_post"),
        Index("ix_mentions_post_state", "post_id", "state", "kind"),
    )


class SentMention(Base):
    """A Webmention we sent: a link of a post (`target`) told of it at the post's `revision`.

    Sent again only when the post's revision changed. `endpoint` is empty when the
    target named none; `status` is the endpoint's answer (0 for none).
    """

    __tablename__ = "sent_mentions"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(2000))
    revision: Mapped[int] = mapped_column(Integer)
    endpoint: Mapped[str] = mapped_column(String(2000), default="")
    status: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("post_id", "target", name="uq_sent_mentions_post_target"),)


class MentionedRevision(Base):
    """The revision of a post whose links were last looked at for sending (one row a post).

    A public post whose revision differs (or that has no row: a scheduled post that just
    went live) is looked at again by the periodic `send_due_mentions`.
    """

    __tablename__ = "mentioned_revisions"

    post_id: Mapped[int] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer)


# --- media owners (#15) ---


class MediaOwner(Base):
    """A picture in one author's library, with that author's label and alt text for it.

    The same bytes uploaded by two authors are one `Media` (one URL, one set of files) with
    a row here for each; each sees it in /media and removes it for themselves only. The
    files go with the last row, and only when no post uses the picture. `Media.owner_id`,
    `filename`, `alt` and `decorative` are those of its first uploader still holding it.
    """

    __tablename__ = "media_owners"

    media_id: Mapped[int] = mapped_column(
        ForeignKey("media.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    filename: Mapped[str] = mapped_column(String(255), default="")  # a label, shown escaped
    alt: Mapped[str] = mapped_column(Text, default="")
    decorative: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- second factors (#20) ---


class SecondFactor(Base):
    """An account's authenticator app (TOTP): its secret, and the last time step used.

    A code is accepted only for a step after `last_step`, so a code seen once (over a
    shoulder, in a proxy's log) cannot be used again.
    """

    __tablename__ = "second_factors"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    totp_secret: Mapped[str] = mapped_column(String(64))
    enabled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class RecoveryCode(Base):
    """One single-use recovery code of an account, kept as an HMAC only."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- #20 tokens ---


class ApiToken(Base):
    """A personal API token: what it may do (`scopes`), until when, and when it was last used.

    Only the SHA-256 of the token is kept (`digest`, looked up on every use); `prefix`, its
    first characters, names it on /account/tokens. Revoked tokens stay, for the record.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(100))  # space-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


# --- #17 site structure ---


class SiteSetting(Base):
    """One setting changed in the browser (/admin/settings); unset ones come from .env."""

    __tablename__ = "site_settings"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SettingChange(Base):
    """A change of a site setting: who made it, when, and the value before and after."""

    __tablename__ = "setting_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str] = mapped_column(Text)
    new_value: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User | None] = relationship(lazy="joined")

    __table_args__ = (Index("ix_setting_changes_changed", "changed_at", "id"),)


class NavLink(Base):
    """One link of the header or footer menu: to a page, a tag, the archive or any URL."""

    __tablename__ = "nav_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    menu: Mapped[str] = mapped_column(String(10))  # "header" or "footer"
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(80))
    target_kind: Mapped[str] = mapped_column(String(10))  # page, tag, archive, url
    target: Mapped[str] = mapped_column(String(500), default="", server_default="")

    __table_args__ = (Index("ix_nav_links_menu", "menu", "position"),)


class Series(Base):
    """An ordered group of posts with a page of its own (/series/<slug>)."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SeriesPost(Base):
    """A post's place in its series (a post is in one series at most)."""

    __tablename__ = "series_posts"

    post_id: Mapped[int] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_series_posts_series", "series_id", "position"),)


# #22 statistics
# Day buckets of readers' views, referrers, searches and feed subscribers. On PostgreSQL
# they are these tables; on SQLite they live beside the view counts, in the counters' own
# file (pyproject.blog.db.ViewCounts), made there from these same definitions
# (pyproject.blog.stats). No row holds an address or anything else naming a reader.


class StatView(Base):
    """A page's views on one day (period "day") or, once rolled up, in one month ("month")."""

    __tablename__ = "stats_views"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    page: Mapped[str] = mapped_column(String(220), primary_key=True)  # post:12, home, tag:x
    period: Mapped[str] = mapped_column(String(5), default="day", server_default="day")
    post_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    author_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    views: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        Index("ix_stats_views_day_post", "day", "post_id", "views"),
        # A day's posts, most read first (stats.sums: one row a post a day).
        Index("ix_stats_views_day_views", "day", "views", "post_id"),
        Index("ix_stats_views_post", "post_id", "day"),
        Index("ix_stats_views_author", "author_id", "day"),
    )


class StatReferrer(Base):
    """Views of a page on one day (or month) that came from another site's domain."""

    __tablename__ = "stats_referrers"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    page: Mapped[str] = mapped_column(String(220), primary_key=True)
    referrer: Mapped[str] = mapped_column(String(253), primary_key=True)
    period: Mapped[str] = mapped_column(String(5), default="day", server_default="day")
    post_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    author_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    views: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        Index("ix_stats_referrers_post", "post_id", "day"),
        Index("ix_stats_referrers_author", "author_id", "day"),
    )


class StatSearch(Base):
    """How often a search term (lowercased) was looked for on a day, and what it found."""

    __tablename__ = "stats_searches"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    term: Mapped[str] = mapped_column(String(100), primary_key=True)
    searches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    found: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # hits, last time


class StatFeedReader(Base):
    """The subscribers a feed reader last reported for one of our feeds on a day."""

    __tablename__ = "stats_feed_readers"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reader: Mapped[str] = mapped_column(String(60), primary_key=True)
    feed: Mapped[str] = mapped_column(String(200), primary_key=True)
    subscribers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class StatRecentView(Base):
    """A keyed hash of (address, User-Agent, page, the day's salt) seen in the last minutes."""

    __tablename__ = "stats_recent_views"

    digest: Mapped[str] = mapped_column(String(32), primary_key=True)
    seen_at: Mapped[int] = mapped_column(BigInteger)  # Unix seconds

    __table_args__ = (Index("ix_stats_recent_views_seen", "seen_at"),)


class StatSalt(Base):
    """The day's random salt for the hashes above; deleted at midnight (the site's zone)."""

    __tablename__ = "stats_salts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    salt: Mapped[str] = mapped_column(String(64))


class StatWindow(Base):
    """The sums of a window's past days, kept for every worker and host (stats.Kept, JSON).

    Good while `generation` is the one in StatGeneration: writes to past days move that on.
    """

    __tablename__ = "stats_windows"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # days, posts, ...
    first_day: Mapped[date] = mapped_column(Date, primary_key=True)
    last_day: Mapped[date] = mapped_column(Date, primary_key=True)
    author_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0: the whole site
    minimum: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)
    sums: Mapped[str] = mapped_column(Text)


class StatGeneration(Base):
    """One row: how many times past days' buckets were changed (kept windows made stale)."""

    __tablename__ = "stats_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


# #20 roles


class AuditEntry(Base):
    """One line of the audit log (pyproject/blog/audit.py): who did what, when, from where.

    `actor_name` keeps the name as it was (or the login typed at a failed sign-in), so a
    line still reads after its account is gone; `network` is the client's /24 or /48.
    `detail` is JSON (or a short text). Lines are added, never changed.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    actor_name: Mapped[str] = mapped_column(String(254), default="")
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    network: Mapped[str] = mapped_column(String(64), default="")

    actor: Mapped[User | None] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_audit_log_action", "action", "id"),
        Index("ix_audit_log_actor", "actor_id", "id"),
        Index("ix_audit_log_at", "at"),
    )


class Passkey(Base):
    """A passkey (WebAuthn credential) of an account: its public key and signature counter.

    `credential_id` is the authenticator's id for it (base64url); `sign_count` the last
    counter seen, so an assertion whose counter does not grow (a replay, a cloned key) is
    refused when the authenticator keeps one.
    """

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(60))
    transports: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Review(Base):
    """Where a contributor's post stands in review (one row a post, made when first submitted).

    `state`: submitted (in the queue), changes (sent back with `note`), approved.
    `reviewed_revision` is the post's revision number at the last approval (0: never), the
    base of the diff the reviewer sees.
    """

    __tablename__ = "reviews"

    post_id: Mapped[int] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(10), default="submitted")
    submitted_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reviewer_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    reviewed_revision: Mapped[int] = mapped_column(Integer, default=0)

    post: Mapped[Post] = relationship(lazy="joined")
    submitter: Mapped[User | None] = relationship(foreign_keys=[submitted_by], lazy="joined")
    reviewer: Mapped[User | None] = relationship(foreign_keys=[reviewer_id], lazy="joined")

    __table_args__ = (Index("ix_reviews_state", "state", "submitted_at"),)


# #19 federation (ActivityPub, pyproject/blog/activitypub.py; migration 0020)


class FederationKey(Base):
    """The RSA key pair of one of our actors ("blog" or "user:<id>"), made when first needed."""

    __tablename__ = "federation_keys"

    actor: Mapped[str] = mapped_column(String(80), primary_key=True)
    public_pem: Mapped[str] = mapped_column(Text)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RemoteActor(Base):
    """An actor of another server we heard from: its inboxes, name and public key (a cache)."""

    __tablename__ = "federation_remote_actors"

    id: Mapped[int] = mapped_column(primary_key=True)
    uri: Mapped[str] = mapped_column(String(2000))
    key_id: Mapped[str] = mapped_column(String(2000))
    inbox: Mapped[str] = mapped_column(String(2000))
    shared_inbox: Mapped[str] = mapped_column(String(2000), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    username: Mapped[str] = mapped_column(String(200), default="")
    url: Mapped[str] = mapped_column(String(2000), default="")
    domain: Mapped[str] = mapped_column(String(255))
    public_key_pem: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("uri", name="uq_federation_remote_actors_uri"),
        Index("ix_federation_remote_actors_key", "key_id"),
    )

    @property
    def delivery_inbox(self) -> str:
        """Give where activities for this actor go: its server's shared inbox if it has one."""
        return self.shared_inbox or self.inbox

    @property
    def handle(self) -> str:
        return f"@{self.username}@{self.domain}" if self.username else self.uri


class Follower(Base):
    """A remote actor following one of ours; `state` pending (awaiting the admin) or accepted."""

    __tablename__ = "federation_followers"

    id: Mapped[int] = mapped_column(primary_key=True)
    local_actor: Mapped[str] = mapped_column(String(80))
    remote_actor_id: Mapped[int] = mapped_column(
        ForeignKey("federation_remote_actors.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(10), default="accepted")
    follow_activity: Mapped[str] = mapped_column(String(2000), default="")
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    remote: Mapped[RemoteActor] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint(
            "local_actor", "remote_actor_id", name="uq_federation_followers_actor_remote"
        ),
        Index("ix_federation_followers_state", "local_actor", "state"),
    )


class FederatedPost(Base):
    """What followers were last told of a post: its revision then, and created or deleted."""

    __tablename__ = "federation_posts"

    post_id: Mapped[int] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10))
    creates: Mapped[int] = mapped_column(Integer, default=0)
    told_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One activity for one inbox (a server's shared inbox), with its tries.

    `state`: waiting, done, failed (gave up after FEDERATION_RETRY_HOURS) or paused (its
    domain is). `audience` names our actors whose followers it serves (space-separated).
    """

    __tablename__ = "federation_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    inbox: Mapped[str] = mapped_column(String(2000))
    domain: Mapped[str] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    activity: Mapped[str] = mapped_column(Text)
    audience: Mapped[str] = mapped_column(String(400), default="")
    state: Mapped[str] = mapped_column(String(10), default="waiting")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_federation_deliveries_due", "state", "next_attempt_at"),
        Index("ix_federation_deliveries_domain", "domain", "state"),
    )


class FederationDomain(Base):
    """A remote domain's delivery health: failing since when, paused after a week of it."""

    __tablename__ = "federation_domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(500), default="")


class FederationBlock(Base):
    """A blocked domain or actor (`kind` domain or actor): nothing from it is accepted."""

    __tablename__ = "federation_blocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "value", name="uq_federation_blocks_kind_value"),)


class InboxEntry(Base):
    """One POST to an inbox and what became of it (`outcome`: accepted, ignored, refused...)."""

    __tablename__ = "federation_inbox_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(2000), default="")
    activity_type: Mapped[str] = mapped_column(String(40), default="")
    actor: Mapped[str] = mapped_column(String(2000), default="")
    inbox: Mapped[str] = mapped_column(String(80), default="")
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_federation_inbox_log_activity", "activity_id", "outcome"),)


class Reaction(Base):
    """A Like or Announce of one of our posts from the fediverse, listed by name."""

    __tablename__ = "federation_reactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    actor_uri: Mapped[str] = mapped_column(String(2000))
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    actor_url: Mapped[str] = mapped_column(String(2000), default="")
    activity_id: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "post_id", "kind", "actor_uri", name="uq_federation_reactions_post_kind_actor"
        ),
    )
