"""The write API (#20): posts and pictures, with a personal token, as JSON.

    POST   /api/posts                 create a post (201, Location, ETag)
    GET    /api/posts/<slug>/source   a post of yours as you wrote it (drafts too), ETag
    PATCH  /api/posts/<slug>          change some fields; If-Match: the ETag (428 without,
                                      412 and the current version when it is stale)
    DELETE /api/posts/<slug>          to the trash (204); If-Match, if sent, must match
    POST   /api/media                 upload pictures to your library (201, Location)

Every one needs `Authorization: Bearer <token>` (pyproject/blog/tokens.py): a session
cookie is never enough, so there is no CSRF token to send. The fields are checked by the
editor's own rules (editor.validate_post: 422 with a message per field) and a post is
written by the editor's own save (editor.store_post: revisions, slugs, the site version
for caches, mail to subscribers, Webmentions), so nothing written here differs from what
the editor would have written.

A post's ETag is its id and revision number: any save, here or in the editor, changes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from pyproject.blog import cover, media, openapi
from pyproject.blog.db import begin_write, end_transaction, get_db
from pyproject.blog.editor import (
    POST_FIELDS,
    form_from_post,
    own_summary,
    render_body,
    slug_problem,
    store_post,
    validate_post,
)
from pyproject.blog.forms import Form
from pyproject.blog.models import Post, User, utcnow
from pyproject.blog.posts import get_post_or_404
from pyproject.blog.tokens import authorise, authorise_any, iso_utc
from pyproject.lib import App, Request, Response, current_app, url_for
from pyproject.lib.exceptions import BadRequest, HTTPException
from pyproject.lib.response import json_response

WRITABLE = ("title", "body", "summary", "tags", "slug", "status", "publish_at", "cover")
TEXT_FIELDS = ("title", "body", "summary", "slug", "status")


class PreconditionFailed(HTTPException):
    code = 412
    description = "The post changed since that version: its current version is in the answer."


class PreconditionRequired(HTTPException):
    code = 428
    description = "Send If-Match with the post's ETag (from GET /api/posts/<slug>/source)."


class Invalid(Exception):
    """Input a save refuses: a message per field (answered 422)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(" ".join(fields.values()))
        self.fields = fields


class Stale(Exception):
    """The post was saved by someone else between the check and the write."""


# --- shapes --------------------------------------------------------------------------------


def post_etag(post: Post) -> str:
    """Give a post's ETag for writing: its id and revision (any save changes it)."""
    return f'"post-{post.id}-{post.revision}"'


def source_json(post: Post) -> dict[str, Any]:
    """Give a post as its author wrote it: the fields PATCH takes, and where it lives."""
    return {
        "slug": post.slug,
        "url": url_for("show_post", slug=post.slug, _external=True),
        "title": post.title,
        "body": post.body_md,
        "summary": own_summary(post),
        "tags": [tag.name for tag in post.tags],
        "status": post.status,
        "publish_at": iso_utc(post.published_at),
        "cover": post.cover_media_id,
        "revision": post.revision,
        "updated_at": iso_utc(post.updated_at),
        "in_trash": post.deleted_at is not None,
        "html": post.body_html,
    }


def post_answer(post: Post, status: int = 200) -> Response:
    response = json_response({"post": source_json(post)}, status)
    response.headers.set("ETag", post_etag(post))
    response.headers.set("Cache-Control", "no-store")
    if status == 201:
        response.headers.set("Location", url_for("api_post_source", slug=post.slug, _external=True))
    return response


def invalid_answer(fields: dict[str, str]) -> Response:
    """The 422: what is wrong, field by field (nothing was saved)."""
    return json_response(
        {
            "error": {
                "status": 422,
                "message": "Nothing was saved: " + " ".join(fields.values()),
                "fields": fields,
            }
        },
        422,
    )


# --- reading input ---------------------------------------------------------------------------


def json_object(request: Request) -> dict[str, Any]:
    """Give the request's JSON object (400 not JSON, 413 over API_MAX_JSON_BYTES, 415)."""
    limit = int(current_app().config["API_MAX_JSON_BYTES"])
    request.max_content_length = min(request.max_content_length, limit)
    data = request.json
    if not isinstance(data, dict):
        raise BadRequest("The JSON body must be an object of the post's fields.")
    try:  # JSON may spell lone surrogates (\ud800), which no text column can hold
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("The JSON body holds text that is not valid Unicode.") from None
    return data


