{#
  Parsing helpers for landed text. Each returns NULL when the text cannot be
  parsed, so the base models can quarantine the row with a reason.
  Dispatched so another adapter can supply its own implementation.
#}

{#
  Fast paths: most landed values are already clean (an id without spaces, an amount like
  118.59, a time like 2024-07-01 00:12:27). Each macro first tests for that shape with one
  anchored match and then takes the value as it is; anything else goes the full way. The
  result is the same either way (tests/unit/test_parsing_macros.py compares both on hostile
  and random text); at 10M orders the rewriting regexes were most of the typing's cost.
#}

{% macro clean_text(col) -%}
    {#- fast path: single spaces between words, nothing to fold, and nothing trim()
        removes at either end (it removes every Unicode space, so the value starts and
        ends with a letter, digit, punctuation or symbol) -#}
    {%- set edge = "[\\p{L}\\p{N}\\p{P}\\p{S}]" %}
    {%- set inner = "[^\\s\\x{00a0}\\x{3000}]" %}
    case when regexp_full_match({{ col }}, '{{ edge }}(( ?{{ inner }})*( ?{{ edge }}))?')
        then {{ col }}
    else nullif(trim(regexp_replace({{ col }}, '[\s\x{00a0}\x{3000}]+', ' ', 'g')), '') end
{%- endmacro %}

{% macro has_text(col) -%}
    {#- true exactly when clean_text(col) is not null, without building the cleaned text:
        the value has a character that is neither a regex space (\s: tab, line and form
        feed, carriage return, space) nor a Unicode space separator (Zs: the no-break and
        ideographic spaces among them; the set trim() removes) -#}
    coalesce(regexp_matches({{ col }}, '[^\s\p{Zs}]'), false)
{%- endmacro %}

{% macro parse_timestamp(col) -%}
    {{ return(adapter.dispatch('parse_timestamp', 'crm')(col)) }}
{%- endmacro %}

{% macro default__parse_timestamp(col) -%}
    {# Values with a UTC offset or Z are converted to the business timezone;
       naive values are already local. Several common layouts are accepted. #}
    {%- set layouts = "['%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M', '%Y-%m-%d',
             '%Y/%m/%d %H:%M:%S', '%Y/%m/%d %H:%M', '%Y/%m/%d', '%Y%m%d', '%Y%m%d%H%M%S',
             '%Y.%m.%d', '%Y.%m.%d %H:%M:%S']" %}
    case
        when regexp_full_match({{ col }}, '\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}:\d{2})?')
            then try_strptime({{ col }}, {{ layouts }})
        when regexp_matches(trim({{ col }}), '(Z|[+-]\d{2}(:?\d{2})?)$')
             and regexp_matches(trim({{ col }}), '^\d{4}-\d{2}-\d{2}[ T]\d')
            then timezone('{{ var("timezone") }}', try_cast(trim({{ col }}) as timestamptz))
        {#- fractional seconds are dropped (after a time only: 2024.07.01 is a date) -#}
        else try_strptime(regexp_replace(trim({{ col }}), '(:\d{2})\.\d+$', '\1'), {{ layouts }})
    end
{%- endmacro %}

{% macro parse_amount(col) -%}
    {{ return(adapter.dispatch('parse_amount', 'crm')(col)) }}
{%- endmacro %}

{% macro default__parse_amount(col) -%}
    {# Accepts 1299, 1299.00, ¥1,299.00, ￥1299, 1 299,00, 1.299,00, RMB 12, 12元.
       Whichever of , and . comes last is the decimal separator when both appear;
       a lone comma followed by one or two digits at the end is a decimal comma. #}
    {%- set s = "regexp_replace(upper(" ~ col ~ "), '[\\s\\x{00a0}\\x{3000}\\x{202f}¥￥$元]|RMB|CNY', '', 'g')" -%}
    try_cast(
        case
            when regexp_full_match({{ col }}, '-?[0-9]+([.][0-9]+)?') then {{ col }}
            when {{ s }} ~ '^-?[0-9]+([.][0-9]+)?$' then {{ s }}
            when {{ s }} ~ '^-?[0-9]{1,3}(,[0-9]{3})+([.][0-9]+)?$' then replace({{ s }}, ',', '')
            when {{ s }} ~ '^-?[0-9]{1,3}([.][0-9]{3})+(,[0-9]+)?$' then replace(replace({{ s }}, '.', ''), ',', '.')
            when {{ s }} ~ '^-?[0-9]+,[0-9]{1,2}$' then replace({{ s }}, ',', '.')
        end
        as decimal(18, 2)
    )
{%- endmacro %}

{% macro parse_bool(col) -%}
    case lower({{ clean_text(col) }})
        when 'true' then true when 't' then true when '1' then true when 'yes' then true
        when 'y' then true when '是' then true when '同意' then true
        when 'false' then false when 'f' then false when '0' then false when 'no' then false
        when 'n' then false when '否' then false when '不同意' then false
    end
{%- endmacro %}

{% macro normalise_status(col) -%}
    {# An order status as paid / cancelled / refunded (missing = paid); NULL when the
       spelling is unknown, so the order is quarantined with the text that landed. The
       one list of the spellings: the data-quality checks render this macro too. #}
    case
        when {{ col }} is null then 'paid'
        when {{ col }} in ('paid', 'completed', 'complete', 'success', 'done', 'delivered', '已支付', '已完成') then 'paid'
        when {{ col }} in ('cancelled', 'canceled', 'cancel', 'void', '已取消') then 'cancelled'
        when {{ col }} in ('refunded', 'refund', 'returned', '已退款') then 'refunded'
    end
{%- endmacro %}

{% macro normalise_channel(col) -%}
    {# A message channel as sms / email / push; NULL when the spelling is unknown. #}
    case
        when {{ col }} in ('sms', 'text', 'mms', '短信') then 'sms'
        when {{ col }} in ('email', 'e-mail', 'mail', 'edm', '邮件') then 'email'
        when {{ col }} in ('push', 'app', 'app_push', 'wechat', 'wechat_mini', '推送') then 'push'
    end
{%- endmacro %}

{% macro normalise_send_status(col) -%}
    {# A send-log status (lower-cased) as sent / delivered / failed / bounced / opened /
       clicked; missing = sent; NULL when the spelling is unknown (the row is quarantined). #}
    case
        when {{ col }} is null then 'sent'
        when {{ col }} in ('sent', 'send', 'submitted', 'queued', '已发送') then 'sent'
        when {{ col }} in ('delivered', 'success', 'succeeded', 'ok', 'received', '发送成功', '已送达') then 'delivered'
        when {{ col }} in ('failed', 'fail', 'error', 'undelivered', 'rejected', 'blocked', '发送失败', '失败') then 'failed'
        when {{ col }} in ('bounced', 'bounce', 'hard_bounce', 'soft_bounce', '退信') then 'bounced'
        when {{ col }} in ('opened', 'open', 'read', '已读', '已打开') then 'opened'
        when {{ col }} in ('clicked', 'click', '已点击') then 'clicked'
    end
{%- endmacro %}

{% macro normalise_coupon_event(col) -%}
    {# A coupon-system event (lower-cased) as issued / redeemed / expired / revoked;
       NULL when missing or unknown (the row is quarantined). #}
    case
        when {{ col }} in ('issued', 'issue', 'granted', 'claimed', 'received', '发放', '领取', '已领取') then 'issued'
        when {{ col }} in ('redeemed', 'redeem', 'used', 'use', 'consumed', '核销', '已核销', '已使用') then 'redeemed'
        when {{ col }} in ('expired', 'expire', 'lapsed', '过期', '已过期') then 'expired'
        when {{ col }} in ('revoked', 'revoke', 'cancelled', 'canceled', 'void', '作废', '已作废') then 'revoked'
    end
{%- endmacro %}
