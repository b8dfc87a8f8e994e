"""Strict readers for outputs that are documents, not tables: JSON, SVG and PNG.

Each returns ``(label, text)`` segments: every piece of text the document carries, decoded as a
reader of that format would show it (JSON after ``\\uXXXX`` unescaping, zTXt after inflating),
so the detectors see what a recipient would. Labels are fixed words, never text from the file.
Anything a strict reader would not accept raises :class:`UnreadableOutput`.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

import numpy as np

from egress_review.verdicts import Unreadable, UnreadableOutput

Segments = list[tuple[str, str]]


# --------------------------------------------------------------------------- JSON


class _Float(float):
    """A JSON number with a fraction or exponent, remembering the digits as written."""

    literal: str

    def __new__(cls, literal: str) -> _Float:
        value = super().__new__(cls, literal)
        value.literal = literal
        return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):  # a duplicate key hides a value from most readers
        raise ValueError("duplicate key")
    return dict(pairs)


@dataclass
class JsonDocument:
    """A parsed JSON output. A list of objects is a table (``columns``, ``cells`` as ``(row,
    column index, text)`` with the keys as row 0); any other shape is labelled ``segments``."""

    value: Any
    columns: list[str] | None = None
    cells: list[tuple[int, int | None, str]] = field(default_factory=list)
    segments: Segments = field(default_factory=list)


def read_json(text: str, max_rows: int) -> JsonDocument:
    """Every key and every value of a JSON document: strings unescaped, numbers as written
    (and, for a whole number written with a fraction or exponent, as digits too).

    Strict: no NaN/Infinity, no duplicate keys, no lone surrogates; at most ``max_rows`` records
    and ``PIECES_PER_ROW * max_rows`` pieces of text.
    """
    try:
        value = json.loads(
            text, parse_float=_Float, parse_constant=_no_constant, object_pairs_hook=_unique_keys
        )
    except (ValueError, RecursionError):
        raise UnreadableOutput(Unreadable.JSON_INVALID) from None
    budget = [PIECES_PER_ROW * max_rows]
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        if len(value) > max_rows:
            raise UnreadableOutput(Unreadable.TOO_MANY_ROWS)
        doc = JsonDocument(value, columns=[])
        index: dict[str, int] = {}
        for row, record in enumerate(value, start=1):
            for key, inner in record.items():
                if key not in index:
                    index[key] = len(index)
                    doc.columns.append(_utf8(key))  # type: ignore[union-attr]
                    doc.cells.append((0, None, key))
                doc.cells += [(row, index[key], t) for _, t in _walk(inner, budget)]
        return doc
    return JsonDocument(value, segments=list(_walk(value, budget)))


PIECES_PER_ROW = 64


def _walk(value: Any, budget: list[int]) -> Iterator[tuple[str, str]]:
    """(``json key`` | ``json value``, text) for everything in ``value``, in document order."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in reversed(list(item.items())):
                stack.append(inner)
                stack.append(_Key(key))
            continue
        if isinstance(item, list):
            stack.extend(reversed(item))
            continue
        if isinstance(item, _Key):
            pieces = [("json key", _utf8(item.key))]
        elif isinstance(item, str):
            pieces = [("json value", _utf8(item))]
        elif item is None:
            continue
        else:
            pieces = [("json value", t) for t in _number(item)]
        budget[0] -= len(pieces)
        if budget[0] < 0:
            raise UnreadableOutput(Unreadable.TOO_MANY_ROWS)
        yield from pieces


class _Key:
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


def _number(item: object) -> list[str]:
    if isinstance(item, bool):
        return ["true" if item else "false"]
    if not isinstance(item, _Float):
        return [str(item)]
    # 1.3812345678e10 is 13812345678: read the digits a recipient's parser would produce.
    if item.is_integer() and abs(item) < 1e21:
        return [item.literal, str(int(item))]
    return [item.literal, repr(float(item))]


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from "\ud800": no reader agrees on it
        raise UnreadableOutput(Unreadable.JSON_INVALID) from None
    return text


# --------------------------------------------------------------------------- SVG


def svg_segments(text: str) -> Segments:
    """Tag names, attributes, text (title, desc, metadata, CDATA), comments and processing
    instructions of an SVG document.

    A bare ``<!DOCTYPE svg PUBLIC ...>`` (as plotting libraries write) is read as text; an
    internal subset, any entity declaration or a reference to an undeclared entity is refused,
    so no entity is ever expanded and no external DTD is fetched.
    """
    out: Segments = []
    root: list[str] = []
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse(*_: object) -> Any:
        raise UnreadableOutput(Unreadable.SVG_DOCTYPE)

    def doctype(name: str, system: str | None, public: str | None, subset: int) -> None:
        if subset:
            refuse()
        out.extend(("svg doctype", t) for t in (name, system or "", public or ""))

    def start(name: str, attrs: dict[str, str]) -> None:
        if not root:
            root.append(name)
        out.append(("svg tag", name))
        for key, value in attrs.items():
            out.extend([("svg attribute", key), ("svg attribute", value)])

    def pi(target: str, data: str) -> None:
        out.extend([("svg comment", target), ("svg comment", data)])

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = refuse
    parser.SkippedEntityHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.CharacterDataHandler = lambda data: out.append(("svg text", data))
    parser.CommentHandler = lambda data: out.append(("svg comment", data))
    parser.ProcessingInstructionHandler = pi
    try:
        parser.Parse(text, True)
    except expat.ExpatError:
        raise UnreadableOutput(Unreadable.SVG_INVALID) from None
    if not root or root[0].rpartition(":")[2] != "svg":
        raise UnreadableOutput(Unreadable.SVG_INVALID)
    return out


