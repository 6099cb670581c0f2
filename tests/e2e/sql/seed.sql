-- Demo billing schema for the end-to-end pipeline tests (tap-postgres -> target-chartmogul).
-- Amounts are integer cents (bigint). Streams tap-postgres makes of it:
--   billing-plans, billing-customers, billing-invoices_with_lines (a view: invoices with
--   their line items and payments nested as JSON arrays), billing-refunds.
-- The base tables invoices, invoice_line_items and payments are not streamed themselves.
SET client_min_messages = warning;
SET TIME ZONE 'UTC';
CREATE SCHEMA billing;
SET search_path = billing;

CREATE TABLE plans (
    external_id    text PRIMARY KEY,
    name           text NOT NULL,
    interval_count integer NOT NULL,
    interval_unit  text NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE customers (
    external_id text PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    country     text,
    city        text,
    seats       integer,      -- custom attribute (Integer)
    segment     text,         -- custom attribute (String)
    tags        text[],
    updated_at  timestamptz NOT NULL
);

CREATE TABLE invoices (
    external_id          text PRIMARY KEY,
    customer_external_id text NOT NULL REFERENCES customers,
    date                 timestamptz NOT NULL,
    currency             text NOT NULL,
    due_date             date,
    updated_at           timestamptz NOT NULL
);

CREATE TABLE invoice_line_items (
    external_id              text PRIMARY KEY,
    invoice_external_id      text NOT NULL REFERENCES invoices,
    position                 integer NOT NULL,
    type                     text NOT NULL,            -- subscription | one_time
    plan_external_id         text REFERENCES plans,
    subscription_external_id text,
    service_period_start     timestamptz,
    service_period_end       timestamptz,
    quantity                 integer NOT NULL DEFAULT 1,
    amount_in_cents          bigint NOT NULL,
    discount_amount_in_cents bigint NOT NULL DEFAULT 0,
    tax_amount_in_cents      bigint NOT NULL DEFAULT 0,
    description              text
);

CREATE TABLE payments (
    external_id         text PRIMARY KEY,
    invoice_external_id text NOT NULL REFERENCES invoices,
    type                text NOT NULL DEFAULT 'payment',
    result              text NOT NULL,
    date                timestamptz NOT NULL,
    amount_in_cents     bigint NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE TABLE refunds (
    external_id         text PRIMARY KEY,
    invoice_external_id text NOT NULL REFERENCES invoices,
    type                text NOT NULL DEFAULT 'refund',
    result              text NOT NULL,
    date                timestamptz NOT NULL,
    amount_in_cents     bigint NOT NULL,
    updated_at          timestamptz NOT NULL
);

-- One row per invoice; line items and payments as JSON arrays (json_agg), which is the
-- shape target-chartmogul's invoices object expects.
CREATE VIEW invoices_with_lines AS
SELECT
    i.external_id,
    i.customer_external_id,
    i.date,
    i.currency,
    i.due_date,
    (SELECT json_agg(json_build_object(
                'external_id', li.external_id,
                'type', li.type,
                'plan_external_id', li.plan_external_id,
                'subscription_external_id', li.subscription_external_id,
                'service_period_start', li.service_period_start,
                'service_period_end', li.service_period_end,
                'quantity', li.quantity,
                'amount_in_cents', li.amount_in_cents,
                'discount_amount_in_cents', li.discount_amount_in_cents,
                'tax_amount_in_cents', li.tax_amount_in_cents,
                'description', li.description) ORDER BY li.position)
       FROM invoice_line_items li
      WHERE li.invoice_external_id = i.external_id) AS line_items,
    (SELECT json_agg(json_build_object(
                'external_id', p.external_id,
                'type', p.type,
                'result', p.result,
                'date', p.date,
                'amount_in_cents', p.amount_in_cents) ORDER BY p.date, p.external_id)
       FROM payments p
      WHERE p.invoice_external_id = i.external_id) AS transactions,
    i.updated_at
FROM invoices i;

INSERT INTO plans VALUES
    ('pl_basic', 'Basic (monthly)', 1, 'month', '2024-01-01 09:00:00+00'),
    ('pl_pro',   'Pro (yearly)',    1, 'year',  '2024-01-01 09:05:00+00');

INSERT INTO customers VALUES
    ('cus_001', 'Acme GmbH',      'billing@acme.example',   'DE', 'Berlin',    12, 'smb',        '{vip,EU}',   '2024-01-02 10:00:00+00'),
    ('cus_002', 'Globex Corp',    'ap@globex.example',      'US', 'Springfield', 250, 'enterprise', '{us}',     '2024-01-02 10:01:00+00'),
    ('cus_003', 'Initech',        'finance@initech.example','US', 'Austin',     40, 'mid-market', '{}',         '2024-01-02 10:02:00+00'),
    ('cus_004', 'Umbrella Ltd',   'accounts@umbrella.example','GB','London',     5, 'smb',        '{trial,uk}', '2024-01-02 10:03:00+00'),
    ('cus_005', 'Stark Industries','pay@stark.example',     'FR', 'Paris',    NULL, NULL,         NULL,         '2024-01-02 10:04:00+00');

INSERT INTO invoices VALUES
    ('inv_001', 'cus_001', '2024-01-05 00:00:00+00', 'EUR', '2024-01-19', '2024-01-05 01:00:00+00'),
    ('inv_002', 'cus_001', '2024-02-05 00:00:00+00', 'EUR', '2024-02-19', '2024-02-05 01:00:00+00'),
    ('inv_003', 'cus_002', '2024-01-10 00:00:00+00', 'USD', '2024-02-09', '2024-01-10 01:00:00+00'),
    ('inv_004', 'cus_003', '2024-01-12 00:00:00+00', 'USD', NULL,         '2024-01-12 01:00:00+00'),
    ('inv_005', 'cus_003', '2024-02-12 00:00:00+00', 'USD', NULL,         '2024-02-12 01:00:00+00'),
    ('inv_006', 'cus_004', '2024-01-15 00:00:00+00', 'GBP', '2024-01-29', '2024-01-15 01:00:00+00'),
    ('inv_007', 'cus_005', '2024-01-20 00:00:00+00', 'EUR', '2024-02-03', '2024-01-20 01:00:00+00'),
    ('inv_008', 'cus_005', '2024-02-20 00:00:00+00', 'EUR', '2024-03-05', '2024-02-20 01:00:00+00');

INSERT INTO invoice_line_items
    (external_id, invoice_external_id, position, type, plan_external_id, subscription_external_id,
     service_period_start, service_period_end, quantity, amount_in_cents, discount_amount_in_cents,
     tax_amount_in_cents, description)
VALUES
    ('li_001', 'inv_001', 1, 'subscription', 'pl_basic', 'sub_001', '2024-01-05+00', '2024-02-05+00', 12,  11880, 0,    2257, NULL),
    ('li_002', 'inv_001', 2, 'one_time',     NULL,       NULL,      NULL,            NULL,             1,   5000,  500,  855,  'Onboarding'),
    ('li_003', 'inv_002', 1, 'subscription', 'pl_basic', 'sub_001', '2024-02-05+00', '2024-03-05+00', 12,  11880, 0,    2257, NULL),
    ('li_004', 'inv_003', 1, 'subscription', 'pl_pro',   'sub_002', '2024-01-10+00', '2025-01-10+00', 250, 2490000, 249000, 0, NULL),
    ('li_005', 'inv_004', 1, 'subscription', 'pl_basic', 'sub_003', '2024-01-12+00', '2024-02-12+00', 40,  39600, 0,    0,    NULL),
    ('li_006', 'inv_005', 1, 'subscription', 'pl_basic', 'sub_003', '2024-02-12+00', '2024-03-12+00', 40,  39600, 0,    0,    NULL),
    ('li_007', 'inv_005', 2, 'one_time',     NULL,       NULL,      NULL,            NULL,             1,   25000, 0,    0,    'Training day'),
    ('li_008', 'inv_006', 1, 'subscription', 'pl_basic', 'sub_004', '2024-01-15+00', '2024-02-15+00', 5,   4950,  0,    990,  NULL),
    ('li_009', 'inv_007', 1, 'subscription', 'pl_pro',   'sub_005', '2024-01-20+00', '2025-01-20+00', 1,   99000, 9900, 17820, NULL),
    ('li_010', 'inv_008', 1, 'one_time',     NULL,       NULL,      NULL,            NULL,             3,   1500,  0,    285,  'Extra storage');

INSERT INTO payments VALUES
    ('pay_001', 'inv_001', 'payment', 'successful', '2024-01-06 12:00:00+00', 18492,   '2024-01-06 12:00:00+00'),
    ('pay_002', 'inv_002', 'payment', 'successful', '2024-02-06 12:00:00+00', 14137,   '2024-02-06 12:00:00+00'),
    ('pay_003', 'inv_003', 'payment', 'failed',     '2024-01-11 12:00:00+00', 2241000, '2024-01-11 12:00:00+00'),
    ('pay_004', 'inv_003', 'payment', 'successful', '2024-01-12 12:00:00+00', 2241000, '2024-01-12 12:00:00+00'),
    ('pay_005', 'inv_004', 'payment', 'successful', '2024-01-13 12:00:00+00', 39600,   '2024-01-13 12:00:00+00'),
    ('pay_006', 'inv_006', 'payment', 'successful', '2024-01-16 12:00:00+00', 5940,    '2024-01-16 12:00:00+00'),
    ('pay_007', 'inv_007', 'payment', 'successful', '2024-01-21 12:00:00+00', 106920,  '2024-01-21 12:00:00+00');

INSERT INTO refunds VALUES
    ('ref_001', 'inv_001', 'refund', 'successful', '2024-01-20 12:00:00+00', 5355,  '2024-01-20 12:00:00+00'),
    ('ref_002', 'inv_007', 'refund', 'successful', '2024-02-01 12:00:00+00', 53460, '2024-02-01 12:00:00+00');
