"""The WSGI entry point: ``flask --app app run`` in development, ``gunicorn app:app`` in
production (see README for the recommended gunicorn command).

The settings file (``.env``, or ``DESK_ENV_FILE``) is read first, for gunicorn as for the
``flask`` command; variables already set in the environment win.
"""

from desk import create_app
from desk.settings import load_env_file

load_env_file()
app = create_app()
