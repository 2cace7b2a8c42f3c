-- Cost attribution of {{ cookiecutter.project_slug }}: DBUs and list cost per day, environment, cost center, owner
-- and product, from the billing system tables. Every job and job cluster of the bundle carries the tags
-- project, cost_center, env and owner (bundle-check enforces it), so nothing here needs job ids.
-- Parameters: :project (the project tag) and :days (how far back). Needs SELECT on system.billing.
SELECT
  u.usage_date,
  u.custom_tags['project'] AS project,
  u.custom_tags['cost_center'] AS cost_center,
  u.custom_tags['env'] AS env,
  u.custom_tags['owner'] AS owner,
  u.billing_origin_product AS product,
  SUM(u.usage_quantity) AS dbus,
  SUM(u.usage_quantity * p.pricing.default) AS list_cost
FROM system.billing.usage AS u
LEFT JOIN system.billing.list_prices AS p
  ON u.sku_name = p.sku_name
  AND u.cloud = p.cloud
  AND u.usage_unit = p.usage_unit
  AND u.usage_start_time >= p.price_start_time
  AND (p.price_end_time IS NULL OR u.usage_start_time < p.price_end_time)
WHERE u.custom_tags['project'] = :project
  AND u.usage_date >= date_sub(current_date(), CAST(:days AS INT))
GROUP BY ALL
ORDER BY u.usage_date, env, product
