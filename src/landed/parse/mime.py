"""A small, forgiving MIME reader: just what bounce parsing needs.

The standard library's ``email`` package is not used: it imports ``socket``
(through ``email.utils``), which ``landed.parse`` must not, and its full parser
is several times slower than this one on bounce-sized messages. Bounces are
also often malformed (missing boundaries, bad base64, 8-bit headers, CR-only
line endings), and this reader never raises on any of that: it keeps whatever
it can read.

Everything is text. The raw bytes are decoded as Latin-1 (lossless: one
character per byte), line endings are folded to LF, and only the parts that
are shown to people or matched against patterns (text parts, header values)
are decoded with their declared charset.
"""

from __future__ import annotations

import binascii
import codecs
import html
import re
from dataclasses import dataclass, field

__all__ = [
    "Headers",
    "Mail",
    "Part",
    "decode_header_value",
    "first_fields",
    "normalize_newlines",
    "parse_headers",
    "read_mail",
    "split_header_block",
]

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)[ \t\n]+(=\?)")
_PARAM = re.compile(r';\s*([A-Za-z0-9_\-*]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_TAG = re.compile(r"<[^>]*>")
# Case-insensitive only after the "<": a leading literal lets the scan skip ahead.
_SCRIPT = re.compile(r"<(?i:(script|style))[^>]*>.*?</(?i:\1)\s*>", re.S)
_BLOCK_TAG = re.compile(r"<\s*(?i:br|/p|/div|/tr|/li|/h[1-6])\b[^>]*>")
# Part types whose body is another message (or its header): kept as raw text.
_MESSAGE_TYPES = frozenset(
    {"message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers"}
)
_MAX_DEPTH = 8


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR become LF (Mac-era bounces use CR only)."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


class Headers:
    """Header fields in order, names folded to lowercase; values unfolded, not decoded."""

    __slots__ = ("_map", "items")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items
        self._map: dict[str, list[str]] = {}
        for name, value in items:
            self._map.setdefault(name, []).append(value)

    def get(self, name: str, default: str = "") -> str:
        """The first value of ``name`` (lowercase), or ``default``."""
        values = self._map.get(name)
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` (lowercase), in order."""
        return self._map.get(name, [])

    def __contains__(self, name: object) -> bool:
        return name in self._map

    def __len__(self) -> int:
        return len(self.items)

    def decoded(self, name: str) -> str:
        """The first value of ``name`` with RFC 2047 words and 8-bit UTF-8 decoded."""
        return decode_header_value(self.get(name))


def split_header_block(text: str) -> tuple[str, str]:
    """Split ``text`` at the first empty line: (header block, body)."""
    if text.startswith("\n"):
        return "", text[1:]
    end = text.find("\n\n")
    if end < 0:
        return text, ""
    return text[: end + 1], text[end + 2 :]


# Field name as written -> lowercase name, or "" when it is not a field name
# (RFC 5322 section 2.2: printable ASCII, no spaces). The same few dozen names
# recur in every message, so each is worked out once; the table is bounded.
_NAMES: dict[str, str] = {}
_NAMES_MAX = 4096


def _field_name(raw: str) -> str:
    field = raw.rstrip()
    name = "" if " " in field or "\t" in field or not field.isascii() else field.lower()
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[raw] = name
    return name


def parse_headers(block: str) -> Headers:
    """Parse a header block (LF line endings). Lines that are not fields are skipped."""
    items: list[tuple[str, str]] = []
    names = _NAMES
    name = ""
    value = ""
    for line in block.split("\n"):
        if not line:
            continue
        first = line[0]
        if first == " " or first == "\t":
            if name:
                value = f"{value} {line.strip()}" if value else line.strip()
            continue
        if name:
            items.append((name, value))
        colon = line.find(":")
        if colon <= 0:
            name = ""
            continue
        raw = line[:colon]
        known = names.get(raw)
        name = _field_name(raw) if known is None else known
        if name:
            value = line[colon + 1 :].strip()
    if name:
        items.append((name, value))
    return Headers(items)


def _decode_bytes(data: bytes, charset: str) -> str:
    charset = charset.strip().strip('"').lower() or "us-ascii"
    if charset in ("us-ascii", "ascii", "utf-8", "utf8", "unknown-8bit", "x-unknown"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    try:
        return codecs.decode(data, charset, "replace")
    except LookupError:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def fix_8bit(text: str) -> str:
    """Read raw 8-bit characters (Latin-1 stand-ins for bytes) as UTF-8 when they are."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, payload = match.group(1), match.group(2), match.group(3)
    charset = charset.split("*", 1)[0]
    try:
        if encoding in "bB":
            data = binascii.a2b_base64(payload + "=" * (-len(payload) % 4))
        else:
            data = binascii.a2b_qp(payload.replace("_", " "))
    except (binascii.Error, ValueError):
        return match.group(0)
    return _decode_bytes(data, charset)


def decode_header_value(value: str) -> str:
    """Decode RFC 2047 encoded words (and raw UTF-8) in a header value."""
    if "=?" in value:
        value = _BETWEEN_WORDS.sub(r"\1\2", value)
        return _ENCODED_WORD.sub(_decode_word, fix_8bit(value))
    return fix_8bit(value)


def content_type(value: str) -> tuple[str, dict[str, str]]:
    """The lowercase media type of a Content-Type value and its parameters."""
    semi = value.find(";")
    mtype = (value if semi < 0 else value[:semi]).strip().lower()
    params: dict[str, str] = {}
    if semi < 0:
        return mtype, params
    # Split at ";" (fast); a quoted value holding ";" needs the full grammar.
    for piece in value[semi + 1 :].split(";"):
        key, eq, raw = piece.partition("=")
        key = key.strip()
        raw = raw.strip()
        if not eq or not key:
            continue
        if raw.startswith('"'):
            if len(raw) < 2 or not raw.endswith('"'):
                return mtype, _slow_params(value[semi:])
            raw = raw[1:-1].replace('\\"', '"')
        else:
            raw = raw.split(None, 1)[0] if raw else raw
        params[key.lower()] = raw
    return mtype, params


def _slow_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(text):
        if raw.startswith('"'):
            raw = raw[1:-1].replace('\\"', '"')
        params[key.lower()] = raw
    return params


def decode_transfer(body: str, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding; on damage, keep what decodes."""
    encoding = encoding.strip().lower()
    data = body.encode("latin-1", "replace")
    if encoding == "base64":
        try:
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            # Damaged base64 (cut-off attachments): decode line by line, keep the good lines.
            out = bytearray()
            for line in data.split(b"\n"):
                try:
                    out += binascii.a2b_base64(line)
                except (binascii.Error, ValueError):
                    continue
            return bytes(out)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


def html_to_text(text: str) -> str:
    """A plain-text reading of an HTML body: tags dropped, entities decoded."""
    lowered = text.lower()
    if "<script" in lowered or "<style" in lowered:
        text = _SCRIPT.sub(" ", text)
    text = _BLOCK_TAG.sub("\n", text)
    text = _TAG.sub("", text)
    return html.unescape(text) if "&" in text else text


@dataclass(slots=True)
class Part:
    """One leaf of a MIME tree. ``text`` is decoded for text parts, raw for message parts."""

    ctype: str
    #: The part's own header block, unparsed (see :meth:`headers`).
    block: str
    text: str

    def headers(self) -> Headers:
        """The part's header fields (parsed on demand: detectors rarely need them)."""
        return parse_headers(self.block)


@dataclass(slots=True)
class Mail:
    """A message read by :func:`read_mail`."""

    headers: Headers
    ctype: str
    params: dict[str, str]
    #: Leaves of the MIME tree in order; message/rfc822 and text/rfc822-headers
    #: parts are leaves too (their ``text`` is the embedded message as is).
    parts: list[Part] = field(default_factory=list)
    #: The decoded body of a single-part message; for multipart, the text of all
    #: leaves joined, each after a ``Content-Type:`` line, as bounce scanners expect.
    body: str = ""
    #: Results worked out once per message for the detectors that share them
    #: (the decoded Subject, the delivery-status fields).
    memo: dict[str, object] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """The decoded Subject."""
        subject = self.memo.get("subject")
        if subject is None:
            subject = self.memo["subject"] = self.headers.decoded("subject")
        return str(subject)

    def first_part(self, *ctypes: str) -> Part | None:
        """The first leaf of one of ``ctypes``."""
        for part in self.parts:
            if part.ctype in ctypes:
                return part
        return None


def _is_seven_bit(charset: str) -> bool:
    """Whether ``charset`` is a 7-bit encoding of non-ASCII text (ISO-2022-*, UTF-7, HZ)."""
    return "2022" in charset or "utf-7" in charset or "utf7" in charset or "hz-gb" in charset


def _part_text(ctype: str, params: dict[str, str], cte: str, body: str) -> str:
    if ctype in _MESSAGE_TYPES or ctype.startswith("message/"):
        if cte.lower().strip() in ("base64", "quoted-printable"):
            return normalize_newlines(decode_transfer(body, cte).decode("latin-1"))
        return body
    if not ctype.startswith("text/") and ctype != "":
        return ""
    charset = params.get("charset", "").lower()
    if (
        body.isascii()
        and cte.lower().strip() not in ("base64", "quoted-printable")
        and not (charset and _is_seven_bit(charset))
    ):
        # Plain ASCII needs no decoding (most bounces), unless the charset is a
        # 7-bit encoding of something else (ISO-2022-JP: Japanese in escapes).
        text = normalize_newlines(body)
        return html_to_text(text) if ctype == "text/html" else text
    data = decode_transfer(body, cte) if cte else body.encode("latin-1", "replace")
    text = normalize_newlines(_decode_bytes(data, params.get("charset", "")))
    if ctype == "text/html":
        text = html_to_text(text)
    return text


def _split_multipart(body: str, boundary: str) -> list[str]:
    """The bodies between ``--boundary`` lines (preamble and epilogue dropped)."""
    delimiter = "--" + boundary
    chunks: list[str] = []
    pos = body.find(delimiter)
    if pos < 0:
        return chunks
    while pos >= 0:
        after = pos + len(delimiter)
        if body.startswith("--", after):
            # The close delimiter. Some mailboxes hold two reports with the same
            # boundary back to back (a Postfix bounce and its "Postmaster Copy"):
            # read on when the epilogue opens the boundary again.
            again = body.find("\n" + delimiter + "\n", after)
            if again < 0:
                break
            pos = again + 1
            continue
        line_end = body.find("\n", after)
        if line_end < 0:
            break
        nxt = body.find("\n" + delimiter, line_end)
        if nxt < 0:
            # A missing close delimiter (truncated bounce): the rest is the last part.
            chunks.append(body[line_end + 1 :])
            break
        chunks.append(body[line_end + 1 : nxt])
        pos = nxt + 1
    return chunks


def first_fields(block: str, names: tuple[str, ...]) -> dict[str, str]:
    """The first value of each of ``names`` (lowercase) in a header block, unfolded.

    Much cheaper than :func:`parse_headers` when only a few fields matter: each
    name is looked for with one substring search of the lowercased block.
    """
    found: dict[str, str] = {}
    lowered = "\n" + block.lower()
    for name in names:
        at = lowered.find(f"\n{name}:")
        if at < 0:
            if f"\n{name} " in lowered or f"\n{name}\t" in lowered:
                # "Subject :" (obsolete syntax): read line by line.
                return _first_fields_slowly(block, names)
            continue
        start = at + len(name) + 2  # "\n" + name + ":"
        end = lowered.find("\n", start)
        value = block[start - 1 : (end - 1 if end >= 0 else len(block))].strip()
        while end >= 0 and lowered[end + 1 : end + 2] in (" ", "\t"):
            following = lowered.find("\n", end + 1)
            piece = block[end : (following - 1 if following >= 0 else len(block))].strip()
            value = f"{value} {piece}" if value else piece
            end = following
        found[name] = value
    return found


def _first_fields_slowly(block: str, names: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    current = ""
    for line in block.split("\n"):
        if not line:
            continue
        if line[0] == " " or line[0] == "\t":
            if current:
                found[current] = f"{found[current]} {line.strip()}"
            continue
        current = ""
        colon = line.find(":")
        if colon <= 0:
            continue
        name = line[:colon].rstrip().lower()
        if name in names and name not in found:
            found[name] = line[colon + 1 :].strip()
            current = name
    return found


def _content_fields(block: str) -> tuple[str, str]:
    """(Content-Type, Content-Transfer-Encoding) of a part's header block, quickly."""
    ctype = cte = ""
    in_ctype = False
    for line in block.split("\n"):
        if not line:
            continue
        if line[0] == " " or line[0] == "\t":
            if in_ctype:
                ctype = f"{ctype} {line.strip()}"
            continue
        in_ctype = False
        head = line[:26].lower()
        if head.startswith("content-type:"):
            ctype = line[13:].strip()
            in_ctype = True
        elif head.startswith("content-transfer-encoding:"):
            cte = line[26:].strip()
    return ctype, cte


def _walk(
    block: str,
    body: str,
    parts: list[Part],
    depth: int,
    default: str,
    top: tuple[str, dict[str, str], str] | None = None,
) -> None:
    if top is None:
        raw_ctype, cte = _content_fields(block)
        ctype, params = content_type(raw_ctype) if raw_ctype else (default, {})
    else:
        # The message's own header, already read by read_mail.
        ctype, params, cte = top
    if ctype.startswith("multipart/") and depth < _MAX_DEPTH:
        boundary = params.get("boundary", "")
        chunks = _split_multipart(body, boundary) if boundary else []
        if chunks:
            inner_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
            for chunk in chunks:
                sub_block, sub_body = split_header_block(chunk)
                _walk(sub_block, sub_body, parts, depth + 1, inner_default)
            return
        # A multipart without usable boundaries: read it as one text part.
        ctype = "text/plain"
    parts.append(Part(ctype, block, _part_text(ctype, params, cte, body)))


def _flatten(parts: list[Part]) -> str:
    pieces: list[str] = []
    for part in parts:
        pieces.append(f"Content-Type: {part.ctype}\n")
        pieces.append(part.text)
        if not part.text.endswith("\n"):
            pieces.append("\n")
    return "".join(pieces)


def read_mail(raw: bytes) -> Mail:
    """Read a whole message. Never raises on malformed input."""
    text = normalize_newlines(raw.decode("latin-1"))
    # An mbox "From " separator line before the header.
    if text.startswith("From "):
        newline = text.find("\n")
        text = text[newline + 1 :] if newline >= 0 else ""
    text = text.lstrip("\n")
    block, body = split_header_block(text)
    headers = parse_headers(block)
    if not len(headers):
        # Not a message at all: treat everything as a plain text body.
        block, body = "", text
    raw_ctype = headers.get("content-type")
    ctype, params = content_type(raw_ctype) if raw_ctype else ("text/plain", {})
    parts: list[Part] = []
    _walk(
        block,
        body,
        parts,
        0,
        "text/plain",
        (ctype, params, headers.get("content-transfer-encoding")),
    )
    if ctype.startswith("multipart/") and (len(parts) > 1 or parts[0].ctype != "text/plain"):
        flat = _flatten(parts)
    else:
        flat = parts[0].text if parts else ""
    return Mail(headers=headers, ctype=ctype, params=params, parts=parts, body=flat)
