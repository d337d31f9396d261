with

source as (
    {{ latest_version(source('bronze', 'order_reviews'), ['review_id', 'order_id']) }}
),

one_review_per_order as (
    -- Some orders carry several reviews: keep the latest answer, so review counts never multiply orders.
    select *
    from source
    qualify row_number() over (
        partition by order_id order by review_answer_timestamp desc, review_id
    ) = 1
),

renamed as (
    select
        -- ids
        review_id,
        order_id,
        -- review
        review_score,
        nullif(trim(review_comment_title), '') as review_comment_title,
        nullif(trim(review_comment_message), '') as review_comment_message,
        -- timestamps
        review_creation_date,
        review_answer_timestamp
    from one_review_per_order
)

select * from renamed
