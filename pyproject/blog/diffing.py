"""Word-level diffs of Markdown, rendered as escaped HTML with <ins> and <del>."""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from html import escape

from markupsafe import Markup

# Words with the white space after them, so joining the pieces gives the text back.
_TOKEN = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class WordDiff:
    """A diff: its HTML (safe to mark up: every piece of text is escaped) and its counts."""

    html: Markup
    inserted: int
    deleted: int

    @property
    def words_changed(self) -> int:
        return self.inserted + self.deleted

    @property
    def unchanged(self) -> bool:
        return self.words_changed == 0


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _count_words(pieces: list[str]) -> int:
    return sum(1 for piece in pieces if piece.strip())


# Above this many token pairs in one changed block, the block is shown as replaced whole:
# a word-level match of two long unrelated texts costs quadratic time.
_WORD_MATCH_BUDGET = 2_000_000


def word_diff(old: str, new: str) -> WordDiff:
    """Give the word-level diff from `old` to `new`.

    Lines are matched first (Markdown is line-oriented, and this keeps large texts
    fast); words are matched only inside the blocks of lines that changed.
    """
    a_lines, b_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    lines = SequenceMatcher(None, a_lines, b_lines, autojunk=False)
    out: list[str] = []
    counts = [0, 0]
    for op, a1, a2, b1, b2 in lines.get_opcodes():
        if op == "equal":
            out.append(escape("".join(b_lines[b1:b2])))
        else:
            _diff_block("".join(a_lines[a1:a2]), "".join(b_lines[b1:b2]), out, counts)
    # Every piece of text in `out` went through escape(); only our <ins>/<del> are markup.
    return WordDiff(Markup("".join(out)), counts[0], counts[1])  # noqa: S704  # nosec B704


def _diff_block(old: str, new: str, out: list[str], counts: list[int]) -> None:
    a, b = tokens(old), tokens(new)
    if len(a) * len(b) > _WORD_MATCH_BUDGET:
        opcodes = [("replace", 0, len(a), 0, len(b))]
    else:
        # Words are compared without their trailing space, so re-wrapping is no change.
        matcher = SequenceMatcher(
            None, [t.strip() for t in a], [t.strip() for t in b], autojunk=False
        )
        opcodes = matcher.get_opcodes()
    for op, a1, a2, b1, b2 in opcodes:
        if op == "equal":
            out.append(escape("".join(b[b1:b2])))
            continue
        if op in ("delete", "replace") and a2 > a1:
            counts[1] += _count_words(a[a1:a2])
            out.append(f"<del>{escape(''.join(a[a1:a2]))}</del>")
        if op in ("insert", "replace") and b2 > b1:
            counts[0] += _count_words(b[b1:b2])
            out.append(f"<ins>{escape(''.join(b[b1:b2]))}</ins>")


def words_changed(old: str, new: str) -> int:
    """Give how many words were inserted or deleted between two texts."""
    return word_diff(old, new).words_changed


# --- a revision's changes, the rest collapsed (#23) ---------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def paragraphs(text: str) -> list[str]:
    """Give the blank-line separated blocks of a text, without the blank lines."""
    return [block for block in _PARAGRAPH_BREAK.split(text.strip("\n")) if block.strip()]


def changes_only(old: str, new: str, context: int = 1) -> Markup:
    """Give the diff from `old` to `new` as changed paragraphs with `context` paragraphs
    around each change; every other run of unchanged paragraphs is one line saying how
    many words it holds. Each change is numbered (id="change-N") and links to the
    previous and next one.
    """
    a, b = paragraphs(old), paragraphs(new)
    matcher = SequenceMatcher(None, [p.strip() for p in a], [p.strip() for p in b], autojunk=False)
    opcodes = matcher.get_opcodes()
    total = sum(1 for op in opcodes if op[0] != "equal")
    out: list[str] = []
    number = 0
    for index, (op, a1, a2, b1, b2) in enumerate(opcodes):
        if op != "equal":
            number += 1
            diff = word_diff("\n\n".join(a[a1:a2]), "\n\n".join(b[b1:b2]))
            links = []
            if number > 1:
                links.append(f'<a href="#change-{number - 1}">Previous change</a>')
            if number < total:
                links.append(f'<a href="#change-{number + 1}">Next change</a>')
            out.append(
                f'<div class="diff-change" id="change-{number}">'
                f'<p class="diff-nav">Change {number} of {total}'
                f"{' · ' if links else ''}{' · '.join(links)}</p>"
                f'<pre class="diff">{diff.html}</pre></div>'
            )
            continue
        same = b[b1:b2]
        before = same[:context] if index > 0 else []
        after = same[-context:] if index < len(opcodes) - 1 and context else []
        if len(before) + len(after) >= len(same):
            before, after = same, []
        hidden = same[len(before) : len(same) - len(after)]
        for block in before:
            out.append(f'<pre class="diff diff-context">{escape(block)}</pre>')
        if hidden:
            words = _count_words(tokens(" ".join(hidden)))
            out.append(
                f'<p class="diff-collapsed">{words:,} unchanged word{"s" if words != 1 else ""}</p>'
            )
        for block in after:
            out.append(f'<pre class="diff diff-context">{escape(block)}</pre>')
    # Every piece of text went through escape() (or word_diff, which escapes its own).
    return Markup("".join(out))  # noqa: S704  # nosec B704


def tag_set_diff(old: str, new: str) -> tuple[list[str], list[str], list[str]]:
    """Give the tags (comma-separated) removed, added and kept: order is not a change."""
    before = [t.strip() for t in old.split(",") if t.strip()]
    after = [t.strip() for t in new.split(",") if t.strip()]
    old_keys = {t.casefold() for t in before}
    new_keys = {t.casefold() for t in after}
    removed = [t for t in before if t.casefold() not in new_keys]
    added = [t for t in after if t.casefold() not in old_keys]
    kept = [t for t in after if t.casefold() in old_keys]
    return removed, added, kept
