"""paho-mqtt client construction shared by the edge agent, the hub and the demo phones.

Everything speaks MQTT 3.1.1 (the embedded amqtt broker and Mosquitto both do) with persistent
sessions where losing a message matters, so a reconnect resumes QoS 1 deliveries.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any, cast

import paho.mqtt.client as mqtt

from storesense.config import MqttConfig

if TYPE_CHECKING:
    from paho.mqtt.client import CallbackOnConnect_v2, ConnectFlags
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)


class MqttConnectError(RuntimeError):
    """The broker could not be reached or refused us; the message says which and where."""


def make_client(
    client_id: str,
    cfg: MqttConfig,
    *,
    persistent: bool = True,
    manual_ack: bool = False,
    will: tuple[str, bytes] | None = None,
) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=not persistent,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls_ca:
        client.tls_set(ca_certs=str(cfg.tls_ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.on_socket_open = _no_delay
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    # Never drop queued QoS 1 publishes while the broker is away (paho's default caps at 0=∞).
    client.max_queued_messages_set(0)
    return client


def _no_delay(client: mqtt.Client, userdata: object, sock: object) -> None:
    """TCP_NODELAY: our packets are tiny and latency-bound (a claim, then the alert state);
    with Nagle's algorithm the second of two back-to-back writes waits for the broker's
    delayed ACK, ~40 ms on Linux (measured: bench/phones_claim_latency.py)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect(client: mqtt.Client, cfg: MqttConfig, *, timeout_s: float = 10.0) -> None:
    """Connect, start the network thread and wait for CONNACK, with a clear error on failure."""
    connected = threading.Event()
    failure: list[str] = []
    # make_client builds every client with CallbackAPIVersion.VERSION2, so a callback already
    # set has the v2 signature; paho's property type is the union of all three API versions.
    previous = cast("CallbackOnConnect_v2 | None", client.on_connect)

    def on_connect(
        c: mqtt.Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            failure.append(str(reason_code))
        connected.set()
        if previous is not None:
            previous(c, userdata, flags, reason_code, properties)

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    except OSError as exc:
        raise MqttConnectError(f"cannot reach MQTT broker {cfg.host}:{cfg.port}: {exc}") from None
    client.loop_start()
    if not connected.wait(timeout_s):
        client.loop_stop()
        raise MqttConnectError(f"no answer from MQTT broker {cfg.host}:{cfg.port} in {timeout_s}s")
    client.on_connect = previous
    if failure:
        client.loop_stop()
        raise MqttConnectError(f"MQTT broker {cfg.host}:{cfg.port} refused us: {failure[0]}")


def connect_in_background(client: mqtt.Client, cfg: MqttConfig) -> None:
    """Start connecting and return at once; paho keeps retrying while the broker is away.

    For nodes that must work through a broker outage (cameras): their messages wait in the
    store-and-forward outbox instead of the process failing at start-up.
    """
    client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    client.loop_start()