def parse_time(value: str) -> datetime | None:
    """Give an ISO 8601 time with its offset (or Z) as UTC; None if it is not one."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


@dataclass
class Fields:
    """Fields for the editor's form, and a publication time given as a true instant."""

    values: dict[str, str]
    publish_at: datetime | None


def fields_from_json(data: dict[str, Any], base: Fields) -> Fields:
    """Give `base` with the JSON's fields put in, as form text (Invalid on wrong types)."""
    errors: dict[str, str] = {}
    values = dict(base.values)
    publish_at = base.publish_at
    for name, value in data.items():
        if name not in WRITABLE:
            errors[str(name)[:60]] = f"“{str(name)[:60]}” is not a field of a post."
        elif name in TEXT_FIELDS:
            if isinstance(value, str):
                values[name] = value
            else:
                errors[name] = f"{name} must be a string."
        elif name == "tags":
            if isinstance(value, list) and all(isinstance(t, str) for t in value):
                if any("," in t for t in value):
                    errors[name] = "A tag may not hold a comma."
                values[name] = ", ".join(value)
            else:
                errors[name] = "tags must be a list of strings."
        elif name == "publish_at":
            if value is None or value == "":
                publish_at = None
            elif isinstance(value, str) and parse_time(value) is not None:
                publish_at = parse_time(value)
            else:
                errors[name] = "Give publish_at as an ISO 8601 time with its offset, or null."
        elif name == "cover":
            if value is None:
                values[name] = ""
            elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
                values[name] = str(value)
            else:
                errors[name] = "cover must be the id of a picture in your library, or null."
    if errors:
        raise Invalid(errors)
    return Fields(values, publish_at)


def new_post_fields() -> Fields:
    return Fields({name: "" for name in POST_FIELDS} | {"status": "draft"}, None)


def post_fields(post: Post) -> Fields:
    """Give a post's current fields, as PATCH starts from them."""
    values = form_from_post(post).values
    values["publish_at"] = ""
    return Fields(values, post.published_at if post.is_scheduled else None)


# --- the save --------------------------------------------------------------------------------


def save(request: Request, user: User, post: Post | None, fields: Fields) -> Post:
    """Validate and write a post as the editor does; give it (Invalid, Stale or a race lost).

    `post` None makes a new one. With a post, its row is locked and compared with the
    revision in fields.values["base_revision"] inside the write transaction.
    """
    form = Form(fields.values, POST_FIELDS)
    data = validate_post(form)
    if fields.publish_at is not None:
        data.publish_at = fields.publish_at
    db = get_db(request)
    end_transaction(db)  # no lock held while the Markdown is rendered
    rendered = render_body(form, data.body) if form.ok else None
    begin_write(db)
    if post is not None:
        db.execute(select(Post.id).where(Post.id == post.id).with_for_update(key_share=True))
        db.refresh(post)
        if str(post.revision) != form.get("base_revision"):
            raise Stale()
    cover.check_choice(db, form, data.cover_id, post.author if post is not None else user)
    if data.slug and form.ok:
        problem = slug_problem(db, data.slug, post.id if post else None)
        if problem:
            form.error("slug", problem)
    if not form.ok or rendered is None:
        raise Invalid(dict(form.errors))
    try:
        post = store_post(db, post, data, rendered, user)
        db.commit()
    except StaleDataError:
        db.rollback()
        raise Stale() from None
    except IntegrityError:
        db.rollback()
        taken = "Another post took this slug a moment ago. Choose another one."
        raise Invalid({"slug": taken}) from None
    return post


