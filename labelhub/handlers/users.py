"""Account management for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from labelhub import accounts, keys
from labelhub.handlers.fields import NO_NUL, BodyId
from labelhub.handlers.routing import Access, Call, Routes
from labelhub.store import users
from labelhub.store.models import User

routes = Routes("users")
Role = Literal["admin", "annotator"]


class UserOut(BaseModel):
    username: str
    role: str
    active: bool
    ls_user_id: int | None
    ls_email: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            username=user.username,
            role=user.role,
            active=user.active,
            ls_user_id=user.ls_user_id,
            ls_email=user.ls_email,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class UserIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    username: str = Field(pattern=accounts.USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=72, pattern=NO_NUL)
    role: Role
    ls_user_id: BodyId | None = None
    ls_email: str | None = Field(None, min_length=3, max_length=254, pattern=NO_NUL)


class UserPatch(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    password: str | None = Field(None, min_length=8, max_length=72, pattern=NO_NUL)
    role: Role | None = None
    active: bool | None = None
    ls_user_id: BodyId | None = None
    ls_email: str | None = Field(None, min_length=3, max_length=254, pattern=NO_NUL)


class UserPath(BaseModel):
    username: str = Field(
        min_length=1, max_length=254, pattern=NO_NUL, examples=["ann"]
    )


@routes.get("/users", access=Access.ADMIN)
async def list_users(call: Call) -> list[UserOut]:
    """Every account, by username; admins only."""
    async with call.app[keys.SESSIONS]() as session:
        return [UserOut.of(user) for user in await users.list_all(session)]


@routes.post("/users", access=Access.ADMIN, status=201, errors=(409,))
async def create_user(call: Call, body: UserIn) -> UserOut:
    """Create an account (201); 409 when the username is taken in any case."""
    async with call.app[keys.SESSIONS].begin() as session:
        user = await accounts.create(
            session,
            call.app[keys.PASSWORDS],
            body.username,
            body.password,
            body.role,
            ls_user_id=body.ls_user_id,
            ls_email=body.ls_email,
        )
        return UserOut.of(user)


@routes.patch("/users/{username}", access=Access.ADMIN, errors=(404, 409))
async def change_user(call: Call, path: UserPath, body: UserPatch) -> UserOut:
    """Change an account's password, role, active flag or Label Studio identity.

    404 for an unknown user; 409 when it would leave no active admin.
    Deactivation and role changes apply to the account's next request.
    """
    wanted = accounts.Change(**body.model_dump(exclude_unset=True))
    async with call.app[keys.SESSIONS].begin() as session:
        user = await accounts.change(
            session, call.app[keys.PASSWORDS], path.username, wanted
        )
        return UserOut.of(user)
