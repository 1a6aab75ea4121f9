"""Micropub (W3C Recommendation): posting from iA Writer, Quill, phone apps or curl (#20).

Every page names the endpoint (`<link rel="micropub">`, and `rel="micropub_media"`).

- `POST /micropub` with a form (url-encoded or multipart) or JSON `h-entry` makes a post:
  `name` the title (without one, a note: the editor names it by its first words), `content` Markdown
  or `{"html": ...}`, `category` the tags, `photo` URLs (fetched through
  pyproject/blog/outgoing.py, so never from a private address) or uploaded files (both
  stored in the author's media library and shown in the post), `summary`, `mp-slug`,
  `published`, `post-status` (draft or published). The answer is 201 with `Location`, and
  a JSON body that names any property it did not use (`ignored`).
- `action=update` (JSON: `replace`, `add`, `delete`), `action=delete` (to the trash) and
  `action=undelete` (out of it) change a post given by its `url`.
- `GET /micropub?q=config` (the media endpoint), `q=source` (a post's properties) and
  `q=syndicate-to` (none: this site posts only to itself).
- `POST /micropub/media` stores a picture (`file`) in the library: 201 with `Location`.

Authorised by personal tokens (pyproject/blog/tokens.py) in the Authorization header:
`posts:write` to post, `media:write` for the media endpoint, any of `read` or
`posts:write` for the queries. A post is checked and written by the editor's own rules
and save (pyproject/blog/writeapi.py). Errors are Micropub's JSON:
`{"error": "invalid_request", "error_description": ...}` with 400, 401 or 403.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from pyproject.blog import outgoing
from pyproject.blog.db import begin_write, get_db
from pyproject.blog.media import file_label, get_store, markdown_for
from pyproject.blog.models import Post, User, utcnow
from pyproject.blog.posts import can_edit
from pyproject.blog.slugs import is_valid_slug
from pyproject.blog.tokens import authorise, authorise_any
from pyproject.blog.writeapi import (
    Fields,
    Invalid,
    Stale,
    absolute,
    json_object,
    media_answer,
    new_post_fields,
    parse_time,
    post_fields,
    save,
)
from pyproject.lib import App, Request, Response, current_app, url_for
from pyproject.lib.datastructures import FileStorage, MultiDict
from pyproject.lib.exceptions import HTTPException
from pyproject.lib.response import json_response

KNOWN = ("name", "content", "category", "photo", "summary", "published", "post-status", "mp-slug")
# Form fields that are not properties of the post.
NOT_PROPERTIES = frozenset({"h", "action", "url", "access_token", "q"})
PHOTOS_MAX = 10
ERRORS = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 413: "invalid_request"}


class MicropubError(Exception):
    """A request Micropub refuses: its status, error code and description."""

    def __init__(self, description: str, status: int = 400, **extra: Any) -> None:
        super().__init__(description)
        self.status, self.description, self.extra = status, description, extra


def micropub_answer(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer every refusal of the view (and of the framework) as Micropub's JSON error."""

    @functools.wraps(view)
    def wrapper(request: Request, **kwargs: Any) -> Any:
        try:
            return view(request, **kwargs)
        except MicropubError as error:
            return error_answer(error.status, error.description, **error.extra)
        except HTTPException as error:
            if error.code in (304, 301, 302, 303, 307, 308):
                raise
            status = error.code if error.code in (401, 403, 413, 415) else 400
            if error.code in (404, 410):
                status = 400  # a url that names no post of yours
            response = error_answer(status, error.description)
            for name, value in error.headers:
                response.headers.set(name, value)
            return response

    return wrapper


def error_answer(status: int, description: str, **extra: Any) -> Response:
    code = ERRORS.get(status, "invalid_request")
    if status == 403 and "scope" in description:
        code = "insufficient_scope"
    response = json_response({"error": code, "error_description": description, **extra}, status)
    response.headers.set("Cache-Control", "no-store")
    return response


# --- reading a request into properties ----------------------------------------------------------