# --------------------------------------------------------------------------- PNG

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Fixed-size ancillary chunks a plotting library writes; any other ancillary chunk (iCCP, eXIf,
# private chunks) is refused: the reviewer could not see what it carries.
FIXED_CHUNKS = frozenset({b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"bKGD", b"sBIT"})
TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def png_segments(data: bytes, max_bytes: int) -> Segments:
    """The text chunks of a PNG (tEXt, zTXt inflated, iTXt), after checking the whole file:
    chunk CRCs, IHDR first, IEND last with nothing after it, only known chunks, and image data
    that inflates to exactly the size IHDR implies, each scanline with a valid filter type."""
    if not data.startswith(PNG_SIGNATURE):
        raise UnreadableOutput(Unreadable.PNG_INVALID)
    pos = len(PNG_SIGNATURE)
    out: Segments = []
    header: tuple[int, ...] | None = None
    image = bytearray()
    while True:
        if pos + 12 > len(data):
            raise UnreadableOutput(Unreadable.PNG_INVALID)
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        end = pos + 12 + length
        if length > 2**31 - 1 or end > len(data):
            raise UnreadableOutput(Unreadable.PNG_INVALID)
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) != crc:
            raise UnreadableOutput(Unreadable.PNG_INVALID)
        pos = end
        if header is None and kind != b"IHDR":
            raise UnreadableOutput(Unreadable.PNG_INVALID)
        if kind == b"IHDR":
            if header is not None or length != 13:
                raise UnreadableOutput(Unreadable.PNG_INVALID)
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            image += body
        elif kind == b"IEND":
            break
        elif kind in TEXT_CHUNKS:
            out += _text_chunk(kind, body, max_bytes)
        elif kind not in FIXED_CHUNKS:
            raise UnreadableOutput(Unreadable.PNG_UNKNOWN_CHUNK)
    if pos != len(data):
        raise UnreadableOutput(Unreadable.PNG_TRAILING_DATA)
    assert header is not None
    passes = _scanline_blocks(header)
    expected = sum(rows * size for rows, size in passes)
    if expected > max_bytes:
        raise UnreadableOutput(Unreadable.TOO_LARGE)
    pixels = _inflate(bytes(image), expected, over=Unreadable.PNG_TRAILING_DATA)
    if len(pixels) != expected:
        raise UnreadableOutput(Unreadable.PNG_TRAILING_DATA)
    offset = 0
    for rows, size in passes:  # each scanline starts with its filter type, 0 to 4
        lines = np.frombuffer(pixels, np.uint8, rows * size, offset).reshape(rows, size)
        if lines[:, 0].max() > 4:
            raise UnreadableOutput(Unreadable.PNG_INVALID)
        offset += rows * size
    return out


def _scanline_blocks(header: tuple[int, ...]) -> list[tuple[int, int]]:
    """(scanlines, bytes per scanline with its filter byte) of the image, or of each Adam7
    pass: what the image data must inflate to, exactly."""
    width, height, depth, colour, compression, filtering, interlace = header
    if (
        width == 0
        or height == 0
        or colour not in _CHANNELS
        or depth not in (1, 2, 4, 8, 16)
        or (compression, filtering) != (0, 0)
        or interlace not in (0, 1)
    ):
        raise UnreadableOutput(Unreadable.PNG_INVALID)
    bits = depth * _CHANNELS[colour]
    if interlace == 0:
        sizes = [(width, height)]
    else:
        sizes = [
            ((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy)
            for x0, y0, dx, dy in _ADAM7
            if width > x0 and height > y0
        ]
    return [(h, 1 + (w * bits + 7) // 8) for w, h in sizes]


def _inflate(data: bytes, limit: int, over: Unreadable = Unreadable.TOO_LARGE) -> bytes:
    """A complete zlib stream inflated to at most ``limit`` bytes (more raises ``over``);
    nothing may follow it."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise UnreadableOutput(Unreadable.PNG_INVALID) from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise UnreadableOutput(over)
    if not inflater.eof or inflater.unused_data:
        raise UnreadableOutput(Unreadable.PNG_TRAILING_DATA)
    return out


def _text_chunk(kind: bytes, body: bytes, max_bytes: int) -> Segments:
    keyword, sep, rest = body.partition(b"\0")
    if not sep or not 1 <= len(keyword) <= 79:
        raise UnreadableOutput(Unreadable.PNG_INVALID)
    label = f"png {kind.decode()}"
    if kind == b"tEXt":
        return [(label, keyword.decode("latin-1")), (label, rest.decode("latin-1"))]
    if kind == b"zTXt":
        if rest[:1] != b"\0":
            raise UnreadableOutput(Unreadable.PNG_INVALID)
        text = _inflate(rest[1:], max_bytes)
        return [(label, keyword.decode("latin-1")), (label, text.decode("latin-1"))]
    if len(rest) < 2 or rest[1] != 0:
        raise UnreadableOutput(Unreadable.PNG_INVALID)
    compressed = rest[0]
    language, _, rest = rest[2:].partition(b"\0")
    translated, _, text = rest.partition(b"\0")
    if compressed:
        text = _inflate(text, max_bytes)
    try:
        pieces = [keyword.decode("latin-1"), language.decode(), translated.decode(), text.decode()]
    except UnicodeDecodeError:
        raise UnreadableOutput(Unreadable.ENCODING) from None
    return [(label, p) for p in pieces]
