"""WordPress import (#16): the WXR file of Tools -> Export read into an importing.Bundle.

The XML is parsed with defusedxml, streaming (iterparse), with any DOCTYPE refused, so entity
expansion ("billion laughs") and external entities never run. Each <item> becomes an
ImportedPost (post or page), an attachment (an ImportedMedia, its data read from an
``uploads/`` folder beside the file or inside the zip when there is one) or is skipped with a
warning (menus, revisions, reusable blocks, trash). Bodies go through WordPress's own
paragraph rule (classic posts keep paragraphs as blank lines), then :func:`html_to_markdown`,
which the Ghost reader uses too.

What is kept: title, slug (percent-decoded; made ASCII by slugs.py when it is not, the old
URL kept), status (publish, draft, pending, private -> draft, future -> scheduled), the GMT
dates, author, categories and tags (both become tags, "Uncategorized" dropped), the excerpt
(else the text before ``<!--more-->``) as summary, the featured image as cover, the
``_wp_old_slug`` earlier slugs, and the post's permalink, ``/?p=ID`` and ``/slug/`` as old
paths that answer 301. Not kept: comments, menus, custom fields, post passwords (such posts
come in as drafts), shortcodes other than [caption], [gallery] and [code] (kept as text,
with a warning).
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from posixpath import basename, dirname
from typing import IO
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element, ParseError

from bs4.exceptions import ParserRejectedMarkup
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse
from markdownify import ATX, MarkdownConverter

from pyproject.blog.importing import (
    Bundle,
    ImportedAuthor,
    ImportedMedia,
    ImportedPost,
    ImportFailed,
    Source,
    register_reader,
)
from pyproject.blog.slugs import is_valid_slug, slugify

FORMAT = "wordpress"
SUMMARY_LIMIT = 300
_CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
_DC_NS = "http://purl.org/dc/elements/1.1/"
_SNIFF_BYTES = 8192

# --- HTML to Markdown (shared with ghost.py) ------------------------------------------------

_SAFE_SCHEMES = ("http", "https", "mailto")
_ENTITY_LIKE = re.compile(r"&(?=#?\w+;)")
_TAG_LIKE = re.compile(r"<(?=[A-Za-z/!?])")
# Elements whose content is not text a reader should see, dropped whole.
_DROPPED = ("script", "style", "template", "noscript", "object", "embed", "form", "head")


class _Converter(MarkdownConverter):
    """markdownify's converter, made to write Markdown that carries no HTML of its own.

    Text that looks like a tag or an entity is escaped (``&lt;script>`` stays words, never a
    raw <script> in the Markdown), links and images keep only http(s), mailto and relative
    URLs (others keep their text), and `rewrite` maps each URL (WordPress's resized copies
    to their original, Ghost's ``__GHOST_URL__``) before it is written.
    """

    def __init__(self, rewrite: Callable[[str], str] | None = None, **options) -> None:
        super().__init__(
            heading_style=ATX,
            bullets="-",
            code_language_callback=_code_language,
            **options,
        )
        self.rewrite = rewrite or _same_url

    def escape(self, text: str, parent_tags) -> str:
        if "&" in text:
            text = _ENTITY_LIKE.sub("&amp;", text)
        if "<" in text:
            text = _TAG_LIKE.sub("&lt;", text)
        return super().escape(text, parent_tags)

    def _url(self, value: str) -> str | None:
        url = (value or "").strip()
        try:
            scheme = urlsplit(url).scheme.lower() if ":" in url.split("/", 1)[0] else ""
            if not url or (scheme and scheme not in _SAFE_SCHEMES):
                return None
            url = self.rewrite(url)
        except ValueError:  # not a URL at all ("http://[oops/"): dropped like an unsafe one
            return None
        return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C")

    def convert_a(self, el, text, parent_tags):
        href = self._url(el.get("href", ""))
        if href is None or "_noformat" in parent_tags:
            return text
        el["href"] = href
        el.attrs.pop("title", None)
        return super().convert_a(el, text, parent_tags)

    def convert_img(self, el, text, parent_tags):
        src = self._url(el.get("src", ""))
        if src is None:
            return ""
        alt = _bracket_safe(el.get("alt", ""))
        title = (el.get("title") or "").replace('"', "'")
        title_part = f' "{title}"' if title else ""
        return f"![{alt}]({src}{title_part})"

    def convert_iframe(self, el, text, parent_tags):
        # An embedded video or map becomes a link to what it showed.
        src = self._url(el.get("src", ""))
        return f"\n\n<{src}>\n\n" if src and src.startswith(("http://", "https://")) else ""

    def _drop(self, el, text, parent_tags):
        return ""

    convert_script = convert_style = convert_template = convert_noscript = _drop
    convert_object = convert_embed = convert_form = convert_head = convert_title = _drop
    convert_button = convert_input = convert_select = convert_textarea = _drop


def _bracket_safe(text: str) -> str:
    return re.sub(r"([\[\]\\])", r"\\\1", " ".join((text or "").split()))


def _code_language(el) -> str:
    classes = list(el.get("class") or [])
    code = el.find("code")
    if code is not None:
        classes += list(code.get("class") or [])
    for name in classes:
        for prefix in ("language-", "lang-"):
            if name.startswith(prefix) and re.fullmatch(r"[\w+#.-]{1,30}", name[len(prefix) :]):
                return name[len(prefix) :]
    return ""


def _same_url(url: str) -> str:
    return url


_local_converter = threading.local()


def _converter() -> _Converter:
    """Give this thread's converter: one per thread keeps its cache of element handlers."""
    converter = getattr(_local_converter, "converter", None)
    if converter is None:
        converter = _local_converter.converter = _Converter()
    return converter


_FENCED = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
_STRAY_TAG = re.compile(r"<(?!(?:https?://|mailto:)[^\s<>]+>)(?=[A-Za-z/!?])")


def _escape_stray_tags(markdown: str) -> str:
    """Give the Markdown with every "<" that could open a tag written "&lt;", outside code.

    Text nodes are escaped one by one as they are converted; this catches a "<" that ends
    one node before letters that start the next.
    """

    def prose(text: str) -> str:
        out, last = [], 0
        for span in _CODE_SPAN.finditer(text):
            out.append(_STRAY_TAG.sub("&lt;", text[last : span.start()]))
            out.append(span.group(0))
            last = span.end()
        out.append(_STRAY_TAG.sub("&lt;", text[last:]))
        return "".join(out)

    out, last = [], 0
    for block in _FENCED.finditer(markdown):
        out.append(prose(markdown[last : block.start()]))
        out.append(block.group(0))
        last = block.end()
    out.append(prose(markdown[last:]))
    return "".join(out)


def html_to_markdown(fragment: str, rewrite: Callable[[str], str] | None = None) -> str:
    """Give the Markdown of an HTML fragment: what an author would have typed for it.

    Scripts, styles, forms and plugins are dropped with their content, HTML comments (so
    Gutenberg's block markers) vanish, and no raw HTML is written: whatever the Markdown
    holds is text, Markdown syntax or an entity.
    """
    converter = _converter()
    converter.rewrite = rewrite or _same_url
    try:
        text = converter.convert(fragment)
    except ParserRejectedMarkup:
        # html.parser gives up on some broken declarations ("<![>"): they become text.
        try:
            text = converter.convert(re.sub(r"<!(?!--)", "&lt;!", fragment))
        except ParserRejectedMarkup:
            text = converter.convert(f"<p>{html.escape(plain_text(fragment, len(fragment)))}</p>")
    text = _escape_stray_tags(text)
    text = re.sub(r"^[ \t]+$", "", text, flags=re.M)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def plain_text(fragment: str, limit: int = SUMMARY_LIMIT) -> str:
    """Give an HTML fragment's words as one line of plain text, cut at a word under `limit`."""
    text = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", fragment, flags=re.S | re.I)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(rf"</?(?:{_BLOCK_TAGS}|br)\b[^>]*>", " ", text, flags=re.I)
    text = html.unescape(re.sub(r"<[^>]*>", "", text))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return text


# --- WordPress's content rules ---------------------------------------------------------------

_BLOCK_TAGS = (
    "table|thead|tfoot|caption|col|colgroup|tbody|tr|td|th|div|dl|dd|dt|ul|ol|li|pre|form|"
    "blockquote|address|math|style|script|p|h[1-6]|hr|fieldset|legend|section|article|aside|"
    "hgroup|header|footer|nav|figure|figcaption|details|menu|summary|iframe"
)
_STARTS_BLOCK = re.compile(rf"\s*</?(?:{_BLOCK_TAGS})[\s/>]", re.I)
_PRE = re.compile(r"(<pre[\s>].*?</pre\s*>)", re.S | re.I)
_BLOCK_COMMENT = re.compile(r"<!--\s*/?wp:[^>]*?-->", re.S)
_REUSABLE = re.compile(r"<!--\s*wp:block\s+\{[^}]*?\"ref\"\s*:\s*(\d{1,20})[^}]*\}\s*/-->")
_MORE = re.compile(r"<!--\s*more\b.*?-->", re.S)
_NEXTPAGE = re.compile(r"<!--\s*nextpage\s*-->")
_SHORTCODE_ATTRS = re.compile(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))""")
_CAPTION = re.compile(r"\[(caption|wp_caption)([^\]]*)\](.*?)\[/\1\]", re.S)
_CODE = re.compile(r"\[(code|sourcecode)([^\]]*)\](.*?)\[/\1\]", re.S)
_GALLERY = re.compile(r"\[gallery([^\]]*)\]")
_EMBED = re.compile(r"\[embed[^\]]*\](.*?)\[/embed\]", re.S)
_SHORTCODE = re.compile(r"\[/?([a-z][\w-]{1,40})(?=[\s\]/])[^\]\n]*\]")
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.I)


def _attrs(text: str) -> dict[str, str]:
    return {m[1].lower(): m[2] or m[3] or m[4] or "" for m in _SHORTCODE_ATTRS.finditer(text)}


def autop(text: str) -> str:
    """Give classic-editor content its paragraphs, as WordPress's wpautop does on display.

    Content that already has <p> elements (the block editor's) is left as it is; elsewhere a
    blank line ends a paragraph and a single newline is a line break, except inside <pre>.
    """
    if re.search(r"<p[\s>]", text, re.I):
        return text
    out = []
    for index, part in enumerate(_PRE.split(text)):
        if index % 2:
            out.append(part)
            continue
        for chunk in re.split(r"\n\s*\n", part.replace("\r\n", "\n")):
            chunk = chunk.strip()
            if not chunk:
                continue
            if _STARTS_BLOCK.match(chunk):
                out.append(chunk)
            else:
                out.append("<p>" + chunk.replace("\n", "<br>\n") + "</p>")
    return "\n\n".join(out)


def expand_shortcodes(
    text: str, attachment_urls: dict[str, str], warn: Callable[[str], None]
) -> str:
    """Give the content with the shortcodes we understand made HTML; warn of the others.

    What they become is wrapped in <div> (never <p>), so autop still sees classic content.

    [caption]...[/caption] becomes the image and its caption below it, [code lang=x] a
    code block, [gallery ids=...] the gallery's images, [embed] a link.
    """

    def caption(match: re.Match[str]) -> str:
        attrs, inner = _attrs(match[2]), match[3]
        images = _IMG_TAG.findall(inner)
        words = attrs.get("caption") or _IMG_TAG.sub("", inner)
        words = re.sub(r"</?a\b[^>]*>", "", words).strip()
        shown = " ".join(images) if images else inner
        if words:
            titled = [_with_title(img, plain_text(words)) for img in images]
            shown = " ".join(titled) if titled else shown
            return f"\n\n<div>{shown}</div>\n\n<div><em>{words}</em></div>\n\n"
        return f"\n\n<div>{shown}</div>\n\n"

    def code(match: re.Match[str]) -> str:
        attrs = _attrs(match[2])
        language = attrs.get("lang") or attrs.get("language") or ""
        language = language if re.fullmatch(r"[\w+#.-]{1,30}", language) else ""
        css = f' class="language-{language}"' if language else ""
        body = html.escape(html.unescape(match[3].strip("\n")), quote=False)
        return f"\n\n<pre><code{css}>{body}</code></pre>\n\n"

    def gallery(match: re.Match[str]) -> str:
        ids = [i.strip() for i in _attrs(match[1]).get("ids", "").split(",") if i.strip()]
        urls = [attachment_urls[i] for i in ids if i in attachment_urls]
        if not urls:
            warn("a [gallery] without images of this file was dropped")
            return ""
        return "\n\n" + "".join(f'<div><img src="{html.escape(u)}" alt=""></div>' for u in urls)

    def embed(match: re.Match[str]) -> str:
        url = html.escape(match[1].strip())
        return f'\n\n<div><a href="{url}">{url}</a></div>\n\n'

    text = _CODE.sub(code, text)
    text = _CAPTION.sub(caption, text)
    text = _GALLERY.sub(gallery, text)
    text = _EMBED.sub(embed, text)
    outside_code = _PRE.sub("", text)
    for name in sorted({m[1] for m in _SHORTCODE.finditer(outside_code)}):
        warn(f"shortcode [{name}] kept as text")
    return text


def _with_title(img: str, title: str) -> str:
    img = re.sub(r'\stitle\s*=\s*("[^"]*"|\'[^\']*\')', "", img)
    return img[:4] + f' title="{html.escape(title)}"' + img[4:]


# --- reading the file ---------------------------------------------------------------------------


def sniff(source: Source) -> bool:
    return _wxr_entry(source) is not None


def _wxr_entry(source: Source) -> str | None:
    """Give the name of the WXR file in what was given, or None."""
    return source.first_entry(
        ".xml", lambda head: b"<rss" in head and b"wordpress.org/export/" in head, _SNIFF_BYTES
    )


class _Item:
    """One <item>, its children read into plain values."""

    def __init__(self, element: Element) -> None:
        self.fields: dict[str, str] = {}
        self.categories: list[tuple[str, str, str]] = []
        self.meta: dict[str, list[str]] = {}
        self.comments = 0
        for child in element:
            name = _local(child.tag)
            if name == "category":
                self.categories.append(
                    (child.get("domain", ""), child.get("nicename", ""), child.text or "")
                )
            elif name == "postmeta":
                key = _child_text(child, "meta_key")
                self.meta.setdefault(key, []).append(_child_text(child, "meta_value"))
            elif name == "comment":
                self.comments += 1
            else:
                self.fields[name] = child.text or ""

    def get(self, name: str) -> str:
        return self.fields.get(name, "").strip()


def _post_type(element: Element) -> str:
    for child in element:
        if _local(child.tag) == "post_type":
            return (child.text or "").strip() or "post"
    return "post"


def _local(tag: str) -> str:
    """Give an element's name without its namespace, the excerpt's and content's told apart."""
    if tag.startswith("{"):
        namespace, name = tag[1:].split("}", 1)
        if namespace.rstrip("/").endswith("/excerpt"):
            return "excerpt:" + name
        if namespace == _CONTENT_NS:
            return "content:" + name
        return name
    return tag


def _child_text(element: Element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return child.text or ""
    return ""


class _Reader:
    def __init__(self, source: Source, entry: str) -> None:
        self.source = source
        self.entry = entry
        self.where = f"{source.label}" if source.kind == "file" else f"{source.label}: {entry}"
        self.uploads, self.uploads_prefix = self._uploads()
        self.bundle = Bundle(format=FORMAT)
        self.site_url = ""
        self.authors: dict[str, ImportedAuthor] = {}
        self.attachments: dict[str, _Item] = {}  # post id -> item
        self.reusable: dict[str, str] = {}  # post id of a reusable block -> its content

    def _uploads(self) -> tuple[Source | None, str]:
        if self.source.kind == "file":
            return self.source.beside("uploads"), ""
        folder = dirname(self.entry)
        return self.source, (f"{folder}/" if folder else "") + "uploads/"

    def upload(self, relative: str) -> bytes | None:
        """Give the bytes of ``uploads/<relative>`` beside the file, or None."""
        if self.uploads is None or not relative:
            return None
        name = self.uploads_prefix + relative.lstrip("/")
        return self.uploads.read(name) if self.uploads.exists(name) else None

    def has_upload(self, relative: str) -> bool:
        if self.uploads is None or not relative:
            return False
        return self.uploads.exists(self.uploads_prefix + relative.lstrip("/"))

    # parsing

    def parse(self) -> Bundle:
        # Two passes: attachments first (posts name them before they appear, as covers,
        # galleries and resized copies), then each post converted as it is read, so no
        # post's HTML is held longer than its own conversion.
        with self.source.open(self.entry) as stream:
            for _number, element in self._items(stream):
                kind = _post_type(element)
                if kind == "attachment":
                    item = _Item(element)
                    self.attachments[item.get("post_id")] = item
                elif kind == "wp_block":
                    item = _Item(element)
                    self.reusable[item.get("post_id")] = item.fields.get("content:encoded", "")
        self._media()
        with self.source.open(self.entry) as stream:
            self._posts(stream)
        return self.bundle

    def _items(self, stream: IO[bytes]) -> Iterator[tuple[int, Element]]:
        number = 0
        parents: list[Element] = []
        try:
            events = iterparse(
                stream, events=("start", "end"), forbid_dtd=True, forbid_entities=True
            )
            for event, element in events:
                if event == "start":
                    parents.append(element)
                    continue
                parents.pop()
                name = _local(element.tag)
                if name == "item":
                    number += 1
                    yield number, element
                    if parents:
                        parents[-1].remove(element)  # keep memory flat on large files
                elif name == "author" and parents and _local(parents[-1].tag) == "channel":
                    self._author(element)
                elif name in ("base_site_url", "base_blog_url") or (
                    name == "link" and parents and _local(parents[-1].tag) == "channel"
                ):
                    self.site_url = self.site_url or (element.text or "").strip().rstrip("/")
        except DefusedXmlException as exc:
            raise ImportFailed(
                f"{self.where}: refused: the XML declares a DOCTYPE or entities "
                f"({type(exc).__name__}); a WordPress export has none"
            ) from None
        except ParseError as exc:
            line, column = exc.position
            raise ImportFailed(
                f"{self.where}: line {line}, column {column}: not well-formed XML "
                f"({str(exc).split(':')[0]})"
            ) from None
        if number == 0 and not self.authors:
            raise ImportFailed(f"{self.where}: a WXR file without any <item>")

    def _author(self, element: Element) -> None:
        login = _child_text(element, "author_login").strip()
        if not login:
            return
        self.authors[login] = ImportedAuthor(
            username=login,
            email=_child_text(element, "author_email").strip(),
            display_name=_child_text(element, "author_display_name").strip(),
        )

    def _posts(self, stream: IO[bytes]) -> None:
        skipped: dict[str, int] = {}
        seen_slugs: dict[str, str] = {}
        seen_paths: set[str] = set()
        comments = 0
        for number, element in self._items(stream):
            kind = _post_type(element)
            if kind == "attachment":
                continue
            if kind not in ("post", "page"):
                skipped[kind] = skipped.get(kind, 0) + 1
                continue
            item = _Item(element)
            comments += item.comments
            post = self._post(number, item)
            if post is None:
                continue
            if post.slug in seen_slugs:
                base, n = post.slug, 2
                while f"{base}-{n}" in seen_slugs:
                    n += 1
                post.slug = f"{base}-{n}"
                self.warn(number, item, f"slug {base!r} already used by {seen_slugs[base]}; "
                          f"imported as {post.slug!r}")  # fmt: skip
            seen_slugs[post.slug] = post.source_id
            post.old_paths = [p for p in post.old_paths if p not in seen_paths]
            seen_paths.update(post.old_paths)
            self.bundle.posts.append(post)
        for kind, count in sorted(skipped.items()):
            self.bundle.warnings.append(
                f"{self.where}: {count} item(s) of type {kind!r} skipped (not posts or pages)"
            )
        if comments:
            self.bundle.warnings.append(f"{self.where}: {comments} comment(s) not imported")
        used = {p.author for p in self.bundle.posts}
        self.bundle.authors = [a for name, a in sorted(self.authors.items()) if name in used]

    def warn(self, number: int, item: _Item, message: str) -> None:
        self.bundle.warnings.append(f"{self._id(number, item)}: {message}")

    def _id(self, number: int, item: _Item) -> str:
        post_id = item.get("post_id")
        return f"{self.where}: item {number}" + (f" (post {post_id})" if post_id else "")

    # attachments and the URLs that point at them

    def _media(self) -> None:
        self.media_by_ref: dict[str, ImportedMedia] = {}
        self.attachment_urls: dict[str, str] = {}
        for post_id, item in self.attachments.items():
            url = item.get("attachment_url") or item.get("guid")
            if not url:
                continue
            relative = (item.meta.get("_wp_attached_file") or [""])[0] or self._relative(url)
            ref = self._canonical(url)
            self.attachment_urls[post_id] = ref
            alt = (item.meta.get("_wp_attachment_image_alt") or [""])[0]
            self._add_media(ref, relative, alt or item.get("title"))

    def _add_media(self, ref: str, relative: str, alt: str = "") -> ImportedMedia:
        media = self.media_by_ref.get(ref)
        if media is None:
            data = self.upload(relative)
            # data None: the import's report lists it, and posts keep its original URL.
            media = ImportedMedia(ref=ref, data=data, filename=basename(relative), alt=alt)
            self.media_by_ref[ref] = media
            self.bundle.media.append(media)
        return media

    def _relative(self, url: str) -> str:
        """Give the path of an uploads URL inside uploads/ ("2019/05/a.jpg"), or ""."""
        path = unquote(urlsplit(url).path)
        marker = "/wp-content/uploads/"
        return path.split(marker, 1)[1] if marker in path else ""

    def _canonical(self, url: str) -> str:
        relative = self._relative(url)
        if not relative:
            return url
        base = self.site_url or f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
        return f"{base}/wp-content/uploads/{relative}"

    def rewrite(self, url: str) -> str:
        """Map a URL in a post to the media it shows: resized copies to their original."""
        relative = self._relative(url)
        if not relative:
            return url
        ref = self._canonical(url)
        original = re.sub(r"-\d{1,5}x\d{1,5}(?=\.\w+$)", "", relative)
        original_ref = self._canonical(ref.replace(relative, original))
        if original != relative and (
            original_ref in self.media_by_ref or self.has_upload(original)
        ):
            relative, ref = original, original_ref
        if ref in self.media_by_ref:
            return ref
        if self.has_upload(relative):
            self._add_media(ref, relative)
            return ref
        return url

    # posts

    def _post(self, number: int, item: _Item) -> ImportedPost | None:
        source_id = self._id(number, item)
        kind = item.get("post_type") or "post"
        status = item.get("status") or "publish"
        title = item.fields.get("title", "").strip() or "(untitled)"
        if status in ("trash", "auto-draft", "inherit"):
            self.warn(number, item, f"skipped: status {status!r}")
            return None
        mapped = {"publish": "published", "future": "scheduled"}.get(status, "draft")
        if status in ("private", "pending"):
            self.warn(number, item, f"{status} on WordPress: imported as a draft")
        if item.get("post_password"):
            mapped = "draft"
            self.warn(number, item, "password-protected on WordPress: imported as a draft")
        published_at = self._date(number, item, "post_date_gmt", "pubDate", "post_date")
        updated_at = self._date(number, item, "post_modified_gmt", None, "post_modified")
        if mapped in ("published", "scheduled") and published_at is None:
            self.warn(number, item, "no publication date: imported as a draft")
            mapped = "draft"
        if mapped == "draft":
            published_at = None if status in ("draft", "auto-draft") else published_at

        original_slug = unquote(item.get("post_name"))
        slug = original_slug if is_valid_slug(original_slug) else slugify(original_slug)
        if not slug:
            slug = slugify(title) or f"{kind}-{item.get('post_id') or number}"
        old_slugs = []
        for earlier in item.meta.get("_wp_old_slug", []):
            earlier = unquote(earlier)
            earlier = earlier if is_valid_slug(earlier) else slugify(earlier)
            if earlier and earlier != slug and earlier not in old_slugs:
                old_slugs.append(earlier)

        body, summary = self._body(number, item)
        excerpt = item.fields.get("excerpt:encoded", "")
        if excerpt.strip():
            summary = plain_text(excerpt)
        tags = []
        for domain, nicename, name in item.categories:
            name = " ".join(html.unescape(name).split())
            if domain not in ("category", "post_tag") or not name:
                continue
            if domain == "category" and nicename == "uncategorized":
                continue
            if name.lower() not in (t.lower() for t in tags):
                tags.append(name)
        author = item.fields.get("creator", "").strip()
        if author and author not in self.authors:
            self.authors[author] = ImportedAuthor(username=author)
        cover = None
        for thumbnail in item.meta.get("_thumbnail_id", []):
            cover = self.attachment_urls.get(thumbnail.strip())
            if cover is None:
                self.warn(number, item, f"featured image {thumbnail} is not in the file")
        return ImportedPost(
            source_id=source_id,
            title=title,
            slug=slug,
            body_md=body,
            status=mapped,
            published_at=published_at,
            updated_at=updated_at,
            author=author,
            tags=tags,
            summary=summary,
            kind=kind,
            old_slugs=old_slugs,
            old_paths=self._old_paths(item, kind, original_slug),
            cover=cover,
        )

    def _body(self, number: int, item: _Item) -> tuple[str, str]:
        content = item.fields.get("content:encoded", "")
        content = _REUSABLE.sub(lambda m: self._reusable(number, item, m[1]), content)
        content = _BLOCK_COMMENT.sub("", content)
        content = _NEXTPAGE.sub("\n\n<hr>\n\n", content)
        summary = ""
        teaser = _MORE.split(content, 1)
        if len(teaser) == 2:
            summary = plain_text(autop(teaser[0]))
            content = teaser[0].rstrip() + "\n\n" + teaser[1].lstrip()
        content = expand_shortcodes(
            content, self.attachment_urls, lambda message: self.warn(number, item, message)
        )
        return html_to_markdown(autop(content), self.rewrite), summary

    def _reusable(self, number: int, item: _Item, ref: str) -> str:
        """Give a reusable block's content for a post that shows it (its blocks inlined)."""
        if ref not in self.reusable:
            self.warn(number, item, f"reusable block {ref} is not in the file; dropped")
            return ""
        return _REUSABLE.sub("", self.reusable[ref])  # no block inside itself

    def _date(
        self, number: int, item: _Item, gmt: str, rfc822: str | None, local: str
    ) -> datetime | None:
        value = item.get(gmt)
        if value and not value.startswith("0000-00-00"):
            return self._parse_date(number, item, gmt, value)
        if rfc822 and item.get(rfc822) and item.get("status") != "draft":
            try:
                return parsedate_to_datetime(item.get(rfc822)).astimezone(UTC)
            except (TypeError, ValueError):
                pass
        value = item.get(local)
        if value and not value.startswith("0000-00-00"):
            self.warn(number, item, f"no {gmt}: {local} taken as UTC")
            return self._parse_date(number, item, local, value)
        return None

    def _parse_date(self, number: int, item: _Item, field: str, value: str) -> datetime:
        try:
            return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            raise ImportFailed(
                f"{self._id(number, item)}: wp:{field}: {value!r} is not a date "
                "(YYYY-MM-DD HH:MM:SS)"
            ) from None

    def _old_paths(self, item: _Item, kind: str, original_slug: str) -> list[str]:
        paths = []
        link = urlsplit(item.get("link"))
        if link.path or link.query:
            paths.append((unquote(link.path) or "/") + (f"?{link.query}" if link.query else ""))
        post_id = item.get("post_id")
        if post_id.isdigit():
            paths.append(f"/?page_id={post_id}" if kind == "page" else f"/?p={post_id}")
        if original_slug and "/" not in original_slug:
            paths.append(f"/{original_slug}/")
        out = []
        for path in paths:
            if path not in out and path != "/" and len(path) <= 500:
                out.append(path)
        return out


def read(source: Source) -> Bundle:
    """Give the Bundle of the WXR file in `source`; ImportFailed naming the file and where."""
    entry = _wxr_entry(source)
    if entry is None:
        raise ImportFailed(f"{source.label}: not a WordPress export (WXR) file")
    return _Reader(source, entry).parse()


register_reader(FORMAT, sniff, read, first=True)
