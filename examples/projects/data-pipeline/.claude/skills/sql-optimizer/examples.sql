-- Before: correlated subquery, one index scan per order
SELECT o.id, (SELECT max(p.paid_at) FROM payments p WHERE p.order_id = o.id) AS last_paid
FROM orders o;

-- After: one aggregate, one hash join
SELECT o.id, p.last_paid
FROM orders o
LEFT JOIN (SELECT order_id, max(paid_at) AS last_paid FROM payments GROUP BY order_id) p
  ON p.order_id = o.id;
