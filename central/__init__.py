"""The chain's central office: one service over many store hubs, on PostgreSQL (docs/chain.md).

A room of its own beside ``hub`` and ``edge``: it imports only the contract (``storesense``),
and ``storesense_tools`` composes it (``storesense central run|migrate|bridge-config``). It
reads what the stores' bridges forward to the central broker and applies each message once.
"""
