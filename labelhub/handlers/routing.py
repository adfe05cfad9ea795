"""Declaring routes: who may call them, what they take, what they answer.

A handler is an async function whose parameters are `call` and, optionally,
`path`, `query` and `body`, each annotated with a pydantic model; its return
annotation is the model it answers with. The decorator reads those
annotations, so validation, authorization and the OpenAPI document all come
from the same declaration and cannot drift apart:

    @routes.get("/datasets/{dataset_id}", access=Access.ADMIN, errors=(404,))
    async def get_dataset(call: Call, path: DatasetPath) -> DatasetOut: ...
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, get_type_hints

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from labelhub.errors import BadRequest, Invalid, PayloadTooLarge
from labelhub.handlers import json_text
from labelhub.handlers.callers import Caller, authenticate

Handler = Callable[..., Awaitable[Any]]
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class Access(enum.Enum):
    """Who may call a route; every route must say."""

    PUBLIC = "public"
    USER = "user"
    ADMIN = "admin"
    WEBHOOK = "webhook"


class RawBody:
    """Base for bodies that are not one JSON document (JSON Lines, webhooks).

    Subclasses read the request themselves and describe their request body
    for the OpenAPI document in `openapi`.
    """

    openapi: ClassVar[dict[str, Any]] = {}

    @classmethod
    async def read(cls, request: web.Request, limit_bytes: int) -> Self:
        raise NotImplementedError


@dataclass(slots=True)
class Call:
    """One request as a handler sees it."""

    request: web.Request
    caller: Caller | None

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def me(self) -> Caller:
        """The authenticated caller; only on routes that require a token."""
        if self.caller is None:
            raise RuntimeError("route declared PUBLIC reads the caller")
        return self.caller


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    access: Access
    status: int
    errors: tuple[int, ...]
    max_body_bytes: int
    models: dict[str, Any] = field(default_factory=dict)
    returns: Any = None
    raw_response: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.handler.__name__

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.handler) or ""


class Routes:
    """The routes of one handlers module."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        access: Access,
        status: int = 200,
        errors: tuple[int, ...] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        raw_response: dict[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a handler; `raw_response` documents one that answers other
        than JSON (it then returns an aiohttp response itself)."""

        def register(handler: Handler) -> Handler:
            hints = get_type_hints(handler)
            params = inspect.signature(handler).parameters
            models = {n: hints[n] for n in ("path", "query", "body") if n in params}
            self.endpoints.append(
                Endpoint(
                    method=method,
                    path=path,
                    handler=handler,
                    access=access,
                    status=status,
                    errors=errors,
                    max_body_bytes=max_body_bytes,
                    models=models,
                    returns=hints.get("return"),
                    raw_response=raw_response,
                )
            )
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)


def add_routes(app: web.Application, groups: list[Routes]) -> None:
    for group in groups:
        for endpoint in group.endpoints:
            app.router.add_route(
                endpoint.method, endpoint.path, _adapt(endpoint), name=endpoint.name
            )


def _adapt(
    endpoint: Endpoint,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    returns_raw = isinstance(endpoint.returns, type) and issubclass(
        endpoint.returns, web.StreamResponse
    )
    adapter = None if returns_raw else TypeAdapter(endpoint.returns)

    async def handle(request: web.Request) -> web.StreamResponse:
        caller = await authenticate(request, endpoint.access.value)
        kwargs: dict[str, Any] = {}
        for name, model in endpoint.models.items():
            kwargs[name] = await _parse(name, model, request, endpoint)
        result = await endpoint.handler(Call(request, caller), **kwargs)

        if adapter is None:
            return result  # type: ignore[no-any-return]  # checked by returns_raw
        return web.Response(
            body=adapter.dump_json(result),
            status=endpoint.status,
            content_type="application/json",
        )

    return handle


async def _parse(
    name: str, model: Any, request: web.Request, endpoint: Endpoint
) -> Any:
    if isinstance(model, type) and issubclass(model, RawBody):
        return await model.read(request, endpoint.max_body_bytes)
    if name == "path":
        return validate(model, _plain(request.match_info, "path"), where="path")
    if name == "query":
        return validate(model, _plain(request.query, "query"), where="query")
    data = await read_json(request, endpoint.max_body_bytes)
    return validate(model, data, where="body")


async def read_body(request: web.Request, limit_bytes: int) -> bytes:
    """The request body, or 413 as soon as it passes `limit_bytes`."""
    declared = request.content_length
    if declared is not None:
        if declared > limit_bytes:
            raise PayloadTooLarge(_too_large(limit_bytes))
        # aiohttp stops a body that runs past its declared length.
        return await request.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit_bytes:
            raise PayloadTooLarge(_too_large(limit_bytes))
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, limit_bytes: int) -> Any:
    raw = await read_body(request, limit_bytes)
    if not raw.strip():
        raise BadRequest("the request needs a JSON body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 text: {exc}") from None
    return json_text.loads(text)


def _plain(values: Mapping[str, str], where: str) -> dict[str, str]:
    """Path or query values as one dict; a name given twice, or a NUL
    (which no database can store), is refused rather than half-used."""
    plain: dict[str, str] = {}
    for name, value in values.items():
        if name in plain:
            raise BadRequest(f"{where}: {name} is given more than once")
        if "\x00" in value or "\x00" in name:
            raise BadRequest(f"{where}: {name} holds a NUL character")
        plain[name] = value
    return plain


def validate(model: Any, data: Any, *, where: str) -> Any:
    """`data` checked against `model`; 422 naming each bad field otherwise."""
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(data)
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors(include_url=False)]
        raise Invalid(
            f"invalid {where}: " + "; ".join(p["message"] for p in problems),
            details=problems,
        ) from None


def _problem(error: Any) -> dict[str, str]:
    field_name = ".".join(str(part) for part in error["loc"]) or "(whole)"
    return {"field": field_name, "message": f"{field_name}: {error['msg']}"}


def _too_large(limit_bytes: int) -> str:
    return f"the body is larger than the limit of {limit_bytes:,} bytes"
