-- A single-node tour of hdbrepl in the sqlite3 shell (run by `make demo`).
.headers on
.mode box
PRAGMA journal_mode=WAL;
SELECT repl_version() AS version, repl_node_name() AS node;

CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT INDEXED);
CREATE VIRTUAL TABLE owner USING hdbrepl(email TEXT PRIMARY KEY, dog_id INTEGER INDEXED);

-- One transaction across two tables: one change-log record.
BEGIN;
INSERT INTO dog VALUES (1, 'Harper', 'Labrador'), (2, 'Penny', 'Poodle'), (3, 'Kato', 'Labrador');
INSERT INTO owner VALUES ('kyle@example.com', 1);
COMMIT;

UPDATE dog SET name = 'Penny Lane' WHERE id = 2;
DELETE FROM dog WHERE id = 3;              -- leaves a tombstone
INSERT OR REPLACE INTO dog VALUES (4, 'Billy', 'Pug');

BEGIN;
INSERT INTO dog VALUES (5, 'Rolled', 'Back');
ROLLBACK;                                   -- leaves nothing, in data or log

SELECT * FROM dog ORDER BY id;
SELECT * FROM dog WHERE breed = 'Labrador';
EXPLAIN QUERY PLAN SELECT * FROM dog WHERE id = 2;

-- The change log: one row per committed transaction, decoded.
SELECT seq, repl_record_json(body) AS record FROM hdbrepl_log ORDER BY seq;
SELECT count(*) AS tombstones FROM dog_tomb;
