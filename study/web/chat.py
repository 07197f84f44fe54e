"""The assistant chat in the participant portal: `/p/chat`, its memory and goals pages.

The participant is the one in the signed portal session (participate.py); every URL answers 404
for anyone whose arm has no assistant, who is not enrolled, or who asks for someone else's turn
or note. Sending is two steps so that nothing is lost: `POST /p/chat/messages` stores the
message and commits; `POST /p/chat/turns/<id>/reply` asks the provider and streams the answer as
server-sent events (`piece`, `done`, or `error` with a message for the participant). Without
JavaScript both steps run in one form post and the page reloads with the answer.
"""

from __future__ import annotations

import json
import math
import os

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlmodel import Session

from .. import enrollment
from ..assistant import turns
from ..assistant.client import DEFAULT_TIMEOUT, AssistantError, ChatClient, RateLimited
from ..assistant.goals import goals
from ..assistant.memory import ParticipantTexts, TextRefused, notes
from ..enrollment import Journey
from ..models import Participant
from .context import db, services
from .participate import SESSION_KEY

bp = Blueprint("chat", __name__, url_prefix="/p/chat")

SAVED = "Your message is saved"
EXPLANATIONS = {
    "timeout": f"The assistant took too long to answer. {SAVED}: please try again.",
    "interrupted": f"The answer was interrupted. {SAVED}: please try again.",
    "busy": "The assistant is already answering this message.",
}
UNAVAILABLE = f"The assistant is not available right now. {SAVED}: please try again later."


def explain(kind: str, retry_after: float | None = None) -> str:
    """What the participant is told when a message could not be answered."""
    if kind == "rate_limited":
        wait = (
            f"in about {math.ceil(retry_after)} seconds"
            if retry_after is not None and retry_after < 120
            else "in a few minutes"
        )
        return f"The assistant is busy at the moment. {SAVED}: please try again {wait}."
    return EXPLANATIONS.get(kind, UNAVAILABLE)


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


# Ids are 32-bit integers in PostgreSQL (and SQLite's are 64-bit): a larger one in a URL names
# nothing, and asking the database for it would fail with a 500.
MAX_ID = 2**31 - 1


def _existing_id(value: int) -> int:
    if value > MAX_ID:
        abort(404)
    return value


def _journey_and_chat() -> tuple[Journey, turns.Chat]:
    code = session.get(SESSION_KEY)
    journey = enrollment.load_journey(db(), code) if code else None
    chat = turns.chat_for(db(), journey.participant, journey.protocol) if journey else None
    if chat is None:
        abort(404)
    return journey, chat


def _render(template: str, journey: Journey, chat: turns.Chat, status: int = 200, **context):
    language = journey.participant.language
    html = render_template(
        f"chat/{template}",
        journey=journey,
        opened=journey.opened,
        lang=language,
        page_language=language,
        show_withdraw=True,
        assistant=chat.assistant,
        **context,
    )
    return html, status


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


# --- the chat -----------------------------------------------------------------------------------


@bp.get("/")
def page():
    journey, chat = _journey_and_chat()
    now = services().clock.now()
    shown = turns.transcript(db(), services().pii, chat, now)
    db().commit()  # an idle conversation may just have been closed
    return _render("chat.html", journey, chat, transcript=shown, explain=explain)


@bp.post("/messages")
def send():
    journey, chat = _journey_and_chat()
    try:
        turn = turns.submit(
            db(), services().pii, chat, request.form.get("message", ""), now=services().clock.now()
        )
    except turns.MessageRefused as refused:
        db().rollback()
        if _wants_json():
            return jsonify(error=str(refused)), 400
        shown = turns.transcript(db(), services().pii, chat, services().clock.now())
        return _render(
            "chat.html", journey, chat, 400, transcript=shown, explain=explain,
            problem=str(refused), draft=request.form.get("message", ""),
        )
    db().commit()  # stored before the provider is asked: nothing is lost if it fails
    reply_url = url_for("chat.reply", turn_id=turn.id)
    if _wants_json():
        return jsonify(turn=turn.id, reply_url=reply_url), 201
    return _answer_without_streaming(chat, turn.id)


