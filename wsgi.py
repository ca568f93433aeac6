"""WSGI entry point for gunicorn and friends: `gunicorn wsgi:app`. Serves HTTP only."""

from nurture.app import create_app

app = create_app()
