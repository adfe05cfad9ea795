"""Demonstration items for a dataset created without any."""

from __future__ import annotations

from typing import Any

DEMO_ITEM_COUNT = 100

_SUBJECTS = (
    "The left hinge on cabinet door",
    "Solder joint",
    "The printed label on carton",
    "Weld seam",
    "The paint finish of panel",
    "Connector pin row",
    "The glass lens of camera module",
    "Stitching along seat cover",
    "The thread on bolt",
    "Surface of ceramic tile",
)
_FINDINGS = (
    "looks clean and sits flush with the frame.",
    "shows a hairline crack near the edge.",
    "is slightly misaligned, by about two millimetres.",
    "matches the reference sample under daylight.",
    "has a bubble the size of a grain of rice.",
    "passed the pull test at the rated force.",
    "carries a smudge that covers part of the barcode.",
    "is scratched where the fixture touched it.",
    "has even spacing and no loose threads.",
    "is discoloured in one corner after the heat test.",
)


def demo_items(count: int = DEMO_ITEM_COUNT) -> list[dict[str, Any]]:
    """`count` distinct inspection notes, some fine and some faulty."""
    items = []
    for index in range(count):
        subject = _SUBJECTS[index % len(_SUBJECTS)]
        finding = _FINDINGS[(index // len(_SUBJECTS) + index) % len(_FINDINGS)]
        unit = 100 + index * 7 % 900
        items.append({"text": f"{subject} {unit} {finding}"})
    return items
