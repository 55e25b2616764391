"""How tickets, quarantined mail and status look on the command line: JSON and readable tables."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from helpdesk.terminal import cell
from helpdesk.view_fields import DeliveryFields, MessageFields, RawFields, RecordFields, TicketFields
from models.kinds import OutboxStatus
from models.sender_auth import SenderAuth

# What became of an outgoing mail, in the words `tickets show` uses.
DELIVERY_STATUS = {
    OutboxStatus.PENDING: "queued",
    OutboxStatus.SENDING: "queued",
    OutboxStatus.SENT: "sent",
    OutboxStatus.FAILED: "failed",
    OutboxStatus.BOUNCED: "bounced",
}


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def ticket_summary(ticket: TicketFields, message_ids: list[str]) -> dict[str, Any]:
    return {
        "number": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status.value,
        "category": ticket.category,
        "priority": ticket.priority.value,
        "requester": ticket.requester,
        "requester_name": ticket.requester_name,
        "assignee": ticket.assignee,
        "language": ticket.language,
        "tags": list(ticket.tags),
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "first_response_at": iso(ticket.first_response_at),
        "resolved_at": iso(ticket.resolved_at),
        "follow_up_of": ticket.follow_up_of,
        "message_ids": message_ids,
    }


def delivery_view(delivery: DeliveryFields) -> dict[str, Any]:
    """What became of an outgoing mail: queued, sent, failed or bounced, and why."""
    return {
        "status": DELIVERY_STATUS[delivery.status],
        "attempts": delivery.attempts,
        "error": delivery.error,
        "sent_at": iso(delivery.sent_at),
    }


def message_view(
    message: MessageFields,
    delivery: dict[str, Any] | None = None,
    authentication: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": message.id,
        "message_id": message.message_id,
        "direction": message.direction,
        "kind": message.kind,
        "internal": message.internal,
        "from": message.from_addr,
        "from_name": message.from_name,
        "to": list(message.to_addrs),
        "cc": list(message.cc_addrs),
        "subject": message.subject,
        "date": iso(message.sent_at),
        "created_at": iso(message.created_at),
        "in_reply_to": message.in_reply_to,
        "references": list(message.references),
        "language": message.language,
        "delivery": delivery,  # outgoing mail only: what became of it
        # Who the sender was proven to be (inbound mail): result, domain, method, by, reason.
        "authentication": authentication,
        "new_text": message.new_text,
        "text": message.text,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "omitted": a.omitted,
            }
            for a in message.attachments
        ],
    }


def ticket_detail(record: RecordFields) -> dict[str, Any]:
    ticket = record.ticket
    view = ticket_summary(ticket, [m.message_id for m in ticket.messages])
    view["routing"] = dict(ticket.routing)
    view["participants"] = [
        {"address": p.address, "name": p.name, "role": p.role, "notify": p.notify}
        for p in ticket.participants
    ]
    view["messages"] = []
    for m in ticket.messages:
        delivery = record.deliveries.get(m.outbox_id) if m.outbox_id is not None else None
        verdict = record.sender_auth.get(m.raw_id) if m.raw_id is not None else None
        view["messages"].append(message_view(m, delivery_view(delivery) if delivery else None, verdict))
    view["events"] = [
        {
            "at": iso(e.at),
            "actor": e.actor,
            "kind": e.kind,
            "old": e.old,
            "new": e.new,
            "reason": e.reason,
            "data": dict(e.data),
        }
        for e in ticket.events
    ]
    rated = record.satisfaction
    view["satisfaction"] = (
        {"rating": rated.rating, "comment": rated.comment, "at": iso(rated.at)} if rated is not None else None
    )
    return view


def quarantine_view(raw: RawFields, *, full: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": raw.id,
        "received_at": iso(raw.received_at),
        "source": raw.source,
        "message_id": raw.message_id,
        "envelope_from": raw.envelope_from,
        "size": raw.size,
        "attempts": raw.attempts,
        "error": raw.error,
    }
    if full:
        view["envelope_to"] = list(raw.envelope_to)
        view["headers"] = raw.data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return view


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, wrap_last: bool = False) -> str:
    """A plain text table that fits the terminal: the widest column is cut with an ellipsis."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    total = shutil.get_terminal_size((120, 20)).columns
    over = sum(widths) + 2 * (len(widths) - 1) - total
    if over > 0 and cells:
        widest = max(range(len(widths)), key=lambda i: widths[i])
        widths[widest] = max(len(headers[widest]), widths[widest] - over)
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        fitted = [v if len(v) <= w else v[: max(w - 1, 0)] + "…" for v, w in zip(row, widths, strict=True)]
        lines.append("  ".join(v.ljust(w) for v, w in zip(fitted, widths, strict=True)).rstrip())
    return "\n".join(lines)


