"""Deterministic synthetic demo data for Wuhai (乌海): residents, enterprises, contributions.

Everything is generated inside DuckDB from ``range()`` with ``hash(hash(key, seed, salt))`` as the
pseudo-random source: unlike ``random()`` it does not depend on thread scheduling, so the same
(scale, seed) gives byte-identical Parquet files (for the same DuckDB version: ``hash`` is not
guaranteed stable across DuckDB releases). Every output is written with ``ORDER BY`` its row key.

Identifiers are valid (check characters per :mod:`catalog.idcodes`) so detectors and maskers
can be tested against them; they are synthetic and belong to nobody.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from pathlib import Path

import duckdb

from catalog import idcodes

RESIDENTS_PER_SCALE = 5_000
ENTERPRISES_PER_SCALE = 300
MIN_CONTRIBUTIONS_PER_SCALE = 100_000
MAX_SCALE = 1_000  # keeps the injective code constructions below collision-free

# (admin code, district, share of residents, share of enterprises)
DISTRICTS = [
    ("150302", "海勃湾区", 0.55, 0.50),
    ("150303", "海南区", 0.20, 0.30),
    ("150304", "乌达区", 0.25, 0.20),
]
DISTRICT_NAMES = [d[1] for d in DISTRICTS]

# (industry, share, name keywords, median employees, median capital 万元, median wage 元/月)
INDUSTRIES = [
    ("煤炭开采", 0.10, ["煤业", "矿业", "能源"], 300, 5000, 8500),
    ("化工", 0.12, ["煤化", "化工", "焦化", "氯碱"], 250, 3000, 7500),
    ("冶金", 0.08, ["冶金", "硅铁", "铝业", "钢铁"], 200, 2000, 7000),
    ("建筑", 0.12, ["建筑工程", "建设", "路桥"], 80, 1000, 5500),
    ("批发零售", 0.20, ["商贸", "贸易", "超市"], 15, 100, 4200),
    ("交通运输", 0.10, ["物流", "运输", "汽运"], 30, 300, 5200),
    ("住宿餐饮", 0.10, ["酒店", "餐饮", "宾馆"], 20, 50, 3800),
    ("信息技术", 0.05, ["信息技术", "网络科技", "软件"], 25, 200, 7800),
    ("农业", 0.06, ["农牧业", "葡萄种植", "农业科技"], 20, 100, 3500),
    ("公共服务", 0.07, ["环卫服务", "供热", "水务"], 60, 500, 6000),
]
INDUSTRY_NAMES = [x[0] for x in INDUSTRIES]

SURNAMES = list(
    "王王王李李李张张张刘刘陈陈杨杨赵赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁"
    "邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康"
    "毛邱秦江史顾侯邵孟龙万段雷钱汤尹易常武乔贺赖龚文包"
)
MIDDLE_CHARS = list("文晓建志小俊子家嘉雨思天永玉春德海宏新立金")
MALE_CHARS = list("伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宁国峰亮龙浩宇凯林东")
FEMALE_CHARS = list("芳娜敏静丽艳娟霞秀英玲燕红梅琳婷雪慧颖倩洁莉晶佳欣悦兰萍")
MONGOLIAN_MALE = ["巴特尔", "宝音图", "朝鲁", "额尔敦", "阿拉坦", "那日苏", "苏和", "巴图"]
MONGOLIAN_FEMALE = ["其其格", "乌日娜", "萨仁", "斯琴", "图雅", "娜仁", "高娃", "其木格"]
MOBILE_PREFIXES = (
    [f"13{d}" for d in range(10)]
    + ["145", "147", "150", "151", "152", "153", "155", "156", "157", "158", "159", "166"]
    + ["173", "175", "176", "177", "178"]
    + [f"18{d}" for d in range(10)]
    + ["191", "193", "195", "198", "199"]
)
STREETS = [  # same length per district so one index expression serves all three
    ["滨河大道", "黄河东街", "海北大街", "人民路", "新华大街", "团结路"],
    ["公园路", "民族街", "健康路", "拉僧庙路", "西卓子山街", "海拉路"],
    ["滨海大街", "团结街", "五虎山路", "苏海图路", "新达街", "巴音赛路"],
]
ZIHAO_1 = list("宏泰华鑫金恒瑞丰盛兴隆达通汇鼎晟源润坤德天蒙黄乌星荣")
ZIHAO_2 = list("泰达源丰盛昌信宇鑫安通和元成祥荣辉星泽远河海")
COMPANY_FORMS = ["有限公司", "有限公司", "有限责任公司", "股份有限公司"]

ID, QI, SENS, ATTR = "direct_identifier", "quasi_identifier", "sensitive", "attribute"
# Manifest columns: name -> (type, role, extra, description); extra is an identifier_kind (str),
# bounds (tuple) or public categories (list).
DATASETS: dict[str, dict] = {
    "residents": {
        "title": "常住人口基本信息",
        "owner_department": "乌海市公安局",
        "description": "常住人口户籍与联系方式(合成演示数据)",
        "update_frequency": "monthly",
        "classification": "important",
        "columns": {
            "resident_id": ("string", ID, "cn_resident_id", "公民身份号码"),
            "name": ("string", ID, "person_name", "姓名"),
            "mobile": ("string", ID, "cn_mobile", "手机号码"),
            "birth_date": ("date", QI, ("1940-01-01", "2008-12-31"), "出生日期"),
            "gender": ("string", QI, ["男", "女"], "性别"),
            "district": ("string", QI, DISTRICT_NAMES, "所属区"),
            "address": ("string", ID, "address", "住址"),
        },
    },
    "enterprises": {
        "title": "企业登记信息",
        "owner_department": "乌海市市场监督管理局",
        "description": "市场主体登记基本信息(合成演示数据)",
        "update_frequency": "monthly",
        "classification": "general",
        "columns": {
            "credit_code": ("string", ATTR, "cn_uscc", "统一社会信用代码"),
            "name": ("string", ATTR, None, "企业名称"),
            "industry": ("string", QI, INDUSTRY_NAMES, "所属行业"),
            "district": ("string", QI, DISTRICT_NAMES, "登记所在区"),
            "employees": ("integer", ATTR, (1, 20000), "从业人数"),
            "registered_capital": ("float", SENS, (10, 1000000), "注册资本(万元)"),
        },
    },
    "contributions": {
        "title": "社会保险缴费记录",
        "owner_department": "乌海市人力资源和社会保障局",
        "description": "城镇职工基本养老保险月度缴费明细(合成演示数据)",
        "update_frequency": "monthly",
        "classification": "important",
        "columns": {
            "resident_id": ("string", ID, "cn_resident_id", "参保人公民身份号码"),
            "enterprise_code": ("string", ATTR, "cn_uscc", "缴费单位统一社会信用代码"),
            "district": ("string", QI, DISTRICT_NAMES, "缴费单位所在区"),
            "month": ("date", QI, ("2024-01-01", "2025-12-01"), "缴费月份"),
            "wage_base": ("float", SENS, (1000, 40000), "缴费基数(元)"),
            "pension_paid": ("float", SENS, (160, 6400), "养老保险缴费额(元, 缴费基数的16%)"),
        },
    },
}

# Date columns that hold months (stored as the first day), declared so twins match.
GRANULARITY = {("contributions", "month"): "month"}

Progress = Callable[[str, int, int], None]


class _Sql:
    """SQL snippets for hash-based pseudo-randomness under one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def h(self, key: str, salt: int) -> str:
        """UBIGINT hash of (key, seed, salt). DuckDB combines multi-argument hashes so weakly
        that ``hash(i, s, 2)`` and ``hash(i, s, 3)`` correlate (r ≈ 0.5); hashing the result
        again mixes the salt in fully."""
        return f"hash(hash({key}, {self.seed}, {salt}))"

    def u(self, key: str, salt: int) -> str:
        """Uniform DOUBLE in [0, 1) from the top 53 bits of :meth:`h`."""
        return f"(({self.h(key, salt)} >> 11)::DOUBLE / 9007199254740992.0)"

    def n(self, key: str, salt: int, k: int | str) -> str:
        """Integer in [0, k)."""
        return f"CAST({self.h(key, salt)} % {k} AS BIGINT)"

    def normal(self, key: str, salt: int) -> str:
        """Standard normal by Box-Muller (1 - u is in (0, 1], so ln never sees 0)."""
        return f"(sqrt(-2 * ln(1 - {self.u(key, salt)})) * cos(2 * pi() * {self.u(key, salt + 1)}))"

    def weighted(self, key: str, salt: int, weights: list[float]) -> str:
        """Index 0..len-1 drawn with the given (summing to 1) weights."""
        u, acc, arms = self.u(key, salt), 0.0, []
        for idx, w in enumerate(weights[:-1]):
            acc += w
            arms.append(f"WHEN {u} < {acc:.6f} THEN {idx}")
        return f"(CASE {' '.join(arms)} ELSE {len(weights) - 1} END)"


