"""Tests for the pure HTTP helpers in pyproject/lib/http.py."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pyproject.lib.http import (
    check_header,
    dump_cookie,
    http_date,
    is_not_modified,
    is_safe_redirect,
    normalize_path,
    parse_accept,
    parse_cookie,
    parse_etags,
    parse_http_date,
    parse_options_header,
    prefers_json,
    quote_etag,
    safe_join,
    status_line,
    unquote_etag,
)

RFC_EXAMPLE = "Sun, 06 Nov 1994 08:49:37 GMT"
RFC_EXAMPLE_TIME = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)


# --- status lines ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "line"),
    [
        (200, "200 OK"),
        (204, "204 No Content"),
        (304, "304 Not Modified"),
        (308, "308 Permanent Redirect"),
        (404, "404 Not Found"),
        (413, "413 Request Entity Too Large"),
        (500, "500 Internal Server Error"),
    ],
)
def test_status_line_gives_code_and_phrase(code, line):
    assert status_line(code) == line


@pytest.mark.parametrize("code", [0, 99, 299, 600, 999, -200])
def test_status_line_refuses_unknown_codes(code):
    with pytest.raises(ValueError):
        status_line(code)


# --- dates -------------------------------------------------------------------------------


def test_http_date_formats_an_aware_datetime_as_imf_fixdate():
    assert http_date(RFC_EXAMPLE_TIME) == RFC_EXAMPLE


def test_http_date_formats_a_unix_timestamp():
    assert http_date(RFC_EXAMPLE_TIME.timestamp()) == RFC_EXAMPLE


def test_http_date_treats_a_naive_datetime_as_utc():
    assert http_date(datetime(1994, 11, 6, 8, 49, 37)) == RFC_EXAMPLE


def test_http_date_converts_other_time_zones_to_gmt():
    plus_two = datetime(1994, 11, 6, 10, 49, 37, tzinfo=timezone(timedelta(hours=2)))
    assert http_date(plus_two) == RFC_EXAMPLE


def test_http_date_drops_fractions_of_a_second():
    assert http_date(RFC_EXAMPLE_TIME.replace(microsecond=999_999)) == RFC_EXAMPLE


@pytest.mark.parametrize(
    "moment",
    [
        RFC_EXAMPLE_TIME,
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_parse_http_date_round_trips_http_date(moment):
    assert parse_http_date(http_date(moment)) == moment


@pytest.mark.parametrize(
    "value",
    [
        RFC_EXAMPLE,
        "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850, obsolete but still allowed
        "Sun Nov  6 08:49:37 1994",  # asctime, obsolete but still allowed
        "  Sun, 06 Nov 1994 08:49:37 GMT  ",
    ],
)
def test_parse_http_date_reads_every_format_rfc_9110_allows(value):
    assert parse_http_date(value) == RFC_EXAMPLE_TIME


def test_parse_http_date_gives_an_aware_utc_datetime_for_a_date_without_zone():
    parsed = parse_http_date("Sun, 06 Nov 1994 08:49:37")
    assert parsed == RFC_EXAMPLE_TIME
    assert parsed.tzinfo is not None


def test_parse_http_date_converts_numeric_offsets_to_utc():
    assert parse_http_date("Sun, 06 Nov 1994 10:49:37 +0200") == RFC_EXAMPLE_TIME


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "",
        "   ",
        "yesterday",
        "0",
        "-1",
        ",,,",
        "\x00",
        "9" * 50,
        "Sun, 06 Nov 1994",
        "Sun, 06 Nov 1994 25:61:00 GMT",
        "Sun, 99 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 99999 08:49:37 GMT",
    ],
)
def test_parse_http_date_gives_none_for_garbage(garbage):
    assert parse_http_date(garbage) is None


# --- ETags -------------------------------------------------------------------------------


def test_quote_etag_wraps_the_tag_in_quotes():
    assert quote_etag("abc123") == '"abc123"'


def test_quote_etag_marks_weak_tags():
    assert quote_etag("abc123", weak=True) == 'W/"abc123"'


@pytest.mark.parametrize("tag", ['a"b', "a b", "a\tb", "a\r\nb", "a\x00b", "a\x7fb"])
def test_quote_etag_refuses_quotes_spaces_and_controls(tag):
    with pytest.raises(ValueError):
        quote_etag(tag)


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        ('"abc"', {"abc"}),
        ('W/"abc"', {"abc"}),
        ('"a", W/"b" ,"c"', {"a", "b", "c"}),
        ('"a","a"', {"a"}),
        ('""', {""}),
    ],
)
def test_parse_etags_gives_the_opaque_tags_without_weakness(header, tags):
    assert parse_etags(header) == (tags, False)


@pytest.mark.parametrize("header", ["*", " * "])
def test_parse_etags_recognises_the_star(header):
    assert parse_etags(header) == (set(), True)


@pytest.mark.parametrize("header", [None, "", "abc", 'W/"unterminated', "W/", "**"])
def test_parse_etags_gives_nothing_for_garbage(header):
    assert parse_etags(header) == (set(), False)


def test_parse_etags_keeps_the_well_formed_tags_among_garbage():
    assert parse_etags('"a" junk "b"') == ({"a", "b"}, False)


@pytest.mark.parametrize(
    ("value", "opaque"),
    [('"abc"', "abc"), ('W/"abc"', "abc"), ('  W/"abc" ', "abc"), ("abc", "abc")],
)
def test_unquote_etag_gives_the_opaque_part(value, opaque):
    assert unquote_etag(value) == opaque


# --- conditional requests ----------------------------------------------------------------

LAST_MODIFIED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _not_modified(etag=None, last_modified=None, if_none_match=None, if_modified_since=None):
    return is_not_modified(
        etag=etag,
        last_modified=last_modified,
        if_none_match=if_none_match,
        if_modified_since=if_modified_since,
    )


@pytest.mark.parametrize(
    ("etag", "if_none_match"),
    [
        ('"v1"', '"v1"'),
        ('"v1"', 'W/"v1"'),  # weak comparison: a weak tag matches the strong one
        ('W/"v1"', '"v1"'),
        ('W/"v1"', 'W/"v1"'),
        ('"v1"', '"v0", "v1", "v2"'),
        ('"v1"', "*"),
    ],
)
def test_matching_if_none_match_is_not_modified(etag, if_none_match):
    assert _not_modified(etag=etag, if_none_match=if_none_match)


@pytest.mark.parametrize(
    ("etag", "if_none_match"),
    [
        ('"v1"', '"v2"'),
        ('"v1"', '"V1"'),
        ('"v1"', "v1"),  # an unquoted tag is not an entity tag
        ('"v1"', "garbage"),
        (None, '"v1"'),
        (None, "*"),
    ],
)
def test_non_matching_if_none_match_is_modified(etag, if_none_match):
    assert not _not_modified(etag=etag, if_none_match=if_none_match)


def test_if_none_match_wins_over_a_matching_if_modified_since():
    assert not _not_modified(
        etag='"new"',
        last_modified=LAST_MODIFIED,
        if_none_match='"old"',
        if_modified_since=http_date(LAST_MODIFIED + timedelta(days=1)),
    )


def test_if_none_match_wins_over_a_stale_if_modified_since():
    assert _not_modified(
        etag='"v1"',
        last_modified=LAST_MODIFIED,
        if_none_match='"v1"',
        if_modified_since=http_date(LAST_MODIFIED - timedelta(days=1)),
    )


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (LAST_MODIFIED, True),
        (LAST_MODIFIED + timedelta(seconds=1), True),
        (LAST_MODIFIED - timedelta(seconds=1), False),
    ],
)
def test_if_modified_since_compares_whole_seconds(since, expected):
    # The resource changed a fraction of a second after the date it advertised.
    changed = LAST_MODIFIED.replace(microsecond=400_000)
    assert _not_modified(last_modified=changed, if_modified_since=http_date(since)) is expected


def test_if_modified_since_treats_a_naive_last_modified_as_utc():
    naive = LAST_MODIFIED.replace(tzinfo=None)
    assert _not_modified(last_modified=naive, if_modified_since=http_date(LAST_MODIFIED))
    assert not _not_modified(
        last_modified=naive, if_modified_since=http_date(LAST_MODIFIED - timedelta(hours=1))
    )


@pytest.mark.parametrize("garbage", ["yesterday", "", "0", "Sun, 99 Nov 2024 00:00:00 GMT"])
def test_garbage_if_modified_since_is_modified(garbage):
    assert not _not_modified(last_modified=LAST_MODIFIED, if_modified_since=garbage)


def test_without_validators_nothing_is_not_modified():
    assert not _not_modified()
    assert not _not_modified(etag='"v1"', last_modified=LAST_MODIFIED)


def test_if_modified_since_without_last_modified_is_modified():
    assert not _not_modified(etag='"v1"', if_modified_since=http_date(LAST_MODIFIED))


# --- header checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Test", "a\rb"),
        ("X-Test", "a\nb"),
        ("X-Test", "ok\r\nSet-Cookie: session=stolen"),
        ("Location", "/next\r\n\r\n<script>alert(1)</script>"),
        ("X-Test", "a\x00b"),
        ("X-Test", "\n"),
        ("", "value"),
        ("X Test", "value"),
        ("X-Test:", "value"),
        ("X:Test", "value"),
        ("X-Test\r\nSet-Cookie", "x=1"),
        ("X-Test\n", "value"),  # a regex `$` would let a trailing newline through
        ("X-Tést", "value"),
        ("X-Test\x00", "value"),
        ("(X-Test)", "value"),
    ],
)
def test_check_header_refuses_injection_and_bad_names(name, value):
    with pytest.raises(ValueError):
        check_header(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "text/html; charset=utf-8"),
        ("X-Empty", ""),
        ("X-Tab", "a\tb"),
        ("Set-Cookie", "a=1; Path=/; HttpOnly"),
        ("x-lower_case.name~!", "value"),
    ],
)
def test_check_header_accepts_ordinary_headers(name, value):
    check_header(name, value)


# --- parameterised headers and Accept ----------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("text/html", ("text/html", {})),
        ('Text/HTML; Charset="utf-8"', ("text/html", {"charset": "utf-8"})),
        (
            "multipart/form-data; boundary=----abc",
            ("multipart/form-data", {"boundary": "----abc"}),
        ),
        (
            'form-data; name="a;b"; filename="x\\"y"',
            ("form-data", {"name": "a;b", "filename": 'x"y'}),
        ),
        ("text/plain; broken; q = 0.5", ("text/plain", {"q": "0.5"})),
        ("", ("", {})),
        (None, ("", {})),
    ],
)
def test_parse_options_header(header, expected):
    assert parse_options_header(header) == expected


def test_parse_accept_orders_by_quality_then_position():
    assert parse_accept("text/html;q=0.5, application/json, image/png;q=0.9, text/plain") == [
        ("application/json", 1.0),
        ("text/plain", 1.0),
        ("image/png", 0.9),
        ("text/html", 0.5),
    ]


@pytest.mark.parametrize("bad_q", ["abc", "2", "-1", "nan", "inf"])
def test_parse_accept_gives_a_bad_quality_zero(bad_q):
    assert parse_accept(f"text/html;q={bad_q}") == [("text/html", 0.0)]


@pytest.mark.parametrize("header", [None, "", ",", " , ,"])
def test_parse_accept_of_nothing_is_empty(header):
    assert parse_accept(header) == []


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", True),
        ("application/problem+json", True),
        ("application/vnd.api+json", True),
        ("application/json, text/html;q=0.9", True),
        ("text/html, application/json;q=0.9", False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("application/json, */*", False),  # a tie goes to HTML
        ("*/*", False),
        ("", False),
        (None, False),
    ],
)
def test_prefers_json(accept, expected):
    assert prefers_json(accept) is expected


# --- cookies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "cookies"),
    [
        ("a=1; b=2", {"a": "1", "b": "2"}),
        ("a=1;b=2", {"a": "1", "b": "2"}),
        ("a=1; a=2", {"a": "1"}),
        ('a="quoted"', {"a": "quoted"}),
        ("a=", {"a": ""}),
        ("a=x=y", {"a": "x=y"}),
        ("a=1;; ;b=2", {"a": "1", "b": "2"}),
        ("garbage; a=1", {"a": "1"}),
        ("=nameless; a=1", {"a": "1"}),
        ("a b=1; c=2", {"c": "2"}),
        ("a=1 2; c=2", {"c": "2"}),
        ("a=1,2; c=2", {"c": "2"}),
        ('a="un"quoted"; c=2', {"c": "2"}),
        ("a=café; c=2", {"c": "2"}),
        ("é=1; c=2", {"c": "2"}),
        ("a=\x00; c=2", {"c": "2"}),
        ("", {}),
        (None, {}),
    ],
)
def test_parse_cookie_skips_malformed_pairs_and_keeps_the_first_of_a_name(header, cookies):
    assert parse_cookie(header) == cookies


def test_dump_cookie_defaults_are_httponly_lax_on_the_whole_site():
    assert dump_cookie("sid", "abc") == "sid=abc; Path=/; HttpOnly; SameSite=Lax"


def test_dump_cookie_writes_every_attribute():
    header = dump_cookie(
        "sid",
        "abc",
        max_age=3600,
        expires=RFC_EXAMPLE_TIME,
        path="/blog",
        domain="example.com",
        secure=True,
        httponly=True,
        samesite="strict",
    )
    assert header == (
        f"sid=abc; Max-Age=3600; Expires={RFC_EXAMPLE}; Path=/blog; Domain=example.com; "
        "Secure; HttpOnly; SameSite=Strict"
    )


def test_dump_cookie_leaves_out_attributes_that_are_off():
    header = dump_cookie("sid", "abc", path=None, httponly=False, samesite=None)
    assert header == "sid=abc"


def test_dump_cookie_allows_samesite_none_with_secure():
    assert dump_cookie("sid", "abc", secure=True, samesite="none").endswith(
        "Secure; HttpOnly; SameSite=None"
    )


def test_dump_cookie_refuses_samesite_none_without_secure():
    with pytest.raises(ValueError, match="Secure"):
        dump_cookie("sid", "abc", samesite="None")


def test_dump_cookie_refuses_an_unknown_samesite():
    with pytest.raises(ValueError):
        dump_cookie("sid", "abc", samesite="sometimes")


@pytest.mark.parametrize(
    "name", ["", "a b", "a;b", "a=b", "a,b", "é", "a\r\nSet-Cookie", "a\x00", "sid\n"]
)
def test_dump_cookie_refuses_bad_names(name):
    with pytest.raises(ValueError):
        dump_cookie(name, "x")


@pytest.mark.parametrize(
    "value",
    ["a b", "a;b", "a,b", 'a"b', "a\\b", "café", "a\r\nSet-Cookie: x=1", "a\x00", "\t", "abc\n"],
)
def test_dump_cookie_refuses_values_a_browser_would_mangle(value):
    with pytest.raises(ValueError):
        dump_cookie("sid", value)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("path", "/;Domain=evil.example"),
        ("path", "/\r\nSet-Cookie: x=1"),
        ("domain", "example.com; Secure"),
        ("domain", "example.com\x00"),
        ("domain", "a.example,b.example"),
    ],
)
def test_dump_cookie_refuses_attributes_that_would_add_attributes(attribute, value):
    with pytest.raises(ValueError):
        dump_cookie("sid", "abc", **{attribute: value})


# --- safe_join ---------------------------------------------------------------------------


@pytest.fixture
def static_folder(tmp_path):
    """Give a folder with nested files, a secret beside it and links that leave it."""
    (tmp_path / "secret.txt").write_text("secret")
    folder = tmp_path / "static"
    (folder / "css" / "deep").mkdir(parents=True)
    (folder / "css" / "site.css").write_text("body {}")
    (folder / "css" / "deep" / "app.js").write_text("")
    (folder / "a").mkdir()
    (folder / ".env").write_text("SECRET_KEY=x")
    (folder / "link-out.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "dir-out").symlink_to(tmp_path)
    (folder / "alias.css").symlink_to(folder / "css" / "site.css")
    return folder


@pytest.mark.parametrize(
    "untrusted",
    [
        "..",
        "../secret.txt",
        "a/../../secret.txt",
        "a/..",
        "css/../../secret.txt",
        "%2e%2e",
        "%2e%2e/secret.txt",
        "..%2fsecret.txt",
        "..\\secret.txt",
        "a\\..\\..\\secret.txt",
        "/etc/passwd",
        "//etc/passwd",
        "css/site.css\x00.png",
        "\x00",
        ".env",
        "a/.git/config",
        ".git",
        "",
        ".",
        "./",
        "css/",
        "css//site.css",
        "./css/site.css",
        "C:\\x",
        "C:x",
        "c:/windows/win.ini",
        "link-out.txt",
        "dir-out/secret.txt",
        "dir-out",
    ],
)
def test_safe_join_refuses_paths_that_leave_the_folder(static_folder, untrusted):
    assert safe_join(str(static_folder), untrusted) is None


def test_safe_join_refuses_the_folder_itself(static_folder):
    assert safe_join(str(static_folder), str(static_folder)) is None
    assert safe_join(str(static_folder), ".") is None


@pytest.mark.parametrize(
    ("untrusted", "relative"),
    [
        ("css/site.css", "css/site.css"),
        ("css/deep/app.js", "css/deep/app.js"),
        ("css/deep/missing.js", "css/deep/missing.js"),  # existence is the caller's check
        ("alias.css", "css/site.css"),  # a link that stays inside is followed
        ("a", "a"),
    ],
)
def test_safe_join_gives_the_real_path_of_files_inside(static_folder, untrusted, relative):
    expected = os.path.realpath(static_folder / relative)
    assert safe_join(str(static_folder), untrusted) == expected


def test_safe_join_works_through_a_linked_folder(static_folder, tmp_path):
    linked = tmp_path / "linked-static"
    linked.symlink_to(static_folder)
    assert safe_join(str(linked), "css/site.css") == os.path.realpath(
        static_folder / "css" / "site.css"
    )


# --- redirects and paths -----------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "//evil.example",
        "//evil.example/path",
        "///evil.example",
        "/\\evil.example",
        "/\\/evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "evil.example",
        "posts/x",
        "/%0d%0aSet-Cookie:x",
        "/%0D%0ASet-Cookie:x",
        "/a%00b",
        "/%5cevil.example",
        "/%2f%2fevil.example",
        "/a\r\nSet-Cookie: x=1",
        "/a\rb",
        "/a\nb",
        "/\tevil",
        "/\t/evil.example",
        "\t//evil.example",
        " /posts",
        "/a\x00b",
        "/a\x7fb",
    ],
)
def test_is_safe_redirect_refuses_other_sites_schemes_and_controls(target):
    assert is_safe_redirect(target) is False


@pytest.mark.parametrize(
    "target",
    ["/", "/posts/x?y=1", "/posts/x?next=/a#top", "/search?q=a%20b", "/posts/caf%C3%A9", "/a//b"],
)
def test_is_safe_redirect_accepts_paths_on_this_site(target):
    assert is_safe_redirect(target) is True


@pytest.mark.parametrize(
    ("path", "normalized"),
    [
        ("/", "/"),
        ("", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("a/b", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/..", "/"),
        ("/a/../", "/"),
        ("//evil.example", "/evil.example"),
        ("///a//b", "/a/b"),
        ("/a/b/..", "/a"),
    ],
)
def test_normalize_path_resolves_dots_without_climbing_above_the_root(path, normalized):
    assert normalize_path(path) == normalized
