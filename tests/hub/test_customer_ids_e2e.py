"""An id that can be enrolled can be alerted on (issue 13, item 4), end to end.

Issue 13's trial: ``storesense enroll --customer R.4004`` and ``pos import`` accepted the id,
the alert schema did not; the customer walked in, the hub logged a ValidationError three times
and no phone rang. Here, for ids with each edge character of the one rule (``.`` inside, at
the end, ``-``, ``_``, a leading digit, the full 64 characters):

enrol with `storesense enroll` on real photos (real weights), import their purchases with
`storesense pos import`, start a real `storesense hub run` process on the real broker, walk
each one in (a camera publishes the FaceTrack of a different photo of that person, embedded
by the door's own pipeline), and a phone (``sim_phone``) gets each alert with the exact id.
The first customer's alert is then claimed and their card opened over the web channel (rpc
``login`` / ``claim`` / ``customer_view``), which carry the id again. The hub's log must hold
no ValidationError.
"""

from __future__ import annotations

import queue
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.entrance.face_pipeline import FacePipeline
from storesense import messages as m
from storesense import rpc
from storesense.config import parse_config
from storesense.face_models import DEFAULT_MODEL
from storesense.mqtt_client import connect, make_client
from storesense.paths import hub_db_path
from storesense.topics import Topics
from storesense_tools.cli import main
from storesense_tools.sim_phone import Phone
from tests.consent import consent_taker
from tests.hub.conftest import MOSQUITTO, _mosquitto_up
from tests.hub.hub_process import HubRunner

PASSWORD = "correct horse battery"
# id -> ORL subject; each subject's photos 1, 2 enrol, photo 5 walks in
CUSTOMERS = {
    "R.4004": "s3",  # the loyalty id: a dot inside
    "9-a_b.": "s4",  # leading digit, dash, underscore, a dot at the end
    "L." + "7" * 62: "s5",  # the full 64 characters
    "x.y.z": "s6",  # several dots
}


def _walk_in(pipeline: FacePipeline, photo: Path) -> m.FaceTrack:
    obs = pipeline.observations_from_image_file(photo)
    assert len(obs) == 1 and obs[0].embedding is not None and obs[0].quality.passed, photo
    o, now = obs[0], time.time()
    sample = m.EmbeddingSample(
        vector=o.embedding, quality=o.quality.score, face_px=60.0, sharpness=100.0,
        frontalness=0.95, t=now,
    )  # fmt: skip
    # the same capture twice (two frames of one pose), as the edge sends a still customer
    second = sample.model_copy(update={"t": now + 0.1})
    return m.FaceTrack(
        model=DEFAULT_MODEL,camera_id="door-1", track_id=uuid.uuid4().hex, update=0, final=True,
                       first_usable_at=now, samples=[sample, second])  # fmt: skip


def _ask(web: mqtt.Client, topics: Topics, web_id: str, replies: queue.Queue, op: rpc.Op,
         args: dict) -> rpc.Reply:  # fmt: skip
    req = rpc.new_request(op, args)
    web.publish(topics.rpc_request(web_id), req.to_bytes(), qos=1).wait_for_publish(5)
    while True:
        reply: rpc.Reply = replies.get(timeout=10)
        if reply.request_id == req.request_id:
            return reply


