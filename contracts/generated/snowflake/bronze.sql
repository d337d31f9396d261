-- Generated from contracts/ by `olist contracts generate`. Do not edit by hand.
create schema if not exists bronze;

create or replace table bronze.customers (
    customer_id varchar(32) not null,
    customer_unique_id varchar(32) not null,
    customer_zip_code_prefix varchar(5) not null,
    customer_city varchar not null,
    customer_state varchar(2) not null,
    _changed_at timestamp_tz not null,
    _deleted boolean
);

create or replace table bronze.geolocation (
    geolocation_zip_code_prefix varchar(5) not null,
    geolocation_lat float not null,
    geolocation_lng float not null,
    geolocation_city varchar not null,
    geolocation_state varchar(2) not null,
    _changed_at timestamp_tz not null,
    _deleted boolean
);

create or replace table bronze.orders (
    order_id varchar(32) not null,
    customer_id varchar(32) not null,
    order_status varchar(16) not null,
    order_purchase_timestamp timestamp_ntz not null,
    order_approved_at timestamp_ntz,
    order_delivered_carrier_date timestamp_ntz,
    order_delivered_customer_date timestamp_ntz,
    order_estimated_delivery_date timestamp_ntz not null,
    _changed_at timestamp_tz not null,
    _deleted boolean
);

create or replace table bronze.products (
    product_id varchar(32) not null,
    product_category_name varchar,
    product_name_lenght number(10,0),
    product_description_lenght number(10,0),
    product_photos_qty number(10,0),
    product_weight_g number(10,0),
    product_length_cm number(10,0),
    product_height_cm number(10,0),
    product_width_cm number(10,0),
    _changed_at timestamp_tz not null,
    _deleted boolean
);

create or replace table bronze.sellers (
    seller_id varchar(32) not null,
    seller_zip_code_prefix varchar(5) not null,
    seller_city varchar not null,
    seller_state varchar(2) not null,
    _changed_at timestamp_tz not null,
    _deleted boolean
);

create or replace table bronze.order_items (
    order_id varchar(32) not null,
    order_item_id number(5,0) not null,
    product_id varchar(32) not null,
    seller_id varchar(32) not null,
    shipping_limit_date timestamp_ntz not null,
    price number(12,2) not null,
    freight_value number(12,2) not null,
    _changed_at timestamp_tz not null,
    _deleted boolean
);

create or replace table bronze.order_payments (
    order_id varchar(32) not null,
    payment_sequential number(5,0) not null,
    payment_type varchar(16) not null,
    payment_installments number(5,0) not null,
    payment_value number(12,2) not null,
    _changed_at timestamp_tz not null,
    _deleted boolean
);

create or replace table bronze.order_reviews (
    review_id varchar(32) not null,
    order_id varchar(32) not null,
    review_score number(5,0) not null,
    review_comment_title varchar,
    review_comment_message varchar,
    review_creation_date timestamp_ntz not null,
    review_answer_timestamp timestamp_ntz not null,
    _changed_at timestamp_tz not null,
    _deleted boolean
);

create or replace table bronze.product_category_name_translation (
    product_category_name varchar not null,
    product_category_name_english varchar not null,
    _changed_at timestamp_tz not null,
    _deleted boolean
);

create or replace table bronze.raw_order_payments (
    kafka_topic varchar not null,
    kafka_partition number(10,0) not null,
    kafka_offset number(19,0) not null,
    kafka_timestamp timestamp_tz not null,
    record_key varchar,
    record_value varchar
);
