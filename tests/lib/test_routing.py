"""Tests for URL rules, matching (404, 405, 308) and url_for in pyproject/lib/routing.py."""

from __future__ import annotations

import pytest

from pyproject.lib.app import App
from pyproject.lib.exceptions import MethodNotAllowed, NotFound, Redirect
from pyproject.lib.routing import Router, RoutingError, Rule, RulePart


def _view(request, **values):
    return "ok"


def make_router(*rules: tuple[str, str, tuple[str, ...]]) -> Router:
    """Give a Router with (rule, endpoint, methods) registered in order."""
    router = Router()
    for rule, endpoint, methods in rules:
        router.add(Rule(rule, endpoint, frozenset(methods), _view))
    return router


def match_args(rule: str, path: str):
    """Give the arguments a single GET rule matches `path` with (NotFound propagates)."""
    return make_router((rule, "endpoint", ("GET",))).match(path, "GET")[1]


def make_app(tmp_path) -> App:
    """Give a small App with a listing, a page per slug and a tiny error template."""
    (tmp_path / "errors").mkdir()
    (tmp_path / "errors" / "error.html").write_text("{{ error.code }} {{ error.description }}")
    app = App({"BASE_URL": "https://blog.example", "DEBUG": False}, template_folder=str(tmp_path))
    app.add_route("/posts/", lambda request: "all posts", endpoint="posts")
    app.add_route("/posts/", lambda request: "created", endpoint="create", methods=["POST"])
    app.add_route("/posts/<slug:slug>/", lambda request, slug: f"post {slug}", endpoint="show")
    return app


# --- converters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "value"),
    [("0", 0), ("7", 7), ("42", 42), ("123456789012345678", 123456789012345678)],
)
def test_int_converter_matches_plain_non_negative_numbers(segment, value):
    args = match_args("/page/<int:number>", f"/page/{segment}")
    assert args == {"number": value}
    assert type(args["number"]) is int


@pytest.mark.parametrize(
    "segment",
    [
        "007",  # leading zeros: one URL per number
        "00",
        "-1",
        "+1",
        "1a",
        "abc",
        "1.5",
        "1e3",
        " 1",
        "1 ",
        "١٢",  # Arabic-Indic digits are digits to str.isdigit, not to us
        "1234567890123456789",  # huge numbers are refused
        "9" * 100,
        "7\n",
        "",
    ],
)
def test_int_converter_refuses_anything_else(segment):
    with pytest.raises(NotFound):
        match_args("/page/<int:number>", f"/page/{segment}")


@pytest.mark.parametrize("slug", ["hello", "hello-world", "a1_b2", "2024", "a-b_c-d"])
def test_slug_converter_matches_lower_case_words_joined_by_dashes(slug):
    assert match_args("/posts/<slug:slug>", f"/posts/{slug}") == {"slug": slug}


@pytest.mark.parametrize(
    "slug",
    [
        "Hello",
        "HELLO",
        "hello.world",
        "hello/world",
        "../etc",
        "-hello",
        "hello-",
        "hello--world",
        "héllo",
        "hello world",
        "hello%20world",
        "hello\n",
        "",
    ],
)
def test_slug_converter_refuses_uppercase_dots_slashes_and_the_rest(slug):
    with pytest.raises(NotFound):
        match_args("/posts/<slug:slug>", f"/posts/{slug}")


@pytest.mark.parametrize("value", ["hello", "Hello World", "a.b", "café", "日本", "a;b=c"])
def test_str_converter_matches_one_segment(value):
    assert match_args("/tags/<name>", f"/tags/{value}") == {"name": value}
    assert match_args("/tags/<str:name>", f"/tags/{value}") == {"name": value}


@pytest.mark.parametrize("path", ["/tags/a/b", "/tags/", "/tags//x", "/tags"])
def test_str_converter_refuses_slashes_and_empty_segments(path):
    with pytest.raises(NotFound):
        match_args("/tags/<name>", path)


@pytest.mark.parametrize("rest", ["site.css", "css/site.css", "a/b/c/d.txt", "a b/ü.txt"])
def test_path_converter_matches_several_segments(rest):
    assert match_args("/files/<path:rest>", f"/files/{rest}") == {"rest": rest}


@pytest.mark.parametrize("path", ["/files/", "/files//etc/passwd"])
def test_path_converter_refuses_empty_and_leading_slash(path):
    with pytest.raises(NotFound):
        match_args("/files/<path:rest>", path)