def matches(request: Request, post: Post) -> bool | None:
    """Give whether If-Match names the post's current ETag; None when none was sent."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    if header.strip() == "*":
        return True
    wanted = post_etag(post)
    return any(part.strip() == wanted for part in header.split(","))


def stale_answer(post: Post) -> Response:
    """The 412: the post as it is now (with its ETag), so the client can merge and retry."""
    error = PreconditionFailed()
    response = json_response(
        {"error": {"status": 412, "message": error.description}, "post": source_json(post)}, 412
    )
    response.headers.set("ETag", post_etag(post))
    response.headers.set("Cache-Control", "no-store")
    return response


# --- views -----------------------------------------------------------------------------------


def create_post(request: Request) -> Response:
    """POST /api/posts: a new post from JSON fields (a draft unless status says published)."""
    user = authorise(request, "posts:write")
    try:
        post = save(request, user, None, fields_from_json(json_object(request), new_post_fields()))
    except Invalid as invalid:
        return invalid_answer(invalid.fields)
    return post_answer(post, 201)


def editable_post(request: Request, slug: str) -> Post:
    """Give the token's account's post (any post, for an admin): 404, 410 or 403 otherwise."""
    return get_post_or_404(request, slug, check_author=True)


def post_source(request: Request, slug: str) -> Response:
    """GET /api/posts/<slug>/source: a post as its author wrote it, with its ETag."""
    authorise_any(request, "read", "posts:write")
    post = editable_post(request, slug)
    if matches_none(request, post):
        response = Response(b"", 304)
        response.headers.set("ETag", post_etag(post))
        return response
    return post_answer(post)


def matches_none(request: Request, post: Post) -> bool:
    header = request.headers.get("If-None-Match")
    return header is not None and any(
        part.strip() in (post_etag(post), "*") for part in header.split(",")
    )


def update_post(request: Request, slug: str) -> Response:
    """PATCH /api/posts/<slug>: change the fields sent; the rest stays as it is."""
    user = authorise(request, "posts:write")
    post = editable_post(request, slug)
    match = matches(request, post)
    if match is None:
        raise PreconditionRequired()
    data = json_object(request)
    if not match:
        return stale_answer(post)
    fields = post_fields(post)
    try:
        fields = fields_from_json(data, fields)
        post = save(request, user, post, fields)
    except Invalid as invalid:
        return invalid_answer(invalid.fields)
    except Stale:
        db = get_db(request)
        db.rollback()
        return stale_answer(db.get(Post, post.id))
    return post_answer(post)


def trash_post(request: Request, slug: str) -> Response:
    """DELETE /api/posts/<slug>: move the post to the trash (restore it from /trash)."""
    authorise(request, "posts:write")
    post = editable_post(request, slug)
    db = get_db(request)
    begin_write(db)
    db.refresh(post)
    if matches(request, post) is False:
        return stale_answer(post)
    post.deleted_at = utcnow()
    db.commit()
    return Response(b"", 204)


def upload_media(request: Request) -> Response:
    """POST /api/media: pictures (multipart `file`, and `alt`) into the token's library."""
    authorise(request, "media:write")
    return media_answer(request)


def media_answer(request: Request) -> Response:
    """Store the request's pictures with the media library's own upload; 201 and Location.

    The token's account was put in the request by authorise(), so the library's upload
    (which takes the signed-in account from there) stores for it, with its own checks.
    """
    config = current_app().config
    room = config["MEDIA_MAX_BYTES"] * config["MEDIA_MAX_FILES"] + 1_000_000
    request.max_content_length = max(request.max_content_length, room)
    request.__dict__["wants_json"] = True  # the library answers scripts in JSON
    response = current_app().make_response(media.upload(request))
    if response.status_code == 200:
        response.status_code = 201
        first = json.loads(response.get_data())["files"][0]["url"]
        response.headers.set("Location", absolute(first))
    response.headers.set("Cache-Control", "no-store")
    return response


def absolute(url: str) -> str:
    """Give a URL of ours as an absolute one (media URLs may be paths)."""
    if url.startswith("/"):
        return str(current_app().config["BASE_URL"]).rstrip("/") + url
    return url


def register_writing(app: App) -> None:
    """Add the write API's routes (bearer tokens only, so no session and no CSRF token),
    and the OpenAPI document of the whole API (openapi.py)."""
    openapi.register(app)
    app.add_route(
        "/api/posts", create_post, methods=["POST"], csrf=False, endpoint="api_create_post"
    )
    app.add_route("/api/posts/<slug:slug>/source", post_source, endpoint="api_post_source")
    app.add_route(
        "/api/posts/<slug:slug>",
        update_post,
        methods=["PATCH"],
        csrf=False,
        endpoint="api_update_post",
    )
    app.add_route(
        "/api/posts/<slug:slug>",
        trash_post,
        methods=["DELETE"],
        csrf=False,
        endpoint="api_trash_post",
    )
    app.add_route("/api/media", upload_media, methods=["POST"], csrf=False, endpoint="api_media")
