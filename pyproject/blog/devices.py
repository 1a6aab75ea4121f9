"""Where an account is signed in: its sessions as devices, each of which can be signed out.

At sign-in the session notes the device it was made on: the browser and system named by
its User-Agent (kept to 200 characters, read into words like "Firefox on Linux"), the
client's network (the address shortened to its /24, or /48 for IPv6: enough to tell
"home" from "elsewhere", not who), and the time. `/account/security` lists them with
when each was last seen (sessions note that at most once a day, when they are renewed);
"Sign out" ends one, "Sign out everywhere else" every one but this.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from pyproject.blog import auth
from pyproject.blog.db import get_db
from pyproject.blog.models import SessionRecord, User, utcnow
from pyproject.lib import App, Request, Response, current_app, flash, redirect, url_for
from pyproject.lib.exceptions import NotFound
from pyproject.lib.sessions import session_key

DEVICE_KEY = "_device"
_PUBLIC_ID = re.compile(r"[0-9a-f]{16}\Z")
_BROWSERS = (
    ("Edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/|Chromium/")),
    ("Safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux|X11")),
)


def network_of(address: str) -> str:
    """Give an address shortened to its network: 192.0.2.0/24, 2001:db8:1::/48."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    prefix = 24 if parsed.version == 4 else 48
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


def describe(user_agent: str) -> str:
    """Give a User-Agent in words: "Firefox on Linux", or "Unknown browser"."""
    browser = next((name for name, pattern in _BROWSERS if pattern.search(user_agent)), "")
    system = next((name for name, pattern in _SYSTEMS if pattern.search(user_agent)), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"A browser on {system}" if system else "Unknown browser")


def note_device(request: Request) -> None:
    """Note in the session, as it is signed in, the device and network it is made from."""
    agent = request.headers.get("User-Agent", "")[:200]
    request.session[DEVICE_KEY] = {
        "agent": agent,
        "network": network_of(request.remote_addr),
        "since": int(utcnow().timestamp()),
    }


@dataclass(frozen=True, slots=True)
class Device:
    public_id: str  # the first 16 hex digits of the store key (a hash of the session id)
    description: str
    network: str
    since: datetime | None
    last_seen: datetime | None
    current: bool


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None


def devices_of(request: Request, user: User) -> list[Device]:
    """Give the account's live sessions, this one first, then the latest seen."""
    sid = request.session.sid if request.session is not None else None
    current = session_key(sid) if sid else ""
    rows = get_db(request).execute(
        select(SessionRecord.key, SessionRecord.data).where(
            SessionRecord.user_id == user.id, SessionRecord.expires_at > utcnow()
        )
    )
    found = []
    for key, raw in rows:
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}
        device = data.get(DEVICE_KEY) if isinstance(data, dict) else None
        device = device if isinstance(device, dict) else {}
        since = _when(device.get("since"))
        seen = _when(data.get("_refreshed")) if isinstance(data, dict) else None
        found.append(
            Device(
                public_id=key[:16],
                description=describe(str(device.get("agent", ""))),
                network=str(device.get("network", "unknown")),
                since=since,
                last_seen=max((t for t in (since, seen) if t is not None), default=None),
                current=key == current,
            )
        )
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda d: (not d.current, -(d.last_seen or oldest).timestamp()))


def _store():
    return current_app().session_interface.store


@auth.login_required
def sign_out_device(request: Request, public_id: str) -> Response:
    """End one of the account's sessions (this one too, which is then signed out)."""
    user = auth.current_user(request)
    if not _PUBLIC_ID.match(public_id):
        raise NotFound("There is no such session.")
    db = get_db(request)
    keys = list(
        db.scalars(
            select(SessionRecord.key).where(
                SessionRecord.user_id == user.id, SessionRecord.key.startswith(public_id)
            )
        )
    )
    if len(keys) != 1:
        raise NotFound("There is no such session (it may have ended already).")
    sid = request.session.sid
    if sid and session_key(sid) == keys[0]:
        request.session.clear()
        request.context["user"] = None
        flash("You are signed out.", "success")
        return redirect(url_for("home"))
    db.execute(
        delete(SessionRecord).where(SessionRecord.key == keys[0], SessionRecord.user_id == user.id)
    )
    db.commit()
    flash("That device is signed out.", "success")
    return redirect(url_for("account_security"))


@auth.login_required
def sign_out_others(request: Request) -> Response:
    """End every session of the account but this one."""
    user = auth.current_user(request)
    sid = request.session.sid
    store = _store()
    if hasattr(store, "delete_for_user"):
        store.delete_for_user(user.id, keep=session_key(sid) if sid else None)
    flash("Every other device is signed out.", "success")
    return redirect(url_for("account_security"))


def register(app: App) -> None:
    app.add_route("/account/sessions/<public_id>/end", sign_out_device, methods=["POST"])
    app.add_route("/account/sessions/end-others", sign_out_others, methods=["POST"])