def test_each_edge_character_enrolled_imported_walked_in_and_alerted(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not _mosquitto_up():
        pytest.fail("Mosquitto is not listening on 127.0.0.1:1883 (.ci/run starts it)")
    cfg = parse_config(f"store_id: e{uuid.uuid4().hex[:10]}\nmqtt: {{port: {MOSQUITTO[1]}}}\n")
    topics = Topics(cfg.store_id)
    home = tmp_path / "home"
    home.mkdir()
    orl = shared_data / "faces" / "orl"

    # enrol (CLI, real photos), with a real consent taker; import purchases (CLI)
    assert main(["--home", str(home), "db", "migrate"]) == 0
    consent_taker(hub_db_path(home), "bob")
    for cid, subject in CUSTOMERS.items():
        photos = [str(orl / subject / f"{i}.pgm") for i in (1, 2)]
        assert main(["--home", str(home), "enroll", "--customer", cid, "--name",
                     f"Customer {subject}", "--consent", f"form-{subject}", "--staff", "bob",
                     *photos]) == 0, cid  # fmt: skip
    csv = tmp_path / "pos.csv"
    csv.write_text(
        "invoice_no,sku,description,quantity,invoiced_at,unit_price,customer_id,country\n"
        + "".join(
            f"INV-{i},SKU{i},Thing {i},2,2024-03-01T10:{i:02d}:00,1.50,{cid},UK\n"
            for i, cid in enumerate(CUSTOMERS)
        )
        + "INV-99,SKU9,Thing,1,2024-03-01T11:00:00,1.00,bad/id,UK\n"
    )
    assert main(["--home", str(home), "pos", "import", "--csv", str(csv), "--format", "generic",
                 "--max-errors", "1", "--no-progress"]) == 0  # fmt: skip
    imported = capsys.readouterr()
    assert "skipped line 6: invalid customer id 'bad/id'" in imported.err  # counted, named
    assert f"{len(CUSTOMERS)} invoices" in imported.out and "1 bad rows" in imported.out

    # the hub (its own process), a phone, a camera, a web instance
    status: list[m.HubStatus] = []
    watcher = make_client(f"watch-{cfg.store_id}", cfg.mqtt, persistent=False)
    watcher.on_message = lambda c, u, msg: status.append(m.decode(msg.payload, m.HubStatus))
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.hub_status, 1)
    connect(watcher, cfg.mqtt)
    runner = HubRunner(home, cfg, tmp_path, status)
    hub = runner.start()
    phone = Phone("bob", topics, cfg.mqtt).start()
    camera = make_client(f"cam-{cfg.store_id}", cfg.mqtt)
    connect(camera, cfg.mqtt)
    web_id = f"web-{uuid.uuid4().hex[:8]}"
    replies: queue.Queue[rpc.Reply] = queue.Queue()
    web = make_client(web_id, cfg.mqtt, persistent=False)
    web.on_message = lambda c, u, msg: replies.put(rpc.decode_reply(bytes(msg.payload)))
    web.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.rpc_reply(web_id), 1)
    connect(web, cfg.mqtt)
    try:
        pipeline = FacePipeline()
        for cid, subject in CUSTOMERS.items():
            track = _walk_in(pipeline, orl / subject / "5.pgm")
            camera.publish(topics.faces("door-1"), track.to_bytes(), qos=1).wait_for_publish(5)
            assert phone.wait_for(
                lambda p, cid=cid: cid in {a.customer_id for a in p.open_alerts()}, 15
            ), f"no alert on the phone for {cid!r}"
        alerts = {a.customer_id: a for a in phone.open_alerts()}
        assert set(alerts) == set(CUSTOMERS)
        assert alerts["R.4004"].customer_name == "Customer s3"

        # claim it and open the card over the web channel: the id travels back and forth
        time.sleep(0.3)  # the reply subscription is in place
        login = _ask(web, topics, web_id, replies, "login",
                     {"staff_id": "bob", "password": PASSWORD, "client": "e2e"})  # fmt: skip
        assert login.status == 200, login.detail
        token, csrf = login.result["token"], login.result["session"]["csrf_token"]
        alert_id = alerts["R.4004"].alert_id
        args = {"token": token, "csrf": csrf, "alert_id": alert_id, "action": "claim"}
        claim = _ask(web, topics, web_id, replies, "claim", args)
        assert claim.status == 200, claim.detail
        assert (claim.result["outcome"], claim.result["customer_id"]) == ("won", "R.4004")
        view = _ask(web, topics, web_id, replies, "customer_view",
                    {"token": token, "customer_id": "R.4004", "alert_id": alert_id})  # fmt: skip
        assert view.status == 200, view.detail
        card = view.result["card"]
        assert (card["customer_id"], card["enrolled"]) == ("R.4004", True)
        assert card["recent_baskets"], "the imported purchase is on the card"
    finally:
        for client in (camera, web, watcher):
            client.disconnect()
            client.loop_stop()
        phone.stop()
        hub.terminate()
        hub.wait(15)
    log = "".join(p.read_text() for p in runner.logs)
    assert "ValidationError" not in log and "Traceback" not in log, log[-3000:]