def _lit(values: list) -> str:
    """A DuckDB list literal; our strings never contain quotes."""
    return "[" + ", ".join(f"'{v}'" if isinstance(v, str) else repr(v) for v in values) + "]"


def _pick(values: list, index_sql: str) -> str:
    return f"list_element({_lit(values)}, CAST({index_sql} AS BIGINT) + 1)"


def _residents_sql(s: _Sql, n: int) -> list[str]:
    born_span = (1964, 2006)  # 85% of residents are of working age
    days_wide = 25_202  # 1940-01-01 .. 2008-12-31 inclusive
    days_core = 15_706  # 1964-01-01 .. 2006-12-31 inclusive
    prefixes = _lit([d[0] for d in DISTRICTS])
    step0 = f"""
    CREATE TEMP TABLE r0 AS
    SELECT i,
      {s.weighted("i", 1, [d[2] for d in DISTRICTS])} AS d,
      CASE WHEN {s.u("i", 2)} < 0.85
        THEN DATE '{born_span[0]}-01-01' + CAST(floor({s.u("i", 3)} * {days_core}) AS INTEGER)
        ELSE DATE '1940-01-01' + CAST(floor({s.u("i", 3)} * {days_wide}) AS INTEGER)
      END AS birth_date,
      {s.n("i", 4, 2)} AS male
    FROM range({n}) t(i)"""
    # Unique IDs: within each (district, birth date, gender) the k-th person gets sequence
    # (start + k) mod 500, start drawn per group; *2 + male gives the GB 11643 gender parity.
    step1 = f"""
    CREATE TEMP TABLE r1 AS
    SELECT *,
      list_element({prefixes}, d + 1) || strftime(birth_date, '%Y%m%d') || lpad(CAST(
        (({s.n("d, birth_date, male", 5, 500)} + k) % 500) * 2 + male AS VARCHAR), 3, '0'
      ) AS body
    FROM (SELECT *, row_number() OVER (PARTITION BY d, birth_date, male ORDER BY i) - 1 AS k,
            row_number() OVER (ORDER BY {s.h("i", 31)}, i) - 1 AS shuffled
          FROM r0)"""
    # Mobile suffixes: an affine bijection mod 10^8 of a shuffled row rank, hence unique.
    mult, offset = 73_939_133, (s.seed * 2_654_435_761) % 100_000_000
    given = f"""CASE WHEN male = 1 THEN {_pick(MALE_CHARS, s.n("i", 12, len(MALE_CHARS)))}
                ELSE {_pick(FEMALE_CHARS, s.n("i", 12, len(FEMALE_CHARS)))} END"""
    name = f"""CASE
      WHEN {s.u("i", 10)} < 0.04 THEN (CASE WHEN male = 1
        THEN {_pick(MONGOLIAN_MALE, s.n("i", 11, len(MONGOLIAN_MALE)))}
        ELSE {_pick(MONGOLIAN_FEMALE, s.n("i", 11, len(MONGOLIAN_FEMALE)))} END)
      WHEN {s.u("i", 13)} < 0.3 THEN {_pick(SURNAMES, s.n("i", 14, len(SURNAMES)))} || {given}
      ELSE {_pick(SURNAMES, s.n("i", 14, len(SURNAMES)))}
        || {_pick(MIDDLE_CHARS, s.n("i", 15, len(MIDDLE_CHARS)))} || {given} END"""
    streets = "[" + ", ".join(_lit(x) for x in STREETS) + "]"
    address = f"""'乌海市' || list_element({_lit(DISTRICT_NAMES)}, d + 1)
      || list_element(list_element({streets}, d + 1), {s.n("i", 20, len(STREETS[0]))} + 1)
      || CAST(1 + {s.n("i", 21, 300)} AS VARCHAR) || '号'
      || CAST(1 + {s.n("i", 22, 6)} AS VARCHAR) || '单元'
      || CAST(1 + {s.n("i", 23, 18)} AS VARCHAR)
      || lpad(CAST(1 + {s.n("i", 24, 4)} AS VARCHAR), 2, '0')"""
    step2 = f"""
    CREATE TEMP TABLE residents AS
    SELECT i, d, male, body || {idcodes.resident_id_check_sql("body")} AS resident_id,
      {name} AS name,
      {_pick(MOBILE_PREFIXES, s.n("i", 30, len(MOBILE_PREFIXES)))}
        || lpad(CAST((shuffled * {mult} + {offset}) % 100000000 AS VARCHAR), 8, '0') AS mobile,
      birth_date,
      CASE WHEN male = 1 THEN '男' ELSE '女' END AS gender,
      list_element({_lit(DISTRICT_NAMES)}, d + 1) AS district,
      {address} AS address
    FROM r1 ORDER BY i"""
    return [step0, step1, step2]


