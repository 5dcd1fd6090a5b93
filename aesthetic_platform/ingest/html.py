"""A forgiving HTML reader for site adapters (standard library ``html.parser``).

It collects what adapters select on: links (href, class, rel, text), images (src,
class, alt), ``<meta>`` properties and the text of elements by class. Broken markup
(unclosed or stray tags, truncated documents) is read as far as it goes: an end tag
closes the nearest open element of that name, a stray end tag is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
_SPACE = re.compile(r"\s+")


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def rels(self) -> set[str]:
        return {r.lower() for r in self.attrs.get("rel", "").split()}


@dataclass
class Document:
    links: list[Element] = field(default_factory=list)  # <a> and <link>
    images: list[Element] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)  # property or name -> content
    by_class: dict[str, list[Element]] = field(default_factory=dict)
    title: str = ""

    def first_text(self, css_class: str) -> str:
        return next((e.text for e in self.by_class.get(css_class, []) if e.text), "")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doc = Document()
        self._open: list[Element] = []
        self._texts: dict[int, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k.lower(): (v or "") for k, v in attrs})
        if tag in ("a", "link"):
            self.doc.links.append(element)
        elif tag == "img":
            self.doc.images.append(element)
        elif tag == "meta":
            key = element.attrs.get("property") or element.attrs.get("name")
            if key and "content" in element.attrs:
                self.doc.meta.setdefault(key.lower(), element.attrs["content"])
        for css_class in element.classes:
            self.doc.by_class.setdefault(css_class, []).append(element)
        if tag not in _VOID:
            self._open.append(element)
            self._texts[id(element)] = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self._open and self._open[-1].tag == tag:
            self._close(len(self._open) - 1)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                self._close(index)
                return

    def _close(self, index: int) -> None:
        for element in reversed(self._open[index:]):
            element.text = _SPACE.sub(" ", "".join(self._texts.pop(id(element), []))).strip()
            if element.tag == "title" and not self.doc.title:
                self.doc.title = element.text
        del self._open[index:]

    def handle_data(self, data: str) -> None:
        for element in self._open:
            self._texts[id(element)].append(data)

    def finish(self) -> Document:
        self.close()
        if self._open:
            self._close(0)
        return self.doc


def read_html(text: str) -> Document:
    reader = _Reader()
    reader.feed(text)
    return reader.finish()
