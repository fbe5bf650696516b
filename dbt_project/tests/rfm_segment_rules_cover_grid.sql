-- Every (R, F) score combination must be named by at least one segment rule.
with grid as (
    select r.r, f.f from range(1, 6) as r(r) cross join range(1, 6) as f(f)
)
select g.r, g.f
from grid as g
left join {{ ref('rfm_segment_rules') }} as s
    on g.r between s.r_min and s.r_max and g.f between s.f_min and s.f_max
where s.segment is null