def _enterprises_sql(s: _Sql, m: int) -> str:
    keywords = "[" + ", ".join(_lit(x[2]) for x in INDUSTRIES) + "]"
    ln_emp = _lit([float(f"{math.log(x[3]):.6f}") for x in INDUSTRIES])
    ln_cap = _lit([float(f"{math.log(x[4]):.6f}") for x in INDUSTRIES])
    kw = f"list_element({keywords}, ind + 1)"
    name = f"""'乌海市' || {_pick(ZIHAO_1, s.n("e", 10, len(ZIHAO_1)))}
      || {_pick(ZIHAO_2, s.n("e", 11, len(ZIHAO_2)))}
      || list_element({kw}, {s.n("e", 12, f"len({kw})")} + 1)
      || {_pick(COMPANY_FORMS, s.n("e", 13, len(COMPANY_FORMS)))}"""
    # Organisation code bodies: an affine bijection of a shuffled rank, hence unique; post-2015
    # style "MA" + 6 digits or older style 8 digits.
    off8, off6 = (s.seed * 40_503) % 100_000_000, (s.seed * 7_919) % 1_000_000
    org_body = f"""CASE WHEN {s.u("e", 4)} < 0.6
        THEN 'MA' || lpad(CAST((shuffled * 738_677 + {off6}) % 1000000 AS VARCHAR), 6, '0')
        ELSE lpad(CAST((shuffled * 73_939_133 + {off8}) % 100000000 AS VARCHAR), 8, '0') END"""
    z_emp, z_cap = s.normal("e", 20), s.normal("e", 22)
    return f"""
    CREATE TEMP TABLE enterprises AS
    WITH es AS (
      SELECT e, row_number() OVER (ORDER BY {s.h("e", 5)}, e) - 1 AS shuffled FROM range({m}) t(e)
    ), e0 AS (
      SELECT e, {s.weighted("e", 1, [d[3] for d in DISTRICTS])} AS d,
        {s.weighted("e", 2, [x[1] for x in INDUSTRIES])} AS ind, {org_body} AS org_body,
        {z_emp} AS z1, {z_cap} AS z2
      FROM es
    ), e1 AS (
      SELECT *, '91' || list_element({_lit([x[0] for x in DISTRICTS])}, d + 1) || org_body
        || {idcodes.org_code_check_sql("org_body")} AS body FROM e0
    )
    SELECT e, d, ind, body || {idcodes.uscc_check_sql("body")} AS credit_code,
      {name} AS name,
      list_element({_lit(INDUSTRY_NAMES)}, ind + 1) AS industry,
      list_element({_lit(DISTRICT_NAMES)}, d + 1) AS district,
      CAST(greatest(1, least(20000, round(exp(list_element({ln_emp}, ind + 1) + z1))))
        AS BIGINT) AS employees,
      CAST(greatest(10, least(1000000, round(exp(list_element({ln_cap}, ind + 1)
        + 0.5 * z1 + 0.7 * z2), 2))) AS DOUBLE) AS registered_capital
    FROM e1 ORDER BY e"""


