-- workload.sql - an SQL script for sqlite3 in tools/realprogs: table, index,
-- aggregates, updates and deletes on an in-memory database.
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
INSERT INTO t SELECT x, 'name' || x, x % 37, x * 1.5 FROM c;
CREATE INDEX t_grp ON t(grp);
SELECT grp, count(*), sum(val) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
SELECT group_concat(name, ',') FROM (SELECT name FROM t WHERE grp = 3 ORDER BY id LIMIT 10);
UPDATE t SET name = upper(name) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), max(length(name)) FROM t;
