# The reports benchmarks' data (scripts/bench-reports, scripts/bench-retention):
# ACCOUNTS accounts of 1,000 dialogs and 5,000 messages each over 90 days, with
# their CAPI events and ad spend, plus one account of 100,000 leads for the
# export. Usage (after lib.sh and bench_env): seed_reports_data DB ACCOUNTS CAPI_BIN
seed_reports_data() {
local BENCH_DB=$1 ACCOUNTS=$2 CAPI=$3
"$CAPI" migrate >/dev/null
log "seeding $ACCOUNTS accounts, $((ACCOUNTS * 1000)) dialogs, $((ACCOUNTS * 5000)) messages over 90 days"
SEED_STARTED=$(date +%s)
psql_db -d "$BENCH_DB" <<SQL
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';
INSERT INTO user_accounts (id, name, timezone)
  SELECT md5('acct' || a)::uuid, 'Account ' || a,
         (ARRAY['UTC', 'Europe/Moscow', 'Asia/Almaty', 'America/Sao_Paulo'])[1 + a % 4]
  FROM generate_series(0, $ACCOUNTS - 1) a;
INSERT INTO ad_accounts (id, user_account_id, name, meta_ad_account_id)
  SELECT md5('ad' || a)::uuid, md5('acct' || a)::uuid, 'Ads', 'act_' || a FROM generate_series(0, $ACCOUNTS - 1) a;
INSERT INTO account_directions (id, user_account_id, ad_account_id, name, capi_enabled, pixel_id)
  SELECT md5('d' || k || '-' || a)::uuid, md5('acct' || a)::uuid, CASE WHEN k = 1 THEN md5('ad' || a)::uuid END,
         CASE WHEN k = 1 THEN 'Cosmetology' ELSE 'Dentistry' END, k = 1, CASE WHEN k = 1 THEN '9' || a END
  FROM generate_series(0, $ACCOUNTS - 1) a, generate_series(1, 2) k;
INSERT INTO whatsapp_phone_numbers (instance_name, direction_id, webhook_secret, user_account_id)
  SELECT 'i' || k || '-' || a, md5('d' || k || '-' || a)::uuid, 'x', md5('acct' || a)::uuid
  FROM generate_series(0, $ACCOUNTS - 1) a, generate_series(1, 2) k;
-- Dialogs: 1,000 per account, started at random over 90 days, lasting up to 2 days.
-- 90 % of them from one of the account's 12 ads.
INSERT INTO dialog_analysis (id, instance_name, contact_key, first_message, last_message, interest_level, ad_id)
  SELECT md5('dlg' || a || '-' || k)::uuid, 'i' || (1 + k % 2) || '-' || a, k::text, f, least(f + random() * interval '2 days', now()),
         (ARRAY['hot', 'warm', 'cold', NULL])[1 + (k / 2) % 4],
         CASE WHEN k % 10 < 9 THEN (1000000 + a * 100 + k % 12)::text END
  FROM generate_series(0, $ACCOUNTS - 1) a, generate_series(0, 999) k,
       LATERAL (SELECT now() - random() * interval '90 days' + (a * 0 + k * 0) * interval '1 s' AS f) t;
-- Messages: 5 per dialog, bulk-loaded with the secondary indexes built afterwards.
ALTER TABLE dialog_messages DROP CONSTRAINT dialog_messages_instance_name_message_id_from_me_key;
DROP INDEX dialog_messages_dialog_idx;
DROP INDEX dialog_messages_by_arrival_idx;
INSERT INTO dialog_messages (dialog_id, instance_name, message_id, from_me, author, text, sent_at, received_at, response_ms)
  SELECT d.id, d.instance_name, d.contact_key || '-' || j, j % 2 = 1, CASE WHEN j % 2 = 1 THEN 'operator' ELSE 'customer' END,
         'message', t.at, t.at,
         CASE WHEN j % 2 = 1 THEN (random() * 600000)::int END
  FROM dialog_analysis d, generate_series(0, 4) j,
       LATERAL (SELECT d.first_message + (d.last_message - d.first_message) * (j / 4.0) AS at) t;
ALTER TABLE dialog_messages ADD CONSTRAINT dialog_messages_instance_name_message_id_from_me_key UNIQUE (instance_name, message_id, from_me);
CREATE INDEX dialog_messages_dialog_idx ON dialog_messages (dialog_id, sent_at);
CREATE INDEX dialog_messages_by_arrival_idx ON dialog_messages (instance_name, received_at);
-- CAPI events of the CAPI direction's dialogs: Lead for 80 %, Registration 24 %, Schedule 8 %.
INSERT INTO capi_events_log (dialog_id, direction_id, user_account_id, event_level, event_name, event_id, status, created_at)
  SELECT d.id, d.direction_id, u.user_account_id, l, 'e', d.id::text || '-' || l, 'success',
         d.first_message + l * interval '10 minutes'
  FROM dialog_analysis d JOIN account_directions u ON u.id = d.direction_id AND u.capi_enabled,
       generate_series(1, 3) l
  WHERE (l = 1 AND d.contact_key::int % 10 < 8) OR (l = 2 AND d.contact_key::int % 25 < 6) OR (l = 3 AND d.contact_key::int % 25 < 2);
-- Spend per ad and day: 3 campaigns × 2 ad sets × 2 ads per account.
INSERT INTO ad_spend (ad_account_id, spend_date, campaign_id, campaign_name, adset_id, adset_name, ad_id, ad_name, spend, currency)
  SELECT md5('ad' || a)::uuid, current_date - dd, 'c' || (x / 4), 'Campaign ' || (x / 4), 's' || (x / 2), 'Set ' || (x / 2),
         (1000000 + a * 100 + x)::text, 'Ad ' || x, round((1 + random() * 4)::numeric, 2), 'USD'
  FROM generate_series(0, $ACCOUNTS - 1) a, generate_series(0, 89) dd, generate_series(0, 11) x;
-- The export's account: 100,000 leads in the last 20 days.
INSERT INTO user_accounts (id, name, timezone) VALUES (md5('bulk')::uuid, 'Bulk', 'UTC');
INSERT INTO account_directions (id, user_account_id, name, capi_enabled) VALUES (md5('bulk-d')::uuid, md5('bulk')::uuid, 'Bulk', true);
INSERT INTO whatsapp_phone_numbers (instance_name, direction_id, webhook_secret, user_account_id)
  VALUES ('bulk', md5('bulk-d')::uuid, 'x', md5('bulk')::uuid);
INSERT INTO leads (id, instance_name, contact_key, name)
  SELECT md5('bulk-l' || k)::uuid, 'bulk', k::text, 'Customer ' || k FROM generate_series(1, 100000) k;
INSERT INTO dialog_analysis (instance_name, contact_key, contact_name, lead_id, first_message, last_message)
  SELECT 'bulk', k::text, 'Customer ' || k, md5('bulk-l' || k)::uuid, t, t
  FROM generate_series(1, 100000) k, LATERAL (SELECT now() - random() * interval '20 days' + k * interval '0 s' AS t) f;
VACUUM ANALYZE;
SQL
"$CAPI" migrate >/dev/null  # seals the credentials seeded above
log "seeded in $(( $(date +%s) - SEED_STARTED )) s: $(psql_db -d "$BENCH_DB" -c "SELECT (SELECT count(*) FROM dialog_analysis) || ' dialogs, ' || (SELECT count(*) FROM dialog_messages) || ' messages, ' || (SELECT count(*) FROM capi_events_log) || ' events'")"
}