def _jobs_sql(s: _Sql) -> str:
    """One employment spell per resident at an enterprise drawn in proportion to employees."""
    ln_wage = _lit([float(f"{math.log(x[5]):.6f}") for x in INDUSTRIES])
    kind, h1, h2 = s.u("r.i", 41), s.n("r.i", 42, 23), s.n("r.i", 43, 24)
    age = "(2024 - year(r.birth_date))"
    return f"""
    CREATE TEMP TABLE jobs AS
    WITH cum AS (
      SELECT e, credit_code, district, ind, sum(employees) OVER (ORDER BY e) - employees AS lo
      FROM enterprises
    ), pick AS (
      SELECT r.i, r.resident_id, r.birth_date, r.male,
        CAST(floor({s.u("r.i", 40)} * (SELECT sum(employees) FROM enterprises)) AS BIGINT) AS t,
        CASE WHEN {kind} < 0.78 THEN 0 WHEN {kind} < 0.86 THEN 1 + {h1}
             WHEN {kind} < 0.94 THEN 0 ELSE {h2} END AS start,
        CASE WHEN {kind} < 0.78 THEN 24 WHEN {kind} < 0.86 THEN 23 - {h1}
             WHEN {kind} < 0.94 THEN 1 + {h1}
             ELSE 1 + {s.n("r.i", 44, f"(24 - {h2})")} END AS len,
        {s.normal("r.i", 45)} AS z,
        -0.0004 * ({age} - 45) * ({age} - 45) + 0.08 * r.male AS adj
      FROM residents r
    )
    SELECT p.i, p.resident_id, c.credit_code AS enterprise_code, c.district, p.start, p.len,
      exp(list_element({ln_wage}, c.ind + 1) + 0.45 * p.z + p.adj) AS base
    FROM pick p ASOF JOIN cum c ON p.t >= c.lo
    ORDER BY p.i"""


