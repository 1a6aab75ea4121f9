"""Tests for pyproject/blog/diffing.py: word-level diffs of Markdown as escaped HTML."""

from __future__ import annotations

import re
import time
from html import unescape

import pytest
from markupsafe import Markup

from pyproject.blog.diffing import tokens, word_diff, words_changed


def without(tag: str, html: str) -> str:
    """Give the text of a diff with one kind of change taken out (and the other unwrapped)."""
    kept = re.sub(rf"<{tag}>.*?</{tag}>", "", html, flags=re.S)
    return unescape(re.sub(r"</?(ins|del)>", "", kept))


PAIRS = [
    ("", ""),
    ("", "Brand new text.\n"),
    ("All of this goes.\n", ""),
    ("The quick brown fox.", "The quick red fox."),
    ("One\n\nTwo\n\nThree\n", "One\n\nTwo and a half\n\nThree\n"),
    ("a <b>bold</b> & 'quoted' \"text\"", "a <i>bold</i> & 'quoted' \"text\" <script>"),
    ("# Title\n\n- item one\n- item two\n", "# Title\n\n- item one\n- item 2\n- item three\n"),
    ("no newline at end", "no newline at end\n"),
]


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_taking_the_deletions_out_gives_the_new_text(old, new):
    diff = word_diff(old, new)

    assert without("del", diff.html) == new


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_taking_the_insertions_out_gives_the_old_words(old, new):
    diff = word_diff(old, new)

    assert without("ins", diff.html).split() == old.split()


def test_an_unchanged_text_has_no_marks_and_no_counts():
    text = "Same words.\n\nSame paragraphs.\n"

    diff = word_diff(text, text)

    assert diff.unchanged
    assert (diff.inserted, diff.deleted, diff.words_changed) == (0, 0, 0)
    assert diff.html == text
    assert "<ins>" not in diff.html and "<del>" not in diff.html


def test_a_changed_word_counts_once_inserted_and_once_deleted():
    diff = word_diff("The quick brown fox.", "The quick red fox.")

    assert (diff.inserted, diff.deleted, diff.words_changed) == (1, 1, 2)
    assert re.findall(r"<(ins|del)>(.*?)</\1>", diff.html) == [("del", "brown "), ("ins", "red ")]
    assert not diff.unchanged


def test_counts_are_words_not_white_space():
    diff = word_diff("", "three little words\n\n\n")

    assert (diff.inserted, diff.deleted) == (3, 0)


def test_rewrapping_a_paragraph_is_no_change():
    old = "A paragraph that was\nwrapped at one width.\n"
    new = "A paragraph that\nwas wrapped at\none width.\n"

    diff = word_diff(old, new)

    assert diff.unchanged
    assert without("del", diff.html) == new


def test_the_html_escapes_everything_the_author_wrote():
    diff = word_diff("<b>old</b> & more", '<img src=x onerror="alert(1)"> & more')

    assert isinstance(diff.html, Markup)
    assert "<b>" not in diff.html and "<img" not in diff.html
    assert "&lt;img" in diff.html
    assert set(re.findall(r"</?([a-z]+)", diff.html)) <= {"ins", "del"}


def test_long_unrelated_blocks_are_shown_replaced_whole_and_quickly():
    old = " ".join(f"old{n}" for n in range(2000))
    new = " ".join(f"new{n}" for n in range(2000))

    started = time.perf_counter()
    diff = word_diff(old, new)
    elapsed = time.perf_counter() - started

    assert (diff.inserted, diff.deleted) == (2000, 2000)
    assert diff.html.count("<del>") == 1 and diff.html.count("<ins>") == 1
    assert elapsed < 2


def test_words_changed_is_the_diffs_count():
    assert words_changed("one two three", "one three four five") == 3
    assert words_changed("same", "same") == 0


@pytest.mark.parametrize("text", ["", "one", "  lead and trail  ", "a\n\nb\tc  \r\n"])
def test_tokens_join_back_to_the_text(text):
    assert "".join(tokens(text)) == text
