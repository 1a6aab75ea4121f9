"""The API's OpenAPI 3.1 document, at /api/openapi.json (#20).

It describes every route under /api/: the public reads (api.py) and the writes with a
token (writeapi.py), each with every status it answers and the shape of each answer,
errors included. tests/e2e/test_api_schemathesis.py runs schemathesis against a live
gunicorn with it: every answer must match, and none may be a 5xx. The document is built
once per process (the server's own address in `servers`) and kept.
"""

from __future__ import annotations

from typing import Any

from pyproject import __version__
from pyproject.lib import App, Request, Response, current_app
from pyproject.lib.response import json_response

JSON = "application/json"
SLUG = {"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$", "maxLength": 200}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def answer(description: str, schema: str | None = None, **headers: str) -> dict[str, Any]:
    """Give a response object: its JSON schema, and headers (name: description)."""
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {JSON: {"schema": ref(schema)}}
    if headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return out


def error(description: str) -> dict[str, Any]:
    return answer(description, "Error")


def token_errors() -> dict[str, Any]:
    """The answers every write may give about its token and its body."""
    return {
        "400": error("The body is not JSON, or not an object."),
        "401": answer(
            "No token, or one unknown, revoked or expired (cookies are not accepted).",
            "Error",
            **{"WWW-Authenticate": "Bearer, with the error"},
        ),
        "403": answer(
            "The token lacks the scope, or the post is another author's.",
            "Error",
            **{"WWW-Authenticate": "Bearer, with the error"},
        ),
        "413": error("The body is larger than API_MAX_JSON_BYTES."),
        "415": error("The body is not JSON."),
    }


def post_lookup_errors() -> dict[str, Any]:
    return {
        "301": answer("The post's earlier slug: its current address.", Location="The post now"),
        "308": answer("The same, for a write: send it again there.", Location="The post now"),
        "404": error("No post (of yours) has this slug."),
        "410": error("The post is in the trash, or was purged."),
    }


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "message"],
                "properties": {
                    "status": {"type": "integer"},
                    "message": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    "problems": {"type": "array", "items": {"type": "string"}},
                },
            }
        },
    },
    "Cover": {
        "type": ["object", "null"],
        "required": ["url", "width", "height", "alt"],
        "properties": {
            "url": {"type": "string"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "alt": {"type": "string"},
        },
    },
    "Post": {
        "type": "object",
        "required": ["title", "slug", "url", "author", "published_at", "updated_at", "tags"],
        "properties": {
            "title": {"type": "string"},
            "slug": {"type": "string"},
            "url": {"type": "string"},
            "author": {
                "type": "object",
                "required": ["username", "name", "url"],
                "properties": {
                    "username": {"type": "string"},
                    "name": {"type": "string"},
                    "url": {"type": "string"},
                },
            },
            "published_at": NULLABLE_TIME,
            "updated_at": TIME,
            "tags": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string"},
            "reading_minutes": {"type": "integer"},
            "cover": ref("Cover"),
            "html": {"type": "string"},
            "snippet": {"type": "string"},
        },
    },
    "Links": {
        "type": "object",
        "required": ["page", "next", "previous"],
        "properties": {
            "page": {"type": "integer", "minimum": 1},
            "next": {"type": ["string", "null"]},
            "previous": {"type": ["string", "null"]},
        },
    },
    "PostPage": {
        "allOf": [
            ref("Links"),
            {
                "type": "object",
                "required": ["posts"],
                "properties": {"posts": {"type": "array", "items": ref("Post")}},
            },
        ]
    },
    "OnePost": {"type": "object", "required": ["post"], "properties": {"post": ref("Post")}},
    "Tags": {
        "type": "object",
        "required": ["tags"],
        "properties": {
            "tags": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "slug", "posts", "url"],
                    "properties": {
                        "name": {"type": "string"},
                        "slug": {"type": "string"},
                        "posts": {"type": "integer"},
                        "url": {"type": "string"},
                    },
                },
            }
        },
    },
    "SearchPage": {
        "allOf": [
            ref("Links"),
            {
                "type": "object",
                "required": ["query", "results"],
                "properties": {
                    "query": {"type": "string"},
                    "results": {"type": "array", "items": ref("Post")},
                },
            },
        ]
    },
    "PostFields": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {
                "type": "string",
                "maxLength": 200,
                "description": "Empty for a note: its first words name it.",
            },
            "body": {
                "type": "string",
                "minLength": 1,
                "pattern": "\\S",
                "description": "Markdown, as the editor takes it.",
            },
            "summary": {"type": "string", "maxLength": 300},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 40}},
            "slug": SLUG,
            "status": {"enum": ["draft", "published"]},
            "publish_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "With its offset; in the future it schedules the post.",
            },
            "cover": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "The id of a picture in the author's library.",
            },
        },
    },
    "NewPost": {"allOf": [ref("PostFields"), {"required": ["body"]}]},
    "Source": {
        "type": "object",
        "required": ["post"],
        "properties": {
            "post": {
                "type": "object",
                "required": ["slug", "url", "title", "body", "status", "revision", "html"],
                "properties": {
                    "slug": {"type": "string"},
                    "url": {"type": "string"},
                    "title": {"type": "string"},
                    "body": {"type": "string"},
                    "summary": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "status": {"enum": ["draft", "published"]},
                    "publish_at": NULLABLE_TIME,
                    "cover": {"type": ["integer", "null"]},
                    "revision": {"type": "integer"},
                    "updated_at": NULLABLE_TIME,
                    "in_trash": {"type": "boolean"},
                    "html": {"type": "string"},
                },
            }
        },
    },
    "Stale": {"allOf": [ref("Error"), ref("Source")]},
    "Uploaded": {
        "type": "object",
        "required": ["files"],
        "properties": {
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["url", "markdown", "width", "height", "alt"],
                    "properties": {
                        "url": {"type": "string"},
                        "markdown": {"type": "string"},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "alt": {"type": "string"},
                    },
                },
            }
        },
    },
}