Properties = dict[str, list[Any]]


def form_properties(form: MultiDict) -> Properties:
    """Give a form's properties as lists (`category[]` and `category` are one property)."""
    properties: Properties = {}
    for key in form:
        name = key[:-2] if key.endswith("[]") else key
        if name in NOT_PROPERTIES:
            continue
        properties.setdefault(name, []).extend(form.getlist(key))
    return properties


def json_properties(data: dict[str, Any]) -> Properties:
    """Give a JSON h-entry's properties (each a list, as Micropub sends them)."""
    kind = data.get("type")
    if kind != ["h-entry"]:
        raise MicropubError('Send an h-entry: {"type": ["h-entry"], "properties": {...}}.')
    properties = data.get("properties")
    if not isinstance(properties, dict):
        raise MicropubError("An h-entry's properties must be an object.")
    return checked_properties(properties)


def checked_properties(properties: dict[str, Any]) -> Properties:
    """Give properties whose values are all lists (400 otherwise)."""
    for name, values in properties.items():
        if not isinstance(values, list):
            raise MicropubError(f"The property {name[:60]} must be a list of values.")
    return properties


def one_text(properties: Properties, name: str) -> str | None:
    """Give a property's first value as text; None when it is absent (400 for a non-text)."""
    values = properties.get(name)
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str):
        raise MicropubError(f"The property {name} must be text.")
    return value


def content_text(properties: Properties) -> str:
    """Give the post's Markdown from `content`: text as it is, {"html": ...} kept as HTML."""
    values = properties.get("content") or []
    if not values:
        return ""
    value = values[0]
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("html"), str):
        return value["html"]  # HTML is Markdown too; the renderer sanitises it
    if isinstance(value, dict) and isinstance(value.get("value"), str):
        return value["value"]
    raise MicropubError('content must be text or {"html": "..."}.')


def categories(properties: Properties) -> list[str]:
    tags = properties.get("category") or []
    if not all(isinstance(tag, str) for tag in tags):
        raise MicropubError("category must be a list of text values.")
    return [tag.replace(",", " ") for tag in tags]


# --- photos ----------------------------------------------------------------------------------


def photo_sources(values: list[Any]) -> list[tuple[Any, str]]:
    """Give the photos as (URL or uploaded file, alt text)."""
    photos: list[tuple[Any, str]] = []
    for value in values:
        if isinstance(value, FileStorage):
            photos.append((value, ""))
        elif isinstance(value, str) and value.strip():
            photos.append((value.strip(), ""))
        elif isinstance(value, dict) and isinstance(value.get("value"), str):
            alt = value.get("alt") if isinstance(value.get("alt"), str) else ""
            photos.append((value["value"].strip(), " ".join(alt.split())[:500]))
        else:
            raise MicropubError('photo must be a URL, {"value": URL, "alt": text} or a file.')
    if len(photos) > PHOTOS_MAX:
        raise MicropubError(f"Send at most {PHOTOS_MAX} photos with one post.")
    return photos


def is_own_media(url: str) -> bool:
    """Give whether a URL is a picture in our own media store (one uploaded before)."""
    store = get_store(current_app())
    folder = absolute(store.url("x")).rsplit("/", 1)[0] + "/"
    return absolute(url).startswith(folder) and ".." not in url


def fetch_photo(url: str) -> FileStorage:
    """Fetch a photo by URL through the one outgoing guard (never a private address)."""
    app = current_app()
    try:
        fetched = outgoing.for_app(app).get(url, max_bytes=int(app.config["MEDIA_MAX_BYTES"]))
    except outgoing.FetchError as problem:
        raise MicropubError(f"The photo at {url[:200]} could not be fetched: {problem}") from None
    if fetched.status != 200:
        raise MicropubError(f"The photo at {url[:200]} answered {fetched.status}.")
    name = file_label(urlsplit(url).path.rsplit("/", 1)[-1] or "photo")
    return FileStorage(
        "file", name, fetched.content_type, io.BytesIO(fetched.body), len(fetched.body)
    )


