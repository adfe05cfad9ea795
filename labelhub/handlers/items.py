"""Reading dataset items from a request: a JSON list or JSON Lines of objects."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from aiohttp import web

from labelhub import keys
from labelhub.errors import BadRequest, Invalid
from labelhub.handlers import json_text
from labelhub.handlers.routing import RawBody, read_body
from labelhub.studio.client import LABELHUB_ID

JSON_LINES_TYPES = (
    "application/x-ndjson",
    "application/jsonl",
    "application/x-jsonlines",
)


def check_items(items: list[Any], max_count: int) -> list[dict[str, Any]]:
    """Each item must be a non-empty JSON object without labelhub's own key."""
    if not items:
        raise Invalid("items: give at least one item")
    if len(items) > max_count:
        raise Invalid(
            f"items: {len(items):,} items is more than the {max_count:,} "
            "one upload may hold; send them in parts"
        )
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not item:
            raise Invalid(f"items[{index}]: must be a non-empty JSON object")
        if LABELHUB_ID in item:
            raise Invalid(f"items[{index}]: {LABELHUB_ID!r} is reserved for labelhub")
    return items


class ItemsUpload(RawBody):
    """A JSON array of objects, or JSON Lines (one object per line)."""

    openapi: ClassVar[dict[str, Any]] = {
        "required": True,
        "description": "A JSON array of objects, or JSON Lines with one object "
        "per line. Each object becomes the data of one Label Studio task. Up "
        "to ITEMS_MAX_COUNT items (200,000 unless set) and ITEMS_MAX_BODY_MB "
        "(100 MB unless set); an object may not use the key "
        f"`{LABELHUB_ID}` (labelhub's own), and no string in it may hold a "
        "NUL or an unpaired surrogate (400).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "minProperties": 1,
                        "not": {"required": [LABELHUB_ID]},
                    },
                }
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    @classmethod
    async def read(cls, request: web.Request, limit_bytes: int) -> Self:
        settings = request.app[keys.SETTINGS]
        raw = await read_body(request, settings.items_max_body_mb * 1024 * 1024)
        text = _decode(raw)
        if request.content_type in JSON_LINES_TYPES or text.lstrip().startswith("{"):
            items = _json_lines(text)
        else:
            items = _json_array(text)
        return cls(check_items(items, settings.items_max_count))


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 text: {exc}") from None


def _json_array(text: str) -> list[Any]:
    if not text.strip():
        raise BadRequest("the body is empty; send a JSON array or JSON Lines of items")
    items = json_text.loads(text)
    if not isinstance(items, list):
        raise Invalid("items: send a JSON array of objects, or JSON Lines")
    return items


def _json_lines(text: str) -> list[Any]:
    items = []
    loads = json_text.loads
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            items.append(loads(line, f"line {number}"))
    return items
