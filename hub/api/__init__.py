"""The hub's side of the web process's one channel (``storesense.rpc`` over MQTT).

``hub.service`` subscribes ``rpc/+/request`` and hands each request to its single worker
thread, which calls ``hub.api.dispatch.Api.handle``: the deadline is checked first (a request
past it is refused, never applied later), then the op goes to the room that owns the data
(``hub.staff`` for logins and sessions, ``hub.alerts.claims`` for claims, ``hub.shop`` for the
customer card and the POS webhook, ``hub.privacy`` for erasure and audited views,
``hub.floor.report`` for report files). Authorisation happens here, on the hub: every op but
login and the POS webhook carries the phone's session token, and the POS op the till's
bearer token; the web process holds no authority of its own.
"""
