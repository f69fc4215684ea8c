"""LIVE_DATABASE_URL: how a PostgreSQL URL becomes connection parameters (no server needed: the pool connects lazily)."""
import pytest

from app.db import connect_database
from app.errors import ConfigError


def test_percent_encoded_credentials_and_database_are_decoded():
    db = connect_database("postgresql://li%40ve:p%40ss%3Aw%2Frd@127.0.0.1:5433/my%20db")
    assert db.database == "my db"
    assert db.connect_params["user"] == "li@ve"
    assert db.connect_params["password"] == "p@ss:w/rd"
    assert db.connect_params["host"] == "127.0.0.1"
    assert db.connect_params["port"] == 5433


def test_plain_credentials_are_kept_and_postgres_scheme_accepted():
    db = connect_database("postgres://live:secret@db.example:5432/live")
    assert (db.database, db.connect_params["user"], db.connect_params["password"]) == ("live", "live", "secret")


def test_an_unreadable_url_names_the_setting():
    with pytest.raises(ConfigError, match="LIVE_DATABASE_URL"):
        connect_database("postgresql://live:secret@db.example:notaport/live")
