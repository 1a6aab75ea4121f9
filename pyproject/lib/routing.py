"""URL rules compiled once into regular expressions, matched per request, built by url_for."""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

from pyproject.lib.exceptions import MethodNotAllowed, NotFound, Redirect


@dataclass(frozen=True)
class Converter:
    """How one `<kind:name>` placeholder matches, converts and is built back."""

    regex: str
    to_python: Callable[[str], Any] = str
    to_url: Callable[[Any], str] = lambda value: quote(str(value), safe="")


def _int_to_url(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a non-negative integer")
    return str(value)


CONVERTERS: dict[str, Converter] = {
    # No control characters in a segment: no page's name holds one (and PostgreSQL
    # refuses NUL in text outright).
    "str": Converter(r"[^/\x00-\x1f\x7f]+"),
    # No leading zeros and a bounded length: one URL per number, and no huge ints.
    "int": Converter(r"(?:0|[1-9][0-9]{0,17})", int, _int_to_url),
    "slug": Converter(r"[a-z0-9]+(?:[-_][a-z0-9]+)*"),
    "path": Converter(
        r"[^/\x00-\x1f\x7f][^\x00-\x1f\x7f]*?", str, lambda v: quote(str(v), safe="/")
    ),
}

_PLACEHOLDER = re.compile(r"<(?:(?P<kind>[a-z]+):)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")


class RoutingError(Exception):
    """A mistake in how routes were declared or built (always a programming error)."""


class RulePart(NamedTuple):
    """A piece of a rule as written: literal text, or the name of a placeholder."""

    text: str
    is_placeholder: bool = False


@dataclass
class Rule:
    """One URL rule: its pattern, endpoint, methods and the compiled regex."""

    rule: str
    endpoint: str
    methods: frozenset[str]
    view: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)
    regex: re.Pattern[str] = field(init=False)
    converters: dict[str, Converter] = field(init=False)
    parts: list[RulePart] = field(init=False)
    is_static: bool = field(init=False)

    def __post_init__(self) -> None:
        if not self.rule.startswith("/"):
            raise RoutingError(f"rule {self.rule!r} must start with a slash")
        pattern, self.converters, self.parts = ["^"], {}, []
        position = 0
        for match in _PLACEHOLDER.finditer(self.rule):
            literal = self.rule[position : match.start()]
            pattern.append(re.escape(literal))
            self.parts.append(RulePart(literal))
            kind, name = match.group("kind") or "str", match.group("name")
            if kind not in CONVERTERS:
                raise RoutingError(f"unknown converter {kind!r} in rule {self.rule!r}")
            if name in self.converters:
                raise RoutingError(f"placeholder {name!r} appears twice in {self.rule!r}")
            self.converters[name] = CONVERTERS[kind]
            pattern.append(f"(?P<{name}>{CONVERTERS[kind].regex})")
            self.parts.append(RulePart(name, is_placeholder=True))
            position = match.end()
        tail = self.rule[position:]
        if "<" in tail or ">" in tail:
            raise RoutingError(f"malformed placeholder in rule {self.rule!r}")
        pattern.append(re.escape(tail))
        self.parts.append(RulePart(tail))
        pattern.append(r"\Z")  # not $, which also matches before a trailing newline
        self.regex = re.compile("".join(pattern))
        self.is_static = not self.converters

    def match(self, path: str) -> dict[str, Any] | None:
        """Give the converted arguments if `path` matches this rule, else None."""
        found = self.regex.match(path)
        if found is None:
            return None
        try:
            return {
                name: self.converters[name].to_python(v) for name, v in found.groupdict().items()
            }
        except ValueError:
            return None

    def build(self, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Give the path for these values and the values the rule did not use."""
        out = []
        for part in self.parts:
            if not part.is_placeholder:
                out.append(part.text)
                continue
            name = part.text
            if values.get(name) is None:
                raise RoutingError(f"url_for({self.endpoint!r}) needs a value for {name!r}")
            built = self.converters[name].to_url(values[name])
            if not built:
                raise RoutingError(f"url_for({self.endpoint!r}) got an empty {name!r}")
            out.append(built)
        extra = {k: v for k, v in values.items() if k not in self.converters and v is not None}
        return "".join(out), extra


class NumberedRule(NamedTuple):
    """A pattern rule with its place in registration order (rules are tried in that order)."""

    number: int
    rule: Rule


class Router:
    """All rules of an app: exact paths in a dict, the rest tried in order."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.by_endpoint: dict[str, Rule] = {}
        self._static: dict[str, list[Rule]] = {}
        # Pattern rules by their first path segment when it is literal ("posts" for
        # /posts/<slug>), so a request tries only the rules that could match; the rest
        # (a placeholder first) in `_anywhere`. Each keeps its registration order.
        self._by_segment: dict[str, list[NumberedRule]] = {}
        self._anywhere: list[NumberedRule] = []
        # What a request tries per first segment, both lists merged (made on first use).
        self._tried: dict[str | None, list[Rule]] = {}

    def add(self, rule: Rule) -> None:
        """Register a rule; fail loudly on a duplicate endpoint or a rule/method clash."""
        if rule.endpoint in self.by_endpoint:
            raise RoutingError(f"endpoint {rule.endpoint!r} is already registered")
        for other in self.rules:
            if other.rule == rule.rule and other.methods & rule.methods:
                raise RoutingError(
                    f"rule {rule.rule!r} already has a view for "
                    f"{', '.join(sorted(other.methods & rule.methods))}"
                )
        self.rules.append(rule)
        self.by_endpoint[rule.endpoint] = rule
        self._tried.clear()
        if rule.is_static:
            self._static.setdefault(rule.rule, []).append(rule)
        else:
            entry = NumberedRule(len(self.rules), rule)
            first = rule.rule.split("/", 2)[1]
            if "<" in first:
                self._anywhere.append(entry)
            else:
                self._by_segment.setdefault(first, []).append(entry)

    def _iter_candidates(self, path: str) -> Iterator[tuple[Rule, dict[str, Any]]]:
        """Yield the rules matching `path` with their arguments, in registration order."""
        for rule in self._static.get(path, ()):
            yield rule, {}
        segment = path.split("/", 2)[1] if path.startswith("/") else ""
        for rule in self._rules_for(segment):
            args = rule.match(path)
            if args is not None:
                yield rule, args

    def _rules_for(self, segment: str) -> list[Rule]:
        """Give the pattern rules a path starting with `segment` may match, in order."""
        key = segment if segment in self._by_segment else None  # unknown ones share a list
        tried = self._tried.get(key)
        if tried is None:
            own = self._by_segment.get(segment, ()) if key is not None else ()
            merged = heapq.merge(own, self._anywhere)  # by number: registration order
            tried = self._tried[key] = [entry.rule for entry in merged]
        return tried

    def _candidates(self, path: str) -> list[tuple[Rule, dict[str, Any]]]:
        return list(self._iter_candidates(path))

    def match(self, path: str, method: str, query_string: str = "") -> tuple[Rule, dict[str, Any]]:
        """Give the rule and arguments for a request, or raise 404, 405 or a 308 redirect."""
        candidates = []
        # The first rule that takes the method wins; the rest are tried only for a 405.
        for rule, args in self._iter_candidates(path):
            if method in rule.methods:
                return rule, args
            candidates.append((rule, args))
        if not candidates:
            if not path.endswith("/") and self._candidates(path + "/"):
                location = "/" + (path + "/").lstrip("/")
                location = quote(location, safe="/:@!$&'()*+,;=-._~%")
                if query_string:
                    location += "?" + query_string
                raise Redirect(location, 308)
            raise NotFound()
        allowed: set[str] = set()
        for rule, _ in candidates:
            allowed |= rule.methods
        raise MethodNotAllowed(sorted(allowed | {"OPTIONS"}))

    def allowed_methods(self, path: str) -> set[str]:
        """Give every method some rule accepts at `path` (empty when none matches)."""
        allowed: set[str] = set()
        for rule, _ in self._candidates(path):
            allowed |= rule.methods
        return allowed | {"OPTIONS"} if allowed else allowed

    def builder(self, endpoint: str, name: str) -> Callable[[Any], str]:
        """Give a function of one placeholder's value that gives the endpoint's path.

        For long lists of links to one kind of page (a sitemap): the rule is looked up
        once, not per link. The rule must have exactly that one placeholder.
        """
        rule = self.by_endpoint.get(endpoint)
        if rule is None:
            raise RoutingError(f"no endpoint named {endpoint!r}")
        if list(rule.converters) != [name]:
            raise RoutingError(f"{endpoint!r} does not take exactly the value {name!r}")
        index = next(i for i, part in enumerate(rule.parts) if part.is_placeholder)
        prefix = "".join(part.text for part in rule.parts[:index])
        suffix = "".join(part.text for part in rule.parts[index + 1 :])
        to_url = rule.converters[name].to_url

        def build(value: Any) -> str:
            built = to_url(value)
            if not built:
                raise RoutingError(f"url_for({endpoint!r}) got an empty {name!r}")
            return prefix + built + suffix

        return build

    def build(self, endpoint: str, values: dict[str, Any]) -> str:
        """Give the path (and query string of extra values) for an endpoint."""
        rule = self.by_endpoint.get(endpoint)
        if rule is None:
            raise RoutingError(f"no endpoint named {endpoint!r}")
        if not values and rule.is_static:  # most links in a page's header and footer
            return rule.rule
        path, extra = rule.build(values)
        anchor = extra.pop("_anchor", None)
        if extra:
            pairs = []
            for key, value in extra.items():
                for item in value if isinstance(value, list | tuple) else [value]:
                    pairs.append((key, str(item)))
            path += "?" + urlencode(pairs)
        if anchor:
            path += "#" + quote(str(anchor), safe="")
        return path