def store_pictures(request: Request, user: User, files: list[FileStorage], alt: str) -> list[str]:
    """Store pictures in the account's library through its own upload; give their URLs
    (as the library gives them: the editor's Markdown holds the same).

    The library's upload view runs on a request holding just these files (the same
    checks, cleaning, de-duplication and variants job as any upload).
    """
    environ = dict(request.environ, REQUEST_METHOD="POST", PATH_INFO="/api/media")
    inner = current_app().request_class(environ)
    inner.session = request.session
    inner.context.update(user=user, db=get_db(request))
    files = [FileStorage("file", f.filename, f.content_type, f.stream, f.size) for f in files]
    inner.__dict__["_form_and_files"] = (
        MultiDict({"alt": alt}),
        MultiDict([("file", f) for f in files]),
    )
    answer = media_answer(inner)
    data = answer.get_data()
    if answer.status_code != 201:
        message = json.loads(data).get("error", {}).get("message", "The photo was refused.")
        raise MicropubError(message, 413 if answer.status_code == 413 else 400)
    return [item["url"] for item in json.loads(data)["files"]]


def photos_markdown(request: Request, user: User, values: list[Any]) -> str:
    """Give the Markdown that shows the photos, storing each in the library first."""
    lines = []
    for source, alt in photo_sources(values):
        if isinstance(source, str) and is_own_media(source):
            url = source
        else:
            picture = source if isinstance(source, FileStorage) else fetch_photo(source)
            url = store_pictures(request, user, [picture], alt)[0]
        lines.append(markdown_for(alt, url))
    return "\n\n".join(lines)


# --- properties to the editor's fields, and back ----------------------------------------------


def fields_from_properties(
    request: Request, user: User, properties: Properties, base: Fields
) -> tuple[Fields, list[str]]:
    """Give the editor's fields for these properties, and the properties not used."""
    values = dict(base.values)
    publish_at = base.publish_at
    ignored = sorted(name for name in properties if name not in KNOWN)
    if "content" in properties:
        values["body"] = content_text(properties)
    if properties.get("photo"):
        shown = photos_markdown(request, user, properties["photo"])
        values["body"] = f"{values['body'].rstrip()}\n\n{shown}".strip()
    name = one_text(properties, "name")
    if name is not None:
        values["title"] = name  # without one, a note: the editor names it by its first words
    if "category" in properties:
        values["tags"] = ", ".join(categories(properties))
    summary = one_text(properties, "summary")
    if summary is not None:
        values["summary"] = summary
    slug = one_text(properties, "mp-slug")
    if slug is not None:
        values["slug"] = slug.strip().lower()
    status = one_text(properties, "post-status")
    if status is not None:
        if status not in ("draft", "published"):
            raise MicropubError("post-status must be draft or published.")
        values["status"] = status
    published = one_text(properties, "published")
    if published is not None:
        publish_at = parse_time(published)
        if publish_at is None:
            raise MicropubError("published must be an ISO 8601 time with its offset.")
    return Fields(values, publish_at), ignored


def properties_of(post: Post) -> Properties:
    """Give a post's Micropub properties (q=source)."""
    properties: Properties = {
        "name": [post.title],
        "content": [post.body_md],
        "category": [tag.name for tag in post.tags],
        "post-status": [post.status],
        "mp-slug": [post.slug],
        "url": [url_for("show_post", slug=post.slug, _external=True)],
    }
    if post.summary_is_custom:
        properties["summary"] = [post.summary]
    if post.published_at is not None:
        properties["published"] = [post.published_at.isoformat()]
    return properties


