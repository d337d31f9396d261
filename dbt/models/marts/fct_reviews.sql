with

reviews as (
    select * from {{ ref('stg_olist__order_reviews') }}
)

select
    review_id,
    order_id,
    review_score,
    review_comment_title is not null as has_title,
    review_comment_message is not null as has_message,
    cast(review_creation_date as date) as review_date,
    review_answer_timestamp as answered_at,
    {{ days_between('review_creation_date', 'review_answer_timestamp') }} as days_to_answer
from reviews
