"""PyProject: a small, fast, safe, server-rendered blog on its own WSGI framework.

``pyproject.app.create_app`` wires it together; ``pyproject.lib`` is the framework (it
knows nothing of blogs) and ``pyproject.blog`` everything that knows what a post is.
"""

__version__ = "0.1.0"