def post_of_url(request: Request, url: Any, *, in_trash: bool = False) -> Post:
    """Give the post a URL of ours names, if the token's account may change it (400/403)."""
    if not isinstance(url, str) or not url:
        raise MicropubError("Give the url of the post.")
    parts = urlsplit(url.strip())
    base = urlsplit(str(current_app().config["BASE_URL"]))
    if parts.netloc and parts.netloc.lower() != base.netloc.lower():
        raise MicropubError("That url is not on this site.")
    match = re.fullmatch(r"/posts/([^/]+)/?", parts.path)
    slug = match.group(1) if match else ""
    if not is_valid_slug(slug):
        raise MicropubError("That url names no post here.")
    post = get_db(request).scalar(select(Post).where(Post.slug == slug))
    if post is None or (post.deleted_at is not None) != in_trash:
        where = "in the trash" if in_trash else "here"
        raise MicropubError(f"That url names no post {where}.")
    if not can_edit(request.context.get("user"), post):
        raise MicropubError("Only the post's author or an administrator can change it.", 403)
    return post


def created_answer(post: Post, ignored: list[str], status: int = 201) -> Response:
    location = url_for("show_post", slug=post.slug, _external=True)
    response = json_response({"url": location, "ignored": ignored}, status)
    response.headers.set("Location", location)
    response.headers.set("Cache-Control", "no-store")
    return response


def saved(request: Request, user: User, post: Post | None, fields: Fields) -> Post:
    """Save through the editor's rules; its refusals as Micropub's 400."""
    try:
        return save(request, user, post, fields)
    except Invalid as invalid:
        raise MicropubError(
            "The post was not saved: " + " ".join(invalid.fields.values()), fields=invalid.fields
        ) from None
    except Stale:
        raise MicropubError("The post changed while this was saved: send it again.", 409) from None


# --- views -----------------------------------------------------------------------------------


@micropub_answer
def micropub(request: Request) -> Any:
    """GET: queries. POST: create, update, delete, undelete.

    Every POST needs `posts:write`: the token is checked before the body is read, and
    only then may a multipart body carry photos of the library's full size.
    """
    if request.method in ("GET", "HEAD"):
        return query(request)
    user = authorise(request, "posts:write")
    if request.mimetype == "application/json" or request.mimetype.endswith("+json"):
        data = json_object(request)
        action = data.get("action")
        if action is None:
            return create(request, user, json_properties(data))
        return act(request, user, action, data.get("url"), data)
    if request.mimetype == "multipart/form-data":
        config = current_app().config
        room = config["MEDIA_MAX_BYTES"] * min(PHOTOS_MAX, config["MEDIA_MAX_FILES"]) + 1_000_000
        request.max_content_length = max(request.max_content_length, room)
    form = request.form
    action = form.get("action")
    if action is None:
        if form.get("h", "entry") != "entry":
            raise MicropubError("Only h=entry posts are made here.")
        properties = form_properties(form)
        for key in request.files:
            name = key[:-2] if key.endswith("[]") else key
            properties.setdefault(name, []).extend(request.files.getlist(key))
        return create(request, user, properties)
    return act(request, user, action, form.get("url"), None)


def create(request: Request, user: User, properties: Properties) -> Response:
    fields, ignored = fields_from_properties(request, user, properties, default_fields())
    post = saved(request, user, None, fields)
    return created_answer(post, ignored)


def default_fields() -> Fields:
    """A Micropub post is published unless it says draft (the editor's default is draft)."""
    fields = new_post_fields()
    fields.values["status"] = "published"
    return fields


def act(
    request: Request, user: User, action: Any, url: Any, data: dict[str, Any] | None
) -> Response:
    """Update (JSON only), delete or undelete the post at `url`."""
    if action == "delete":
        post = post_of_url(request, url)
        return set_trashed(request, post, True)
    if action == "undelete":
        post = post_of_url(request, url, in_trash=True)
        return set_trashed(request, post, False)
    if action != "update":
        raise MicropubError("action must be update, delete or undelete.")
    if data is None:
        raise MicropubError("Send an update as JSON.")
    post = post_of_url(request, url)
    return update(request, user, post, data)


