"""A small, deterministic, bilingual (Chinese + English) data set for demos and tests.

Each violating row combines a category's cue phrase with neutral filler, so the task is
learnable but not a lookup of whole sentences: a model must pick the cue out of noise. About
one violating row in ten carries two categories (multi-label). Clean rows reuse the same
fillers, so fillers alone predict nothing. It is *not* real moderation data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.synthetic import write_splits

# Cue phrases per category: mild stand-ins for the real thing, enough to be learnable.
CUES: dict[str, dict[str, list[str]]] = {
    "pornography": {
        "zh": ["无码高清成人片", "裸聊一对一服务", "约炮上门服务", "成人视频免费看"],
        "en": ["explicit adult video", "nude cam show", "xxx full movie", "hookup escort service"],
    },
    "soft_pornography": {
        "zh": ["性感写真擦边", "深夜福利私房照", "湿身诱惑写真", "福利姬私房"],
        "en": ["sexy lingerie photoshoot", "late night spicy pics", "seductive bikini tease", "thirst trap selfies"],
    },
    "vulgar": {
        "zh": ["满嘴黄段子", "下流荤段子", "低俗恶搞屁股", "粗俗下三滥笑话"],
        "en": ["dirty toilet joke", "crude butt humor", "gross fart prank", "raunchy locker room talk"],
    },
    "gore": {
        "zh": ["血肉模糊的现场", "断肢满地是血", "尸体内脏外露", "血腥斩首画面"],
        "en": ["bloody mangled corpse", "severed limbs everywhere", "guts spilling out", "graphic beheading footage"],
    },
    "violence": {
        "zh": ["我要打死你", "拿刀砍了他", "往死里揍他", "一拳打爆他的头"],
        "en": ["i will beat you to death", "stab him with a knife", "smash his skull in", "go punch that guy"],
    },
    "terrorism": {
        "zh": ["加入圣战组织", "制作炸弹教程", "恐怖袭击计划", "极端组织招募"],
        "en": ["join the jihad cell", "bomb making tutorial", "plan a terror attack", "extremist group recruiting"],
    },
    "superstition": {
        "zh": ["大师开光转运符", "算命改运消灾", "风水化煞法事", "烧香驱鬼保平安"],
        "en": ["blessed lucky talisman", "psychic fortune telling", "curse removal ritual", "spirit exorcism service"],
    },
    "piracy": {
        "zh": ["盗版电影网盘资源", "破解版软件下载", "电子书免费盗版", "正版教材扫描版分享"],
        "en": ["pirated movie torrent", "cracked software keygen", "free ebook warez download", "bootleg stream link"],
    },
    "scandal_hype": {
        "zh": ["震惊某明星出轨", "独家爆料婚变内幕", "惊天丑闻曝光", "网红私生活大揭秘"],
        "en": ["shocking celebrity affair", "you won't believe this scandal", "leaked star breakup drama", "exclusive gossip exposed"],
    },
    "historical_nihilism": {
        "zh": ["抗战英雄都是编的", "历史大屠杀是假的", "否认烈士事迹", "恶搞革命先烈"],
        "en": ["the massacre never happened", "war heroes were all fake", "holocaust was a hoax", "mocking fallen soldiers"],
    },
    "abuse": {
        "zh": ["你这个傻逼", "滚你妈的", "脑残废物", "死全家的贱人"],
        "en": ["you stupid idiot", "shut up moron", "worthless piece of trash", "go to hell loser"],
    },
}

# Hints that are no violation alone: annotators label them either way (see make_synthetic's
# borderline rows), so a model scores them in the middle, below a threshold. A post whose caption
# hints at a category while its picture hints at the same one is a violation no part is alone.
BORDERLINE: dict[str, dict[str, list[str]]] = {
    "pornography": {"zh": ["私信看更多内容", "懂的都懂来私聊"], "en": ["dm me for the full set", "more in my private channel"]},
    "soft_pornography": {"zh": ["今晚穿得有点少", "猜猜我穿了什么"], "en": ["guess what i am wearing", "not much on tonight"]},
    "vulgar": {"zh": ["说个不正经的", "有点污的笑话"], "en": ["a slightly naughty joke", "not safe for grandma"]},
    "gore": {"zh": ["场面有点吓人", "胆小的别点开"], "en": ["not for the faint hearted", "pretty messy scene"]},
    "violence": {"zh": ["今晚带上家伙", "让他知道厉害"], "en": ["bring the tools tonight", "teach him a lesson"]},
    "terrorism": {"zh": ["行动就在明天", "兄弟们准备好了"], "en": ["the operation is tomorrow", "brothers are ready"]},
    "superstition": {"zh": ["今年犯太岁", "最近运势不好"], "en": ["my stars are off this year", "bad luck lately"]},
    "piracy": {"zh": ["资源在评论区", "链接私聊获取"], "en": ["link in the comments", "ask me for the files"]},
    "scandal_hype": {"zh": ["某人要塌房了", "圈内人透露"], "en": ["someone is about to fall", "an insider tells me"]},
    "historical_nihilism": {"zh": ["课本不一定对", "历史另有说法"], "en": ["textbooks may be wrong", "history tells it otherwise"]},
    "abuse": {"zh": ["你可真行啊", "别再丢人了"], "en": ["you are something else", "stop embarrassing yourself"]},
}

FILLERS = {
    "zh": ["今天天气不错", "刚下班回家", "大家觉得怎么样", "周末去公园", "这家店的奶茶好喝",
           "转发一下", "评论区见", "明天还要上班", "看了一部电影", "分享给朋友们", "晚饭吃了面条", "孩子考试结束了"],
    "en": ["nice weather today", "just got home from work", "what do you all think", "going to the park",
           "this coffee shop is great", "please share", "see you in the comments", "back to work tomorrow",
           "watched a film tonight", "sharing with friends", "had noodles for dinner", "kids finished exams"],
}


def make_synthetic(
    rows_per_category: int = 60,
    clean_rows: int = 300,
    seed: int = 0,
    categories: list[str] | None = None,
    borderline_rows_per_category: int = 0,
    borderline_positive: float = 0.3,
) -> list[dict]:
    """Rows ``{"id", "text", "labels", "language"}``; ``labels`` are category ids.

    ``borderline_rows_per_category`` rows per category carry one of its :data:`BORDERLINE` hints,
    labelled with the category with probability ``borderline_positive`` (annotators disagree)."""
    rng = np.random.default_rng(seed)
    categories = categories or list(CUES)
    unknown = [c for c in categories if c not in CUES]
    if unknown:
        raise ValueError(f"no synthetic cues for {unknown}; available: {', '.join(CUES)}")

    def pick(items: list[str]) -> str:
        return items[int(rng.integers(len(items)))]

    def sentence(language: str, cues: list[str]) -> str:
        parts = [pick(FILLERS[language]) for _ in range(int(rng.integers(1, 3)))] + cues
        order = rng.permutation(len(parts))
        joiner = "，" if language == "zh" else ", "
        return joiner.join(parts[i] for i in order)

    rows = []
    for category in categories:
        for _ in range(rows_per_category):
            language = "zh" if rng.random() < 0.5 else "en"
            labels = [category]
            cues = [pick(CUES[category][language])]
            if rng.random() < 0.1 and len(categories) > 1:
                other = categories[int(rng.integers(len(categories)))]
                if other != category:
                    labels.append(other)
                    cues.append(pick(CUES[other][language]))
            rows.append({"text": sentence(language, cues), "labels": labels, "language": language})
    for _ in range(clean_rows):
        language = "zh" if rng.random() < 0.5 else "en"
        rows.append({"text": sentence(language, []), "labels": [], "language": language})
    for category in categories:
        for _ in range(borderline_rows_per_category):
            language = "zh" if rng.random() < 0.5 else "en"
            labels = [category] if rng.random() < borderline_positive else []
            rows.append({"text": sentence(language, [pick(BORDERLINE[category][language])]), "labels": labels,
                         "language": language})
    order = rng.permutation(len(rows))
    return [{"id": f"syn-{n}", **rows[i]} for n, i in enumerate(order)]


def write_synthetic_splits(directory: str | Path, seed: int = 0, **kwargs) -> dict[str, Path]:
    """Write ``train.jsonl``, ``dev.jsonl`` and ``test.jsonl`` (70/15/15) into ``directory``."""
    directory = Path(directory)
    rows = make_synthetic(seed=seed, **kwargs)
    return write_splits(directory, rows)


def plant_text(rng: np.random.Generator, category: str | None, borderline: bool, path: Path | None = None,
               language: str | None = None) -> dict:
    """A synthetic post's text (the ``text`` planter of :mod:`modelkit.data.synthetic`): fillers
    with ``category``'s cue (or, ``borderline``, one of its hints) at a random place, and the
    cue's character offsets."""
    language = language or ("zh" if rng.random() < 0.5 else "en")
    joiner = "，" if language == "zh" else ", "
    fillers = [FILLERS[language][int(rng.integers(len(FILLERS[language])))] for _ in range(int(rng.integers(1, 4)))]
    if category is None:
        return {"value": joiner.join(fillers), "location": None}
    phrases = (BORDERLINE if borderline else CUES)[category][language]
    cue = phrases[int(rng.integers(len(phrases)))]
    at = int(rng.integers(len(fillers) + 1))
    before = joiner.join(fillers[:at]) + (joiner if at else "")
    after = (joiner if at < len(fillers) else "") + joiner.join(fillers[at:])
    return {"value": before + cue + after, "location": {"start": len(before), "end": len(before) + len(cue)}}
