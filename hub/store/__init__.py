"""The hub's SQLite file: connection settings, the whole schema and its numbered migrations."""
