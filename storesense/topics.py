"""The only place MQTT topic strings are built or parsed (docs/mqtt.md documents each one).

Tree: ``storesense/v1/<store>/…``. The rest of the program asks this module for a topic and
never formats one itself, so a rename here is a rename everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "storesense/v1"
# The central office's tree (docs/chain.md): each store's bridge remaps its local
# ``storesense/v1/<store>/chain/…`` to ``chain/v1/<store>/…`` on the central broker, whose ACL
# lets a store's account write only under its own id.
CHAIN_ROOT = "chain/v1"


@dataclass(frozen=True)
class Topics:
    store_id: str

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.store_id}"

    # edge → hub
    def faces(self, camera_id: str) -> str:
        return f"{self.base}/edge/{camera_id}/faces"

    def edge_status(self, camera_id: str) -> str:
        return f"{self.base}/edge/{camera_id}/status"

    @property
    def all_faces(self) -> str:
        return f"{self.base}/edge/+/faces"

    @property
    def all_edge_status(self) -> str:
        return f"{self.base}/edge/+/status"

    def floor(self, camera_id: str) -> str:
        return f"{self.base}/edge/{camera_id}/floor"

    @property
    def all_floor(self) -> str:
        return f"{self.base}/edge/+/floor"

    # hub → phones
    def alert(self, alert_id: str) -> str:
        return f"{self.base}/alerts/{alert_id}"

    @property
    def all_alerts(self) -> str:
        return f"{self.base}/alerts/+"

    @staticmethod
    def alert_in_any_store(alert_id: str) -> str:
        """The subscription pattern of one alert's topic whichever store sent it: erasure
        clears an alert's retained message without knowing the store it was raised in."""
        return f"{ROOT}/+/alerts/{alert_id}"

    def claim_result(self, staff_id: str) -> str:
        return f"{self.base}/staff/{staff_id}/result"

    # phones → hub
    def claims(self, staff_id: str) -> str:
        return f"{self.base}/claims/{staff_id}"

    @property
    def all_claims(self) -> str:
        return f"{self.base}/claims/+"

    # web process ⇄ hub (storesense.rpc): one request and one reply topic per web instance;
    # the hub answers on the reply topic of the request's topic, never one named in a payload
    def rpc_request(self, web_id: str) -> str:
        return f"{self.base}/rpc/{web_id}/request"

    def rpc_reply(self, web_id: str) -> str:
        return f"{self.base}/rpc/{web_id}/reply"

    @property
    def all_rpc_requests(self) -> str:
        return f"{self.base}/rpc/+/request"

    @property
    def hub_status(self) -> str:
        return f"{self.base}/hub/status"

    @property
    def node_health(self) -> str:
        return f"{self.base}/hub/nodes"

    # hub → central office, through the store broker's bridge (storesense.chain_messages)
    # every store's local chain topics (a hub's outbox holds its own only)
    any_store_chain = f"{ROOT}/+/chain/+"

    def chain(self, kind: str) -> str:
        return f"{self.base}/chain/{kind}"

    @property
    def chain_prefix(self) -> str:
        """The local prefix the bridge forwards (and strips): ``…/<store>/chain/``."""
        return f"{self.base}/chain/"

    @property
    def chain_down_prefix(self) -> str:
        """Where the bridge maps the central office's messages for this store in:
        ``…/<store>/chain-down/`` (not under ``chain/``: the out direction must not loop them)."""
        return f"{self.base}/chain-down/"

    def chain_down(self, kind: str) -> str:
        return f"{self.chain_down_prefix}{kind}"

    @property
    def all_chain_down(self) -> str:
        return f"{self.chain_down_prefix}+"

    def segment(self, topic: str, index_from_base: int) -> str | None:
        """The n-th level after ``storesense/v1/<store>/``; None if the topic is not ours."""
        prefix = self.base + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        return parts[index_from_base] if index_from_base < len(parts) else None


class ChainTopics:
    """The central broker's side of the tree: ``chain/v1/<store>/<kind>``."""

    all_stores = f"{CHAIN_ROOT}/+/+"

    @staticmethod
    def store_prefix(store_id: str) -> str:
        """What the bridge puts in front of a forwarded topic (and the store's ACL tree)."""
        return f"{CHAIN_ROOT}/{store_id}/"

    @staticmethod
    def store_tree(store_id: str) -> str:
        return f"{CHAIN_ROOT}/{store_id}/#"

    @staticmethod
    def store_kinds(store_id: str) -> str:
        """What a store may write: one level under its id (not its ``down/`` tree)."""
        return f"{CHAIN_ROOT}/{store_id}/+"

    @staticmethod
    def down_prefix(store_id: str) -> str:
        """The central office's messages for one store: ``chain/v1/<store>/down/<kind>``."""
        return f"{CHAIN_ROOT}/{store_id}/down/"

    @staticmethod
    def down(store_id: str, kind: str) -> str:
        return f"{CHAIN_ROOT}/{store_id}/down/{kind}"

    all_down = f"{CHAIN_ROOT}/+/down/+"

    @staticmethod
    def of(store_id: str, kind: str) -> str:
        return f"{CHAIN_ROOT}/{store_id}/{kind}"

    @staticmethod
    def parse(topic: str) -> tuple[str, str] | None:
        """(store id, kind) of a central topic; None if it is not ``chain/v1/<store>/<kind>``."""
        prefix = CHAIN_ROOT + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 2 or not all(parts):
            return None
        return parts[0], parts[1]
