"""The audit log: who did what to the accounts and the site, and when, for admins to read.

Sign-ins and failed sign-ins, second-factor changes, role changes, imports, settings and
token changes are written here by the module that makes them, with `record()`, in the
same transaction as the change itself (a change rolled back leaves no line). The rows are
never changed; `/admin/audit` lists them newest first, filtered by action, by account
and by day, for administrators only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from pyproject.blog import auth
from pyproject.blog.db import get_db
from pyproject.blog.devices import network_of
from pyproject.blog.forms import Form
from pyproject.blog.models import AuditEntry, User, utcnow
from pyproject.lib import App, Request, render_template, url_for

PAGE_SIZE = 100
DETAIL_MAX = 2000  # characters of JSON kept per line

# The actions other modules record, and how /admin/audit names them. Any other action is
# recorded too (a helper adding one need not come here first) and listed as written.
ACTIONS = {
    "sign_in": "Signed in",
    "sign_in_failed": "Failed sign-in",
    "sign_out": "Signed out",
    "second_factor_failed": "Wrong second-factor code",
    "totp_enabled": "Turned on app codes",
    "totp_disabled": "Turned off app codes",
    "recovery_codes_renewed": "New recovery codes",
    "passkey_added": "Added a passkey",
    "passkey_removed": "Removed a passkey",
    "passkey_failed": "Refused passkey",
    "role_changed": "Changed a role",
    "user_added": "Added an account",
    "user_deactivated": "Deactivated an account",
    "user_activated": "Activated an account",
    "import_started": "Started an import",
    "settings_changed": "Changed settings",
    "token_created": "Created a token",
    "token_revoked": "Revoked a token",
    "review_submitted": "Submitted for review",
    "review_approved": "Approved",
    "review_changes_requested": "Requested changes",
}


def record(
    db: Session | Connection,
    actor: User | int | None,
    action: str,
    detail: Mapping[str, Any] | str | None = None,
    *,
    request: Request | None = None,
    actor_name: str = "",
) -> None:
    """Add a line to the audit log, in the caller's transaction (the caller commits).

    `actor` is who did it (a User, a user id, or None: nobody signed in, a job). `detail`
    is what to know beside the action: a dict (kept as JSON) or a text. `request` gives
    the client's network (its /24 or /48) for the line. `actor_name` names an actor who
    has no account (the login typed at a failed sign-in, "job").
    """
    actor_id = actor.id if isinstance(actor, User) else actor
    if isinstance(actor, User) and not actor_name:
        actor_name = actor.username
    if detail is None:
        text = ""
    elif isinstance(detail, str):
        text = detail
    else:
        text = json.dumps(dict(detail), ensure_ascii=False, sort_keys=True, default=str)
    db.execute(
        insert(AuditEntry).values(
            at=utcnow(),
            actor_id=actor_id,
            actor_name=actor_name[:254],
            action=action[:40],
            detail=text[:DETAIL_MAX],
            network=network_of(request.remote_addr) if request is not None else "",
        )
    )


def describe(entry: AuditEntry) -> dict[str, str]:
    """Give a line's detail as name/value pairs to show (a text detail under "note")."""
    if not entry.detail:
        return {}
    try:
        value = json.loads(entry.detail)
    except ValueError:
        return {"note": entry.detail}
    if isinstance(value, dict):
        return {str(key): _shown(item) for key, item in value.items()}
    return {"note": entry.detail}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _day(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def entries(
    db: Session,
    *,
    action: str = "",
    who: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[AuditEntry]:
    """Give the newest lines matching the filters (`before`: only ids under it, for paging)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    if who:
        ids = select(User.id).where(or_(User.username == who, User.email == who))
        query = query.where(or_(AuditEntry.actor_id.in_(ids), AuditEntry.actor_name == who))
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    return list(db.scalars(query))


FILTERS = ("action", "who", "from", "to")


@auth.admin_required
def audit_page(request: Request) -> Any:
    """/admin/audit: the log, newest first, filtered by action, account and days."""
    db = get_db(request)
    form = Form(request.args, FILTERS)
    action = form.text("action", label="Action", max_length=40)
    who = form.text("who", label="Account", max_length=254).lower()
    since = until = None
    if form.text("from", label="From", max_length=10):
        since = _day(form["from"])
        if since is None:
            form.error("from", "Give a day as YYYY-MM-DD.")
    if form.text("to", label="To", max_length=10):
        end = _day(form["to"])
        if end is None:
            form.error("to", "Give a day as YYYY-MM-DD.")
        else:
            until = end + timedelta(days=1)
    before_text = str(request.args.get("before", ""))
    before = int(before_text) if before_text.isdigit() and len(before_text) < 18 else None
    found: list[AuditEntry] = []
    if form.ok:
        found = entries(
            db,
            action=action,
            who=who,
            since=since,
            until=until,
            before=before,
            limit=PAGE_SIZE + 1,
        )
    older = None
    if len(found) > PAGE_SIZE:
        found = found[:PAGE_SIZE]
        kept = {name: form[name] for name in FILTERS if form[name]}
        older = url_for("audit_log", **kept, before=found[-1].id)
    labels = dict(ACTIONS)
    for (name,) in db.execute(select(AuditEntry.action).distinct()):
        labels.setdefault(name, name)
    page = render_template(
        "admin/audit.html",
        entries=[(entry, describe(entry)) for entry in found],
        actions=sorted(labels.items(), key=lambda item: item[1]),
        labels=labels,
        form=form,
        older=older,
    )
    return page, (200 if form.ok else 422)


def register(app: App) -> None:
    app.add_route("/admin/audit", audit_page, endpoint="audit_log")
