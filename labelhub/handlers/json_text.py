"""JSON from requests, refused when no database could store it.

Python's parser accepts `NaN` and `Infinity`, which are not JSON, and
escapes that no PostgreSQL text or `jsonb` value can hold: `\\u0000` and
unpaired surrogates. Those are refused here, with a 400 naming the problem,
so that both databases store the same things and neither fails later.
"""

from __future__ import annotations

import json
import re
from typing import Any

from labelhub.errors import BadRequest

# Escapes that may decode to what cannot be stored; most bodies hold none.
_SUSPECT = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number; send a number or null")


def loads(text: str, where: str = "the body") -> Any:
    """`text` parsed, or BadRequest saying what is wrong with it."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadRequest(f"{where} is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"{where} is not valid JSON: {exc}") from None
    if _SUSPECT.search(text):
        refuse_unstorable(value, where)
    return value


def refuse_unstorable(value: Any, where: str) -> None:
    """BadRequest if a string in `value` holds a NUL or a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise BadRequest(f"{where} holds a NUL character (\\u0000)")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(
                    f"{where} holds an unpaired surrogate escape (\\ud800-\\udfff)"
                ) from None
