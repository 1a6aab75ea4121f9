"""The OpenAPI 3.1 document of the JSON API (pyproject/blog/openapi.py, #20).

Here: the document is valid OpenAPI 3.1 and names its server and security scheme, and
every API route is in it. tests/e2e/test_api_schemathesis.py checks, with schemathesis
against a live gunicorn, that every answer matches it.
"""

from __future__ import annotations

from blog.conftest import Cast


def test_the_openapi_document_is_valid_openapi_3_1(cast: Cast) -> None:
    from openapi_spec_validator import validate

    answer = cast.anonymous.get("/api/openapi.json")
    assert answer.status_code == 200
    validate(answer.json)  # raises on anything OpenAPI 3.1 does not allow
    assert answer.json["servers"] == [{"url": "http://localhost"}]
    assert "token" in answer.json["components"]["securitySchemes"]


def test_every_api_route_is_described(cast: Cast) -> None:
    document = cast.anonymous.get("/api/openapi.json").json
    described = {path for path in document["paths"]}
    routes = {
        rule.rule.replace("<slug:slug>", "{slug}")
        for rule in cast.app.router.rules
        if rule.rule.startswith("/api/")
    }
    missing = routes - described
    assert not missing, f"API routes the document leaves out: {sorted(missing)}"