def test_several_placeholders_are_converted_each_with_its_own_converter():
    args = match_args("/archive/<int:year>/<slug:slug>", "/archive/2024/hello-world")
    assert args == {"year": 2024, "slug": "hello-world"}


# --- matching ----------------------------------------------------------------------------


def test_static_rule_wins_over_a_dynamic_rule_that_also_matches():
    router = make_router(
        ("/posts/<slug:slug>", "show", ("GET",)),
        ("/posts/new", "new", ("GET",)),
    )
    assert router.match("/posts/new", "GET")[0].endpoint == "new"
    rule, args = router.match("/posts/other", "GET")
    assert (rule.endpoint, args) == ("show", {"slug": "other"})


def test_rules_match_the_whole_path_only():
    router = make_router(("/posts", "posts", ("GET",)))
    for path in ("/posts/extra", "/postsx", "/x/posts", "/Posts", "/posts\n"):
        with pytest.raises(NotFound):
            router.match(path, "GET")


def test_nothing_matching_is_not_found():
    router = make_router(("/", "home", ("GET",)), ("/posts/<int:page>", "page", ("GET",)))
    with pytest.raises(NotFound):
        router.match("/nothing-here", "GET")


def test_matched_path_with_wrong_method_is_method_not_allowed_with_allow():
    router = make_router(
        ("/posts/", "posts", ("GET", "HEAD")),
        ("/posts/", "create", ("POST",)),
    )
    with pytest.raises(MethodNotAllowed) as caught:
        router.match("/posts/", "DELETE")
    assert caught.value.code == 405
    assert caught.value.allowed == ["GET", "HEAD", "OPTIONS", "POST"]
    assert caught.value.headers == [("Allow", "GET, HEAD, OPTIONS, POST")]


def test_distinct_methods_on_one_rule_reach_their_own_views():
    router = make_router(
        ("/posts/", "posts", ("GET",)),
        ("/posts/", "create", ("POST",)),
    )
    assert router.match("/posts/", "GET")[0].endpoint == "posts"
    assert router.match("/posts/", "POST")[0].endpoint == "create"


def test_allowed_methods_lists_every_method_and_options():
    router = make_router(("/posts/", "posts", ("GET",)), ("/posts/", "create", ("POST",)))
    assert router.allowed_methods("/posts/") == {"GET", "POST", "OPTIONS"}
    assert router.allowed_methods("/elsewhere") == set()


# --- the trailing-slash redirect ---------------------------------------------------------


def test_missing_trailing_slash_redirects_with_308_and_keeps_the_query_string():
    router = make_router(("/posts/<slug:slug>/", "show", ("GET",)))
    with pytest.raises(Redirect) as caught:
        router.match("/posts/hello", "GET", "page=2&tag=a%20b")
    assert caught.value.code == 308
    assert caught.value.location == "/posts/hello/?page=2&tag=a%20b"
    assert ("Location", "/posts/hello/?page=2&tag=a%20b") in caught.value.headers


def test_trailing_slash_redirect_percent_encodes_the_path():
    router = make_router(("/<name>/", "page", ("GET",)))
    with pytest.raises(Redirect) as caught:
        router.match("/café au lait", "GET")
    assert caught.value.location == "/caf%C3%A9%20au%20lait/"


def test_path_with_trailing_slash_but_rule_without_is_not_found():
    router = make_router(("/about", "about", ("GET",)))
    with pytest.raises(NotFound):
        router.match("/about/", "GET")


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example",
        "///evil.example",
        "//evil.example/x",
        "/\\evil.example",
        "/\\\\evil.example",
        "/%2fevil.example",
    ],
)
@pytest.mark.parametrize("rule", ["/<name>/", "/<path:rest>/", "/<name>/<path:rest>/"])
def test_trailing_slash_redirect_never_points_at_another_host(rule, path):
    router = make_router((rule, "page", ("GET",)))
    try:
        router.match(path, "GET", "x=1")
    except NotFound:
        return
    except Redirect as redirect:
        location = redirect.location
        assert location.startswith("/")
        # Browsers read //host and /\host as another site; /%5Chost stays a local path.
        assert not location.startswith(("//", "/\\"))
        assert "\\" not in location
        return
    pytest.fail(f"{path!r} matched {rule!r} without a trailing slash")


def test_backslash_host_is_redirected_as_an_encoded_local_path():
    router = make_router(("/<name>/", "page", ("GET",)))
    with pytest.raises(Redirect) as caught:
        router.match("/\\evil.example", "GET")
    assert caught.value.location == "/%5Cevil.example/"


# --- declaring rules ---------------------------------------------------------------------


