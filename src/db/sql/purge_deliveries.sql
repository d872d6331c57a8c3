-- Delivered and failed webhook deliveries last changed before ?1, oldest first, ?2 at most.
DELETE FROM webhook_deliveries WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE status != 'pending' AND updated_at < ?1 ORDER BY updated_at LIMIT ?2)
