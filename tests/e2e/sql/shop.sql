-- A typical billing schema with no view: invoice headers, invoice lines and payments in
-- three tables, amounts as numeric(12,2) in currency units (99.90), as billing databases keep
-- them. tap-postgres makes streams shop-plans, shop-customers, shop-invoices,
-- shop-invoice_lines and shop-payments of it; target-chartmogul assembles the invoices.
SET client_min_messages = warning;
SET TIME ZONE 'UTC';
CREATE SCHEMA shop;
SET search_path = shop;

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
    updated_at  timestamptz NOT NULL
);

CREATE TABLE invoices (
    external_id          text PRIMARY KEY,
    customer_external_id text NOT NULL REFERENCES customers,
    date                 timestamptz NOT NULL,
    currency             text NOT NULL,
    due_date             date,
    status               text NOT NULL DEFAULT 'open',   -- open | paid | voided | written_off
    updated_at           timestamptz NOT NULL
);

CREATE TABLE invoice_lines (
    external_id              text PRIMARY KEY,
    invoice_external_id      text NOT NULL REFERENCES invoices,
    type                     text NOT NULL,            -- subscription | one_time
    plan_external_id         text REFERENCES plans,
    subscription_external_id text,
    service_period_start     timestamptz,
    service_period_end       timestamptz,
    prorated                 boolean,
    quantity                 integer NOT NULL DEFAULT 1,
    amount                   numeric(12,2) NOT NULL,   -- currency units; negative: a proration credit
    description              text,
    updated_at               timestamptz NOT NULL
);

CREATE TABLE payments (
    external_id         text PRIMARY KEY,
    invoice_external_id text NOT NULL REFERENCES invoices,
    type                text NOT NULL DEFAULT 'payment',   -- payment | refund
    result              text NOT NULL,
    date                timestamptz NOT NULL,
    amount              numeric(12,2) NOT NULL,
    updated_at          timestamptz NOT NULL
);

INSERT INTO plans VALUES
    ('pl_basic', 'Basic (monthly)', 1, 'month', '2024-01-01 09:00:00+00'),
    ('pl_pro',   'Pro (monthly)',   1, 'month', '2024-01-01 09:05:00+00');

INSERT INTO customers VALUES
    ('cus_001', 'Acme GmbH',   'billing@acme.example',  'DE', '2024-01-02 10:00:00+00'),
    ('cus_002', 'Globex Corp', 'ap@globex.example',     'US', '2024-01-02 10:01:00+00'),
    ('cus_003', 'Kaisha KK',   'keiri@kaisha.example',  'JP', '2024-01-02 10:02:00+00');

INSERT INTO invoices VALUES
    ('inv_001', 'cus_001', '2024-01-05 00:00:00+00', 'EUR', '2024-01-19', 'paid', '2024-01-05 01:00:00+00'),
    ('inv_002', 'cus_001', '2024-02-05 00:00:00+00', 'EUR', '2024-02-19', 'paid', '2024-02-05 01:00:00+00'),
    ('inv_003', 'cus_002', '2024-01-10 00:00:00+00', 'USD', NULL,         'paid', '2024-01-10 01:00:00+00'),
    ('inv_004', 'cus_002', '2024-02-10 00:00:00+00', 'USD', NULL,         'open', '2024-02-10 01:00:00+00'),
    ('inv_005', 'cus_003', '2024-01-15 00:00:00+00', 'JPY', NULL,         'paid', '2024-01-15 01:00:00+00');

INSERT INTO invoice_lines VALUES
    ('li_001_1', 'inv_001', 'subscription', 'pl_basic', 'sub_001', '2024-01-05 00:00:00+00', '2024-02-05 00:00:00+00', false, 1,   99.90, 'Basic', '2024-01-05 01:00:00+00'),
    ('li_001_2', 'inv_001', 'one_time',     NULL,       NULL,      NULL,                     NULL,                     NULL,  2,   15.50, 'Setup', '2024-01-05 01:00:00+00'),
    ('li_002_1', 'inv_002', 'subscription', 'pl_pro',   'sub_001', '2024-02-05 00:00:00+00', '2024-03-05 00:00:00+00', true,  1,  199.00, 'Pro',   '2024-02-05 01:00:00+00'),
    ('li_002_2', 'inv_002', 'subscription', 'pl_basic', 'sub_001', '2024-02-05 00:00:00+00', '2024-03-05 00:00:00+00', true,  1,  -99.90, 'Unused Basic (downgrade credit)', '2024-02-05 01:00:00+00'),
    ('li_003_1', 'inv_003', 'subscription', 'pl_pro',   'sub_002', '2024-01-10 00:00:00+00', '2024-02-10 00:00:00+00', false, 3,  597.00, 'Pro x3', '2024-01-10 01:00:00+00'),
    ('li_004_1', 'inv_004', 'subscription', 'pl_pro',   'sub_002', '2024-02-10 00:00:00+00', '2024-03-10 00:00:00+00', false, 3,  597.00, 'Pro x3', '2024-02-10 01:00:00+00'),
    ('li_005_1', 'inv_005', 'subscription', 'pl_basic', 'sub_003', '2024-01-15 00:00:00+00', '2024-02-15 00:00:00+00', false, 1, 12900.00, 'Basic', '2024-01-15 01:00:00+00');

INSERT INTO payments VALUES
    ('pay_001', 'inv_001', 'payment', 'successful', '2024-01-06 00:00:00+00',   130.90, '2024-01-06 01:00:00+00'),
    ('pay_002', 'inv_002', 'payment', 'successful', '2024-02-06 00:00:00+00',    99.10, '2024-02-06 01:00:00+00'),
    ('pay_003', 'inv_003', 'payment', 'successful', '2024-01-11 00:00:00+00',   597.00, '2024-01-11 01:00:00+00'),
    ('ref_003', 'inv_003', 'refund',  'successful', '2024-01-20 00:00:00+00',    50.00, '2024-01-20 01:00:00+00'),
    ('pay_005', 'inv_005', 'payment', 'successful', '2024-01-16 00:00:00+00', 12900.00, '2024-01-16 01:00:00+00');
