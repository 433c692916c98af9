-- Floor cameras' self-check (hub/floor/camera_trust.py): per camera and day, how many counted
-- person-frames fell in each person pixel-height band (storesense.messages
-- FLOOR_HEIGHT_BANDS_PX, by band index), summed from FloorPositions.height_counts. Agents
-- from before the field send none, and simply have no rows. Owned by the floor room.
CREATE TABLE floor_camera_heights (
    camera_id TEXT NOT NULL,
    day       TEXT NOT NULL,
    band      INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (camera_id, day, band)
) WITHOUT ROWID;
