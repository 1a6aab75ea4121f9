"""The blog: everything that knows what a post is, one module per area, on pyproject.lib.

db, models, migrate, caching, markup and rendering serve every area; auth, posts,
editor, revisions, trash, search, feeds, api and site each own their routes, queries
and form handling, registered by ``pyproject.app.create_app``.
"""
