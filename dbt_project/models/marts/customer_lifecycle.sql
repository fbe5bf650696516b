-- Lifecycle stage of every member as of the as-of date, prospects included.
-- Rules, first match wins (cut-offs from int_purchase_cycle_derived):
--   prospect     no purchase yet
--   churned      no purchase for more than churn_after_days
--   silent       no purchase for more than silent_after_days
--   reactivated  the last purchase came after a gap longer than silent_after_days
--   new          exactly one purchase (recent, since not silent)
--   declining    fewer purchases in the recent window than in the window before
--   mature       at least mature_min_purchases purchases and not declining
--   rising       everyone else: repeat buyers on their way up
with

members as (

    select * from {{ ref('int_members_unioned') }}

),

customers as (

    select * from {{ ref('int_customers_summarised') }}

),

cycle as (

    select * from {{ ref('int_purchase_cycle_derived') }}

),

joined as (

    select
        m.member_id,
        m.registered_at,
        c.first_purchase_date,
        c.last_purchase_date,
        coalesce(c.occasions, 0) as purchases,
        cast({{ dbt.datediff('c.last_purchase_date', as_of_date(), 'day') }} as integer)
            as days_since_last_purchase,
        c.gap_before_last_days,
        coalesce(c.occasions_recent_window, 0) as purchases_recent_window,
        coalesce(c.occasions_previous_window, 0) as purchases_previous_window,
        cy.window_days,
        cy.typical_interval_days,
        cy.silent_after_days,
        cy.churn_after_days
    from members as m
    left join customers as c on m.member_id = c.member_id
    cross join cycle as cy

),

final as (

    select
        member_id,
        case
            when purchases = 0 then 'prospect'
            when days_since_last_purchase > churn_after_days then 'churned'
            when days_since_last_purchase > silent_after_days then 'silent'
            when gap_before_last_days > silent_after_days then 'reactivated'
            when purchases = 1 then 'new'
            when purchases_recent_window < purchases_previous_window then 'declining'
            when purchases >= {{ var('mature_min_purchases') }} then 'mature'
            else 'rising'
        end as lifecycle_stage,
        registered_at,
        first_purchase_date,
        last_purchase_date,
        cast(purchases as integer) as purchases,
        days_since_last_purchase,
        cast(gap_before_last_days as integer) as gap_before_last_days,
        cast(purchases_recent_window as integer) as purchases_recent_window,
        cast(purchases_previous_window as integer) as purchases_previous_window,
        cast(window_days as integer) as window_days,
        cast(typical_interval_days as double) as typical_interval_days,
        cast(silent_after_days as integer) as silent_after_days,
        cast(churn_after_days as integer) as churn_after_days,
        {{ as_of_date() }} as as_of_date
    from joined

)

select * from final
