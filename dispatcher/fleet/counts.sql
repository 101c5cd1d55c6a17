-- name: count_fleet
-- Count the devices, and those seen within online_within_s of now, into fleet_counts (one row).
INSERT INTO fleet_counts (total, online, online_within_s, counted_at)
SELECT count(*),
       count(*) FILTER (WHERE last_seen_at > %(now)s - make_interval(secs => %(online_within_s)s)),
       %(online_within_s)s, %(now)s
  FROM devices
ON CONFLICT (singleton) DO UPDATE
   SET total = excluded.total, online = excluded.online,
       online_within_s = excluded.online_within_s, counted_at = excluded.counted_at
RETURNING total, online, online_within_s, counted_at;

-- name: fleet_counts
-- The fleet numbers as last counted.
SELECT total, online, online_within_s, counted_at FROM fleet_counts;
