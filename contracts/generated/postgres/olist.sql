-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.
CREATE SCHEMA IF NOT EXISTS olist;

CREATE OR REPLACE FUNCTION olist.touch_changed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW._changed_at := now();
    RETURN NEW;
END $$;

CREATE TABLE IF NOT EXISTS olist.customers (
    customer_id varchar(32) NOT NULL,
    customer_unique_id varchar(32) NOT NULL,
    customer_zip_code_prefix varchar(5) NOT NULL,
    customer_city text NOT NULL,
    customer_state varchar(2) NOT NULL CHECK (customer_state IN ('AC', 'AL', 'AM', 'AP', 'BA', 'CE', 'DF', 'ES', 'GO', 'MA', 'MG', 'MS', 'MT', 'PA', 'PB', 'PE', 'PI', 'PR', 'RJ', 'RN', 'RO', 'RR', 'RS', 'SC', 'SE', 'SP', 'TO')),
    _changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id)
);
CREATE INDEX IF NOT EXISTS customers__changed_at_idx ON olist.customers (_changed_at);
CREATE OR REPLACE TRIGGER customers_touch BEFORE UPDATE ON olist.customers FOR EACH ROW EXECUTE FUNCTION olist.touch_changed_at();
COMMENT ON TABLE olist.customers IS 'One row per order''s customer record (99,441 in the full data set).';
COMMENT ON COLUMN olist.customers.customer_id IS 'Key of the customer record of one order.';
COMMENT ON COLUMN olist.customers.customer_unique_id IS 'The person behind the customer record; repeats across orders.';
COMMENT ON COLUMN olist.customers.customer_zip_code_prefix IS 'First five digits of the postcode, kept as text (leading zeros).';
COMMENT ON COLUMN olist.customers.customer_city IS 'City name in lower case, as typed (accents vary).';
COMMENT ON COLUMN olist.customers.customer_state IS 'Brazilian federative unit (UF).';

