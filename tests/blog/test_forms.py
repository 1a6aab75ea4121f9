"""Tests for pyproject/blog/forms.py: values kept as typed, errors by field, control characters."""

from __future__ import annotations

import io

import pytest

from pyproject.blog.forms import Form, has_control_characters, without_control_characters
from pyproject.lib.datastructures import FileStorage, MultiDict

FIELDS = ("title", "body")


# --- what the form keeps -------------------------------------------------------------------


def test_a_form_keeps_its_fields_exactly_as_typed_and_nothing_else():
    form = Form({"title": "  Spaced  ", "body": "Line\r\n", "is_admin": "yes"}, FIELDS)

    assert form.values == {"title": "  Spaced  ", "body": "Line\r\n"}
    assert form["title"] == "  Spaced  "
    assert form["is_admin"] == ""
    assert form.get("is_admin", "no") == "no"


def test_missing_fields_are_empty_and_the_form_is_ok():
    form = Form(None, FIELDS)

    assert form.values == {"title": "", "body": ""}
    assert form.ok
    assert form.errors == {}


def test_a_repeated_field_keeps_its_first_value():
    form = Form(MultiDict([("title", "first"), ("title", "second")]), FIELDS)

    assert form["title"] == "first"


def test_a_file_sent_in_a_text_field_is_read_as_empty():
    upload = FileStorage(
        name="title", filename="t.txt", content_type="text/plain", stream=io.BytesIO()
    )

    form = Form(MultiDict([("title", upload)]), FIELDS)

    assert form["title"] == ""


def test_the_first_error_of_a_field_stays():
    form = Form({}, FIELDS)

    form.error("title", "First problem.")
    form.error("title", "Second problem.")
    form.error("body", "Body problem.")

    assert not form.ok
    assert form.errors == {"title": "First problem.", "body": "Body problem."}


# --- text() --------------------------------------------------------------------------------


def test_text_gives_the_value_stripped_and_keeps_the_typed_one():
    form = Form({"title": "  Hello  "}, FIELDS)

    assert form.text("title", label="Title") == "Hello"
    assert form["title"] == "  Hello  "
    assert form.ok


def test_text_can_keep_surrounding_white_space():
    form = Form({"body": "\n  indented code\n"}, FIELDS)

    assert form.text("body", label="Body", strip=False) == "\n  indented code\n"


@pytest.mark.parametrize("typed", ["", "   ", "\t\n"])
def test_a_required_field_left_empty_is_an_error_naming_its_label(typed):
    form = Form({"title": typed}, FIELDS)

    assert form.text("title", label="Title", required=True) == ""
    assert form.errors == {"title": "Title is required."}


def test_a_field_at_its_limit_is_fine_and_one_over_is_an_error_with_both_numbers():
    fine = Form({"title": "x" * 1000}, FIELDS)
    over = Form({"title": "x" * 1001}, FIELDS)

    fine.text("title", label="Title", max_length=1000)
    over.text("title", label="Title", max_length=1000)

    assert fine.ok
    assert over.errors == {"title": "Title is too long: 1,001 characters, at most 1,000."}


def test_the_limit_counts_after_stripping():
    form = Form({"title": "  " + "x" * 10 + "  "}, FIELDS)

    form.text("title", label="Title", max_length=10)

    assert form.ok


@pytest.mark.parametrize("typed", ["nul\x00byte", "bell\x07", "esc\x1b[31m", "del\x7f", "c1\x85"])
def test_control_characters_are_an_error_before_any_other(typed):
    form = Form({"title": typed * 100}, FIELDS)

    form.text("title", label="Title", required=True, max_length=5)

    assert form.errors == {"title": "Title contains characters that are not allowed."}


def test_tabs_and_line_breaks_are_allowed_text():
    form = Form({"body": "a\tb\r\nc\nd"}, FIELDS)

    form.text("body", label="Body", required=True)

    assert form.ok


# --- control characters --------------------------------------------------------------------

CONTROL = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\x7f", "\x80", "\x9f"]
ALLOWED = ["\t", "\n", "\r", " ", "é", "ß", "\u00a0", "\u200b", "日本", "🐍", "\u2028"]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_control_characters_are_found_and_taken_out(char):
    text = f"before{char}after"

    assert has_control_characters(text)
    assert without_control_characters(text) == "beforeafter"


@pytest.mark.parametrize("char", ALLOWED, ids=[f"U+{ord(c[0]):04X}" for c in ALLOWED])
def test_other_characters_are_left_alone(char):
    text = f"before{char}after"

    assert not has_control_characters(text)
    assert without_control_characters(text) == text
