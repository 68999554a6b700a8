import pytest

from modelkit import ConfigError, Taxonomy

POLICY = ["pornography", "soft_pornography", "vulgar", "gore", "violence", "terrorism", "superstition",
          "piracy", "scandal_hype", "historical_nihilism", "abuse"]


def test_default_taxonomy_has_policy_categories_and_optional_extras():
    full = Taxonomy.load("default")
    assert full.enabled().ids == POLICY
    assert set(full.ids) - set(POLICY) == {"gambling", "fraud", "illicit_ads"}
    for category in full:
        assert category.name_zh and category.name_en and category.description
        assert category.severity in (1, 2, 3) and category.action in ("remove", "review")
    assert full["abuse"].name_zh == "辱骂"


def test_subset_keeps_requested_order_and_allows_disabled_extras():
    tax = Taxonomy.load().subset(["gambling", "abuse"])
    assert tax.ids == ["gambling", "abuse"] and tax.index("abuse") == 1


def test_subset_unknown_category_is_named():
    with pytest.raises(ConfigError, match="'nudity'"):
        Taxonomy.load().subset(["abuse", "nudity"])


def test_duplicate_ids_rejected(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("categories:\n  - {id: abuse, name_en: A}\n  - {id: abuse, name_en: B}\n")
    with pytest.raises(ConfigError, match="duplicate category id 'abuse'"):
        Taxonomy.load(path)


def test_unknown_field_and_bad_severity_named(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("categories:\n  - {id: abuse, name_en: A, severty: 2}\n")
    with pytest.raises(ConfigError, match=r"categories\[0\]\.severty: unknown field \(did you mean 'severity'"):
        Taxonomy.load(path)
    path.write_text("categories:\n  - {id: abuse, name_en: A, severity: 7}\n")
    with pytest.raises(ConfigError, match="severity must be 1, 2 or 3"):
        Taxonomy.load(path)


def test_round_trip_through_dict():
    tax = Taxonomy.load()
    assert Taxonomy.from_dict(tax.to_dict()) == tax
