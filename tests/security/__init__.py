"""Security tests: each attack a table of hostile inputs, in process and over a real gunicorn."""
