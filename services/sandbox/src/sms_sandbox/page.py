"""The sandbox's conversation page: plain HTML, every text escaped."""

from __future__ import annotations

from html import escape

from sms_sandbox.calls import StoredCall
from sms_sandbox.store import StoredMessage
from sms_sandbox.twilio_wire import iso8601

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; background: #f4f5f7; color: #222; }
h1 { font-size: 1.3rem; }
.meta { color: #666; font-size: .8rem; }
section { background: #fff; border-radius: 8px; padding: 1rem; margin-bottom: 1rem;
          box-shadow: 0 1px 2px rgba(0,0,0,.1); max-width: 46rem; }
h2 { font-size: 1.05rem; margin: 0 0 .6rem; }
ol { list-style: none; padding: 0; margin: 0 0 .8rem; }
li { margin: .35rem 0; display: flex; flex-direction: column; }
li .bubble { padding: .45rem .7rem; border-radius: 12px; max-width: 80%;
             white-space: pre-wrap; overflow-wrap: anywhere; }
li.out { align-items: flex-start; }
li.out .bubble { background: #e8eefc; }
li.in { align-items: flex-end; }
li.in .bubble { background: #d7f5dd; }
li.call .bubble { background: #fdf0d5; }
li.call form { margin-top: .3rem; }
form { display: flex; gap: .4rem; }
form input[name=body] { flex: 1; padding: .35rem; }
form input[name=from] { width: 11rem; padding: .35rem; }
"""


def _bubble(message: StoredMessage) -> str:
    side = "in" if message.direction == "inbound" else "out"
    who = "patient" if side == "in" else "service"
    meta = f"{iso8601(message.date_created)} · {who} · {message.status} · {message.sid}"
    return (
        f'<li class="{side}"><span class="bubble">{escape(message.body)}</span>'
        f'<span class="meta">{escape(meta)}</span></li>'
    )


def _call(call: StoredCall) -> str:
    meta = f"{iso8601(call.date_created)} · call · {call.status} · {call.sid}"
    if call.digits:
        meta += f" · pressed {call.digits}"
    press = ""
    if call.gather_action and call.status not in ("completed", "failed", "busy", "no-answer"):
        sid = escape(call.sid, quote=True)
        press = (
            f'<form class="press" method="post" action="/sandbox/calls/{sid}/press">'
            '<input type="hidden" name="digits" value="1">'
            "<button>Press 1</button></form>"
        )
    return (
        f'<li class="call"><span class="bubble">📞 {escape(call.spoken)}</span>'
        f'<span class="meta">{escape(meta)}</span>{press}</li>'
    )


def render_page(
    messages: list[StoredMessage], service_number: str, calls: list[StoredCall] | None = None
) -> str:
    """One section per phone (by first appearance), its texts and calls oldest first."""
    phones: dict[str, list[StoredMessage | StoredCall]] = {}
    everything: list[StoredMessage | StoredCall] = [*messages, *(calls or [])]
    for item in sorted(everything, key=lambda i: i.date_created):
        phone = item.to if isinstance(item, StoredCall) else item.phone
        phones.setdefault(phone, []).append(item)

    sections = []
    for phone, thread in phones.items():
        items = "".join(_call(m) if isinstance(m, StoredCall) else _bubble(m) for m in thread)
        p = escape(phone, quote=True)
        sections.append(
            f'<section id="{p}"><h2>{escape(phone)}</h2><ol>{items}</ol>'
            f'<form class="reply" method="post" action="/sandbox/inbound">'
            f'<input type="hidden" name="from" value="{p}">'
            f'<input name="body" placeholder="Reply as {p}" required autocomplete="off">'
            f"<button>Send</button></form></section>"
        )
    if not sections:
        sections.append("<section><p>No messages yet.</p></section>")

    new_phone = (
        "<section><h2>Text as a new phone</h2>"
        '<form method="post" action="/sandbox/inbound">'
        '<input name="from" placeholder="+15555550100" required pattern="\\+[1-9][0-9]{1,14}">'
        '<input name="body" placeholder="Message" required autocomplete="off">'
        "<button>Send</button></form></section>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>SMS sandbox</title>"
        f"<style>{_STYLE}</style></head><body>"
        f'<h1>SMS sandbox</h1><p class="meta">Service number {escape(service_number)} · '
        f'{len(messages)} messages · <a href="/">refresh</a></p>'
        f"{''.join(sections)}{new_phone}</body></html>"
    )
