"""The WSGI entry point: ``flask --app app run`` in development, ``gunicorn app:app`` in
production (see README for the recommended gunicorn command)."""

from desk import create_app

app = create_app()
