"""Tasks for `python main.py COMMAND`: migrate, create-user, rerender."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sqlalchemy import select

from pyproject.blog import migrate as migrations
from pyproject.blog.auth import EMAIL_RE, PASSWORD_MAX, PASSWORD_MIN, USERNAME_RE, create_user
from pyproject.blog.db import get_database
from pyproject.blog.editor import own_summary, render_onto
from pyproject.blog.markup import RENDERER_VERSION, Rendered, RenderRefused
from pyproject.blog.models import Post, User
from pyproject.blog.rendering import RenderTimeout, render_post
from pyproject.cli import PREPARE_STEPS, command
from pyproject.lib import App


def register(app: App) -> None:
    """Make the database migration part of `python main.py prepare` (and `make run`)."""
    if _apply_migrations not in PREPARE_STEPS:
        # First: every other step (purging the trash) needs the tables.
        PREPARE_STEPS.insert(0, _apply_migrations)


def _apply_migrations(app: App) -> None:
    migrations.upgrade(get_database(app).engine)


@command("migrate", "apply pending database migrations")
def migrate(app: App, args: Any) -> int:
    engine = get_database(app).engine
    before = migrations.current_revision(engine)
    migrations.upgrade(engine)
    after = migrations.current_revision(engine)
    print(f"Database at migration {after}" + (f" (was {before})." if before != after else "."))
    return 0


def _user_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--role", choices=("admin", "author"), default="author")
    parser.add_argument("--display-name", default="")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


@command("create-user", "add an admin or author account", _user_arguments)
def create_user_command(app: App, args: Any) -> int:
    username, email = args.username.strip().lower(), args.email.strip().lower()
    problems = []
    if not USERNAME_RE.match(username):
        problems.append("username: use 3 to 40 lower-case letters, digits, - or _")
    if not EMAIL_RE.match(email):
        problems.append("email: not an email address")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            problems.append("password: the two entries differ")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        problems.append(f"password: use {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    database = get_database(app)
    with database.write() as db:
        taken = db.scalar(
            select(User.id).where((User.username == username) | (User.email == email))
        )
        if taken is not None:
            problems.append("a user with that username or email exists")
        if problems:
            for problem in problems:
                print(f"create-user: {problem}", file=sys.stderr)
            return 2
        create_user(
            db,
            username=username,
            email=email,
            password=password,
            role=args.role,
            display_name=args.display_name,
        )
    print(f"Created {args.role} {username}.")
    return 0


def _rerender_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true", help="also posts already at this version")


@command(
    "rerender", "render every post's Markdown again with the current pipeline", _rerender_arguments
)
def rerender(app: App, args: Any) -> int:
    database = get_database(app)
    with database.read() as db:
        query = select(Post.id)
        if not args.all:
            query = query.where(Post.render_version != RENDERER_VERSION)
        ids = list(db.scalars(query))
    done, refused = 0, []
    for start in range(0, len(ids), 200):
        batch = ids[start : start + 200]
        with database.read() as db:
            sources = dict(
                db.execute(select(Post.id, Post.body_md).where(Post.id.in_(batch))).all()
            )
        renders = {}
        for post_id, body in sources.items():  # no transaction open while rendering
            try:
                renders[post_id] = render_post(body, app)
            except (RenderRefused, RenderTimeout) as problem:
                refused.append((post_id, str(problem)))
        done += write_renders(database, sources, renders)
    print(f"Re-rendered {done} post{'s' if done != 1 else ''} (pipeline v{RENDERER_VERSION}).")
    for post_id, problem in refused:
        print(f"rerender: post {post_id} kept its old HTML: {problem}", file=sys.stderr)
    return 1 if refused else 0


def write_renders(database: Any, sources: dict[int, str], renders: dict[int, Rendered]) -> int:
    """Store renders of posts whose Markdown is still what was rendered; give how many."""
    written = 0
    with database.write() as db:
        for post in db.scalars(select(Post).where(Post.id.in_(list(renders)))):
            if post.body_md != sources[post.id]:
                continue  # saved meanwhile: that save rendered it already
            render_onto(post, post.body_md, renders[post.id], own_summary(post))
            written += 1
    return written