def _contributions_select(s: _Sql) -> str:
    noise = s.u("i, m", 50)
    raise_2025 = "(CASE WHEN m >= 12 THEN 1.04 ELSE 1.0 END)"
    wage = f"round(greatest(1000.0, least(40000.0, base * {raise_2025} * (0.95 + 0.1 * {noise}))))"
    return f"""
    SELECT resident_id, enterprise_code, district,
      make_date(CAST(2024 + m // 12 AS INTEGER), CAST(m % 12 + 1 AS INTEGER), 1) AS month,
      wage_base, round(wage_base * 0.16, 2) AS pension_paid
    FROM (
      SELECT *, CAST({wage} AS DOUBLE) AS wage_base
      FROM (SELECT *, unnest(range(start, start + len)) AS m FROM jobs)
    )
    ORDER BY i, m"""


def _scalar(value: object) -> str:
    """A YAML scalar that is safe in flow context: quote anything with YAML punctuation."""
    text = str(value)
    if isinstance(value, str) and (not text or any(c in text for c in ",[]{}#:'\"&*!|>%@`")):
        return "'" + text.replace("'", "''") + "'"
    return text


def manifest_yaml(name: str, meta: dict, files: list[str], note: str) -> str:
    """The manifest text in the documented layout (flow-style columns, readable Chinese)."""
    lines = [f"# {note}", f"name: {name}"]
    for key in ("title", "owner_department", "description", "update_frequency", "classification"):
        lines.append(f"{key}: {_scalar(meta[key])}")
    lines.append(f"files: [{', '.join(files)}]")
    if "encoding" in meta:
        lines.append(f"encoding: {meta['encoding']}")
    lines.append("columns:")
    for column, (typ, role, extra, desc) in meta["columns"].items():
        parts = [f"type: {typ}", f"role: {role}"]
        if isinstance(extra, str):
            parts.append(f"identifier_kind: {extra}")
        elif isinstance(extra, tuple):
            parts.append(f"bounds: [{', '.join(repr(b) for b in extra)}]")  # dates quoted
            if (name, column) in GRANULARITY:
                parts.append(f"granularity: {GRANULARITY[(name, column)]}")
        elif isinstance(extra, list):
            parts.append(f"categories: [{', '.join(_scalar(c) for c in extra)}]")
        parts.append(f"description: {_scalar(desc)}")
        lines.append(f"  {column}: {{{', '.join(parts)}}}")
    return "\n".join(lines) + "\n"


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def generate_demo_data(
    out: Path,
    scale: int = 1,
    seed: int = 20261127,
    progress: Progress | None = None,
) -> list[Path]:
    """Write residents, enterprises and contributions (Parquet + YAML manifest) into ``out``.

    Returns the three manifest paths. Rows: 5,000 / 300 / ≈105,000 (never under 100,000) per
    unit of ``scale``. Same (scale, seed) and DuckDB version → byte-identical files.
    """
    if not isinstance(scale, int) or not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be an integer from 1 to {MAX_SCALE}, got {scale!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = _Sql(seed)
    note = f"合成演示数据 synthetic demo data: shuyu demo (scale={scale}, seed={int(seed)})"
    selects = {
        "residents": "SELECT resident_id, name, mobile, birth_date, gender, district, address "
        "FROM residents ORDER BY i",
        "enterprises": "SELECT credit_code, name, industry, district, employees, "
        "registered_capital FROM enterprises ORDER BY e",
        "contributions": _contributions_select(s),
    }
    total, done, manifests = 2 * len(DATASETS), 0, []
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET preserve_insertion_order = true")
        for sql in _residents_sql(s, RESIDENTS_PER_SCALE * scale):
            con.execute(sql)
        (worst,) = con.execute("SELECT max(k) FROM r1").fetchone()  # type: ignore[misc]
        if worst >= 500:  # cannot happen below MAX_SCALE; guards the uniqueness argument
            raise RuntimeError("too many residents share a birth date; lower the scale")
        con.execute(_enterprises_sql(s, ENTERPRISES_PER_SCALE * scale))
        con.execute(_jobs_sql(s))
        (rows,) = con.execute("SELECT sum(len) FROM jobs").fetchone()  # type: ignore[misc]
        if rows < MIN_CONTRIBUTIONS_PER_SCALE * scale:
            raise RuntimeError(f"seed {seed} gave only {rows} contribution rows; try another")
        for name, meta in DATASETS.items():
            target = out / f"{name}.parquet"
            tmp = out / f".{name}.parquet.tmp"
            con.execute(
                f"COPY ({selects[name]}) TO {_quote(tmp)} (FORMAT parquet, COMPRESSION zstd)"
            )
            os.replace(tmp, target)
            done += 1
            if progress:
                progress(target.name, done, total)
            manifest = out / f"{name}.yaml"
            manifest.write_text(manifest_yaml(name, meta, [target.name], note), encoding="utf-8")
            manifests.append(manifest)
            done += 1
            if progress:
                progress(manifest.name, done, total)
    finally:
        con.close()
    return manifests


# fmt: off
HOSPITALS = [
    ("乌海市人民医院", "海勃湾区", 1200), ("乌海市蒙医中医医院", "海勃湾区", 450),
    ("乌海市妇幼保健院", "海勃湾区", 300), ("乌海市第二人民医院", "乌达区", 600),
    ("乌海市第三人民医院", "海南区", 380), ("海勃湾区人民医院", "海勃湾区", 260),
    ("海南区人民医院", "海南区", 220), ("乌达区人民医院", "乌达区", 240),
    ("乌海市口腔医院", "海勃湾区", 60), ("乌海市眼科医院", "海勃湾区", 80),
    ("海勃湾区滨河社区卫生服务中心", "海勃湾区", 30), ("乌海市骨科医院", "海南区", 150),
    ("海勃湾区千里山镇卫生院", "海勃湾区", 40), ("海南区拉僧庙镇卫生院", "海南区", 35),
    ("海南区巴音陶亥镇卫生院", "海南区", 30), ("海南区公乌素社区卫生服务中心", "海南区", 20),
    ("乌达区乌兰淖尔镇卫生院", "乌达区", 30), ("乌达区苏海图社区卫生服务中心", "乌达区", 20),
    ("乌达区五虎山康复医院", "乌达区", 120),
    ("海勃湾区新华社区卫生服务中心", "海勃湾区", 25),
]
# fmt: on
HOSPITALS_META = {
    "title": "医疗机构床位",
    "owner_department": "乌海市卫生健康委员会",
    "description": "医疗机构核定床位数(合成演示数据, GBK 编码 CSV)",
    "update_frequency": "yearly",
    "classification": "general",
    "encoding": "gbk",
    "columns": {
        "hospital_name": ("string", ATTR, None, "医疗机构名称"),
        "district": ("string", QI, DISTRICT_NAMES, "所属区"),
        "beds": ("integer", ATTR, (0, 2000), "核定床位数"),
    },
}


def write_gbk_csv_sample(out: Path) -> Path:
    """Write ``hospitals_gbk.csv`` (GBK, 20 rows) and its manifest; return the manifest path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "hospitals_gbk.csv", "w", encoding="gbk", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(["hospital_name", "district", "beds"])
        writer.writerows(HOSPITALS)
    manifest = out / "hospitals_gbk.yaml"
    note = "合成演示数据 synthetic demo data: GBK-encoded CSV sample for catalog tests"
    text = manifest_yaml("hospitals_gbk", HOSPITALS_META, ["hospitals_gbk.csv"], note)
    manifest.write_text(text, encoding="utf-8")
    return manifest
