"""The decisions page (modelkit.posts.page): one self-contained HTML file of a moderation run,
checked as text (every kind of evidence is there, user text is escaped) and as a screenshot in
headless Chromium without network (pictures decode, highlights and badges are drawn, filters work).

``MODELKIT_WRITE_DOCS_IMAGES=1`` also writes the screenshot to docs/images/decisions.png."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from modelkit.posts.page import (ACTION_COLOURS, FLAGGED_COLOUR, MARK_COLOUR, MARK_OVERLAP_COLOUR,
                                 render_decisions_page)

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "<script>document.title='pwned'</script>"


def _picture(path: Path, size: tuple[int, int], motif: tuple[float, float, float] | None = None,
             category: str = "violence", seed: int = 0) -> Path:
    from modelkit.image.synthetic import motif_colour, noisy_gradient, paint_motif

    rng = np.random.default_rng(seed)
    picture = noisy_gradient(*size, rng)
    if motif is not None:
        paint_motif(picture, category, motif_colour(category, rng), *motif, 0.0)
    picture.save(path)
    return path


def _heat(rows: int, cols: int, centre: tuple[float, float]) -> list[list[float]]:
    ys, xs = np.mgrid[0:rows, 0:cols]
    heat = np.exp(-((ys + 0.5 - centre[1] * rows) ** 2 + (xs + 0.5 - centre[0] * cols) ** 2) / 2.0)
    return np.round(heat / heat.max(), 3).tolist()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """Five posts and their decisions: a removal with every kind of evidence and an unread
    picture, a review, a pass, an error row, and a removal for its video alone."""
    folder = tmp_path_factory.mktemp("decisions")
    flagged = _picture(folder / "fight.png", (240, 160), motif=(170, 60, 40), seed=1)
    sign = folder / "sign.png"
    image = Image.new("RGB", (200, 120), (240, 240, 240))
    ImageDraw.Draw(image).text((20, 50), "ADULT VIDEO", fill=(0, 0, 0))
    image.save(sign)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"not a picture")
    body = f"有人说：我要打死你，还有 {HOSTILE} 在这里"
    start = body.index("打死你")
    posts = {
        "post-1": {"id": "post-1", "account_id": "acc-3",
                   "text": {"title": "周末聚会 & <b>bold</b>", "body": body},
                   "images": [str(_picture(folder / "park.png", (160, 160), seed=2)), str(flagged), str(sign),
                              str(broken)],
                   "video": str(folder / "clip.mp4")},
        "post-2": {"id": "post-2", "account_id": "acc-4", "text": "这个算命大师很灵，转运符包你发财",
                   "images": [str(_picture(folder / "tall.png", (90, 180), motif=(45, 130, 25),
                                           category="superstition", seed=3)), str(folder / "gone.png")]},
        "post-3": {"id": "post-3", "account_id": "acc-5", "text": {"title": "今天天气不错", "body": "去公园散步"},
                   "images": [str(_picture(folder / "sky.png", (200, 150), seed=4))]},
        "post-4": {"id": "post-4", "text": "…"},
        "post-5": {"id": "post-5", "account_id": "acc-3", "text": HOSTILE, "video": str(folder / "long.mp4")},
    }
    decisions = [
        {"id": "post-1", "account_id": "acc-3", "action": "remove", "categories": ["violence", "pornography"],
         "scores": {"pornography": 0.81, "violence": 0.97, "superstition": 0.02},
         "evidence": [
             {"part": "text.body", "category": "violence", "score": 0.95, "weight": 2.3, "start": start,
              "end": start + 3, "text": "打死你"},
             # overlaps the violence span: "我要打" and "打死你" share 打
             {"part": "text.body", "category": "abuse", "score": 0.7, "start": start - 2, "end": start + 1},
             {"part": "images[1]", "category": "violence", "score": 0.91, "index": 1, "weight": 3.1,
              "box": [130, 20, 210, 100], "heatmap": _heat(7, 10, (170 / 240, 60 / 160))},
             {"part": "images[2]", "category": "pornography", "score": 0.8, "index": 2,
              "ocr_lines": [{"text": "成人视频 <img src=x onerror=alert(1)>",
                             "box": [[20, 48], [110, 48], [110, 62], [20, 62]], "score": 0.97}]},
             {"part": "video", "category": "violence", "score": 0.9, "t0": 2.0, "t1": 4.5, "peak_t": 3.1,
              "duration_s": 8.0},
             {"part": "video", "category": "pornography", "score": 0.6, "t0": 6.0, "t1": 7.5, "peak_t": 6.4,
              "duration_s": 8.0}],
         "unread": [{"part": "images[3]", "error": "images[3] broken.jpg: cannot decode picture"}]},
        {"id": "post-2", "account_id": "acc-4", "action": "review", "categories": ["superstition"],
         "scores": {"pornography": 0.01, "violence": 0.02, "superstition": 0.74},
         "evidence": [
             {"part": "text.body", "category": "superstition", "score": 0.7, "start": 2, "end": 6, "text": "算命大师"},
             {"part": "images[0]", "category": "superstition", "score": 0.66, "index": 0, "weight": 1.2,
              "box": [20, 105, 70, 155], "heatmap": _heat(14, 7, (45 / 90, 130 / 180))}],
         "unread": []},
        {"id": "post-3", "account_id": "acc-5", "action": "pass", "categories": [],
         "scores": {"pornography": 0.01, "violence": 0.03, "superstition": 0.02}, "evidence": [], "unread": []},
        {"id": "post-4", "error": "post-4: field 'text': <b>not</b> a string"},
        {"id": "post-5", "account_id": "acc-3", "action": "remove", "categories": ["violence"],
         "scores": {"pornography": 0.02, "violence": 0.93, "superstition": 0.01},
         "evidence": [{"part": "video", "category": "violence", "score": 0.93, "t0": 61.0, "t1": 75.5,
                       "peak_t": 70.0, "duration_s": 300.0}],
         "unread": []},
    ]
    page = render_decisions_page(decisions, posts, folder / "out" / "decisions.html")
    return {"folder": folder, "page": page, "html": page.read_text(encoding="utf-8"), "decisions": decisions,
            "posts": posts}


def test_page_holds_every_kind_of_evidence(run):
    text = run["html"]
    assert run["page"].name == "decisions.html"
    # a header with counts per action, and the filters
    assert re.search(r'class="badge remove">remove 2<', text) and re.search(r'class="badge pass">pass 1<', text)
    assert re.search(r'class="badge review">review 1<', text) and re.search(r'class="badge error">error 1<', text)
    for action in ("pass", "review", "remove", "error"):
        assert f'name="action" value="{action}" checked' in text
    assert '<select id="category">' in text and '<option value="superstition">' in text
    assert text.count('class="card ') == 5
    # text spans: one category alone, and where two categories overlap
    assert '<mark class="span" data-categories="violence" title="violence 0.95 (weight 2.30)">死你</mark>' in text
    assert '<mark class="span overlap" data-categories="abuse violence"' in text
    assert '<mark class="span" data-categories="abuse" title="abuse 0.70">我要</mark>' in text
    assert 'title="superstition 0.70">算命大师</mark>' in text
    # pictures: data URIs only, the flagged ones with their heat map, a placeholder for unread ones
    sources = re.findall(r'<img src="([^"]*)"', text)
    assert len(sources) == 5 and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert text.count('data-kind="heatmap"') == 2 and text.count('class="picture flagged"') == 3
    assert "images[3] broken.jpg: cannot decode picture" in text and "gone.png" in text
    assert text.count("not read</div>") == 2
    # OCR lines, escaped
    assert "成人视频 &lt;img src=x onerror=alert(1)&gt;" in text
    # timelines: one per post with a video, each segment with its times and peak
    assert text.count('<svg class="timeline"') == 2
    assert text.count('class="segment"') == 3 and text.count('class="peak"') == 3
    assert "2.0 s to 4.5 s, peak 3.1 s" in text and "1:01 to 1:15.5, peak 1:10" in text
    assert "&#9888; Not read: images[3]: images[3] broken.jpg: cannot decode picture" in text
    assert "Not moderated: post-4: field &#x27;text&#x27;: &lt;b&gt;not&lt;/b&gt; a string" in text
    assert "highest: violence 0.03" in text  # a pass shows its highest score
    # nothing from the network, user text inert
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert text.count("<script") == 1 and "<script>document" not in text
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in text
    assert "周末聚会 &amp; &lt;b&gt;bold&lt;/b&gt;" in text


def test_heat_map_is_blended_over_the_thumbnail(run):
    text = run["html"]
    card = text[text.index('data-id="post-1"'):text.index('data-id="post-2"')]
    uris = re.findall(r'<img src="data:image/jpeg;base64,([^"]*)"', card)
    heat = Image.open(io.BytesIO(base64.b64decode(uris[1]))).convert("RGB")  # images[1], the flagged one
    assert heat.size == (160, 107)  # ~160 px thumbnails, aspect kept
    original = Image.open(run["posts"]["post-1"]["images"][1]).convert("RGB").resize(heat.size)
    difference = np.abs(np.asarray(heat, dtype=int) - np.asarray(original, dtype=int)).sum(axis=2)
    hot, cold = difference[30:50, 105:120].mean(), difference[80:, :40].mean()
    assert hot > 60 and cold < 25, (hot, cold)  # coloured where the map is hot, as it was elsewhere
    plain = render_decisions_page(run["decisions"], run["posts"], run["folder"] / "plain.html", heatmaps=False)
    assert 'data-kind="heatmap"' not in plain.read_text(encoding="utf-8")


def test_directory_output_and_missing_post(tmp_path):
    page = render_decisions_page([{"id": "lost", "action": "review", "categories": ["abuse"],
                                   "scores": {"abuse": 0.6}, "evidence": [{"part": "text.comment", "category": "abuse",
                                                                            "score": 0.6, "start": 0, "end": 2}]}],
                                 {}, tmp_path)
    text = page.read_text(encoding="utf-8")
    assert page == tmp_path / "decisions.html"
    assert "not among the inputs" in text and "text.comment: abuse 0.60 (start 0, end 2)" in text


def _pixels_near(picture: np.ndarray, colour: str, tolerance: int = 6) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(picture.astype(int) - rgb).max(axis=2) <= tolerance).sum())


def test_screenshot_shows_highlights_badges_and_pictures(chromium, run, tmp_path):
    from modelkit.evaluation.screenshot import rendered_images, screenshot_html

    loaded, total = rendered_images(run["page"])
    assert (loaded, total) == (5, 5)
    shot = screenshot_html(run["page"], tmp_path / "decisions.png", width=1280)
    picture = np.asarray(Image.open(shot).convert("RGB"))
    assert picture.shape[1] == 1280 and picture.shape[0] > 1200
    counts = {name: _pixels_near(picture, colour) for name, colour in [
        ("mark", MARK_COLOUR), ("overlap", MARK_OVERLAP_COLOUR), ("flagged", FLAGGED_COLOUR),
        *((f"badge {action}", ACTION_COLOURS[action]) for action in ("pass", "review", "remove", "error"))]}
    print("\npixels of each colour:", counts)
    assert counts["mark"] > 150 and counts["overlap"] > 30 and counts["flagged"] > 300, counts
    assert all(counts[f"badge {action}"] > 300 for action in ("pass", "review", "remove", "error")), counts
    if os.environ.get("MODELKIT_WRITE_DOCS_IMAGES") == "1":
        (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "images" / "decisions.png")

    # The filters, offline: only superstition (the review) remains, and the page is shorter.
    filtered = tmp_path / "filtered.html"
    filtered.write_text(run["html"].replace("</body>", """<script>
document.getElementById("category").value = "superstition";
document.getElementById("filters").dispatchEvent(new Event("change"));
</script></body>"""), encoding="utf-8")
    small = np.asarray(Image.open(screenshot_html(filtered, tmp_path / "filtered.png", width=1280)).convert("RGB"))
    assert small.shape[0] < picture.shape[0] / 2
    assert _pixels_near(small, ACTION_COLOURS["review"]) > 300
    assert _pixels_near(small, MARK_OVERLAP_COLOUR) == 0  # post-1's card is hidden
