"""Read the items of a huge top-level JSON array one at a time.

The Visual Genome release files are single JSON arrays of several GB; :func:`iter_json_array` decodes
them item by item with :meth:`json.JSONDecoder.raw_decode` over a growing text buffer, so memory holds
about one item (plus one read chunk) at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vscn.data.errors import AnnotationError

READ_CHUNK_CHARS = 1 << 20  # characters read at a time; an item larger than this just takes more reads
_WHITESPACE = " \t\n\r"
_SEPARATORS = ",]"


class _Buffer:
    """Text read so far from a file, consumed from the front."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.text = ""
        self.position = 0  # index into ``text`` of the first unconsumed character
        self.consumed = 0  # characters dropped from the front of ``text`` (for error offsets)
        self.at_end = False

    def read_more(self) -> bool:
        """Append the next chunk (at least as large as what is buffered); False at end of file."""
        if self.at_end:
            return False
        self.consumed += self.position
        self.text = self.text[self.position:]
        self.position = 0
        chunk = self._handle.read(max(READ_CHUNK_CHARS, len(self.text)))
        self.at_end = not chunk
        self.text += chunk
        return bool(chunk)

    def next_significant(self) -> str:
        """The next non-whitespace character (not consumed); '' at end of file."""
        while True:
            while self.position < len(self.text) and self.text[self.position] in _WHITESPACE:
                self.position += 1
            if self.position < len(self.text):
                return self.text[self.position]
            if not self.read_more():
                return ""


def iter_json_array(path: Path) -> Iterator[Any]:
    """Yield the items of the JSON array in ``path``; :class:`AnnotationError` when it is malformed."""
    decoder = json.JSONDecoder()
    try:
        handle = open(path, encoding="utf-8")
    except OSError as error:
        raise AnnotationError(f"{path}: cannot open: {error}") from error
    with handle:
        buffer = _Buffer(handle)

        def fail(problem: str) -> AnnotationError:
            return AnnotationError(f"{path}: malformed JSON near character "
                                   f"{buffer.consumed + buffer.position}: {problem}")

        try:
            if buffer.next_significant() != "[":
                raise fail("expected a top-level array '['")
            buffer.position += 1
            if buffer.next_significant() == "]":
                return
            while True:
                item, end = _decode_item(decoder, buffer, fail)
                buffer.position = end
                yield item
                separator = buffer.next_significant()
                buffer.position += 1
                if separator == "]":
                    break
                if separator != ",":
                    raise fail(f"expected ',' or ']' after an item, found {separator or 'end of file'!r}")
            if buffer.next_significant():
                raise fail("text after the closing ']'")
        except UnicodeDecodeError as error:
            raise AnnotationError(f"{path}: not UTF-8 text: {error}") from error


def _may_continue(item: Any, following: str) -> bool:
    """Whether the text after a decoded item could extend it: a number cut by the chunk boundary
    (``12`` of ``123``, ``7`` of ``7e-3``) decodes as a shorter number. Other items end in a
    character of their own."""
    is_number = isinstance(item, int | float) and not isinstance(item, bool)
    return following == "" or (is_number and following not in _SEPARATORS)


def _decode_item(decoder: json.JSONDecoder, buffer: _Buffer, fail: Any) -> tuple[Any, int]:
    """Decode the item at the buffer position, reading more text until it is complete."""
    while True:
        buffer.next_significant()
        try:
            item, end = decoder.raw_decode(buffer.text, buffer.position)
        except json.JSONDecodeError as error:
            if buffer.read_more():
                continue
            raise fail(error.msg) from error
        following = end
        while following < len(buffer.text) and buffer.text[following] in _WHITESPACE:
            following += 1
        if buffer.at_end or not _may_continue(item, buffer.text[following:following + 1]):
            return item, end
        buffer.read_more()  # then decode again: the buffer has shifted