def set_trashed(request: Request, post: Post, trashed: bool) -> Response:
    db = get_db(request)
    begin_write(db)
    db.refresh(post)
    post.deleted_at = utcnow() if trashed else None
    db.commit()
    return Response(b"", 204)


def update(request: Request, user: User, post: Post, data: dict[str, Any]) -> Response:
    """Apply replace, add and delete to the post's properties and save it."""
    current = properties_of(post)
    changes: Properties = {}
    ignored: set[str] = set()
    for part in ("replace", "add", "delete"):
        if part in data and not isinstance(data[part], dict | list):
            raise MicropubError(f"{part} must be an object (or, for delete, a list).")
    replace = checked_properties(data.get("replace") or {})
    add = checked_properties(data.get("add") or {})
    remove = data.get("delete") or {}
    if isinstance(remove, list) and not all(isinstance(name, str) for name in remove):
        raise MicropubError("delete must name properties.")
    for name, values in replace.items():
        changes[name] = list(values)
    for name, values in add.items():
        if name == "photo":
            changes["photo"] = list(values)
        else:
            changes[name] = [*changes.get(name, current.get(name, [])), *values]
    if isinstance(remove, list):
        for name in remove:
            changes[name] = []
    else:
        for name, values in checked_properties(remove).items():
            kept = changes.get(name, current.get(name, []))
            changes[name] = [value for value in kept if value not in values]
    for name in list(changes):
        if name not in KNOWN or (name == "photo" and name not in add):
            ignored.add(name)
            del changes[name]
    if "name" in changes and not changes["name"]:
        changes["name"] = [""]  # an untitled note from now on
    fields = post_fields(post)
    if "content" in changes and not changes["content"]:
        changes["content"] = [""]
    fields, _unknown = fields_from_properties(request, user, changes, fields)
    slug_before = post.slug
    post = saved(request, user, post, fields)
    return created_answer(post, sorted(ignored), 201 if post.slug != slug_before else 200)


def query(request: Request) -> Response:
    """q=config, q=syndicate-to, q=source."""
    q = request.args.get("q")
    if q is None:
        raise MicropubError("Ask a query: q=config, q=source or q=syndicate-to.")
    authorise_any(request, "read", "posts:write", "media:write")
    if q == "config":
        answer: dict[str, Any] = {
            "media-endpoint": url_for("micropub_media", _external=True),
            "syndicate-to": [],
            "q": ["config", "source", "syndicate-to"],
            "post-types": [
                {"type": "note", "name": "Note"},
                {"type": "article", "name": "Article"},
                {"type": "photo", "name": "Photo"},
            ],
        }
    elif q == "syndicate-to":
        answer = {"syndicate-to": []}
    elif q == "source":
        authorise_any(request, "read", "posts:write")
        post = post_of_url(request, request.args.get("url"))
        properties = properties_of(post)
        wanted = request.args.getlist("properties[]") or request.args.getlist("properties")
        if wanted:
            answer = {"properties": {k: v for k, v in properties.items() if k in wanted}}
        else:
            answer = {"type": ["h-entry"], "properties": properties}
    else:
        raise MicropubError(f"This endpoint does not answer q={q[:40]}.")
    response = json_response(answer)
    response.headers.set("Cache-Control", "no-store")
    return response


@micropub_answer
def media_endpoint(request: Request) -> Response:
    """POST /micropub/media: one picture (`file`) into the library; 201 with Location."""
    authorise(request, "media:write")
    answer = media_answer(request)
    if answer.status_code != 201:
        message = json.loads(answer.get_data()).get("error", {}).get("message", "")
        status = 413 if answer.status_code == 413 else 400
        raise MicropubError(message or "The picture was refused.", status)
    return answer


def register(app: App) -> None:
    """Add Micropub's endpoints (bearer tokens only: no session, so no CSRF token)."""
    app.add_route("/micropub", micropub, methods=["GET", "POST"], csrf=False)
    app.add_route(
        "/micropub/media", media_endpoint, methods=["POST"], csrf=False, endpoint="micropub_media"
    )
