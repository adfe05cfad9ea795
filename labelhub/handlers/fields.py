"""Field types for request bodies, matching JSON Schema's view of JSON."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field


def _integral(value: Any) -> Any:
    # JSON Schema counts 731.0 as an integer; strict validation would not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# No text labelhub stores may hold a NUL: PostgreSQL cannot keep one.
NO_NUL = r"^[^\x00]*$"

JsonInt = Annotated[int, BeforeValidator(_integral)]
# One dataset item: a non-empty object that does not use labelhub's own key.
Item = Annotated[
    dict[str, Any],
    Field(min_length=1, json_schema_extra={"not": {"required": ["labelhub_task_id"]}}),
]
# A Label Studio or labelhub id in a body: a positive 32-bit integer.
BodyId = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(_integral)]