CREATE TABLE IF NOT EXISTS olist.geolocation (
    geolocation_zip_code_prefix varchar(5) NOT NULL,
    geolocation_lat double precision NOT NULL CHECK (geolocation_lat >= -90 AND geolocation_lat <= 90),
    geolocation_lng double precision NOT NULL CHECK (geolocation_lng >= -180 AND geolocation_lng <= 180),
    geolocation_city text NOT NULL,
    geolocation_state varchar(2) NOT NULL CHECK (geolocation_state IN ('AC', 'AL', 'AM', 'AP', 'BA', 'CE', 'DF', 'ES', 'GO', 'MA', 'MG', 'MS', 'MT', 'PA', 'PB', 'PE', 'PI', 'PR', 'RJ', 'RN', 'RO', 'RR', 'RS', 'SC', 'SE', 'SP', 'TO')),
    _changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS geolocation__changed_at_idx ON olist.geolocation (_changed_at);
CREATE OR REPLACE TRIGGER geolocation_touch BEFORE UPDATE ON olist.geolocation FOR EACH ROW EXECUTE FUNCTION olist.touch_changed_at();
COMMENT ON TABLE olist.geolocation IS 'Zip prefix to lat/lng points (1,000,163 rows, 19,015 prefixes in the full data set). No key.';
COMMENT ON COLUMN olist.geolocation.geolocation_zip_code_prefix IS 'First five digits of the postcode, kept as text (leading zeros).';
COMMENT ON COLUMN olist.geolocation.geolocation_lat IS 'Latitude in decimal degrees.';
COMMENT ON COLUMN olist.geolocation.geolocation_lng IS 'Longitude in decimal degrees.';
COMMENT ON COLUMN olist.geolocation.geolocation_city IS 'City name as typed (accents and spelling vary).';
COMMENT ON COLUMN olist.geolocation.geolocation_state IS 'Brazilian federative unit (UF).';

CREATE TABLE IF NOT EXISTS olist.load_quarantine (
    source_file text NOT NULL,
    line_number integer NOT NULL CHECK (line_number >= 1),
    column_name text,
    reason text NOT NULL,
    record text NOT NULL,
    run_id text NOT NULL,
    quarantined_at timestamptz NOT NULL,
    PRIMARY KEY (source_file, line_number)
);
COMMENT ON TABLE olist.load_quarantine IS 'One row per refused source record.';
COMMENT ON COLUMN olist.load_quarantine.source_file IS 'File name the record came from.';
COMMENT ON COLUMN olist.load_quarantine.line_number IS 'Physical line (1 = header) where the record starts.';
COMMENT ON COLUMN olist.load_quarantine.column_name IS 'The first column at fault, when the fault is in one column.';
COMMENT ON COLUMN olist.load_quarantine.reason IS 'Every reason the record was refused, separated by ''; ''.';
COMMENT ON COLUMN olist.load_quarantine.record IS 'The raw record, as JSON of its fields or as the raw text.';
COMMENT ON COLUMN olist.load_quarantine.run_id IS 'The load run that refused it.';
COMMENT ON COLUMN olist.load_quarantine.quarantined_at IS 'When it was refused.';

CREATE TABLE IF NOT EXISTS olist.orders (
    order_id varchar(32) NOT NULL,
    customer_id varchar(32) NOT NULL,
    order_status varchar(16) NOT NULL CHECK (order_status IN ('created', 'approved', 'invoiced', 'processing', 'shipped', 'delivered', 'canceled', 'unavailable')),
    order_purchase_timestamp timestamp NOT NULL CHECK (order_purchase_timestamp >= '2016-01-01 00:00:00'),
    order_approved_at timestamp,
    order_delivered_carrier_date timestamp,
    order_delivered_customer_date timestamp,
    order_estimated_delivery_date timestamp NOT NULL,
    _changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id)
);
CREATE INDEX IF NOT EXISTS orders__changed_at_idx ON olist.orders (_changed_at);
CREATE OR REPLACE TRIGGER orders_touch BEFORE UPDATE ON olist.orders FOR EACH ROW EXECUTE FUNCTION olist.touch_changed_at();
COMMENT ON TABLE olist.orders IS 'One row per order (99,441 in the full data set), purchases 2016-09-04 .. 2018-10-17.';
COMMENT ON COLUMN olist.orders.order_id IS 'Key of the order.';
COMMENT ON COLUMN olist.orders.customer_id IS 'The order''s customer record (one per order).';
COMMENT ON COLUMN olist.orders.order_status IS 'Where the order stands in its lifecycle.';
COMMENT ON COLUMN olist.orders.order_purchase_timestamp IS 'When the customer placed the order (local time).';
COMMENT ON COLUMN olist.orders.order_approved_at IS 'When the payment was approved.';
COMMENT ON COLUMN olist.orders.order_delivered_carrier_date IS 'When the order was handed to the carrier.';
COMMENT ON COLUMN olist.orders.order_delivered_customer_date IS 'When the customer received the order.';
COMMENT ON COLUMN olist.orders.order_estimated_delivery_date IS 'The delivery date promised at purchase.';

CREATE TABLE IF NOT EXISTS olist.products (
    product_id varchar(32) NOT NULL,
    product_category_name text,
    product_name_lenght integer CHECK (product_name_lenght >= 0),
    product_description_lenght integer CHECK (product_description_lenght >= 0),
    product_photos_qty integer CHECK (product_photos_qty >= 0),
    product_weight_g integer CHECK (product_weight_g >= 0),
    product_length_cm integer CHECK (product_length_cm >= 0),
    product_height_cm integer CHECK (product_height_cm >= 0),
    product_width_cm integer CHECK (product_width_cm >= 0),
    _changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id)
);
CREATE INDEX IF NOT EXISTS products__changed_at_idx ON olist.products (_changed_at);
CREATE OR REPLACE TRIGGER products_touch BEFORE UPDATE ON olist.products FOR EACH ROW EXECUTE FUNCTION olist.touch_changed_at();
COMMENT ON TABLE olist.products IS 'One row per product (32,951 in the full data set).';
COMMENT ON COLUMN olist.products.product_id IS 'Key of the product.';
COMMENT ON COLUMN olist.products.product_category_name IS 'Category in Portuguese; null for about 2% of products.';
COMMENT ON COLUMN olist.products.product_name_lenght IS 'Characters in the product name (original spelling of the column).';
COMMENT ON COLUMN olist.products.product_description_lenght IS 'Characters in the product description (original spelling of the column).';
COMMENT ON COLUMN olist.products.product_photos_qty IS 'Number of photos published.';
COMMENT ON COLUMN olist.products.product_weight_g IS 'Weight in grams (a few are 0).';
COMMENT ON COLUMN olist.products.product_length_cm IS 'Length in centimetres.';
COMMENT ON COLUMN olist.products.product_height_cm IS 'Height in centimetres.';
COMMENT ON COLUMN olist.products.product_width_cm IS 'Width in centimetres.';

