-- Blobs small enough to live in the database (store/sqlite/blobs.rs): written in a
-- commit that needs no wait for the disk, made durable by the power-safe commit of the
-- record that names them. Larger blobs stay files under the blob folder. Only SQLite
-- keeps blobs here.

CREATE TABLE blobs (
    hash  TEXT PRIMARY KEY NOT NULL,
    bytes BLOB NOT NULL
);
