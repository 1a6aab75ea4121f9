"""Tests for pyproject/lib/templating.py and the template helpers of pyproject/lib/app.py."""

from __future__ import annotations

import logging
import re

import pytest
from jinja2 import UndefinedError

from pyproject.lib import flash, redirect, render_template
from pyproject.lib.security import csrf_token

HOSTILE = "<script>alert('x')</script> & \"quoted\""
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;quoted&#34;"


@pytest.fixture
def folder(tmp_path, site_folders):
    """Give a template folder holding the test layout plus HTML, XML and text templates."""
    templates, _ = site_folders
    for path in templates.rglob("*.html"):
        target = tmp_path / path.relative_to(templates)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    (tmp_path / "value.html").write_text("<p>{{ value }}</p>")
    (tmp_path / "feed.xml").write_text("<title>{{ value }}</title>")
    (tmp_path / "feed.atom").write_text("<title>{{ value }}</title>")
    (tmp_path / "missing.html").write_text("<p>{{ not_given }}</p>")
    (tmp_path / "globals.html").write_text(
        "url={{ url_for('home') }}\n"
        "static={{ static_url('css/site.css') }}\n"
        "token={{ csrf_token() }}\n"
        "flashes={{ get_flashed_messages() | join(',') }}\n"
    )
    return tmp_path


@pytest.fixture
def app(make_app, folder):
    return make_app(template_folder=str(folder))


# --- autoescape ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["value.html", "feed.xml", "feed.atom"])
def test_file_templates_are_autoescaped(app, name):
    rendered = app.jinja_env.get_template(name).render(value=HOSTILE)

    assert ESCAPED in rendered
    assert "<script>" not in rendered


def test_string_templates_are_autoescaped(app):
    rendered = app.jinja_env.from_string("<p>{{ value }}</p>").render(value=HOSTILE)

    assert rendered == f"<p>{ESCAPED}</p>"


def test_an_attribute_value_cannot_be_broken_out_of(app):
    template = app.jinja_env.from_string('<a title="{{ value }}">x</a>')

    rendered = template.render(value='" onmouseover="alert(1)')

    assert 'title="&#34; onmouseover=&#34;alert(1)"' in rendered


def test_a_view_rendering_a_template_escapes_request_data(app):
    app.add_route(
        "/echo",
        lambda request: render_template("value.html", value=request.args.get("q")),
        endpoint="echo",
    )

    response = app.test_client(validate=True).get("/echo", query={"q": HOSTILE})

    assert response.html.find_all("script") == []
    assert response.html.p.text == HOSTILE


# --- globals ---------------------------------------------------------------------------


def test_url_for_static_url_csrf_token_and_flashes_are_template_globals(app):
    def page(request):
        flash("saved")
        body = render_template("globals.html")
        return f"{body}\nsession-token={csrf_token(request.session)}"

    app.add_route("/page", page)

    text = app.test_client(validate=True).get("/page").text

    values = dict(line.split("=", 1) for line in text.splitlines())
    assert values["url"] == "/"
    assert re.fullmatch(r"/static/css/site\.css\?v=[0-9a-f]{12}", values["static"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", values["token"])
    assert values["token"] == values["session-token"]
    assert values["flashes"] == "saved"


def test_request_globals_outside_a_request_fail_loudly(app):
    # A token or a URL rendered with no request behind it would be wrong, not empty.
    with pytest.raises(LookupError):
        app.render_template("globals.html")


def test_context_processors_add_values_and_explicit_context_wins(app):
    app.context_processor(lambda request: {"value": "from processor", "other": 1})

    assert app.render_template("value.html") == "<p>from processor</p>"
    assert app.render_template("value.html", value="given") == "<p>given</p>"


# --- flash messages --------------------------------------------------------------------


def test_flash_messages_are_shown_once_then_gone(app):
    def save(request):
        flash("Saved <b>draft</b>", "success")
        flash("Second message")
        return redirect("/show")

    app.add_route("/save", save)
    app.add_route(
        "/show", lambda request: render_template("page.html", heading="Show"), endpoint="show"
    )
    client = app.test_client(validate=True)

    first = client.get("/save", follow_redirects=True)
    second = client.get("/show")

    shown = [(p["class"][1], p.text) for p in first.html.select("p.flash")]
    assert shown == [("flash-success", "Saved <b>draft</b>"), ("flash-info", "Second message")]
    assert first.html.select("main b") == []
    assert second.html.select("p.flash") == []


def test_flash_messages_survive_a_page_that_does_not_show_them(app):
    def save(request):
        flash("kept")
        return "saved"

    app.add_route("/save", save)
    app.add_route(
        "/show", lambda request: render_template("page.html", heading="Show"), endpoint="show"
    )
    app.add_route("/plain", lambda request: "no template", endpoint="plain")
    client = app.test_client(validate=True)

    client.get("/save")
    client.get("/plain")

    assert [p.text for p in client.get("/show").html.select("p.flash")] == ["kept"]


# --- undefined variables ---------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ missing }}",
        "{{ missing.attribute }}",
        "{{ missing | upper }}",
        "{% for x in missing %}{% endfor %}",
    ],
)
def test_a_missing_variable_raises(app, source):
    with pytest.raises(UndefinedError):
        app.jinja_env.from_string(source).render()


def test_a_missing_variable_in_a_view_is_a_logged_500(app, logs):
    app.add_route("/broken", lambda request: render_template("missing.html"), endpoint="broken")

    response = app.test_client(validate=True).get("/broken")

    assert response.status_code == 500
    assert "not_given" not in response.text
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert errors[0].exc_info[0] is UndefinedError
