"""The machine API under `/api/v1`: ingest of assistant turns, and its OpenAPI document.

`POST /api/v1/interactions` takes `{"events": [...]}` from an assistant that runs outside
Flourish, authenticated by a per-study API key (`Authorization: Bearer flk_...`) with the scope
`interactions:write`. It is exempt from CSRF because it takes no cookies: a browser cannot be
tricked into sending someone's bearer key. The body is checked against the schema first; any
schema error rejects the whole batch with 422 and every error listed by event index and field,
so nothing is half-stored. A valid batch is recorded in one transaction and answered 200 with
the outcome of each event: `accepted`, `duplicate` (the event id was stored before with the same
data, so retrying a batch is always safe) or `rejected` with a reason. The request and response
models below are also the source of the OpenAPI document at `GET /api/v1/openapi.json`, so the
document cannot drift from what the code accepts.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, Flask, jsonify, request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from werkzeug.exceptions import HTTPException

from study.assistant import apikeys
from study.assistant.ingest import ingest_events
from study.assistant.log import ROLES

from .context import db, services

bp = Blueprint("api", __name__, url_prefix="/api/v1")

API_VERSION = "1.0.0"
MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 500
MAX_CONTENT_CHARS = 32_000
INGEST_SCOPE = "interactions:write"
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339(value: Any) -> datetime:
    """An RFC 3339 timestamp with a UTC offset; anything else (no offset, epoch numbers) fails."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-03-02T09:00:00Z")
    seconds, _, rest = value.partition(".")
    if rest:  # Python parses at most microseconds; keep the offset, cut extra digits
        digits = re.match(r"\d+", rest).group(0)
        value = f"{seconds}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))


def _no_nul(value: str) -> str:
    # PostgreSQL's text cannot hold NUL: refused here as a schema error, not a 500 at the insert.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


NoNul = AfterValidator(_no_nul)
Text = Annotated[str, Field(min_length=1, max_length=100), NoNul]
Count = Annotated[int, Field(ge=0, le=10_000_000)]


class InteractionEvent(BaseModel):
    """One turn of a conversation between a participant and an assistant."""

    model_config = ConfigDict(extra="forbid", strict=True)

    event_id: Text = Field(description="Unique per study; resending it is harmless.")
    participant: Annotated[str, Field(min_length=1, max_length=32), NoNul] = Field(
        description="The participant's pseudonymous code, as shown to researchers."
    )
    session_id: Text = Field(description="Groups the turns of one conversation.")
    role: Literal[ROLES] = Field(description="Who spoke.")
    occurred_at: Annotated[datetime, BeforeValidator(_rfc3339)] = Field(
        description="When the turn happened: RFC 3339 with an offset."
    )
    content: Annotated[str, Field(max_length=MAX_CONTENT_CHARS)] | None = Field(
        default=None,
        description="The text; stored (redacted, encrypted) only if the participant consented.",
    )
    latency_ms: Count | None = Field(default=None, description="Time to the reply, for replies.")
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    model: Annotated[str, Field(max_length=200), NoNul] = ""
    prompt_version: Annotated[str, Field(max_length=64), NoNul] = ""


class InteractionBatch(BaseModel):
    """A batch of turns, recorded in one transaction."""

    model_config = ConfigDict(extra="forbid", strict=True)

    events: Annotated[list[InteractionEvent], Field(min_length=1, max_length=MAX_EVENTS)]


class EventResult(BaseModel):
    index: int = Field(description="Position of the event in the batch, from 0.")
    event_id: str
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = Field(default=None, description="Why an event was rejected.")