PAGE = {
    "name": "page",
    "in": "query",
    "required": False,
    "description": "The page, from 1 (anything but a positive number is 404).",
    "schema": {"type": "integer", "minimum": 1, "maximum": 999999},
}
SLUG_PARAMETER = {"name": "slug", "in": "path", "required": True, "schema": SLUG}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "description": "The post's ETag (or *): required to change it, checked to trash it.",
    "schema": {"type": "string"},
}
BEARER = [{"token": []}]
READ_ANSWERS = {
    "304": {"description": "Not modified since the ETag or Last-Modified sent."},
    "404": error("No such page of results."),
}


def paths() -> dict[str, Any]:
    """Give the document's paths: every route under /api/."""
    return {
        "/api/posts": {
            "get": {
                "operationId": "listPosts",
                "summary": "Published posts, newest first, 10 a page.",
                "parameters": [PAGE],
                "responses": {
                    "200": answer("A page of posts.", "PostPage", ETag="The site's version"),
                    **READ_ANSWERS,
                },
            },
            "post": {
                "operationId": "createPost",
                "summary": "Create a post (a draft unless status is published).",
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": ref("NewPost")}},
                },
                "responses": {
                    "201": {
                        **answer(
                            "Created.",
                            "Source",
                            ETag="The post's ETag, for If-Match",
                            Location="Its source in the API",
                        ),
                        "links": {
                            operation: {
                                "operationId": operation,
                                "parameters": {"slug": "$response.body#/post/slug"},
                            }
                            for operation in ("getPostSource", "updatePost", "trashPost")
                        },
                    },
                    "422": error("A field is wrong: `fields` says which, and why."),
                    **token_errors(),
                },
            },
        },
        "/api/posts/{slug}": {
            "parameters": [SLUG_PARAMETER],
            "get": {
                "operationId": "getPost",
                "summary": "One published post.",
                "responses": {
                    "200": answer("The post.", "OnePost", ETag="The site's version"),
                    "304": READ_ANSWERS["304"],
                    **post_lookup_errors(),
                },
            },
            "patch": {
                "operationId": "updatePost",
                "summary": "Change the fields sent; the others stay as they are.",
                "security": BEARER,
                "parameters": [{**IF_MATCH, "required": True}],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": ref("PostFields")}},
                },
                "responses": {
                    "200": answer("Saved.", "Source", ETag="The post's new ETag"),
                    "412": answer(
                        "The post changed since that ETag: its current version.",
                        "Stale",
                        ETag="The post's current ETag",
                    ),
                    "422": error("A field is wrong: `fields` says which, and why."),
                    "428": error("If-Match is missing."),
                    **post_lookup_errors(),
                    **token_errors(),
                },
            },
            "delete": {
                "operationId": "trashPost",
                "summary": "Move the post to the trash (the author restores it from /trash).",
                "security": BEARER,
                "parameters": [{**IF_MATCH, "required": False}],
                "responses": {
                    "204": {"description": "In the trash."},
                    "412": answer("The post changed since that ETag.", "Stale"),
                    **post_lookup_errors(),
                    **token_errors(),
                },
            },
        },
        "/api/posts/{slug}/source": {
            "parameters": [SLUG_PARAMETER],
            "get": {
                "operationId": "getPostSource",
                "summary": "A post of the token's account as written (drafts too), with its ETag.",
                "security": BEARER,
                "responses": {
                    "200": answer("The post's fields.", "Source", ETag="The post's ETag"),
                    "304": {"description": "Unchanged since the ETag in If-None-Match."},
                    **post_lookup_errors(),
                    **token_errors(),
                },
            },
        },
        "/api/tags": {
            "get": {
                "operationId": "listTags",
                "summary": "Every tag with its number of published posts.",
                "responses": {
                    "200": answer("The tags.", "Tags", ETag="The site's version"),
                    "304": READ_ANSWERS["304"],
                },
            }
        },
        "/api/search": {
            "get": {
                "operationId": "search",
                "summary": "Published posts matching the words, best first.",
                "parameters": [
                    {"name": "q", "in": "query", "required": False, "schema": {"type": "string"}},
                    PAGE,
                ],
                "responses": {
                    "200": answer("A page of results.", "SearchPage", ETag="The site's version"),
                    **READ_ANSWERS,
                },
            }
        },
        "/api/media": {
            "post": {
                "operationId": "uploadMedia",
                "summary": "Upload pictures into the token's account's media library.",
                "security": BEARER,
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {"type": "string", "contentMediaType": "image/*"},
                                    },
                                    "alt": {"type": "string", "maxLength": 500},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": answer("Stored.", "Uploaded", Location="The first picture"),
                    "422": error("A file is not a picture we take: `problems` says why."),
                    **token_errors(),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": {"description": "The OpenAPI document."}},
            }
        },
    }


def document(app: App) -> dict[str, Any]:
    """Give the OpenAPI document of the app's API (made once per process)."""
    made = app.extensions.get("openapi")
    if made is None:
        made = app.extensions["openapi"] = {
            "openapi": "3.1.0",
            "info": {
                "title": "PyProject blog API",
                "version": __version__,
                "description": (
                    "Published posts, tags and search for everyone; writing with a personal "
                    "token (made at /account/tokens) sent as `Authorization: Bearer <token>`."
                ),
            },
            "servers": [{"url": str(app.config["BASE_URL"]).rstrip("/")}],
            "paths": paths(),
            "components": {
                "schemas": SCHEMAS,
                "securitySchemes": {
                    "token": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A personal API token from /account/tokens.",
                    }
                },
            },
        }
    return made


def openapi_json(request: Request) -> Response:
    """GET /api/openapi.json."""
    response = json_response(document(current_app()))
    response.headers.set("Cache-Control", "public, max-age=300")
    return response


def register(app: App) -> None:
    app.add_route("/api/openapi.json", openapi_json)