CREATE TABLE IF NOT EXISTS olist.sellers (
    seller_id varchar(32) NOT NULL,
    seller_zip_code_prefix varchar(5) NOT NULL,
    seller_city text NOT NULL,
    seller_state varchar(2) NOT NULL CHECK (seller_state IN ('AC', 'AL', 'AM', 'AP', 'BA', 'CE', 'DF', 'ES', 'GO', 'MA', 'MG', 'MS', 'MT', 'PA', 'PB', 'PE', 'PI', 'PR', 'RJ', 'RN', 'RO', 'RR', 'RS', 'SC', 'SE', 'SP', 'TO')),
    _changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (seller_id)
);
CREATE INDEX IF NOT EXISTS sellers__changed_at_idx ON olist.sellers (_changed_at);
CREATE OR REPLACE TRIGGER sellers_touch BEFORE UPDATE ON olist.sellers FOR EACH ROW EXECUTE FUNCTION olist.touch_changed_at();
COMMENT ON TABLE olist.sellers IS 'One row per seller (3,095 in the full data set).';
COMMENT ON COLUMN olist.sellers.seller_id IS 'Key of the seller.';
COMMENT ON COLUMN olist.sellers.seller_zip_code_prefix IS 'First five digits of the postcode, kept as text (leading zeros).';
COMMENT ON COLUMN olist.sellers.seller_city IS 'City name in lower case, as typed (accents vary).';
COMMENT ON COLUMN olist.sellers.seller_state IS 'Brazilian federative unit (UF).';

CREATE TABLE IF NOT EXISTS olist.order_items (
    order_id varchar(32) NOT NULL,
    order_item_id smallint NOT NULL CHECK (order_item_id >= 1 AND order_item_id <= 99),
    product_id varchar(32) NOT NULL,
    seller_id varchar(32) NOT NULL,
    shipping_limit_date timestamp NOT NULL,
    price numeric(12,2) NOT NULL CHECK (price >= 0),
    freight_value numeric(12,2) NOT NULL CHECK (freight_value >= 0),
    _changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, order_item_id)
);
CREATE INDEX IF NOT EXISTS order_items__changed_at_idx ON olist.order_items (_changed_at);
CREATE OR REPLACE TRIGGER order_items_touch BEFORE UPDATE ON olist.order_items FOR EACH ROW EXECUTE FUNCTION olist.touch_changed_at();
COMMENT ON TABLE olist.order_items IS 'One row per order item (112,650 in the full data set).';
COMMENT ON COLUMN olist.order_items.order_id IS 'The order the item belongs to.';
COMMENT ON COLUMN olist.order_items.order_item_id IS 'Position of the item within its order, from 1.';
COMMENT ON COLUMN olist.order_items.product_id IS 'The product sold.';
COMMENT ON COLUMN olist.order_items.seller_id IS 'The seller who fulfils the item.';
COMMENT ON COLUMN olist.order_items.shipping_limit_date IS 'Deadline for the seller to hand the item to the carrier.';
COMMENT ON COLUMN olist.order_items.price IS 'Item price in BRL.';
COMMENT ON COLUMN olist.order_items.freight_value IS 'Freight charged for the item in BRL.';

