"""The Alembic revisions build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from desk.extensions import db
from desk.models import Base


def test_migrations_match_the_models(app: Flask) -> None:  # `app` ran `upgrade head`
    assert db.engine is not None
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; run `flask --app app db revision`: {diff}"
