"""The web process: the salespeople's phone app, the manager page and the POS webhook.

``hub.web.app.create_app(cfg)`` builds the FastAPI application. It is a stateless gateway: it
has no database, no template key and no hub MQTT credentials, and imports only itself and the
contract (``storesense``; tests/test_layers.py checks it). Its one channel to the hub is MQTT
(the ``phone-gateway`` account): requests with a deadline (``storesense.rpc``) for everything
it shows or changes, and the retained alert topics it relays to phones over WebSockets.
"""