class IngestResult(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


class SchemaError(BaseModel):
    index: int | None = Field(description="The event's position, or null for the whole body.")
    field: str = Field(description="Dotted path within the event (or the body).")
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
    errors: list[SchemaError] | None = None


class ApiError(Exception):
    """An error answered as JSON: `{"error": {"code", "message"}, "errors": [...]}`."""

    def __init__(self, status: int, code: str, message: str, errors: list | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors


def init_app(app: Flask) -> None:
    """Register the API, exempt from CSRF (it authenticates by bearer key, never by cookie)."""
    app.register_blueprint(bp)
    app.extensions["csrf"].exempt(bp)


@bp.before_request
def _limit_body() -> None:
    request.max_content_length = MAX_BODY_BYTES


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    body = ErrorResponse(error=ErrorDetail(code=exc.code, message=exc.message), errors=exc.errors)
    # `errors` is left out when there are none; an error's `index` is null for the whole body.
    response = jsonify(body.model_dump(exclude={"errors"} if exc.errors is None else set()))
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="flourish"'
    return response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    code = (exc.name or "error").lower().replace(" ", "_")
    message = exc.description or exc.name
    if exc.code == 413:
        message = f"the request body is larger than {MAX_BODY_BYTES} bytes; send smaller batches"
    return _api_error(ApiError(exc.code or 500, code, message))


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _routing_error(exc: HTTPException):
    """Unknown paths and wrong methods under /api/ are routed before any blueprint sees them;
    machine clients still get the API's JSON error rather than an HTML page."""
    if request.path == bp.url_prefix or request.path.startswith(bp.url_prefix + "/"):
        return _http_error(exc)
    return exc


@bp.post("/interactions")
def ingest_interactions():
    session = db()
    now = services().clock.now()
    key = _authenticate(session, now)
    batch = _parse_batch()
    outcomes = ingest_events(
        session,
        vault=services().pii,
        study_id=key.study_id,
        events=[event.model_dump() for event in batch.events],
        now=now,
    )
    session.commit()
    counts = {status: 0 for status in ("accepted", "duplicate", "rejected")}
    for outcome in outcomes:
        counts[outcome.status] += 1
    result = IngestResult(**counts, results=[outcome.to_dict() for outcome in outcomes])
    return jsonify(result.model_dump(exclude_none=True))


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


def _authenticate(session, now: datetime) -> apikeys.ApiKey:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "unauthenticated", "send an API key as 'Authorization: Bearer <key>'")
    try:
        key = apikeys.verify_api_key(session, presented.strip(), scope=INGEST_SCOPE, now=now)
    except apikeys.InvalidKey as exc:
        raise ApiError(401, "unauthenticated", str(exc)) from exc
    except apikeys.MissingScope as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    session.commit()  # the key's last use, kept even if the batch is refused
    return key


def _parse_batch() -> InteractionBatch:
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the batch as application/json")
    raw = request.get_data(cache=False)  # 413 past MAX_BODY_BYTES
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
    try:
        return InteractionBatch.model_validate(body)
    except ValidationError as exc:
        errors = [_schema_error(error) for error in exc.errors(include_url=False)]
        raise ApiError(
            422, "invalid_events", f"{len(errors)} schema error(s); nothing was stored", errors
        ) from exc


def _schema_error(error: dict) -> dict:
    location = list(error["loc"])
    index = None
    if len(location) >= 2 and location[0] == "events" and isinstance(location[1], int):
        index = location[1]
        location = location[2:]
    message = error["msg"].removeprefix("Value error, ")
    return {"index": index, "field": ".".join(map(str, location)) or "events", "message": message}


def openapi_document() -> dict:
    """The OpenAPI 3.1 description of this API, built from the models above."""
    models = (InteractionBatch, IngestResult, ErrorResponse)
    schemas: dict[str, dict] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema

    def error(description: str) -> dict:
        return {"description": description, "content": _json("ErrorResponse")}

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flourish ingest API",
            "version": API_VERSION,
            "description": (
                "Send the turns of assistants that run outside Flourish to a study's "
                "interaction log. See docs/assistant-ingest.md."
            ),
        },
        "servers": [{"url": services().settings.public_url or "/"}],
        "paths": {
            "/api/v1/interactions": {
                "post": {
                    "operationId": "ingestInteractions",
                    "summary": "Record a batch of assistant turns (idempotent by event_id)",
                    "security": [{"apiKey": [INGEST_SCOPE]}],
                    "requestBody": {"required": True, "content": _json("InteractionBatch")},
                    "responses": {
                        "200": {
                            "description": "The outcome of each event.",
                            "content": _json("IngestResult"),
                        },
                        "400": error("The body is not valid JSON."),
                        "401": error("No API key, or an invalid or revoked one."),
                        "403": error(f"The key lacks the scope {INGEST_SCOPE}."),
                        "413": error(f"The body is larger than {MAX_BODY_BYTES} bytes."),
                        "415": error("The body is not application/json."),
                        "422": error("Schema errors, listed by event index and field."),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapiDocument",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A per-study key from `flourish apikeys create`.",
                }
            },
        },
    }


def _json(schema: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
