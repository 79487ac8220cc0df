"""Line numbers for key paths in a TOML document, which ``tomllib`` does not report.

The rules file reports every problem as ``FILE:LINE``. ``tomllib`` parses the values;
this module re-reads the same text only to learn where things start: table headers
(``[watch]``, the N-th ``[[rules]]``), keys (dotted, quoted, inside inline tables) and
array elements, including multi-line arrays. Paths use the parsed data's shape, so
``("rules", 2, "match", "type")`` is the ``type`` key in the ``match`` of the third rule,
whether it was written as a ``[rules.match]`` table or an inline table.

It assumes the text is valid TOML (``tomllib`` has already accepted it) and never
raises: on anything it does not understand it stops and keeps what it has located.
"""

from __future__ import annotations

import bisect
import re
import tomllib

from watchdog.errors import WatchdogError

Path = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\s#]")
# A date-time may contain a space ("1979-05-27 07:32:00"), which would otherwise end it.
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_BLANK = " \t"


class _Stop(WatchdogError):
    """The scanner met something it does not understand; keep what is located so far."""


class TomlLines:
    """Where each key path of a TOML text starts (1-based line numbers)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]
        self._lines: dict[Path, int] = {}
        # Current element index of each array of tables, by its resolved path.
        self._aot_index: dict[Path, int] = {}
        try:
            self._document()
        except (_Stop, IndexError, tomllib.TOMLDecodeError, RecursionError):
            pass

    def line_of(self, path: Path) -> int | None:
        """The line where ``path`` starts, or ``None`` when it was not located."""
        return self._lines.get(tuple(path))

    def nearest_line(self, path: Path) -> int:
        """The line of ``path`` or of its longest located prefix; 1 when none is known."""
        for length in range(len(path), 0, -1):
            line = self._lines.get(tuple(path[:length]))
            if line is not None:
                return line
        return 1

    # -- scanning -------------------------------------------------------------------

    def _line(self) -> int:
        return bisect.bisect_left(self._newlines, self._pos) + 1

    def _peek(self, count: int = 1) -> str:
        return self._text[self._pos : self._pos + count]

    def _record(self, path: Path, line: int) -> None:
        # The first mention wins: that is where a human looks for the key.
        self._lines.setdefault(path, line)

    def _skip_blank(self) -> None:
        while self._pos < len(self._text) and self._text[self._pos] in _BLANK:
            self._pos += 1

    def _skip_comment(self) -> None:
        if self._peek() == "#":
            end = self._text.find("\n", self._pos)
            self._pos = len(self._text) if end < 0 else end

    def _skip_space_and_comments(self) -> None:
        """Skip blanks, newlines and comments (between statements and inside arrays)."""
        while self._pos < len(self._text):
            char = self._text[self._pos]
            if char in " \t\r\n":
                self._pos += 1
            elif char == "#":
                self._skip_comment()
            else:
                return

    def _document(self) -> None:
        table: Path = ()
        while True:
            self._skip_space_and_comments()
            if self._pos >= len(self._text):
                return
            line = self._line()
            if self._peek(2) == "[[":
                self._pos += 2
                table = self._array_table_header(line)
                self._expect("]]")
            elif self._peek() == "[":
                self._pos += 1
                table = self._resolve(self._key())
                for length in range(1, len(table) + 1):
                    self._record(table[:length], line)
                self._expect("]")
            else:
                self._key_value(table)
            self._skip_blank()
            self._skip_comment()

    def _array_table_header(self, line: int) -> Path:
        keys = self._key()
        parent = self._resolve(keys[:-1])
        for length in range(1, len(parent) + 1):
            self._record(parent[:length], line)
        array: Path = (*parent, keys[-1])
        index = self._aot_index.get(array, -1) + 1
        self._aot_index[array] = index
        self._record(array, line)
        self._record((*array, index), line)
        return (*array, index)

    def _resolve(self, keys: list[str]) -> Path:
        """Turn header keys into a data path: an array of tables means its last element."""
        path: Path = ()
        for key in keys:
            path = (*path, key)
            if path in self._aot_index:
                path = (*path, self._aot_index[path])
        return path

    def _expect(self, token: str) -> None:
        self._skip_blank()
        if self._peek(len(token)) != token:
            raise _Stop
        self._pos += len(token)

    def _key(self) -> list[str]:
        """A possibly dotted key: ``a``, ``a.b``, ``"quoted key".c``."""
        keys = []
        while True:
            self._skip_blank()
            keys.append(self._simple_key())
            self._skip_blank()
            if self._peek() != ".":
                return keys
            self._pos += 1

    def _simple_key(self) -> str:
        char = self._peek()
        if char in ('"', "'"):
            start = self._pos
            self._skip_string()
            # Let tomllib decode the escapes, so the key matches the parsed data exactly.
            raw = self._text[start : self._pos]
            return str(tomllib.loads(f"k = {raw}")["k"])
        match = _BARE_KEY.match(self._text, self._pos)
        if not match:
            raise _Stop
        self._pos = match.end()
        return match.group()

    def _key_value(self, table: Path) -> None:
        line = self._line()
        path = (*table, *self._key())
        for length in range(len(table) + 1, len(path) + 1):
            self._record(path[:length], line)
        self._expect("=")
        self._skip_blank()
        self._value(path)

    def _value(self, path: Path) -> None:
        char = self._peek()
        if char == "{":
            self._inline_table(path)
        elif char == "[":
            self._array(path)
        elif char in ('"', "'"):
            self._skip_string()
        else:
            datetime = _DATETIME.match(self._text, self._pos)
            if datetime:
                self._pos = datetime.end()
            end = _SCALAR_END.search(self._text, self._pos)
            self._pos = len(self._text) if end is None else end.start()

    def _inline_table(self, path: Path) -> None:
        self._pos += 1
        while True:
            self._skip_space_and_comments()
            if self._peek() == "}":
                self._pos += 1
                return
            self._key_value(path)
            self._skip_space_and_comments()
            if self._peek() == ",":
                self._pos += 1

    def _array(self, path: Path) -> None:
        self._pos += 1
        index = 0
        while True:
            self._skip_space_and_comments()
            if self._peek() == "]":
                self._pos += 1
                return
            if self._pos >= len(self._text):
                raise _Stop
            self._record((*path, index), self._line())
            self._value((*path, index))
            index += 1
            self._skip_space_and_comments()
            if self._peek() == ",":
                self._pos += 1

    def _skip_string(self) -> None:
        quote = self._peek()
        if self._peek(3) == quote * 3:
            # Multi-line string: ends at the first unescaped triple quote; up to two more
            # quotes may close it (`""""` is a quote followed by the end).
            self._pos += 3
            while True:
                end = self._text.find(quote * 3, self._pos)
                if end < 0:
                    raise _Stop
                if quote == '"' and _escaped(self._text, end):
                    self._pos = end + 1
                    continue
                self._pos = end + 3
                while self._peek() == quote:
                    self._pos += 1
                return
        self._pos += 1
        while self._pos < len(self._text):
            char = self._text[self._pos]
            if char == "\\" and quote == '"':
                self._pos += 2
                continue
            self._pos += 1
            if char == quote:
                return
            if char == "\n":
                break
        raise _Stop


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` is preceded by an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1