def test_duplicate_endpoint_fails_loudly():
    router = make_router(("/a", "page", ("GET",)))
    with pytest.raises(RoutingError, match="page"):
        router.add(Rule("/b", "page", frozenset({"GET"}), _view))


def test_same_rule_and_method_twice_fails_loudly():
    router = make_router(("/posts/", "posts", ("GET", "POST")))
    with pytest.raises(RoutingError, match="POST"):
        router.add(Rule("/posts/", "create", frozenset({"POST", "PUT"}), _view))


@pytest.mark.parametrize(
    "rule",
    [
        "posts",  # no leading slash
        "/posts/<float:x>",  # unknown converter
        "/<a>/<int:a>",  # one name twice
        "/posts/<slug",  # malformed placeholder
        "/posts/slug>",
        "/posts/<1abc>",
    ],
)
def test_malformed_rules_fail_loudly(rule):
    with pytest.raises(RoutingError):
        Rule(rule, "endpoint", frozenset({"GET"}), _view)


def test_a_rule_is_split_into_literal_text_and_placeholder_names():
    rule = Rule("/posts/<int:year>/<slug>.html", "post", frozenset({"GET"}), _view)

    assert rule.parts == [
        RulePart("/posts/"),
        RulePart("year", is_placeholder=True),
        RulePart("/"),
        RulePart("slug", is_placeholder=True),
        RulePart(".html"),
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("/<section>/<slug>", "anywhere"), ("/posts/<slug>", "posts")),
        (("/posts/<slug>", "posts"), ("/<section>/<slug>", "anywhere")),
    ],
)
def test_pattern_rules_are_tried_in_registration_order(first, second):
    router = make_router((*first, ("GET",)), (*second, ("GET",)))

    assert router.match("/posts/hello", "GET")[0].endpoint == first[1]
    assert router.match("/tags/hello", "GET")[0].endpoint == "anywhere"


def test_app_rule_for_get_also_answers_head_but_not_post(tmp_path):
    app = make_app(tmp_path)
    assert app.router.match("/posts/hello/", "HEAD")[0].endpoint == "show"
    with pytest.raises(MethodNotAllowed):
        app.router.match("/posts/hello/", "POST")


def test_app_refuses_a_second_view_for_the_same_rule_and_method(tmp_path):
    app = make_app(tmp_path)
    with pytest.raises(RoutingError):
        app.add_route("/posts/", lambda request: "again", endpoint="again")


# --- url_for -----------------------------------------------------------------------------


@pytest.fixture
def router() -> Router:
    return make_router(
        ("/", "home", ("GET",)),
        ("/posts/", "posts", ("GET",)),
        ("/posts/<slug:slug>/", "show", ("GET",)),
        ("/archive/<int:year>/<slug:slug>", "archived", ("GET",)),
        ("/tags/<name>", "tag", ("GET",)),
        ("/static/<path:filename>", "static", ("GET",)),
    )


def test_url_for_builds_static_and_dynamic_rules(router):
    assert router.build("home", {}) == "/"
    assert router.build("show", {"slug": "hello-world"}) == "/posts/hello-world/"
    assert router.build("archived", {"year": 2024, "slug": "x"}) == "/archive/2024/x"


def test_url_for_turns_extra_values_into_a_query_string(router):
    built = router.build("posts", {"page": 2, "q": "a b&c=d"})
    assert built == "/posts/?page=2&q=a+b%26c%3Dd"


def test_url_for_repeats_keys_for_lists_and_drops_none(router):
    built = router.build("posts", {"tag": ["python", "wsgi"], "page": None})
    assert built == "/posts/?tag=python&tag=wsgi"


def test_url_for_adds_an_encoded_anchor(router):
    built = router.build("show", {"slug": "x", "_anchor": "comment 3"})
    assert built == "/posts/x/#comment%203"
    assert router.build("show", {"slug": "x", "page": 2, "_anchor": "top"}) == (
        "/posts/x/?page=2#top"
    )


@pytest.mark.parametrize("values", [{}, {"slug": None}, {"year": 2024}])
def test_url_for_without_a_placeholder_value_raises(router, values):
    with pytest.raises(RoutingError):
        router.build("archived", values)


def test_url_for_refuses_an_empty_value(router):
    with pytest.raises(RoutingError):
        router.build("tag", {"name": ""})


