-- How far the batch layer's windows reach: the raw archive's last offset and its newest commit time. A window
-- ending at or before the watermark has every change the archive holds for it.
with

events as (
    select * from {{ ref('stg_cdc__order_payments') }}
),

archived as (
    select * from {{ source('bronze', 'raw_order_payments') }}
)

select
    (select count(*) from archived) as archived_records,
    (select max(kafka_offset) + 1 from archived) as archived_through_offset,
    {{ timestamp_from_epoch_ms('(select max(commit_ms) from events)') }} as newest_commit_at,
    {{ var('window_ms') }} as window_ms
