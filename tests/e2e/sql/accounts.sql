-- A billing database shaped as users have it, large enough that a first load goes through the bulk
-- JSON import (bulk_min_records, 200): 320 accounts carrying every standard customer field ChartMogul's
-- Create a Customer takes (website_url, owner, primary_contact, lead and trial dates, US states as
-- "US-CA"), custom attributes of every type, tags, with nulls, empty strings and non-ASCII text
-- (German umlauts, Japanese); 6 plans; ~1,000 invoices with ~1,100 lines and ~950 payments; ~60 refunds
-- in their own table. Amounts are integer cents (bigint; JPY in yen). Deterministic: no random().
--
-- Schema `accounts`; tap-postgres makes these streams of it:
--   accounts-plans, accounts-customers, accounts-refunds, and the invoices in two shapes:
--   accounts-invoices_with_lines (a view: line items and payments nested as JSON arrays) or
--   accounts-invoices + accounts-invoice_lines + accounts-payments (three tables, no view).
-- tests/e2e/test_first_load.py uses the view through the plain pipe and the three tables through Meltano.
SET client_min_messages = warning;
SET TIME ZONE 'UTC';
CREATE SCHEMA accounts;
SET search_path = accounts;

CREATE TABLE plans (
    external_id    text PRIMARY KEY,
    name           text NOT NULL,
    interval_count integer NOT NULL,
    interval_unit  text NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE customers (
    external_id           text PRIMARY KEY,
    name                  text NOT NULL,
    email                 text,
    company               text,
    country               text,
    state                 text,          -- US only, ISO 3166-2 ("US-CA")
    city                  text,
    zip                   text,
    website_url           text,
    owner                 text,          -- the account owner's email
    lead_created_at       timestamptz,
    free_trial_started_at timestamptz,
    primary_contact       jsonb,         -- {first_name, last_name, email, title, phone}
    seats                 integer,       -- custom attribute (Integer)
    contract_value        numeric(12,2), -- custom attribute (Decimal)
    is_enterprise         boolean,       -- custom attribute (Boolean)
    contract_start        date,          -- custom attribute (Timestamp)
    last_login_at         timestamptz,   -- custom attribute (Timestamp)
    segment               text,          -- custom attribute (String)
    tags                  text[],
    updated_at            timestamptz NOT NULL
);

CREATE TABLE invoices (
    external_id          text PRIMARY KEY,
    customer_external_id text NOT NULL REFERENCES customers,
    date                 timestamptz NOT NULL,
    currency             text NOT NULL,
    due_date             date,
    updated_at           timestamptz NOT NULL
);

CREATE TABLE invoice_lines (
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
    description              text,
    updated_at               timestamptz NOT NULL
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

-- One row per invoice with its lines and payments nested (json_agg); it changes when any of them does.
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
       FROM invoice_lines li
      WHERE li.invoice_external_id = i.external_id) AS line_items,
    (SELECT json_agg(json_build_object(
                'external_id', p.external_id,
                'type', p.type,
                'result', p.result,
                'date', p.date,
                'amount_in_cents', p.amount_in_cents) ORDER BY p.date, p.external_id)
       FROM payments p
      WHERE p.invoice_external_id = i.external_id) AS transactions,
    greatest(i.updated_at,
             (SELECT max(li.updated_at) FROM invoice_lines li WHERE li.invoice_external_id = i.external_id),
             (SELECT max(p.updated_at) FROM payments p WHERE p.invoice_external_id = i.external_id)) AS updated_at
FROM invoices i;

-- Plans: monthly, quarterly and yearly; price_in_cents is only used below to price the lines.
CREATE TEMPORARY TABLE plan_prices (n integer PRIMARY KEY, external_id text, price_in_cents bigint);
INSERT INTO plans VALUES
    ('pl_starter_m',    'Starter (monatlich)',   1, 'month', '2024-05-01 09:00:00+00'),
    ('pl_team_m',       'Team – Grundpaket',     1, 'month', '2024-05-01 09:01:00+00'),
    ('pl_business_y',   'Business (yearly)',     1, 'year',  '2024-05-01 09:02:00+00'),
    ('pl_pro_q',        'Pro (quarterly)',       3, 'month', '2024-05-01 09:03:00+00'),
    ('pl_standard_jp',  'スタンダード（月額）',  1, 'month', '2024-05-01 09:04:00+00'),
    ('pl_enterprise_y', 'Enterprise 年額プラン', 1, 'year',  '2024-05-01 09:05:00+00');
INSERT INTO plan_prices VALUES
    (0, 'pl_starter_m', 1900), (1, 'pl_team_m', 4900), (2, 'pl_business_y', 99000),
    (3, 'pl_pro_q', 14700), (4, 'pl_standard_jp', 3000), (5, 'pl_enterprise_y', 480000);

-- Customers ---------------------------------------------------------------------------------
INSERT INTO customers
SELECT
    'acct_' || lpad(i::text, 4, '0'),
    CASE i % 8
        WHEN 0 THEN 'Müller & Söhne GmbH ' || i
        WHEN 1 THEN '株式会社さくら商事 ' || i
        WHEN 2 THEN 'Acme Corp ' || i
        WHEN 3 THEN 'Bäckerei Größe ' || i
        WHEN 4 THEN 'Globex Ltd ' || i
        WHEN 5 THEN 'Café Élan SARL ' || i
        WHEN 6 THEN 'Nordwind Österreich ' || i
        ELSE '  Padded Name ' || i || '  '
    END,
    CASE WHEN i % 29 = 0 THEN NULL WHEN i % 31 = 0 THEN '' ELSE 'billing+' || i || '@kunde' || i || '.example' END,
    CASE WHEN i % 7 = 0 THEN NULL WHEN i % 11 = 0 THEN ''
         WHEN i % 8 = 1 THEN 'さくら商事株式会社' ELSE 'Firma Übersee ' || i END,
    country,
    CASE WHEN country = 'US' THEN (ARRAY['US-CA', 'US-NY', 'US-TX', 'US-WA'])[1 + i % 4] END,
    CASE WHEN i % 13 = 0 THEN ''
         ELSE CASE country WHEN 'US' THEN 'San Francisco' WHEN 'DE' THEN 'München' WHEN 'JP' THEN '東京'
                           WHEN 'GB' THEN 'London' WHEN 'FR' THEN 'Besançon' WHEN 'AT' THEN 'Wien' END END,
    CASE WHEN i % 10 = 9 THEN NULL
         ELSE CASE country WHEN 'US' THEN '94107' WHEN 'DE' THEN '80331' WHEN 'JP' THEN '100-0001'
                           WHEN 'GB' THEN 'SW1A 1AA' WHEN 'FR' THEN '25000' WHEN 'AT' THEN '1010' END END,
    CASE WHEN i % 5 = 0 THEN NULL WHEN i % 17 = 0 THEN ''
         WHEN i % 8 = 1 THEN 'https://さくら' || i || '.example.jp' ELSE 'https://www.kunde-' || i || '.example' END,
    CASE WHEN i % 3 = 0 THEN NULL ELSE 'owner' || (i % 4) || '@vendor.example' END,
    CASE WHEN i % 6 = 0 THEN NULL ELSE timestamptz '2022-01-01 09:30:00+00' + i * interval '1 day' END,
    CASE WHEN i % 4 = 0 THEN NULL ELSE timestamptz '2022-01-08 14:00:00+00' + i * interval '1 day' END,
    CASE i % 3
        WHEN 1 THEN jsonb_build_object('first_name', 'Jürgen', 'last_name', 'Groß ' || i,
                                       'email', 'juergen' || i || '@kunde' || i || '.example',
                                       'title', 'Geschäftsführer', 'phone', '+49 89 1234 ' || i)
        WHEN 2 THEN jsonb_build_object('first_name', '花子', 'last_name', '山田',
                                       'email', 'hanako' || i || '@example.jp', 'title', '', 'phone', NULL)
    END,
    CASE WHEN i % 8 = 5 THEN NULL ELSE 1 + (i * 7) % 120 END,
    CASE WHEN i % 9 = 4 THEN NULL WHEN i % 10 = 0 THEN 5000 ELSE round((i * 1234.56) % 100000, 2) END,
    CASE WHEN i % 10 = 3 THEN NULL ELSE i % 4 = 0 END,
    CASE WHEN i % 7 = 6 THEN NULL ELSE date '2023-01-01' + i END,
    CASE WHEN i % 5 = 2 THEN NULL ELSE timestamptz '2024-05-01 08:00:00+00' + i * interval '1 hour 7 minutes 3 seconds' END,
    CASE i % 6 WHEN 0 THEN 'SMB' WHEN 1 THEN 'Mittelstand' WHEN 2 THEN 'エンタープライズ'
               WHEN 3 THEN '' WHEN 4 THEN NULL ELSE 'mid-market' END,
    CASE i % 9
        WHEN 0 THEN NULL
        WHEN 1 THEN '{}'
        WHEN 2 THEN '{VIP,vip,EU}'
        WHEN 3 THEN '{trial,ベータ}'
        WHEN 4 THEN '{Großkunde,partner}'
        WHEN 5 THEN '{" padded ",""}'
        WHEN 6 THEN '{eu,Referral}'
        WHEN 7 THEN '{早期導入}'
        ELSE '{churn-risk}'
    END::text[],
    timestamptz '2024-06-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 320) AS i,
     LATERAL (SELECT (ARRAY['US', 'DE', 'JP', 'GB', 'FR', 'AT', NULL])[1 + i % 7] AS country) AS c;

-- A few accounts with nothing but a name, an email and an address (every optional column null).
UPDATE customers
   SET company = NULL, website_url = NULL, owner = NULL, lead_created_at = NULL, free_trial_started_at = NULL,
       primary_contact = NULL, seats = NULL, contract_value = NULL, is_enterprise = NULL, contract_start = NULL,
       last_login_at = NULL, segment = NULL, tags = NULL
 WHERE right(external_id, 4)::integer % 40 = 0;

-- Invoices: 2 to 5 per account, one plan per account, dated one plan interval apart -------------------
INSERT INTO invoices
SELECT
    'inv_' || lpad(i::text, 4, '0') || '_' || k,
    'acct_' || lpad(i::text, 4, '0'),
    timestamptz '2023-01-01 00:00:00+00' + (i % 28) * interval '1 day'
        + (k - 1) * CASE WHEN i % 6 IN (2, 5) THEN interval '1 year' WHEN i % 6 = 3 THEN interval '3 months'
                         ELSE interval '1 month' END,
    CASE c.country WHEN 'US' THEN 'USD' WHEN 'GB' THEN 'GBP' WHEN 'JP' THEN 'JPY' WHEN 'DE' THEN 'EUR'
                   WHEN 'FR' THEN 'EUR' WHEN 'AT' THEN 'EUR' ELSE 'USD' END,
    CASE WHEN (i + k) % 9 = 0 THEN NULL
         ELSE (date '2023-01-15' + (i % 28)
               + (k - 1) * CASE WHEN i % 6 IN (2, 5) THEN interval '1 year' WHEN i % 6 = 3 THEN interval '3 months'
                                ELSE interval '1 month' END)::date END,
    timestamptz '2024-06-02 00:00:00+00' + (i * 10 + k) * interval '1 second'
FROM customers cu
CROSS JOIN LATERAL (SELECT right(cu.external_id, 4)::integer AS i, cu.country) AS c
CROSS JOIN LATERAL generate_series(1, 2 + c.i % 3 + CASE WHEN c.i % 10 = 0 THEN 1 ELSE 0 END + CASE WHEN c.i % 13 = 0 THEN 1 ELSE 0 END) AS k;

-- Lines: the subscription; a one-time setup fee on an account's first invoice (every 4th account);
-- extra storage on the second invoice of every 7th account (no description).
INSERT INTO invoice_lines
SELECT
    'li_' || substr(inv.external_id, 5) || '_1',
    inv.external_id,
    1,
    'subscription',
    pp.external_id,
    'sub_' || right(inv.customer_external_id, 4),
    inv.date,
    inv.date + CASE pl.interval_unit WHEN 'year' THEN pl.interval_count * interval '1 year'
                                     ELSE pl.interval_count * interval '1 month' END,
    q.quantity,
    pp.price_in_cents * q.quantity,
    CASE WHEN x.i % 6 = 0 THEN pp.price_in_cents * q.quantity / 10 ELSE 0 END,
    CASE WHEN inv.currency = 'EUR' THEN (pp.price_in_cents * q.quantity * 19) / 100 ELSE 0 END,
    CASE WHEN x.i % 8 = 1 THEN 'サブスクリプション ' || pl.name ELSE pl.name END,
    inv.updated_at
FROM invoices inv
CROSS JOIN LATERAL (SELECT right(inv.customer_external_id, 4)::integer AS i) AS x
JOIN plan_prices pp ON pp.n = x.i % 6
JOIN plans pl ON pl.external_id = pp.external_id
CROSS JOIN LATERAL (SELECT 1 + x.i % 5 AS quantity) AS q;

INSERT INTO invoice_lines
    (external_id, invoice_external_id, position, type, quantity, amount_in_cents, discount_amount_in_cents,
     tax_amount_in_cents, description, updated_at)
SELECT 'li_' || substr(inv.external_id, 5) || '_2', inv.external_id, 2, 'one_time', 1, 25000, 2500,
       CASE WHEN inv.currency = 'EUR' THEN 4275 ELSE 0 END,
       CASE WHEN right(inv.customer_external_id, 4)::integer % 8 = 0 THEN '導入支援（オンボーディング）'
            ELSE 'Einrichtung & Schulung – Müller' END,
       inv.updated_at
FROM invoices inv
WHERE inv.external_id LIKE '%\_1' AND right(inv.customer_external_id, 4)::integer % 4 = 0;

INSERT INTO invoice_lines
    (external_id, invoice_external_id, position, type, quantity, amount_in_cents, description, updated_at)
SELECT 'li_' || substr(inv.external_id, 5) || '_3', inv.external_id, 3, 'one_time', 3, 1500, NULL, inv.updated_at
FROM invoices inv
WHERE inv.external_id LIKE '%\_2' AND right(inv.customer_external_id, 4)::integer % 7 = 0;

-- Payments: most invoices paid the day after; every 7th first failed, then paid; every 11th still open.
CREATE TEMPORARY TABLE invoice_totals AS
SELECT inv.external_id, inv.date, inv.updated_at,
       right(inv.customer_external_id, 4)::integer AS i,
       split_part(inv.external_id, '_', 3)::integer AS k,
       sum(li.amount_in_cents - li.discount_amount_in_cents + li.tax_amount_in_cents)::bigint AS total
FROM invoices inv JOIN invoice_lines li ON li.invoice_external_id = inv.external_id
GROUP BY inv.external_id;

INSERT INTO payments
SELECT 'pay_' || substr(external_id, 5) || '_1', external_id, 'payment', 'failed',
       date + interval '1 day', total, updated_at
FROM invoice_totals WHERE (i + k) % 11 <> 0 AND (i + k) % 7 = 0;

INSERT INTO payments
SELECT 'pay_' || substr(external_id, 5) || CASE WHEN (i + k) % 7 = 0 THEN '_2' ELSE '_1' END, external_id,
       'payment', 'successful', date + interval '3 days' + (i % 5) * interval '1 hour', total, updated_at
FROM invoice_totals WHERE (i + k) % 11 <> 0;

-- Refunds: half of every 16th paid invoice, ten days after its payment (every 5th refund failed).
INSERT INTO refunds
SELECT 'ref_' || substr(t.external_id, 5), t.external_id, 'refund',
       CASE WHEN (t.n / 16) % 5 = 0 THEN 'failed' ELSE 'successful' END,
       t.date + interval '13 days', t.total / 2,
       timestamptz '2024-06-03 00:00:00+00' + t.n * interval '1 second'
FROM (SELECT *, row_number() OVER (ORDER BY external_id) AS n
        FROM invoice_totals WHERE (i + k) % 11 <> 0) AS t
WHERE t.n % 16 = 0;
