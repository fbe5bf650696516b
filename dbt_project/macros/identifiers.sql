{#
  Identifier normalisation: the ONE definition of how member ids, phones and
  emails are compared. Members, orders, the do-not-contact list and the
  campaign models all call these macros, and everything downstream (lists,
  exports, hashed audiences, the send-file safety check) reads the columns they
  produce instead of normalising again. docs/data-contract.md describes the rules.
#}

{# Characters that never belong in an identifier: zero-width spaces/joiners, word joiner, BOM. #}
{% macro invisible_chars() -%}\x{200b}-\x{200d}\x{2060}\x{feff}{%- endmacro %}

{# Member id: zero-width characters and no-break spaces removed, then trimmed. Case is kept
   (ids are matched exactly); `member_key` below is the case-insensitive form. #}
{% macro normalise_member_id(col) -%}
    {#- fast path (see macros/parsing.sql): nothing to remove -#}
    case when regexp_full_match({{ col }}, '[^\s{{ invisible_chars() }}\x{00a0}\x{202f}\x{3000}]+')
        then {{ col }}
    else nullif(regexp_replace(
        regexp_replace({{ col }}, '[{{ invisible_chars() }}\x{00a0}\x{202f}\x{3000}]', '', 'g'),
        '^\s+|\s+$', '', 'g'), '') end
{%- endmacro %}

{# Case-insensitive matching key of a member id (the do-not-contact list matches on it). #}
{% macro member_key(col) -%}
    lower({{ normalise_member_id(col) }})
{%- endmacro %}

{# Phone to E.164 (`+8613900000002`), or NULL when the text is not a phone number.
   Separators (spaces, dashes, dots, brackets, full-width forms) are ignored.
   - a mainland mobile (1[3-9] + 9 digits) written bare or with 86 / +86 / 0086;
   - any other number only when written with its country code after + or 00;
   - anything else (letters, Excel's 1.39E+10, too short or too long) is invalid:
     never guessed. #}
{% macro normalise_phone(col) -%}
    {#- the text Excel or a platform wraps a number in (="…", '…, a trunk "(0)") goes first -#}
    {%- set unwrapped = "regexp_replace(translate(" ~ col ~ ", '０１２３４５６７８９＋', '0123456789+'), "
        ~ "'^[=''\"\\s]+|[''\"\\s]+$|\\(0\\)', '', 'g')" -%}
    {%- set s = "regexp_replace(" ~ unwrapped ~ ", "
        ~ "'[\\s\\x{00a0}\\x{202f}\\x{3000}" ~ invisible_chars()
        ~ "().\\-\\x{2010}-\\x{2015}\\x{2212}－（）/]', '', 'g')" -%}
    case
        when regexp_full_match({{ col }}, '1[3-9][0-9]{9}') then '+86' || {{ col }}
        when regexp_full_match({{ s }}, '0?1[3-9][0-9]{9}') then '+86' || right({{ s }}, 11)
        when regexp_full_match({{ s }}, '(\+|00)?860?1[3-9][0-9]{9}') then '+86' || right({{ s }}, 11)
        when regexp_full_match({{ s }}, '(\+|00)[1-9][0-9]{6,14}')
            then '+' || regexp_replace({{ s }}, '^(\+|00)', '')
    end
{%- endmacro %}

{# Email: invisible characters removed, trimmed, lower-case, a leading `mailto:` stripped;
   NULL unless it looks like local@domain.tld. #}
{% macro normalise_email(col) -%}
    {%- set s = "regexp_replace(lower(regexp_replace(" ~ col ~ ", '[" ~ invisible_chars()
        ~ "\\x{00a0}\\x{202f}\\x{3000}<>]|^\\s+|\\s+$', '', 'g')), '^mailto:', '')" -%}
    case
        when regexp_full_match({{ col }}, '[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]+') then {{ col }}
        when regexp_full_match({{ s }}, '[^@\s]+@[^@\s]+\.[^@\s.]+') then {{ s }}
    end
{%- endmacro %}

{# True when a value was given but is not a usable phone / email (counted by WARN checks). #}
{% macro is_invalid_phone(col) -%}
    ({{ has_text(col) }} and {{ normalise_phone(col) }} is null)
{%- endmacro %}

{% macro is_invalid_email(col) -%}
    ({{ has_text(col) }} and {{ normalise_email(col) }} is null)
{%- endmacro %}
