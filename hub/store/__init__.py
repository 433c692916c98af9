"""The hub's SQLite file: connection settings, the whole schema as numbered migrations
(``migrations/``), which room owns which table (``tables``), and the audit chain's primitives
the schema-3 migration needs (``chain``). It imports no other room."""
