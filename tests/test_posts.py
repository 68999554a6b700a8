"""Post-level moderation: members -> fusion -> policy -> decisions with evidence, on synthetic
posts whose answer is known (category, part, place), through Python and the command line."""

import json

import numpy as np
import pytest
import yaml
from sklearn.metrics import f1_score

import modelkit
from modelkit.cli import main
from modelkit.config import ConfigError
from modelkit.data.records import DataError
from modelkit.data.synthetic import write_jsonl
from modelkit.posts import Moderator, Post, PostPolicy, fuse, load_moderator, post_from_row, read_decisions
from modelkit.posts.synthetic import make_synthetic_posts
from modelkit.taxonomy import Taxonomy


def _iou(a0, a1, b0, b1):
    union = max(a1, b1) - min(a0, b0)
    return max(0.0, min(a1, b1) - max(a0, b0)) / union if union > 0 else 0.0


def evidence_hits(row: dict, decision) -> bool:
    """The decision's top evidence for the planted category points at the planted part and place:
    text span IoU >= 0.5, the right picture, segment IoU >= 0.5."""
    planted = row["planted"]
    items = [e for e in decision.evidence if e["category"] == planted["category"]]
    if not items or items[0]["part"] != planted["part"]:
        return False
    top = items[0]
    if planted["part"].startswith("text."):
        return "start" in top and _iou(top["start"], top["end"], planted["start"], planted["end"]) >= 0.5
    if planted["part"] == "video":
        return "t0" in top and _iou(top["t0"], top["t1"], planted["t0"], planted["t1"]) >= 0.5
    return top["index"] == int(planted["part"][len("images["):-1])


def _posts(rows, directory):
    return [post_from_row(row, row["id"], directory.resolve()) for row in rows]


def test_fixed_fusion_rules_and_policy():
    scores, posts = np.array([[0.2, np.nan], [0.5, np.nan], [np.nan, np.nan]]), np.array([0, 0, 1])
    np.testing.assert_allclose(fuse("max", scores, posts, 3)[0], [0.5, np.nan])
    np.testing.assert_allclose(fuse("noisy_or", scores, posts, 3)[0], [0.6, np.nan])
    assert np.isnan(fuse("max", scores, posts, 3)[1:]).all()  # nothing read: no score, never a zero
    taxonomy = Taxonomy.load().subset(["superstition", "violence", "abuse"])
    policy = PostPolicy.from_config(taxonomy, {"superstition": 0.5, "violence": 0.5, "abuse": 0.5},
                                    review={"violence": 0.3})
    assert policy.review["superstition"] == 0.5 and policy.remove["superstition"] is None  # action: review
    assert policy.remove["violence"] == 0.5 and policy.review["violence"] == 0.3
    decided = policy.decide(np.array([[0.9, 0.4, 0.1], [0.9, 0.6, 0.1], [0.1, 0.1, 0.1]]))
    assert decided[0] == ("review", ["violence", "superstition"])  # severity 3 before severity 1
    assert decided[1] == ("remove", ["violence", "superstition"])
    assert decided[2] == ("pass", [])
    with pytest.raises(ConfigError, match="policy.review.violence: 0.9 is above policy.remove.violence"):
        PostPolicy.from_config(taxonomy, {"superstition": 0.5, "violence": 0.5, "abuse": 0.5}, review={"violence": 0.9})
    with pytest.raises(ConfigError, match="policy.remove.gore: no member scores this category"):
        PostPolicy.from_config(taxonomy, {"superstition": 0.5, "violence": 0.5, "abuse": 0.5}, remove={"gore": 0.5})


@pytest.mark.parametrize("row, message", [
    ({"id": "a"}, "the post has no parts"),
    ({"id": "a", "text": {"title": "", "body": ""}}, "the post has no parts"),
    ({"id": "a", "text": 3}, "field 'text': expected a string or an object"),
    ({"id": "a", "text": {"bad name": "x"}}, "field 'text': field name 'bad name'"),
    ({"id": "a", "text": {"body": ["x"]}}, "field 'text.body': expected a string"),
    ({"id": "a", "images": "x.png"}, "field 'images': expected a list of paths"),
    ({"id": "a", "images": ["ok.png", 7]}, r"field 'images\[1\]': expected a path"),
    ({"id": "a", "video": 1}, "field 'video': expected a path"),
    ({"id": "a", "text": "x", "account_id": {"x": 1}}, "field 'account_id'"),
])
def test_post_rows_name_the_bad_field(row, message, tmp_path):
    with pytest.raises(DataError, match=message):
        post_from_row(row, "a", tmp_path)


