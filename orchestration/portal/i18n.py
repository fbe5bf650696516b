"""Every label of the portal in English and Chinese (simplified).

`translate(key, lang, **params)` formats a label; `choose_language` picks the language of a
request: `?lang=` (remembered in the `lang` cookie), else the cookie, else the browser's
Accept-Language (Chinese if it prefers Chinese, else English). Charts are images with
English labels (no CJK font is assumed on the server).
"""

from __future__ import annotations

LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"

#: key -> (English, Chinese)
LABELS: dict[str, tuple[str, str]] = {
    # frame
    "app.title": ("CRM marketing portal", "CRM 营销门户"),
    "nav.lists": ("Lists", "名单"),
    "nav.days": ("Days", "历史日期"),
    "nav.results": ("Results", "活动效果"),
    "nav.status": ("Pipeline status", "运行状态"),
    "nav.exclusions": ("Exclusions", "排除原因"),
    "nav.model": ("Model card", "模型卡"),
    "nav.users": ("Users", "用户"),
    "nav.audit": ("Audit log", "审计日志"),
    "nav.sign_out": ("Sign out", "退出登录"),
    "nav.signed_in_as": ("Signed in as", "当前用户"),
    "nav.language": ("Language", "语言"),
    "role.marketer": ("marketer", "营销"),
    "role.analyst": ("analyst", "分析师"),
    "role.admin": ("admin", "管理员"),
    "common.yes": ("yes", "是"),
    "common.no": ("no", "否"),
    "common.none": ("—", "—"),
    "common.total": ("Total", "合计"),
    "common.list": ("List", "名单"),
    "common.campaign": ("Campaign", "活动"),
    "common.channel": ("Channel", "渠道"),
    "common.back": ("Back to the lists", "返回名单"),
    # sign-in
    "login.title": ("Sign in", "登录"),
    "login.username": ("User name", "用户名"),
    "login.password": ("Password", "密码"),
    "login.submit": ("Sign in", "登录"),
    "login.error": (
        "Wrong user name or password, or the account is disabled.",
        "用户名或密码错误，或账户已停用。",
    ),
    "login.throttled": (
        "Too many failed sign-ins. Wait {minutes} minutes, then try again.",
        "登录失败次数过多。请等待 {minutes} 分钟后再试。",
    ),
    "login.no_account": (
        "No account yet? An administrator adds one with: crm users add NAME --role marketer",
        "还没有账户？请管理员运行：crm users add 用户名 --role marketer",
    ),
    "login.signed_out": ("You are signed out.", "您已退出登录。"),
    "login.expired": ("Please sign in.", "请登录。"),
    # a published day
    "day.title": ("Campaign lists as of {as_of}", "{as_of} 的营销名单"),
    "day.published": ("Published {time}", "发布于 {time}"),
    "day.model": ("Model version", "模型版本"),
    "day.purpose": ("Purpose", "目的"),
    "day.offer": ("Offer", "优惠"),
    "day.channels": ("Channels", "渠道"),
    "day.send": ("To send", "发送人数"),
    "day.control": ("Control", "对照组"),
    "day.budget": ("Budget (yuan)", "预算（元）"),
    "day.forecast": ("Forecast buyers (90% interval)", "预测购买人数（90% 区间）"),
    "day.within": ("within {days} days", "{days} 天内"),
    "day.no_forecast": ("no forecast (model skipped)", "无预测（未使用模型）"),
    "day.publish_time": ("Published at", "发布时间"),
    "day.other_days": ("Earlier days", "更早的日期"),
    "day.none": (
        "No lists are published yet. The newest published day appears here after a "
        "successful pipeline run (make demo, or crm run).",
        "还没有发布的名单。流水线成功运行后（make demo 或 crm run），最新一天的名单会显示在这里。",
    ),
    "offer.coupon": (
        "{amount} yuan off orders from {threshold} yuan",
        "满 {threshold} 元减 {amount} 元",
    ),
    "offer.referral": ("referral reward {amount} yuan", "推荐奖励 {amount} 元"),
    "offer.gift": ("gift worth {amount} yuan", "价值 {amount} 元的礼品"),
    "offer.points": ("{amount} points", "{amount} 积分"),
    "offer.other": ("{type}: {amount}", "{type}：{amount}"),
    "offer.valid": ("valid {days} days", "有效期 {days} 天"),
    "goal.win-back": ("win-back", "挽回流失"),
    "goal.retention": ("retention", "留存"),
    "goal.activation": ("activation", "新客激活"),
    "goal.upsell-referral": ("upsell / referral", "升级 / 推荐"),
    "goal.care": ("care", "关怀"),
    "channel.sms": ("SMS", "短信"),
    "channel.email": ("email", "邮件"),
    "channel.push": ("push", "推送"),
    # days
    "days.title": ("Published days", "已发布的日期"),
    "days.as_of": ("As of", "数据日期"),
    "days.lists": ("Lists", "名单数"),
    "days.send": ("To send", "发送人数"),
    "days.control": ("Control", "对照组"),
    "days.budget": ("Budget (yuan)", "预算（元）"),
    "days.latest": ("latest", "最新"),
    "days.none": ("No published days yet.", "还没有已发布的日期。"),
    # one list
    "list.title": ("{list} — as of {as_of}", "{list} — {as_of}"),
    "list.campaign": ("Campaign id {campaign}", "活动编号 {campaign}"),
    "list.groups": ("Priority groups", "优先级分组"),
    "list.groups_help": (
        "Contact group 1 first; stop when the forecast buyers meet your target.",
        "先联系第 1 组；当预测购买人数达到目标时即可停止。",
    ),
    "list.group": ("Group", "分组"),
    "list.sends": ("To send", "发送人数"),
    "list.control": ("Control", "对照组"),
    "list.buyers": ("Forecast buyers (90%)", "预测购买人数（90%）"),
    "list.revenue": ("Forecast revenue, yuan (90%)", "预测收入，元（90%）"),
    "list.cumulative": ("Cumulative buyers", "累计购买人数"),
    "list.chart_alt": ("Forecast buyers by priority group", "各优先级分组的预测购买人数"),
    "list.preview": (
        "Preview: the first 10 rows, personal data masked",
        "预览：前 10 行（个人信息已脱敏）",
    ),
    "list.no_preview": (
        "No preview: the send file is missing or does not match its checksum.",
        "无预览：发送文件缺失或与校验值不一致。",
    ),
    "list.downloads": ("Downloads", "下载"),
    "list.file": ("File", "文件"),
    "list.rows": ("Rows", "行数"),
    "list.size": ("Size", "大小"),
    "list.checksum": ("Checksum", "校验"),
    "list.checksum_ok": ("matches the manifest", "与清单一致"),
    "list.checksum_bad": ("does not match the manifest: not served", "与清单不一致：不提供下载"),
    "list.kind.send": ("send file", "发送文件"),
    "list.kind.control": ("control group (never contacted)", "对照组（不联系）"),
    "list.kind.audience": ("hashed audience for ad platforms", "广告平台哈希人群"),
    "list.kind.other": ("other", "其他"),
    "list.personal": (
        "Send files hold phone numbers and emails: keep them on company systems and delete "
        "them after the send.",
        "发送文件包含手机号和邮箱：请只在公司系统中保存，发送后删除。",
    ),
    "list.mark_sent": ("Mark as sent", "标记为已发送"),
    "list.mark_help": (
        "After sending the list on the send platform, record the day it went out: "
        "cool-downs and campaign results then count the real send date.",
        "在发送平台发出名单后，请登记实际发送日期：冷却期和活动效果将按真实发送日期计算。",
    ),
    "list.sent_on": ("Sent on", "发送日期"),
    "list.all_channels": ("all channels of the list", "名单的全部渠道"),
    "list.platform_id": (
        "Campaign id on the send platform (optional)",
        "发送平台上的活动编号（可选）",
    ),
    "list.mark_submit": ("Mark as sent", "标记为已发送"),
    "list.marks": ("Sent marks", "发送记录"),
    "list.no_marks": ("Not marked as sent yet.", "尚未标记为已发送。"),
    "list.marked_by": ("Marked by", "标记人"),
    "list.marked_at": ("Marked at", "标记时间"),
    "list.mark_state": ("State", "状态"),
    "list.mark_active": ("active", "有效"),
    "list.mark_revoked": ("revoked", "已撤销"),
    "list.revoke": ("Revoke", "撤销"),
    "mark.bad_date": (
        "Give the send day as YYYY-MM-DD, from {as_of} to today ({today}).",
        "请按 YYYY-MM-DD 填写发送日期，范围为 {as_of} 至今天（{today}）。",
    ),
    "mark.bad_channel": (
        "Choose one of the list's channels: {channels}.",
        "请选择名单中的渠道：{channels}。",
    ),
    "mark.bad_platform_id": (
        "The platform campaign id may have at most 100 characters, on one line.",
        "发送平台活动编号最多 100 个字符，且不能换行。",
    ),
    "mark.not_found": ("No such active mark on this list.", "此名单没有该有效记录。"),
    # results
    "results.title": ("Campaign results", "活动效果"),
    "results.help": (
        "Each campaign against its control group, over all channels: uplift is the "
        "contacted members' purchase rate minus the control group's (percentage points, "
        "95% interval); ROI = (incremental revenue − messages − coupon subsidy) / cost. "
        "Provisional until the results window closes.",
        "每个活动与其对照组比较（所有渠道合计）：提升 = 触达会员的购买率 − 对照组购买率"
        "（百分点，95% 区间）；投资回报率 =（增量收入 − 短信等成本 − 优惠券补贴）/ 成本。"
        "观察期结束前为暂定结果。",
    ),
    "results.sent_on": ("Sent on", "发送日期"),
    "results.group": ("Priority group", "优先级分组"),
    "results.all_groups": ("all groups", "全部分组"),
    "results.treated": ("Contacted", "触达人数"),
    "results.control": ("Control", "对照组"),
    "results.uplift": ("Uplift, points (95%)", "提升，百分点（95%）"),
    "results.incremental_buyers": ("Incremental buyers", "增量购买人数"),
    "results.incremental_revenue": ("Incremental revenue (yuan)", "增量收入（元）"),
    "results.roi": ("ROI", "投资回报率"),
    "results.window": ("Window", "观察期"),
    "results.closed": ("closed", "已结束"),
    "results.provisional": ("provisional ({days} days)", "暂定（{days} 天）"),
    "results.where_to_stop": (
        "Where to stop: the newest campaign",
        "在哪里停止：最新的活动",
    ),
    "results.where_to_stop_help": (
        "Cumulative incremental buyers and ROI over the priority groups: the groups after "
        "which ROI turns down are where to stop next time.",
        "按优先级分组累计的增量购买人数和投资回报率：回报率开始下降的分组之后，下次即可停止。",
    ),
    "results.none": (
        "No campaign results yet: results appear once a campaign has been sent and read "
        "out against its control group.",
        "暂无活动效果：活动发送并与对照组比较后，结果会显示在这里。",
    ),
    # status
    "status.title": ("Pipeline status", "流水线运行状态"),
    "status.last_run": ("Last run", "最近一次运行"),
    "status.run_id": ("Run", "运行编号"),
    "status.as_of": ("As of", "数据日期"),
    "status.started": ("Started", "开始时间"),
    "status.ended": ("Ended", "结束时间"),
    "status.trigger": ("Started by", "触发方式"),
    "status.result": ("Result", "结果"),
    "status.SUCCESS": ("succeeded", "成功"),
    "status.FAILURE": ("failed", "失败"),
    "status.STARTED": ("running", "运行中"),
    "status.STARTING": ("starting", "启动中"),
    "status.QUEUED": ("queued", "排队中"),
    "status.NOT_STARTED": ("not started", "未开始"),
    "status.CANCELING": ("canceling", "取消中"),
    "status.CANCELED": ("canceled", "已取消"),
    "status.published": ("Lists for {as_of} are published.", "{as_of} 的名单已发布。"),
    "status.success_unpublished": (
        "The run succeeded but published no lists for {as_of} (nobody to contact?).",
        "运行成功，但没有发布 {as_of} 的名单（没有可联系的会员？）。",
    ),
    "status.failed_unpublished": (
        "Nothing was published; the last good lists stay.",
        "未发布任何内容；上次成功的名单保持不变。",
    ),
    "status.in_progress": ("The run is not finished yet.", "运行尚未结束。"),
    "status.why": ("Why", "原因"),
    "status.hint": ("What to do", "处理建议"),
    "status.newest_day": ("Newest published day", "最新发布日期"),
    "status.none": (
        "No pipeline run is recorded for this warehouse yet. Run make demo or crm run.",
        "此数据仓库还没有运行记录。请运行 make demo 或 crm run。",
    ),
    "status.trigger.cli": ("command line (crm run)", "命令行（crm run）"),
    "status.trigger.schedule": ("nightly schedule", "夜间定时任务"),
    "status.trigger.sensor": ("new landing files", "新到数据文件"),
    # exclusions
    "excl.title": ("Why qualified members are not on a list", "符合条件但未进入名单的原因"),
    "excl.help": (
        "Counts per list and reason from the newest run (marts.campaign_exclusions); "
        "dates in reasons are shown as …",
        "来自最近一次运行的各名单各原因人数（marts.campaign_exclusions）；原因中的日期显示为 …",
    ),
    "excl.reason": ("Reason", "原因"),
    "excl.members": ("Members", "人数"),
    "excl.none": ("Nobody who qualified was left out.", "没有符合条件却被排除的会员。"),
    # model card
    "model.title": ("Model card", "模型卡"),
    "model.version": ("Published model {version}", "已发布的模型 {version}"),
    "model.plots": ("Plots", "图表"),
    # admin
    "users.title": ("Users", "用户"),
    "users.name": ("Name", "名称"),
    "users.role": ("Role", "角色"),
    "users.disabled": ("Disabled", "已停用"),
    "users.created": ("Created", "创建时间"),
    "users.sessions": ("Active sessions", "活动会话"),
    "users.help": (
        "Add or disable users on the server's command line: crm users add NAME --role "
        "marketer|analyst|admin, crm users disable NAME.",
        "请在服务器命令行中添加或停用用户：crm users add 用户名 --role "
        "marketer|analyst|admin，crm users disable 用户名。",
    ),
    "audit.title": ("Audit log", "审计日志"),
    "audit.at": ("When", "时间"),
    "audit.user": ("User", "用户"),
    "audit.action": ("Action", "操作"),
    "audit.detail": ("Detail", "详情"),
    "audit.file": ("File", "文件"),
    "audit.rows": ("Rows", "行数"),
    "audit.address": ("Address", "地址"),
    "audit.older": ("Older entries", "更早的记录"),
    "audit.none": ("No entries.", "没有记录。"),
    "action.sign_in": ("signed in", "登录"),
    "action.sign_in_failed": ("sign-in failed", "登录失败"),
    "action.sign_in_throttled": ("sign-in throttled", "登录受限"),
    "action.sign_out": ("signed out", "退出登录"),
    "action.download": ("download", "下载"),
    "action.download_refused": ("download refused", "拒绝下载"),
    "action.mark_sent": ("marked as sent", "标记为已发送"),
    "action.mark_revoked": ("sent mark revoked", "撤销发送标记"),
    "action.user_added": ("user added", "添加用户"),
    "action.user_disabled": ("user disabled", "停用用户"),
    # errors and explanations
    "error.title": ("Not available", "无法显示"),
    "error.400": ("The request is not valid.", "请求无效。"),
    "error.403": ("Your role ({role}) may not open this.", "您的角色（{role}）无权访问此内容。"),
    "error.403_help": (
        "Ask an administrator if you need a different role.",
        "如需其他权限，请联系管理员。",
    ),
    "error.404": ("Not found.", "未找到。"),
    "error.409": (
        "This file does not match its manifest, so it is not served.",
        "此文件与清单不一致，因此不提供下载。",
    ),
    "error.409_help": (
        "It was changed or removed after it was published. Ask the data team to publish the "
        "day again (crm run).",
        "文件在发布后被修改或删除。请联系数据团队重新发布（crm run）。",
    ),
    "error.csrf": (
        "The form was expired or not sent from this portal. Reload the page and try again.",
        "表单已过期或并非来自本门户。请刷新页面后重试。",
    ),
    "error.500": (
        "Something went wrong on the server; the error was logged.",
        "服务器出错，错误已记录。",
    ),
    "error.busy": (
        "The warehouse is in use by another program; try again in a minute.",
        "数据仓库正被其他程序使用；请一分钟后再试。",
    ),
    "unavail.day": ("No published lists for {as_of}.", "{as_of} 没有已发布的名单。"),
    "unavail.list": ("No list {list} on {as_of}.", "{as_of} 没有名单 {list}。"),
    "unavail.manifest": (
        "The manifest of {day} cannot be read; the day folder is incomplete or damaged. "
        "Publish the day again with crm run.",
        "{day} 的清单无法读取；该日期文件夹不完整或已损坏。请用 crm run 重新发布。",
    ),
    "unavail.warehouse": (
        "The warehouse does not exist yet. Run the pipeline first (make demo, or crm run).",
        "数据仓库尚不存在。请先运行流水线（make demo 或 crm run）。",
    ),
    "unavail.table": (
        "The warehouse has no {table} yet; a complete crm run builds it.",
        "数据仓库中还没有 {table}；完整运行一次 crm run 即可生成。",
    ),
    "unavail.model_latest": (
        "No published model yet (models/LATEST is missing); a crm run with enough data "
        "publishes one.",
        "还没有已发布的模型（缺少 models/LATEST）；数据足够时 crm run 会发布模型。",
    ),
    "unavail.model_bad": (
        "models/LATEST does not name a model folder.",
        "models/LATEST 没有指向模型文件夹。",
    ),
    "unavail.model_folder": (
        "The published model folder {version} is missing.",
        "已发布的模型文件夹 {version} 不存在。",
    ),
    "unavail.model_card": (
        "The model folder {version} has no model card.",
        "模型文件夹 {version} 中没有模型卡。",
    ),
    "unavail.plot": ("No such plot.", "没有该图表。"),
    # download refusals (the audit log keeps the English text)
    "refused.not_day": ("not a published day", "不是已发布的日期"),
    "refused.not_in_manifest": ("not a file of this day's manifest", "不是该日期清单中的文件"),
    "refused.outside": (
        "the manifest names a file outside its folder",
        "清单中的文件不在其文件夹内",
    ),
    "refused.role": ("{kind} files need the {role} role", "{kind}文件需要 {role} 角色"),
    "refused.missing": (
        "listed in the manifest but missing from the folder",
        "清单中有此文件，但文件夹中缺失",
    ),
    "refused.checksum": ("checksum differs from the manifest", "校验值与清单不一致"),
    "refused.not_regular": ("not a regular file", "不是普通文件"),
    "refused.manifest": ("the day's manifest cannot be read", "无法读取该日期的清单"),
}


def translate(key: str, lang: str, **params: object) -> str:
    """The label in `lang` (English when the language is unknown), formatted with params."""
    en, zh = LABELS[key]
    text = zh if lang == "zh" else en
    return text.format(**params) if params else text


def choose_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """`?lang=`, else the `lang` cookie, else Accept-Language (zh if it prefers Chinese)."""
    for value in (query, cookie):
        if value in LANGUAGES:
            return value
    return "zh" if prefers_chinese(accept_language or "") else DEFAULT_LANGUAGE


def prefers_chinese(header: str) -> bool:
    """Whether the highest-weighted language of an Accept-Language header is Chinese."""
    best_lang, best_q = "", -1.0
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        tag = fields[0].lower()
        if not tag:
            continue
        q = 1.0
        for param in fields[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if q > best_q:  # ties go to the earlier entry (the browser's own order)
            best_lang, best_q = tag, q
    return best_q > 0 and (best_lang == "zh" or best_lang.startswith("zh-"))