CREATE TABLE IF NOT EXISTS olist.order_payments (
    order_id varchar(32) NOT NULL,
    payment_sequential smallint NOT NULL CHECK (payment_sequential >= 1 AND payment_sequential <= 99),
    payment_type varchar(16) NOT NULL CHECK (payment_type IN ('credit_card', 'boleto', 'voucher', 'debit_card', 'not_defined')),
    payment_installments smallint NOT NULL CHECK (payment_installments >= 0 AND payment_installments <= 24),
    payment_value numeric(12,2) NOT NULL CHECK (payment_value >= 0),
    _changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, payment_sequential)
);
CREATE INDEX IF NOT EXISTS order_payments__changed_at_idx ON olist.order_payments (_changed_at);
CREATE OR REPLACE TRIGGER order_payments_touch BEFORE UPDATE ON olist.order_payments FOR EACH ROW EXECUTE FUNCTION olist.touch_changed_at();
COMMENT ON TABLE olist.order_payments IS 'One row per payment (103,886 in the full data set).';
COMMENT ON COLUMN olist.order_payments.order_id IS 'The order paid.';
COMMENT ON COLUMN olist.order_payments.payment_sequential IS 'Position of the payment within its order, from 1.';
COMMENT ON COLUMN olist.order_payments.payment_type IS 'Means of payment.';
COMMENT ON COLUMN olist.order_payments.payment_installments IS 'Number of instalments chosen (credit cards); 1 for other types, 0 in rare rows.';
COMMENT ON COLUMN olist.order_payments.payment_value IS 'Amount paid in BRL.';

CREATE TABLE IF NOT EXISTS olist.order_reviews (
    review_id varchar(32) NOT NULL,
    order_id varchar(32) NOT NULL,
    review_score smallint NOT NULL CHECK (review_score >= 1 AND review_score <= 5),
    review_comment_title text,
    review_comment_message text,
    review_creation_date timestamp NOT NULL,
    review_answer_timestamp timestamp NOT NULL,
    _changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (review_id, order_id)
);
CREATE INDEX IF NOT EXISTS order_reviews__changed_at_idx ON olist.order_reviews (_changed_at);
CREATE OR REPLACE TRIGGER order_reviews_touch BEFORE UPDATE ON olist.order_reviews FOR EACH ROW EXECUTE FUNCTION olist.touch_changed_at();
COMMENT ON TABLE olist.order_reviews IS 'One row per review and order (99,224 in the full data set).';
COMMENT ON COLUMN olist.order_reviews.review_id IS 'The review; the same id can cover several orders.';
COMMENT ON COLUMN olist.order_reviews.order_id IS 'The order reviewed.';
COMMENT ON COLUMN olist.order_reviews.review_score IS 'Satisfaction from 1 (worst) to 5 (best).';
COMMENT ON COLUMN olist.order_reviews.review_comment_title IS 'Optional title typed by the customer.';
COMMENT ON COLUMN olist.order_reviews.review_comment_message IS 'Optional message typed by the customer; may span lines.';
COMMENT ON COLUMN olist.order_reviews.review_creation_date IS 'The day the survey was sent (time is always 00:00:00).';
COMMENT ON COLUMN olist.order_reviews.review_answer_timestamp IS 'When the customer answered.';

CREATE TABLE IF NOT EXISTS olist.product_category_name_translation (
    product_category_name text NOT NULL,
    product_category_name_english text NOT NULL,
    _changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_category_name)
);
CREATE INDEX IF NOT EXISTS product_category_name_translation__changed_at_idx ON olist.product_category_name_translation (_changed_at);
CREATE OR REPLACE TRIGGER product_category_name_translation_touch BEFORE UPDATE ON olist.product_category_name_translation FOR EACH ROW EXECUTE FUNCTION olist.touch_changed_at();
COMMENT ON TABLE olist.product_category_name_translation IS 'One row per category (71).';
COMMENT ON COLUMN olist.product_category_name_translation.product_category_name IS 'Category in Portuguese.';
COMMENT ON COLUMN olist.product_category_name_translation.product_category_name_english IS 'Category in English (original spellings kept).';
