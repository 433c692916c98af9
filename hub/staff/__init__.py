"""Staff accounts, login sessions and the login throttle: the hub's own persistence for them.

Only the hub process (its worker thread, through ``hub.api``) and the admin CLI
(``storesense staff add``) call this room; the web process never sees a password hash or a
session row, it only passes the phone's cookie token on to the hub.
"""
