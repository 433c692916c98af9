"""One enrolled customer for the hub-side API tests, written through the gallery as in use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.faces.gallery import Gallery
from hub.faces.template_crypto import TemplateCipher, load_or_create_key
from storesense.paths import template_key_path
from tests.consent import consent
from tests.hub.conftest import unit


def enrol_c1(conn: sqlite3.Connection, home: Path) -> None:
    gallery = Gallery(conn, TemplateCipher(load_or_create_key(template_key_path(home))))
    gallery.enrol("c1", "Ada Lovelace", consent("consent-ref-1"), [(unit(1), 0.9, "t")])
