"""`server_events` frames → canonical events: the dialect's spec for the shared pipeline
(`gateway.decoding`). Pure: no I/O, no logs.

A body is one frame, an array of frames, or the long-poll/history envelope `{"events": [...]}`.
Frames carry no chat id: the conversation is the caller's (`?conversation=`, the connector's
chat). Ids: `"<conv>/<msg_id>"` for frames the platform identifies (messages, files, located
messages, signaling), otherwise a derived id of the frame's own fields (`Scope.event_id`), so
re-posting the same frames deduplicates.

What one frame does not say comes from the conversation's context (`gateway.context`):

- who a party is. The client's own lines carry `party_id` equal to the chat id (the iOS SDK's
  `ContactCenterEvent.chatSessionMessage`: "Client party ID always matches the chat ID"), or no
  `party_id` at all: role `user`. Any other party has the role it announced when it joined
  (`chat_session_party_joined` type scenario → bot, internal → agent, external → external):
  the join teaches the context (`Scope.learn`), later frames read it (`Scope.context`),
  whichever body or path brings them; `agent` when no join was seen.
- what the caller knows (`options`): `file_url` (where received files are fetched, a template
  with `{file_id}`) and `untimed` (the connector's place in its stream, see `untimed.Untimed`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.server_events import native as n
from adapters.server_events.native import DIALECT
from adapters.server_events.untimed import stream_of
from gateway.codec import joined_id
from gateway.decoding import Envelope, Refused, Scope, Spec, native_time
from gateway.model import (
    Content,
    Ended,
    Event,
    File,
    Form,
    Image,
    Location,
    Message,
    Notice,
    ParticipantJoined,
    ParticipantLeft,
    Party,
    Receipt,
    ReceiptStatus,
    Signal,
    Status,
    Text,
    Typing,
)


def build(frame: n.ServerEvent, scope: Scope) -> tuple[Event]:
    """The canonical event of one server event, at the frame's time: its `timestamp`, or the
    body's receive time when it has none. `when` (in derived ids) is that timestamp, or the
    frame's place in the stream (`untimed.Untimed`) when it has none."""
    stamp = frame.timestamp
    if stamp is None or stamp == "":
        at, when = scope.received_at, stream_of(scope).place(frame)
    else:
        at = when = native_time(stamp, "$.timestamp")
    return (_BUILDERS[type(frame)](frame, scope, at, when),)


SPEC: Spec[n.ServerEvent] = Spec(
    dialect=DIALECT,
    frame=n.ServerEvent,
    tag="event",
    build=build,
    envelopes=(Envelope("events", n.Envelope, frames="events"),),
    contextual=True,  # senders' roles are the ones their joins announced
)


def _sender(scope: Scope, party_id: str | None) -> Party:
    """Who a frame is from: the client (no party, or the chat id), else the party with the
    role it announced (the conversation's context), else an agent."""
    if party_id is None or party_id == scope.conversation:
        return n.USER
    return Party(role=scope.context().role_of(party_id) or "agent", id=party_id)


# One builder per native event: (frame, scope, at, when) → its event, in the frame's
# conversation at `at`. Events the platform identifies take `<conv>/<msg_id>`; the others a
# derived id of their own fields: `joined_id` of the parts `derived_id` would join with "\x1f"
# (docs/dialects/server_events.md lists them), with `when` where the same frame may
# legitimately come twice.


def _message(f: n.ChatMessage, scope: Scope, at: str, when: str) -> Event:
    stream_of(scope).anchor(f.msg_id)  # first: a frame refused below anchors the stream too
    # `msg_text` is the plain text the server makes of `msg` (which may be HTML): the text.
    text = f.msg_text if f.msg_text is not None else f.msg
    if text is None:
        raise Refused("a message needs `msg` or `msg_text`", "$.msg")
    html = f.msg if f.msg_text is not None and f.msg and f.msg != f.msg_text else None
    conv = scope.conversation_id
    sender = _sender(scope, f.party_id)
    if f.msg_id is None:
        eid = joined_id(conv, f"chat_session_message\x1f{when}\x1f{sender.id}\x1f{text}")
    else:
        eid = f"{conv}/{f.msg_id}"
    return Message(
        id=eid,
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=sender,
        content=Text(text),
        metadata={"html": html} if html is not None else {},
    )


def _typing(name: str, active: bool) -> Callable[[n.Typing | n.NotTyping, Scope, str, str], Event]:
    """The builder of a typing frame called `name`, its `active` said by the name."""

    def build(f: n.Typing | n.NotTyping, scope: Scope, at: str, when: str) -> Event:
        conv = scope.conversation_id
        sender = _sender(scope, f.party_id)
        return Typing(
            id=joined_id(conv, f"{name}\x1f{when}\x1f{sender.id}"),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            sender=sender,
            active=active,
        )

    return build


