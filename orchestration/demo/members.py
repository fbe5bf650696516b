"""The demo shop's members: names, contact details, city, acquisition and channel habits.

Reference tables are written as ``field/field/...`` records separated by white space.
Contact details are unique per member: ``(i * mult + offset) % 10**k`` with a multiplier
coprime with 10 is a permutation of ``0 .. 10**k - 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from orchestration.demo.csv_writer import lookup, money, padded
from orchestration.demo.seasons import Calendar, weights


def _records(text: str, *types: Callable[[str], Any]) -> tuple[tuple[Any, ...], ...]:
    """Parse white-space separated ``a/b/c`` records, converting each field with ``types``."""
    rows = (word.split("/") for word in text.split())
    return tuple(tuple(t(v) for t, v in zip(types, row, strict=True)) for row in rows)


# --------------------------------------------------------------------------------------------
# Reference tables
# --------------------------------------------------------------------------------------------

# surname, pinyin, weight
SURNAMES: tuple[tuple[str, str, float], ...] = _records(
    """
    王/wang/7.1 李/li/7.0 张/zhang/6.6 刘/liu/5.4 陈/chen/4.5 杨/yang/3.1 黄/huang/2.2
    赵/zhao/2.0 吴/wu/2.0 周/zhou/1.9 徐/xu/1.3 孙/sun/1.3 马/ma/1.2 朱/zhu/1.2 胡/hu/1.1
    郭/guo/1.1 何/he/1.0 林/lin/1.0 高/gao/1.0 罗/luo/0.9 郑/zheng/0.9 梁/liang/0.9
    谢/xie/0.7 宋/song/0.7 唐/tang/0.7 许/xu/0.6 韩/han/0.6 冯/feng/0.6 邓/deng/0.6
    曹/cao/0.5 彭/peng/0.5 曾/zeng/0.5 肖/xiao/0.5 田/tian/0.5 董/dong/0.4 袁/yuan/0.4
    潘/pan/0.4 于/yu/0.4 蒋/jiang/0.4 蔡/cai/0.4 余/yu/0.4 杜/du/0.4 叶/ye/0.4 程/cheng/0.4
    苏/su/0.3 魏/wei/0.3 吕/lv/0.3 丁/ding/0.3 任/ren/0.3 沈/shen/0.3
    """,
    str,
    str,
    float,
)
# given name (one character), pinyin
GIVEN_F: tuple[tuple[str, str], ...] = _records(
    """
    芳/fang 娜/na 敏/min 静/jing 丽/li 艳/yan 秀/xiu 英/ying 霞/xia 婷/ting 雪/xue 琳/lin
    慧/hui 莉/li 颖/ying 倩/qian 欣/xin 怡/yi 佳/jia 梅/mei 晶/jing 燕/yan 玲/ling 丹/dan
    萍/ping 红/hong 悦/yue 雨/yu 思/si 涵/han 诗/shi 梦/meng 琪/qi 瑶/yao 月/yue 宁/ning
    """,
    str,
    str,
)
GIVEN_M: tuple[tuple[str, str], ...] = _records(
    """
    伟/wei 强/qiang 磊/lei 军/jun 洋/yang 勇/yong 杰/jie 涛/tao 明/ming 超/chao 刚/gang
    平/ping 辉/hui 鹏/peng 华/hua 飞/fei 鑫/xin 波/bo 斌/bin 宇/yu 浩/hao 凯/kai 健/jian
    俊/jun 帆/fan 帅/shuai 旭/xu 龙/long 林/lin 博/bo 文/wen 子/zi 轩/xuan 晨/chen 志/zhi
    建/jian
    """,
    str,
    str,
)
# city, weight, number of stores
CITIES: tuple[tuple[str, float, int], ...] = _records(
    """
    上海/12.0/4 北京/11.0/4 广州/8.0/3 深圳/8.0/3 杭州/7.0/3 成都/7.0/3 武汉/5.0/2 南京/5.0/2
    重庆/5.0/2 西安/4.0/2 苏州/4.0/2 天津/4.0/2 长沙/3.0/1 郑州/3.0/1 青岛/3.0/1 宁波/2.5/1
    厦门/2.0/1 合肥/2.0/1 济南/2.0/1 沈阳/2.0/1 大连/1.5/1 福州/1.5/1 昆明/1.5/1 东莞/1.5/0
    无锡/1.5/1 佛山/1.5/0 哈尔滨/1.0/0 石家庄/1.0/0
    """,
    str,
    float,
    int,
)
# domain, weight
EMAIL_DOMAINS: tuple[tuple[str, float], ...] = _records(
    """
    qq.com/35 163.com/20 126.com/8 gmail.com/8 outlook.com/6 sina.com/5 icloud.com/5
    139.com/5 hotmail.com/4 foxmail.com/4
    """,
    str,
    float,
)
PHONE_PREFIXES: tuple[str, ...] = tuple(
    [f"13{d}" for d in range(10)]
    + ["150", "151", "152", "153", "155", "156", "157", "158", "159"]
    + [f"18{d}" for d in range(10)]
    + ["191", "198", "199"]
)
# Multipliers coprime with 10 (see the module docstring).
_PHONE_MULT = 48_271_891
_QQ_MULT = 738_219_437
_EMAIL_MULT = 2_654_435_761

PHONE_FILLED = 0.9
EMAIL_FILLED = 0.5
BIRTHDAY_FILLED = 0.92
CONSENT_TRUE = 0.8
FEMALE_SHARE = 0.58

CHANNELS: tuple[str, ...] = ("tmall", "jd", "wechat_mini", "store")
CHANNEL_WEIGHTS: tuple[float, ...] = (0.35, 0.20, 0.25, 0.20)
STORE = CHANNELS.index("store")

ACQ_CHANNELS: tuple[str, ...] = ("tmall", "jd", "wechat_ads", "douyin", "store", "referral")
ACQ_WEIGHTS: tuple[float, ...] = (0.28, 0.15, 0.18, 0.14, 0.17, 0.08)
ACQ_COST_MEAN: tuple[float, ...] = (38.0, 35.0, 28.0, 45.0, 12.0, 20.0)
ACQ_COST_SIGMA = 0.35
ACQ_COST_MISSING = 0.10
# preferred order channel implied by the acquisition channel (weights over CHANNELS)
_ACQ_TO_CHANNEL: tuple[tuple[float, ...], ...] = (
    (1.0, 0.0, 0.0, 0.0),  # tmall
    (0.0, 1.0, 0.0, 0.0),  # jd
    (0.0, 0.0, 1.0, 0.0),  # wechat_ads
    (0.5, 0.0, 0.5, 0.0),  # douyin
    (0.0, 0.0, 0.0, 1.0),  # store
    CHANNEL_WEIGHTS,  # referral
)
ACQ_CHANNEL_STICKINESS = 0.5

_NO_BIRTHDAY = np.iinfo(int).min


@dataclass(frozen=True)
class UniqueIds:
    """Offsets of the per-member permutations used for unique contact details."""

    phone_offset: int
    qq_offset: int
    email_offset: int
    email_mod: int

    @classmethod
    def draw(cls, rng: np.random.Generator, members: int) -> UniqueIds:
        return cls(
            phone_offset=int(rng.integers(0, 10**8)),
            qq_offset=int(rng.integers(0, 10**9)),
            email_offset=int(rng.integers(0, 10**9)),
            email_mod=10 ** max(4, len(str(members))),
        )


def member_attributes(
    rng: np.random.Generator,
    cal: Calendar,
    idx: NDArray[np.int64],
    reg_day: NDArray[np.int32],
    ids: UniqueIds,
) -> dict[str, NDArray]:
    """Draw demographic and acquisition attributes (as codes) for a chunk of members."""
    n = len(idx)
    female = rng.random(n) < FEMALE_SHARE
    surname = rng.choice(len(SURNAMES), size=n, p=weights([s[2] for s in SURNAMES]))
    pool = np.where(female, len(GIVEN_F), len(GIVEN_M))
    g1 = (rng.random(n) * pool).astype(np.int64)
    g2 = (rng.random(n) * pool).astype(np.int64)
    two_chars = rng.random(n) < 0.65
    age_days = ((18.0 + 47.0 * rng.beta(2.0, 3.2, n)) * 365.25).astype(np.int64)
    has_birthday = rng.random(n) < BIRTHDAY_FILLED
    city = rng.choice(len(CITIES), size=n, p=weights([c[1] for c in CITIES]))
    phone_prefix = rng.integers(0, len(PHONE_PREFIXES), n)
    has_phone = rng.random(n) < PHONE_FILLED
    has_email = rng.random(n) < EMAIL_FILLED
    domain = rng.choice(len(EMAIL_DOMAINS), size=n, p=weights([d[1] for d in EMAIL_DOMAINS]))
    numeric_email = (domain == 0) & (rng.random(n) < 0.6)
    acq = rng.choice(len(ACQ_CHANNELS), size=n, p=weights(ACQ_WEIGHTS))
    cost = np.asarray(ACQ_COST_MEAN)[acq] * np.exp(
        ACQ_COST_SIGMA * rng.standard_normal(n) - ACQ_COST_SIGMA**2 / 2
    )
    has_cost = rng.random(n) >= ACQ_COST_MISSING
    consent = rng.random(n) < CONSENT_TRUE

    # preferred order channel: implied by acquisition channel half of the time
    implied = np.asarray(_ACQ_TO_CHANNEL, dtype=np.float64)[acq]
    implied_cdf = np.cumsum(implied, axis=1)
    implied_cdf /= implied_cdf[:, -1:]
    implied_ch = (rng.random(n)[:, None] >= implied_cdf).sum(axis=1)
    general_ch = rng.choice(len(CHANNELS), size=n, p=weights(CHANNEL_WEIGHTS))
    sticky = rng.random(n) < ACQ_CHANNEL_STICKINESS
    pref = np.where(sticky, implied_ch, general_ch).astype(np.int8)

    stores_per_city = np.array([c[2] for c in CITIES], dtype=np.int64)
    store_base = np.cumsum(stores_per_city) - stores_per_city
    n_stores = int(stores_per_city.sum())
    own = stores_per_city[city] > 0
    home_store = np.where(
        own,
        store_base[city] + (rng.random(n) * np.maximum(stores_per_city[city], 1)).astype(int),
        rng.integers(0, n_stores, n),
    ).astype(np.int16)

    end_day = np.datetime64(cal.end, "D")
    return {
        "idx": idx,
        "reg_day": reg_day,
        "female": female,
        "surname": surname,
        "g1": g1,
        "g2": np.where(two_chars, g2, -1),
        "birthday": np.where(has_birthday, (end_day - age_days).astype(np.int64), _NO_BIRTHDAY),
        "city": city,
        "phone_prefix": phone_prefix,
        "phone_suffix": (idx * _PHONE_MULT + ids.phone_offset) % 10**8,
        "has_phone": has_phone,
        "has_email": has_email,
        "domain": domain,
        "numeric_email": numeric_email,
        "qq_number": 100_000 + (idx * _QQ_MULT + ids.qq_offset) % 10**9,
        "email_digits": (idx * _EMAIL_MULT + ids.email_offset) % ids.email_mod,
        "acq": acq,
        "cost_cents": np.where(has_cost, np.round(cost * 100).astype(np.int64), -1),
        "consent": consent,
        "pref_channel": pref,
        "home_store": home_store,
    }


def _by_gender(
    female: NDArray[np.bool_], codes: NDArray, f_values: list[str], m_values: list[str]
) -> pa.Array:
    """Look codes up in the female or the male list; code -1 gives an empty string."""
    return pc.if_else(
        female,
        lookup(f_values + [""], np.where(codes < 0, len(f_values), codes)),
        lookup(m_values + [""], np.where(codes < 0, len(m_values), codes)),
    )


def members_table(mem: dict[str, NDArray], cal: Calendar, id_width: int) -> pa.Table:
    """The ``members.csv`` rows of a chunk, from the codes of :func:`member_attributes`."""
    n = len(mem["idx"])
    start = np.datetime64(cal.start, "D")
    female = mem["female"]
    g1, g2 = mem["g1"], mem["g2"]
    han_f, pin_f = [g[0] for g in GIVEN_F], [g[1] for g in GIVEN_F]
    han_m, pin_m = [g[0] for g in GIVEN_M], [g[1] for g in GIVEN_M]
    surname = lookup([s[0] for s in SURNAMES], mem["surname"])
    name = pc.binary_join_element_wise(
        surname, _by_gender(female, g1, han_f, han_m), _by_gender(female, g2, han_f, han_m), ""
    )

    sur_py = lookup([s[1] for s in SURNAMES], mem["surname"])
    digit_str = pa.array(mem["email_digits"]).cast(pa.string())
    local = pc.if_else(
        pa.array(mem["numeric_email"]),
        pa.array(mem["qq_number"]).cast(pa.string()),
        pc.binary_join_element_wise(
            sur_py,
            _by_gender(female, g1, pin_f, pin_m),
            _by_gender(female, g2, pin_f, pin_m),
            digit_str,
            "",
        ),
    )
    domain = lookup([d[0] for d in EMAIL_DOMAINS], mem["domain"])
    email = pc.binary_join_element_wise(local, domain, "@")
    email = pc.if_else(pa.array(mem["has_email"]), email, pa.nulls(n, pa.string()))

    phone = pc.binary_join_element_wise(
        lookup(PHONE_PREFIXES, mem["phone_prefix"]),
        pc.utf8_lpad(pa.array(mem["phone_suffix"]).cast(pa.string()), 8, "0"),
        "",
    )
    phone = pc.if_else(pa.array(mem["has_phone"]), phone, pa.nulls(n, pa.string()))

    bday = mem["birthday"]
    has_bday = bday != _NO_BIRTHDAY
    birthday = pa.array(np.where(has_bday, bday, 0).astype("datetime64[D]"), mask=~has_bday)

    return pa.table(
        {
            "member_id": padded("M", mem["idx"] + 1, id_width),
            "registered_at": pa.array(start + mem["reg_day"].astype(np.int64)),
            "name": name,
            "gender": pc.if_else(pa.array(female), "F", "M"),
            "birthday": birthday,
            "city": lookup([c[0] for c in CITIES], mem["city"]),
            "phone": phone,
            "email": email,
            "acquisition_channel": lookup(ACQ_CHANNELS, mem["acq"]),
            "acquisition_cost": money(mem["cost_cents"], mem["cost_cents"] >= 0),
            "marketing_consent": pc.if_else(pa.array(mem["consent"]), "true", "false"),
        }
    )
