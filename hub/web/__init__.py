"""The hub's HTTP side: the salespeople's phone app, the manager page and the POS webhook.

``hub.web.app.create_app(cfg, home)`` builds the FastAPI application. The app is its own MQTT
client (the ``phone-gateway`` account): it bridges the retained alert topics to phones over
WebSockets and turns button presses into ``claim_request`` messages, so the claim
arbitration stays in the hub daemon and this package never writes an alert's state.
Importing this package is cheap (no FastAPI): ``hub.store.db`` imports ``hub.web.schema``.
"""