def test_post_parts_and_escaping_paths(tmp_path):
    post = post_from_row({"text": "hi", "images": ["a.png", "../../etc/passwd"], "video": "v.mp4"}, "p", tmp_path)
    assert post.part_names == ["text.body", "images[0]", "images[1]", "video"]
    assert "leads out of the manifest's folder" in post.parts()[2].problem
    assert Post("q", text={"title": "t", "body": "b"}).part_names == ["text.title", "text.body"]


@pytest.fixture(scope="module")
def moderator(post_members):
    return Moderator.from_checkpoints(**post_members)


def test_single_part_posts_right_category_and_evidence(moderator, tmp_path):
    rows = make_synthetic_posts(tmp_path, 150, kinds={"single": 1.0}, video_fraction=0.3, seed=11)
    decisions = moderator.decide(_posts(rows, tmp_path))
    # The right category: the post is flagged for the planted one (other categories flagged beside
    # it are counted apart: false alarms, which clean posts measure too).
    right = [row["planted"]["category"] in d.categories for row, d in zip(rows, decisions)]
    extra = [len(set(d.categories) - {row["planted"]["category"]}) > 0 for row, d in zip(rows, decisions)]
    located = [evidence_hits(row, d) for row, d in zip(rows, decisions)]
    by_part = {}
    for row, hit in zip(rows, located):
        kind = row["planted"]["part"].split("[")[0]
        by_part.setdefault(kind, []).append(hit)
    print(f"\nsingle-part posts: right category {np.mean(right):.1%} (another flagged beside it in {np.mean(extra):.1%}), "
          f"evidence at the right part and place "
          f"{np.mean(located):.1%} ({', '.join(f'{k} {np.mean(v):.0%} of {len(v)}' for k, v in by_part.items())})")
    assert np.mean(right) >= 0.95
    assert np.mean(located) >= 0.90
    clean = make_synthetic_posts(tmp_path / "clean", 40, kinds={"clean": 1.0}, seed=12)
    passed = [d.action == "pass" for d in moderator.decide(_posts(clean, tmp_path / "clean"))]
    print(f"clean posts passed: {np.mean(passed):.1%}")
    assert np.mean(passed) >= 0.9


def test_learned_fusion_beats_max_on_split_signal_posts(moderator, post_members, tmp_path):
    mix = {"clean": 0.25, "single": 0.25, "split": 0.3, "half": 0.2}
    # Split signals lie in text and pictures; a video in one post of ten keeps the video slot in
    # play. With one in five, writing and decoding the videos took half the test's time, and the
    # learned head's lead over max fusion was no larger: 15 and 11 points against 14 and 18 now
    # (members trained on two torch threads and on one, as under make test).
    videos = 0.1
    data = {}
    for split, count, seed in (("train", 400, 1), ("dev", 150, 2)):
        rows = make_synthetic_posts(tmp_path, count, kinds=mix, video_fraction=videos, seed=seed, prefix=split)
        data[split] = write_jsonl(tmp_path / f"fusion_{split}.jsonl",
                                  moderator.fusion_rows(_posts(rows, tmp_path), [r["labels"] for r in rows]))
    head = modelkit.train(moderator.fusion_recipe(data["train"], data["dev"], tmp_path / "fusion"))
    learned = Moderator(moderator.members, modelkit.load(head))
    test = make_synthetic_posts(tmp_path, 200, kinds={"split": 0.5, "half": 0.3, "clean": 0.2},
                                video_fraction=videos, seed=9, prefix="test")
    posts = _posts(test, tmp_path)
    truth = np.array([[c in r["labels"] for c in moderator.categories] for r in test])
    f1 = {}
    for name, fused in (("max", moderator), ("learned", learned)):
        taken = np.array([[c in d.categories for c in moderator.categories] for d in fused.decide(posts)])
        f1[name] = 100 * f1_score(truth, taken, average="macro", zero_division=0)
    print(f"\nsplit-signal posts, macro-F1: max fusion {f1['max']:.1f}, learned fusion {f1['learned']:.1f}")
    assert f1["learned"] >= f1["max"] + 10

    # The post checkpoint evaluates like any other: post-level metrics and actions taken vs called for.
    rows = moderator.fusion_rows(posts, [r["labels"] for r in test])
    report = modelkit.evaluate(head, write_jsonl(tmp_path / "fusion_test.jsonl", rows), bootstrap_resamples=20)
    confusion = report["post_actions"]["confusion"]
    assert sum(sum(row.values()) for row in confusion.values()) == len(test)
    assert report["overall"]["macro_f1"] > 0.5

    # It refuses members other than those it was trained on.
    other = modelkit.load(post_members["image"])
    other.policy = other.policy.with_values(thresholds={"violence": 0.99})
    other = modelkit.load(other.save(tmp_path / "other_image"))
    with pytest.raises(ConfigError, match="member 'image' is not the checkpoint the head was trained on"):
        Moderator({**moderator.members, "image": other}, modelkit.load(head))
    with pytest.raises(ConfigError, match="the head was trained with member 'video'"):
        Moderator({k: v for k, v in moderator.members.items() if k != "video"}, modelkit.load(head))