def delivery_line(delivery: dict[str, Any]) -> str:
    """`sent 2026-11-24T09:00:01Z`, `queued (attempt 2: 451 ...)`, `failed: 550 ...`, `bounced: ...`."""
    status, error = delivery["status"], delivery.get("error") or ""
    if status == "sent":
        text = f"sent {delivery.get('sent_at') or ''}".rstrip()
    elif status == "queued":
        text = f"queued (attempt {delivery['attempts']}: {error})" if error else "queued"
    else:
        text = f"{status}: {error}" if error else status
    # The error is a relay's or a delivery report's words: nothing in it may drive the terminal.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def render_ticket(view: dict[str, Any]) -> str:
    """`helpdesk tickets show N` for people."""
    out = [
        f"Ticket #{view['number']}: {view['subject']}",
        f"  status {view['status']}   priority {view['priority']}   category {view['category']}"
        f"   language {view['language']}",
        f"  requester {view['requester_name'] + ' ' if view['requester_name'] else ''}<{view['requester']}>"
        f"   assignee {view['assignee'] or '(nobody)'}",
        f"  created {view['created_at']}   updated {view['updated_at']}",
    ]
    if view["tags"]:
        out.append(f"  tags {', '.join(view['tags'])}")
    rated = view.get("satisfaction")
    if rated:
        comment = f": {' '.join(rated['comment'].split())}" if rated["comment"] else ""
        out.append(f"  rated {rated['rating']}/5 at {rated['at']}{comment}")
    routing = view.get("routing") or {}
    if routing:
        out.append("")
        out.append("Why it was routed this way:")
        for field in ("category", "priority"):
            decision = routing.get(field) or {}
            if not decision:
                continue
            line = f"  {field} = {decision.get('value')}  by {decision.get('reason')}"
            if decision.get("top_terms"):
                line += f"  (terms: {', '.join(decision['top_terms'][:8])})"
            out.append(line)
            if decision.get("detail") and decision.get("detail") != decision.get("reason"):
                out.append(f"      {decision['detail']}")
    out.append("")
    out.append("Messages:")
    for m in view["messages"]:
        arrow = "→" if m["direction"] == "out" else "←"
        flag = " (internal)" if m["internal"] else ""
        out.append(f"  {arrow} {m['created_at']}  {m['kind']}{flag}  {m['from']}  <{m['message_id']}>")
        if m.get("delivery"):
            out.append(f"      delivery: {delivery_line(m['delivery'])}")
        verdict = SenderAuth.from_dict(m.get("authentication"))
        if verdict is not None:
            out.append(f"      sender authentication: {verdict.describe()}")
        body = (m["new_text"] or m["text"] or "").strip()
        if body:
            for line in textwrap.shorten(" ".join(body.split()), 300, placeholder=" …").splitlines():
                out.append(f"      {line}")
        for a in m["attachments"]:
            state = f" OMITTED: {a['omitted']}" if a["omitted"] else ""
            out.append(f"      [attachment] {a['filename']} ({a['content_type']}, {a['size']} bytes){state}")
    out.append("")
    out.append("Events:")
    for e in view["events"]:
        if e["old"] is not None:
            change = f" {e['old']} → {e['new']}"
        else:
            change = f" {e['new']}" if e["new"] is not None else ""
        reason = f"  ({e['reason']})" if e["reason"] else ""
        out.append(f"  {e['at']}  {e['kind']}{change}  by {e['actor']}{reason}")
    return "\n".join(cell(line) for line in out)  # each entry is one line, whatever the mail held