def _status(f: n.SessionStatus, scope: Scope, at: str, when: str) -> Event:
    conv = scope.conversation_id
    return Status(
        id=joined_id(conv, f"chat_session_status\x1f{when}\x1f{f.state}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        status=n.STATUSES[f.state],
        wait_s=n.number(f.ewt, "$.ewt"),
    )


def _joined(f: n.PartyJoined, scope: Scope, at: str, when: str) -> Event:
    name = f.display_name or " ".join(p for p in (f.first_name, f.last_name) if p) or None
    role = n.ROLES[f.type]
    if f.party_id != scope.conversation:  # the client's own party is not announced
        scope.learn(roles={f.party_id: role})
    conv = scope.conversation_id
    return ParticipantJoined(
        id=joined_id(conv, f"chat_session_party_joined\x1f{when}\x1f{f.party_id}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=Party(role=role, id=f.party_id, name=name),
    )


def _left(f: n.PartyLeft, scope: Scope, at: str, when: str) -> Event:
    conv = scope.conversation_id
    return ParticipantLeft(
        id=joined_id(conv, f"chat_session_party_left\x1f{when}\x1f{f.party_id}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        participant=_sender(scope, f.party_id),
    )


def _ended(f: n.SessionEnded, scope: Scope, at: str, when: str) -> Event:
    conv = scope.conversation_id
    return Ended(
        id=joined_id(conv, f"chat_session_ended\x1f{when}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason="completed",
    )


def _inactivity(f: n.InactivityTimeout, scope: Scope, at: str, when: str) -> Event:
    conv = scope.conversation_id
    return Ended(
        # One id for both spellings.
        id=joined_id(conv, f"chat_session_inactivity_timeout\x1f{when}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        reason="inactivity",
        by="system",
        text=f.msg or None,
    )


def _warning(f: n.TimeoutWarning, scope: Scope, at: str, when: str) -> Event:
    conv = scope.conversation_id
    return Notice(
        id=joined_id(conv, f"chat_session_timeout_warning\x1f{when}\x1f{f.msg}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="inactivity_warning",
        text=f.msg,
    )


def _form(f: n.FormShow, scope: Scope, at: str, when: str) -> Event:
    conv = scope.conversation_id
    return Form(
        id=joined_id(conv, f"chat_session_form_show\x1f{f.form_request_id}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        request_id=str(f.form_request_id),
        name=f.form_name,
        timeout_s=n.number(f.form_timeout, "$.form_timeout"),
    )


def _signal(f: n.Signaling, scope: Scope, at: str, when: str) -> Event:
    conv = scope.conversation_id
    return Signal(
        id=f"{conv}/{f.msg_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        data=f.data,
        sender=_sender(scope, f.party_id),
    )


def _file(f: n.ChatFile, scope: Scope, at: str, when: str) -> Event:
    stream_of(scope).anchor(f.msg_id)
    if not f.file_id:
        raise Refused("a file needs a `file_id`", "$.file_id")
    template = scope.options.get("file_url")
    url = template.replace("{file_id}", f.file_id) if template else None
    content: Content = (
        Image(url=url, file_id=f.file_id, file_name=f.file_name)
        if f.file_type == "image"
        else File(url=url, file_id=f.file_id, file_name=f.file_name)
    )
    conv = scope.conversation_id
    return Message(
        id=f"{conv}/{f.msg_id}",
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=_sender(scope, f.party_id),
        content=content,
    )


def _location(f: n.ChatLocation, scope: Scope, at: str, when: str) -> Event:
    stream_of(scope).anchor(f.msg_id)
    latitude = n.coordinate(f.latitude, "$.latitude")
    longitude = n.coordinate(f.longitude, "$.longitude")
    conv = scope.conversation_id
    sender = _sender(scope, f.party_id)
    if f.msg_id is None:
        key = f"chat_session_location\x1f{when}\x1f{sender.id}\x1f{latitude}\x1f{longitude}"
        eid = joined_id(conv, key)
    else:
        eid = f"{conv}/{f.msg_id}"
    return Message(
        id=eid,
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        sender=sender,
        content=Location(latitude=latitude, longitude=longitude, url=f.url),
    )


def _case(f: n.CaseSet, scope: Scope, at: str, when: str) -> Event:
    conv = scope.conversation_id
    return Notice(
        id=joined_id(conv, f"chat_session_case_set\x1f{f.case_id}"),
        conversation_id=conv,
        dialect=DIALECT,
        at=at,
        kind="info",
        text=f"case {f.case_id}",
        metadata={"case_id": str(f.case_id)},
    )


def _receipt(
    name: str, status: ReceiptStatus
) -> Callable[[n.MessageDelivered, Scope, str, str], Event]:
    """The builder of a receipt frame called `name`, its `status` said by the name."""

    def build(f: n.MessageDelivered, scope: Scope, at: str, when: str) -> Event:
        conv = scope.conversation_id
        sender = _sender(scope, f.party_id)
        ref = f.ref_msg_id
        # Without a reference (iOS types it optional) only its time tells two receipts apart.
        key = f"{name}\x1f{ref}\x1f{sender.id}" if ref is not None else f"{name}\x1f{when}"
        return Receipt(
            id=joined_id(conv, key),
            conversation_id=conv,
            dialect=DIALECT,
            at=at,
            sender=sender,
            status=status,
            message_id=None if ref is None else f"{conv}/{ref}",
        )

    return build


_BUILDERS: dict[type[Any], Callable[[Any, Scope, str, str], Event]] = {
    n.ChatMessage: _message,
    n.Typing: _typing("chat_session_typing", active=True),
    n.NotTyping: _typing("chat_session_not_typing", active=False),
    n.SessionStatus: _status,
    n.PartyJoined: _joined,
    n.PartyLeft: _left,
    n.SessionEnded: _ended,
    n.InactivityTimeout: _inactivity,
    n.InactvityTimeout: _inactivity,
    n.TimeoutWarning: _warning,
    n.FormShow: _form,
    n.Signaling: _signal,
    n.ChatFile: _file,
    n.ChatLocation: _location,
    n.CaseSet: _case,
    n.MessageDelivered: _receipt("chat_session_message_delivered", "delivered"),
    n.MessageRead: _receipt("chat_session_message_read", "read"),
}
assert set(_BUILDERS) == set(n.ServerEvent.__args__)