def test_moderate_command_decisions_page_and_bad_posts(post_members, tmp_path, capsys):
    rows = make_synthetic_posts(tmp_path, 12, kinds={"single": 1.0}, video_fraction=0.3, seed=21)
    (tmp_path / "media" / "broken.png").write_bytes(b"not a picture")
    rows += [
        {"id": "no-parts", "text": {"title": ""}},
        {"id": "bad-field", "images": [3]},
        {"id": "one-broken", "text": "nice weather today", "images": ["media/broken.png"]},
        {"id": "all-broken", "images": ["media/broken.png", "media/missing.png"]},
        {"id": "escapes", "text": "see you in the comments", "images": ["../outside.png"]},
    ]
    manifest = write_jsonl(tmp_path / "posts.jsonl", rows)
    members = [f"--{name}={path}" for name, path in post_members.items()]
    for output_format in ("jsonl", "parquet"):
        assert main(["moderate", "--input", str(manifest), "--output", str(tmp_path / output_format),
                     "--format", output_format, "--heatmaps", *members]) == 0
    decisions = {d["id"]: d for d in read_decisions(tmp_path / "jsonl")}
    assert list(decisions) == [r["id"] for r in rows]
    assert list(read_decisions(tmp_path / "parquet")) == list(decisions.values())
    pngs = [e["heatmap_png"] for d in decisions.values() for e in d.get("evidence", []) if "heatmap" in e]
    assert pngs and all((tmp_path / "jsonl" / png).read_bytes().startswith(b"\x89PNG") for png in pngs)
    # Again over the folder (its page and heat maps included), without heat maps this time.
    assert main(["moderate", "--input", str(manifest), "--output", str(tmp_path / "jsonl"), "--format", "jsonl",
                 "--overwrite", *members]) == 0
    assert not (tmp_path / "jsonl" / "heatmaps").exists() and (tmp_path / "jsonl" / "decisions.html").is_file()
    assert decisions["no-parts"]["error"] == "the post has no parts (no text, images or video)"
    assert decisions["bad-field"]["error"] == "field 'images[0]': expected a path, got 3"
    one = decisions["one-broken"]  # the text is clean, the picture unread: a person looks (policy.unread)
    assert one["action"] == "review" and one["categories"] == [] and [u["part"] for u in one["unread"]] == ["images[0]"]
    assert one["unread"][0]["error"].endswith("broken.png: not an image file Pillow can read")
    assert decisions["all-broken"]["action"] == "review"  # nothing could be read: never a silent pass
    assert [u["part"] for u in decisions["all-broken"]["unread"]] == ["images[0]", "images[1]"]
    assert "leads out of the manifest's folder" in decisions["escapes"]["unread"][0]["error"]
    flagged = [d for d in decisions.values() if d.get("action") in ("review", "remove") and d["evidence"]]
    assert flagged and all({"part", "category", "score"} <= set(e) for d in flagged for e in d["evidence"])
    page = (tmp_path / "jsonl" / "decisions.html").read_text(encoding="utf-8")
    assert "one-broken" in page and "<mark" in page

    capsys.readouterr()
    write_jsonl(tmp_path / "dup.jsonl", [{"id": "x", "text": "a"}, {"id": "y", "text": "b"}, {"id": "x", "text": "c"}])
    assert main(["moderate", "--input", str(tmp_path / "dup.jsonl"), "--output", str(tmp_path / "dup"), *members]) == 2
    assert "id 'x' is on rows 0 and 2" in capsys.readouterr().err
    assert not (tmp_path / "dup").exists()