def test_url_for_unknown_endpoint_raises(router):
    with pytest.raises(RoutingError, match="nowhere"):
        router.build("nowhere", {})


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("a/b", "a%2Fb"),
        ("../admin", "..%2Fadmin"),
        ("a?b#c", "a%3Fb%23c"),
        ("café", "caf%C3%A9"),
        ("a b", "a%20b"),
        ("%2F", "%252F"),
    ],
)
def test_url_for_percent_encodes_values_so_they_stay_one_segment(router, value, segment):
    built = router.build("tag", {"name": value})
    assert built == f"/tags/{segment}"
    assert built.count("/") == 2


def test_url_for_keeps_slashes_of_a_path_value(router):
    assert router.build("static", {"filename": "css/site file.css"}) == (
        "/static/css/site%20file.css"
    )


@pytest.mark.parametrize("value", [-1, True, "7", 1.5])
def test_url_for_refuses_values_an_int_rule_would_not_match(router, value):
    with pytest.raises(ValueError):
        router.build("archived", {"year": value, "slug": "x"})


@pytest.mark.parametrize(
    ("endpoint", "values"),
    [
        ("show", {"slug": "hello-world"}),
        ("archived", {"year": 0, "slug": "a_b"}),
        ("tag", {"name": "Hello World"}),
        ("static", {"filename": "css/site.css"}),
    ],
)
def test_url_for_builds_what_match_gives_back(router, endpoint, values):
    from urllib.parse import unquote

    path = unquote(router.build(endpoint, values))
    rule, args = router.match(path, "GET")
    assert (rule.endpoint, args) == (endpoint, values)


def test_app_url_for_external_uses_the_base_url(tmp_path):
    app = make_app(tmp_path)
    assert app.url_for("show", slug="x", _external=True) == "https://blog.example/posts/x/"
    assert app.url_for("posts", page=2) == "/posts/?page=2"


# --- through the whole app, under wsgiref's validator ------------------------------------


def test_wrong_method_answers_405_with_allow_header(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    response = client.delete("/posts/")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_missing_trailing_slash_answers_308_keeping_the_query(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    response = client.get("/posts/hello?page=2")
    assert response.status_code == 308
    assert response.location == "/posts/hello/?page=2"
    followed = client.get("/posts/hello?page=2", follow_redirects=True)
    assert (followed.status_code, followed.text) == (200, "post hello")


def test_unknown_path_answers_404(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert "404" in response.text


def test_double_slash_path_never_redirects_off_site(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    response = client.get("//evil.example")
    assert response.status_code == 404
    assert response.location is None


def test_options_lists_the_allowed_methods(tmp_path):
    client = make_app(tmp_path).test_client(validate=True)
    response = client.options("/posts/")
    assert response.status_code == 204
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_rules_added_after_a_match_are_found_too():
    """The per-segment lists a match builds are rebuilt when a rule is added."""
    router = make_router(("/posts/<int:id>", "by_id", ("GET",)))
    assert router.match("/posts/7", "GET")[0].endpoint == "by_id"
    with pytest.raises(NotFound):
        router.match("/tags/x", "GET")
    router.add(Rule("/tags/<tag>", "tag", frozenset({"GET"}), _view))
    router.add(Rule("/<page>", "page", frozenset({"GET"}), _view))
    assert router.match("/tags/x", "GET")[0].endpoint == "tag"
    assert router.match("/about", "GET")[0].endpoint == "page"
    assert router.match("/posts/7", "GET")[0].endpoint == "by_id"


def test_a_builder_gives_what_build_gives_for_one_placeholder():
    router = make_router(
        ("/posts/<slug:slug>", "post", ("GET",)),
        ("/tags/<tag>/feed.atom", "tag_feed", ("GET",)),
        ("/a/<int:x>/<int:y>", "pair", ("GET",)),
    )
    post, tag_feed = router.builder("post", "slug"), router.builder("tag_feed", "tag")
    assert post("hello-world") == router.build("post", {"slug": "hello-world"})
    assert tag_feed("café & co") == router.build("tag_feed", {"tag": "café & co"})
    assert tag_feed("a/b") == "/tags/a%2Fb/feed.atom"
    with pytest.raises(RoutingError):
        post("")
    with pytest.raises(RoutingError):
        router.builder("pair", "x")  # two placeholders
    with pytest.raises(RoutingError):
        router.builder("post", "id")
    with pytest.raises(RoutingError):
        router.builder("nowhere", "slug")


def test_the_apps_url_builder_adds_the_base_url_when_external(tmp_path):
    app = make_app(tmp_path)
    show = app.url_builder("show", "slug", _external=True)
    assert show("hello") == "https://blog.example/posts/hello/"
    assert app.url_builder("show", "slug")("hello") == "/posts/hello/"
