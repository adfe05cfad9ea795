"""The OpenAPI 3.1 document, built from the route declarations themselves.

Every route's parameters, body and answer are the pydantic models its handler
is annotated with (see `routing`), so the document describes exactly what
the handlers validate and answer; it cannot drift from the code.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from labelhub.handlers.routing import Access, Endpoint, RawBody, Routes

REF = "#/components/schemas/{model}"
ERROR_DESCRIPTIONS = {
    400: "The request does not parse (body not JSON, wrong shape)",
    401: "No valid credentials",
    403: "Authenticated, but not allowed (an admin route)",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The body is larger than the limit",
    422: "A parameter or field breaks the contract; the message names it",
    429: "Too many failed logins; see Retry-After",
    503: "Unavailable",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


class _Components:
    """Schemas shared by reference under `components.schemas`."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def schema_of(self, model: Any, mode: JsonSchemaMode) -> dict[str, Any]:
        generated = TypeAdapter(model).json_schema(ref_template=REF, mode=mode)
        for name, definition in generated.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        if isinstance(model, type) and issubclass(model, BaseModel):
            self.schemas.setdefault(model.__name__, generated)
            return {"$ref": REF.format(model=model.__name__)}
        return generated


def build_document(groups: list[Routes], version: str) -> dict[str, Any]:
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for group in groups:
        for endpoint in group.endpoints:
            operation = _operation(endpoint, group.tag, components)
            paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "labelhub",
            "version": version,
            "description": "Task assignment, annotator views and a shadow index "
            "for a Label Studio project.",
        },
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "webhookSecret": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Webhook-Secret",
                },
            },
        },
    }


def _operation(endpoint: Endpoint, tag: str, components: _Components) -> dict[str, Any]:
    summary, _, description = endpoint.doc.partition("\n")
    operation: dict[str, Any] = {
        "operationId": endpoint.name,
        "tags": [tag],
        "summary": summary.strip(),
        "security": _security(endpoint.access),
        "parameters": _parameters(endpoint),
        "responses": _responses(endpoint, components),
    }
    if description.strip():
        operation["description"] = inspect.cleandoc(description)
    body = endpoint.models.get("body")
    if isinstance(body, type) and issubclass(body, RawBody):
        operation["requestBody"] = body.openapi
    elif body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": components.schema_of(body, "validation")}
            },
        }
    return operation


def _security(access: Access) -> list[dict[str, list[str]]]:
    if access in (Access.USER, Access.ADMIN):
        return [{"bearer": []}]
    if access is Access.WEBHOOK:
        return [{"webhookSecret": []}]
    return []


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    parameters = []
    for place in ("path", "query"):
        model = endpoint.models.get(place)
        if model is None:
            continue
        schema = model.model_json_schema(mode="validation")
        required = set(schema.get("required", []))
        for name, field in schema.get("properties", {}).items():
            parameter = {
                "name": name,
                "in": place,
                "required": place == "path" or name in required,
                "schema": _parameter_schema(field),
            }
            if "description" in field:
                parameter["description"] = field["description"]
            parameters.append(parameter)
    return parameters


def _parameter_schema(field: dict[str, Any]) -> dict[str, Any]:
    """A field's schema as a parameter: an absent value stands for null."""
    variants = [v for v in field.get("anyOf", []) if v.get("type") != "null"]
    base = variants[0] if len(variants) == 1 else field
    extra = {
        k: v for k, v in field.items() if k not in ("anyOf", "title", "description")
    }
    schema = {**base, **extra}
    if schema.get("default") is None:
        schema.pop("default", None)
    return schema


def _responses(endpoint: Endpoint, components: _Components) -> dict[str, Any]:
    responses: dict[str, Any] = {str(endpoint.status): _success(endpoint, components)}
    for status in sorted(_error_statuses(endpoint)):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model="Error")}}
            },
        }
    return responses


def _success(endpoint: Endpoint, components: _Components) -> dict[str, Any]:
    if endpoint.raw_response is not None:
        return endpoint.raw_response
    return {
        "description": "Success",
        "content": {
            "application/json": {
                "schema": components.schema_of(endpoint.returns, "serialization")
            }
        },
    }


def _error_statuses(endpoint: Endpoint) -> set[int]:
    # Any request can fail to parse as HTTP (a request line over the limit).
    statuses = {*endpoint.errors, 400}
    if endpoint.access is not Access.PUBLIC:
        statuses.add(401)
    if endpoint.access is Access.ADMIN:
        statuses.add(403)
    if endpoint.models:
        statuses.add(422)
    if "body" in endpoint.models:
        statuses.add(413)
    return statuses