def test_moderator_config_errors_before_anything_runs(post_members, tmp_path):
    def config(**changes):
        data = {"members": {k: str(v) for k, v in post_members.items()}, "fusion": "max", **changes}
        path = tmp_path / "moderator.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    moderator = load_moderator(config(policy={"review": {"violence": 0.2}}, categories=["violence", "pornography"]))
    assert moderator.categories == ["violence", "pornography"] and moderator.policy.review["violence"] == 0.2
    for changes, message in [
        ({"members": {"text": str(tmp_path / "nowhere")}}, "members.text: no checkpoint at"),
        ({"members": {"audio": str(post_members["text"])}}, "members.audio: not a member name"),
        ({"categories": ["gore"]}, "categories: gore scored by no member"),
        ({"policy": {"remove": {"gore": 0.5}}}, "policy.remove.gore: no member scores this category"),
        ({"fusion": "mean"}, "fusion: no checkpoint at mean"),
        ({"members": {"text": str(post_members["image"])}}, "members.text: .* reads image inputs; this member "
                                                            "scores text parts"),
        ({"members": {"text.Tïtle": str(post_members["text"])}}, "members.text.Tïtle: not a member name"),
        ({"policy": {"unread": "ignore"}}, "policy.unread"),
        ({"policy": {"review": {"violence": 2}}}, r"policy.review.violence: must be a number in \[0, 1\]"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_moderator(config(**changes))


def test_decision_json_shape(moderator, tmp_path):
    rows = make_synthetic_posts(tmp_path, 30, kinds={"single": 1.0}, video_fraction=0.5, seed=31)
    for decision in moderator.decide(_posts(rows, tmp_path)):
        row = json.loads(json.dumps(decision.to_dict()))
        assert set(row) == {"id", "account_id", "action", "categories", "scores", "evidence", "unread"}
        assert row["action"] in ("pass", "review", "remove")
        for item in row["evidence"]:
            if item["part"].startswith("text."):
                assert {"start", "end"} <= set(item)
            elif item["part"].startswith("images["):
                assert item["index"] >= 0 and "box" in item and "heatmap" in item
            else:
                assert item["part"] == "video" and "peak_t" in item


def test_fusion_data_command_and_shipped_moderator(post_members, tmp_path, capsys, monkeypatch):
    rows = make_synthetic_posts(tmp_path, 6, kinds={"single": 0.5, "split": 0.5}, video_fraction=0.0, seed=51)
    members = [f"--{name}={path}" for name, path in post_members.items()]
    manifest = write_jsonl(tmp_path / "posts.jsonl", rows)
    assert main(["moderate", "--input", str(manifest), "--fusion-data", str(tmp_path / "fusion.jsonl"), *members]) == 0
    written = [json.loads(line) for line in (tmp_path / "fusion.jsonl").read_text().splitlines()]
    assert [row["labels"] for row in written] == [row["labels"] for row in rows]
    assert all(len(row["part_scores"]) == 3 for row in written)  # text, image, video: the video absent (null)
    assert all(value is None for row in written for value in row["part_scores"][2])
    write_jsonl(tmp_path / "unlabelled.jsonl", [{"id": "a", "text": "hi", "labels": []}, {"id": "b", "text": "x"}])
    capsys.readouterr()
    assert main(["moderate", "--input", str(tmp_path / "unlabelled.jsonl"), "--fusion-data",
                 str(tmp_path / "f2.jsonl"), *members]) == 2
    assert "unlabelled.jsonl: row 1: field 'labels': expected a list of categories, got None" in capsys.readouterr().err

    monkeypatch.chdir(tmp_path)  # the shipped moderator names make demo's checkpoints, absent here
    with pytest.raises(ConfigError, match="members.text: no checkpoint at runs/demo/text/model"):
        load_moderator("post/demo")


def test_parts_no_member_reads_are_unread_and_policy_unread_list(post_members, tmp_path):
    titles = Moderator({"text.title": modelkit.load(post_members["text"])})
    decision = titles.decide([Post("p", text={"title": "周末去公园", "body": "大师开光转运符，算命改运消灾"})])[0]
    assert decision.unread == [{"part": "text.body", "error": "no member of this moderator reads text parts of field "
                                                             "body"}]
    assert decision.action == "review"  # what was not read is not passed
    lenient = Moderator({"text.title": modelkit.load(post_members["text"])}, unread="list")
    assert lenient.decide([Post("p", text={"title": "周末去公园", "body": "x"})])[0].action == "pass"
    with pytest.raises(ConfigError, match="fusion: 'learned' is not max, noisy_or or a learned-fusion checkpoint"):
        Moderator({"text": modelkit.load(post_members["text"])}, "learned")
    with pytest.raises(DataError, match="a folder; moderate reads a manifest of posts"):
        modelkit.moderate_files(titles, tmp_path, tmp_path / "out")


def test_decisions_page_reads_posts_as_the_run_did(post_members, tmp_path):
    rows = [{"pid": "a", "text": "大师开光转运符", "images": ["../secret.png"]}, {"pid": "b", "text": 5},
            {"pid": "c", "text": "看了一部电影"}]
    (tmp_path / "secret.png").write_bytes(b"not shown")
    folder = tmp_path / "posts"
    folder.mkdir()
    manifest = folder / "posts.jsonl"
    manifest.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    assert main(["moderate", "--text", str(post_members["text"]), "--input", str(manifest), "--output",
                 str(tmp_path / "out"), "--id-field", "pid", "--format", "jsonl"]) == 0
    page = (tmp_path / "out" / "decisions.html").read_text(encoding="utf-8")
    assert "大师开光转运符" in page and "看了一部电影" in page  # the first row too (after the byte-order mark)
    assert "data:image" not in page  # the path that leads out of the folder is not opened for the page
    assert "field &#x27;text&#x27;: expected a string" in page
