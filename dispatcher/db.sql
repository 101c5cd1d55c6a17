-- name: ping
-- PostgreSQL answers.
SELECT 1;
