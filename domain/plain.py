"""Text from documents and users made safe to show: control characters (ANSI escape sequences, a
newline or NUL in a file name, Unicode line separators) are written as visible escapes, so a name
can neither restyle a terminal nor break the line that holds it. What is shown changes; what is
stored never does.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_KEEP_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # \t and \n stay
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def one_line(text: object) -> str:
    """``text`` on one line with every control character escaped (for names, paths, headings).

    >>> one_line("a\\x1b[31mred\\nb.md")
    'a\\\\x1b[31mred\\\\nb.md'
    """
    return _CONTROL.sub(_escape, str(text))


def terminal_text(text: object) -> str:
    """``text`` for a terminal: line breaks and tabs kept, every other control character escaped.

    >>> terminal_text("two\\nlines\\x07")
    'two\\nlines\\\\x07'
    """
    return _KEEP_IN_TEXT.sub(_escape, str(text))