@bp.post("/turns/<int:turn_id>/reply")
def reply(turn_id: int):
    _, chat = _journey_and_chat()
    turn_id = _existing_id(turn_id)
    if "text/event-stream" not in request.headers.get("Accept", ""):
        return _answer_without_streaming(chat, turn_id)
    participant_id = chat.participant.id
    # Resolved now: the stream runs after this request (and its app context) has ended.
    assistant, arm, logger = chat.assistant, chat.arm, current_app.logger
    engine, vault, clock = services().engine, services().pii, services().clock
    timeout = current_app.config.get("FLOURISH_ASSISTANT_TIMEOUT", DEFAULT_TIMEOUT)

    def events():
        with Session(engine, expire_on_commit=False) as stream_session:
            participant = stream_session.get(Participant, participant_id)
            own_chat = turns.Chat(participant, arm, assistant)
            try:
                client = ChatClient.for_assistant(assistant.spec, os.environ, timeout=timeout)
                for piece in turns.respond(stream_session, vault, own_chat, turn_id, client, clock):
                    yield _event("piece", {"text": piece})
                yield _event("done", {"turn": turn_id})
            except turns.TurnUnavailable:
                yield _event("error", {"kind": "busy", "message": explain("busy")})
            except AssistantError as exc:
                logger.warning("assistant turn %s failed: %s", turn_id, exc)
                retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
                yield _event("error", {"kind": exc.kind, "message": explain(exc.kind, retry_after)})

    return Response(
        events(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def _answer_without_streaming(chat: turns.Chat, turn_id: int):
    """The no-JavaScript path: ask for the whole reply, then show the page again."""
    timeout = current_app.config.get("FLOURISH_ASSISTANT_TIMEOUT", DEFAULT_TIMEOUT)
    try:
        client = ChatClient.for_assistant(chat.assistant.spec, os.environ, timeout=timeout)
        for _ in turns.respond(
            db(), services().pii, chat, turn_id, client, services().clock, stream=False
        ):
            pass
    except turns.TurnUnavailable:
        db().rollback()
    except AssistantError as exc:
        current_app.logger.warning("assistant turn %s failed: %s", turn_id, exc)
    return redirect(url_for("chat.page") + "#chat-form", code=303)


@bp.post("/new")
def new_conversation():
    _, chat = _journey_and_chat()
    turns.start_new_conversation(db(), chat, services().clock.now())
    db().commit()
    return redirect(url_for("chat.page"), code=303)


# --- memory notes and goals ---------------------------------------------------------------------

PAGES = {
    "memory": {
        "store": notes,
        "allowed": lambda assistant: assistant.keeps_notes,
        "title": "What the assistant remembers",
        "template": "memory.html",
    },
    "goals": {
        "store": goals,
        "allowed": lambda assistant: assistant.takes_goals,
        "title": "Your goals",
        "template": "goals.html",
    },
}


def _texts_page(kind: str) -> tuple[Journey, turns.Chat, ParticipantTexts]:
    journey, chat = _journey_and_chat()
    if not PAGES[kind]["allowed"](chat.assistant):
        abort(404)
    return journey, chat, PAGES[kind]["store"]


def _show_texts(kind: str, journey, chat, store, status=200, **context):
    entries = store.entries(db(), services().pii, chat.participant)
    return _render(
        PAGES[kind]["template"], journey, chat, status, entries=entries, kind=kind,
        title=PAGES[kind]["title"], store=store, **context,
    )


@bp.get("/<any(memory, goals):kind>")
def texts(kind: str):
    journey, chat, store = _texts_page(kind)
    draft = ""
    if kind == "memory" and request.args.get("from", "").isdigit():
        draft = _kept_from_chat(chat, int(request.args["from"]))
    return _show_texts(kind, journey, chat, store, draft=draft)


def _kept_from_chat(chat: turns.Chat, turn_id: int) -> str:
    """The reply of one of the participant's own turns, to keep as a note."""
    for shown in turns.transcript(db(), services().pii, chat, services().clock.now()):
        if shown.id == turn_id:
            return shown.reply[: notes.max_length]
    abort(404)


@bp.post("/<any(memory, goals):kind>")
def add_text(kind: str):
    journey, chat, store = _texts_page(kind)
    text = request.form.get("text", "")
    source = "chat" if kind == "memory" and request.form.get("source") == "chat" else "participant"
    try:
        store.add(db(), services().pii, chat.participant, text, now=services().clock.now(),
                  source=source)
    except TextRefused as refused:
        db().rollback()
        return _show_texts(kind, journey, chat, store, 400, problem=str(refused), draft=text)
    db().commit()
    return redirect(url_for("chat.texts", kind=kind), code=303)


@bp.post("/<any(memory, goals):kind>/<int:entry_id>")
def change_text(kind: str, entry_id: int):
    journey, chat, store = _texts_page(kind)
    entry_id = _existing_id(entry_id)
    vault, now = services().pii, services().clock.now()
    try:
        if request.form.get("action") == "delete":
            store.delete(db(), chat.participant, entry_id, now=now)
        else:
            store.edit(db(), vault, chat.participant, entry_id, request.form.get("text", ""),
                       now=now)
    except LookupError:
        abort(404)
    except TextRefused as refused:
        db().rollback()
        return _show_texts(kind, journey, chat, store, 400, problem=str(refused),
                           problem_entry=entry_id)
    db().commit()
    return redirect(url_for("chat.texts", kind=kind), code=303)
