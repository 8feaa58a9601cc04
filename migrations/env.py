"""Alembic environment: migrates the database ``flask --app app db upgrade`` points it at.

The URL comes from the caller (``desk.cli.alembic_config``) or, when Alembic is run
directly, from ``DESK_DATABASE_URL`` through the desk's own settings loader.
"""

from alembic import context

from desk.db import make_engine
from desk.models import Base

config = context.config
url: str = config.attributes.get("url") or ""
if not url:
    from desk.settings import load_settings

    url = load_settings({"TESTING": True})["DESK_DATABASE_URL"]


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
