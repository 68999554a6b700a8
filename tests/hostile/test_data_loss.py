"""No command destroys a user's files; a full disk or a read-only folder gives one clear line and a
state the next run resumes from (items 4 and 5 of the hardening issue)."""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import modelkit
from modelkit.cli import main

from conftest import ngram_recipe, one_line_error, tiny_text_classifier, train_tiny_image_model


def _tree_digest(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


# -- item 4: export and convert never overwrite what they were not told to ---------------------
@pytest.fixture()
def two_checkpoints(tmp_path):
    source = tiny_text_classifier().save(tmp_path / "source")
    other = tiny_text_classifier(categories=("gore",)).save(tmp_path / "other")
    return source, other


@pytest.mark.parametrize("command", ["export", "convert"])
def test_output_that_is_another_checkpoint_is_refused(two_checkpoints, command, capsys):
    source, other = two_checkpoints
    before = _tree_digest(other), _tree_digest(source)
    assert main([command, str(source), "--output", str(other)]) == 2
    line = one_line_error(capsys.readouterr().err, command)
    assert str(other) in line and "--overwrite" in line
    assert (_tree_digest(other), _tree_digest(source)) == before


@pytest.mark.parametrize("command", ["export", "convert"])
def test_output_folder_with_user_files_is_refused(two_checkpoints, tmp_path, command, capsys):
    source, _ = two_checkpoints
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.txt").write_text("three years of work")
    assert main([command, str(source), "--output", str(folder)]) == 2
    assert "not empty" in one_line_error(capsys.readouterr().err, command)
    assert (folder / "thesis.txt").read_text() == "three years of work" and len(list(folder.iterdir())) == 1


@pytest.mark.parametrize("command", ["export", "convert"])
def test_output_that_is_the_source_is_refused_even_with_overwrite(two_checkpoints, command, capsys):
    source, _ = two_checkpoints
    before = _tree_digest(source)
    assert main([command, str(source), "--output", str(source), "--overwrite"]) == 2
    assert "is the checkpoint itself" in one_line_error(capsys.readouterr().err, command)
    assert _tree_digest(source) == before


def test_overwrite_replaces_a_checkpoint_whole(two_checkpoints, capsys):
    source, other = two_checkpoints
    assert main(["export", str(source), "--output", str(other), "--overwrite"]) == 0
    assert modelkit.load(other).model.registry_name == "exported_onnx"
    assert not [p for p in other.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_interrupted_export_leaves_the_old_folder_intact(two_checkpoints, monkeypatch, capsys):
    source, other = two_checkpoints
    before = _tree_digest(other)
    import modelkit.checkpoint as checkpoint_module

    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # what Ctrl-C does half-way through writing the weights

    monkeypatch.setattr(checkpoint_module, "save_file", fail)
    with pytest.raises(KeyboardInterrupt):
        main(["export", str(source), "--output", str(other), "--overwrite"])
    assert _tree_digest(other) == before
    assert not [p for p in other.parent.iterdir() if p.name.startswith(".")]


def test_in_place_convert_swaps_whole_folders(tmp_path, capsys):
    from test_format1 import _materialise

    checkpoint = tmp_path / "old"
    _materialise("ngram", checkpoint)
    (checkpoint / "notes.txt").write_text("kept")  # a file of the user's beside the checkpoint
    assert main(["convert", str(checkpoint)]) == 0
    assert json.loads((checkpoint / "config.json").read_text())["format_version"] == 2
    assert (checkpoint / "notes.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


# -- item 5: a full disk, a read-only folder -------------------------------------------------------
def _texts_file(path: Path, rows: int) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(rows):
            handle.write(json.dumps({"id": f"r{index}", "text": f"第{index}条 你这个傻逼 {'x' * (index % 40)}"},
                                    ensure_ascii=False) + "\n")
    return path


class _DiskFillsAfter:
    """Patches ``open`` so that writing more than ``budget`` bytes in total under ``folder`` fails
    with ENOSPC, as a full disk does."""

    def __init__(self, folder: Path, budget: int) -> None:
        self.folder, self.budget, self.real_open = str(folder.resolve()), budget, builtins.open

    def __call__(self, file, mode="r", *args, **kwargs):
        handle = self.real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file).startswith(self.folder) and \
                any(flag in mode for flag in "wax"):
            return _Metered(handle, self)
        return handle


class _Metered:
    def __init__(self, handle, disk: _DiskFillsAfter) -> None:
        self._handle, self._disk = handle, disk

    def write(self, data):
        size = len(data.encode("utf-8") if isinstance(data, str) else data)
        if size > self._disk.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._handle.name)
        self._disk.budget -= size
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)


def test_predict_on_a_full_disk_stops_with_one_line_and_resumes(tmp_path, monkeypatch, capsys):
    checkpoint = tiny_text_classifier().save(tmp_path / "ckpt")
    inputs = _texts_file(tmp_path / "in.jsonl", 1000)
    expected = tmp_path / "expected"
    assert main(["predict", str(checkpoint), "--input", str(inputs), "--output", str(expected), "--format", "jsonl",
                 "--shard-size", "200"]) == 0
    shard_bytes = (expected / "part-00000.jsonl").stat().st_size
    output = tmp_path / "out"
    output.mkdir()
    monkeypatch.setattr(builtins, "open", _DiskFillsAfter(output, int(2.5 * shard_bytes)))
    capsys.readouterr()
    assert main(["predict", str(checkpoint), "--input", str(inputs), "--output", str(output), "--format", "jsonl",
                 "--shard-size", "200"]) == 1
    line = one_line_error(capsys.readouterr().err, "predict")
    assert "No space left on device" in line and "part-0000" in line and "rerun" in line
    assert json.loads((output / "manifest.json").read_text())["complete"] is False
    assert sorted(p.name for p in output.iterdir()) == ["manifest.json", "part-00000.jsonl", "part-00001.jsonl"]
    monkeypatch.undo()
    assert main(["predict", str(checkpoint), "--input", str(inputs), "--output", str(output), "--format", "jsonl",
                 "--shard-size", "200"]) == 0
    assert list(modelkit.read_predictions(output)) == list(modelkit.read_predictions(expected))


def _limited(megabytes: float):
    """A child process in which a file may not grow past ``megabytes`` (``ulimit -f``): writes past
    it fail with EFBIG instead of killing the process."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        size = int(megabytes * (1 << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return limit


def _cli(args, limit_mb=None):
    return subprocess.run([sys.executable, "-m", "modelkit.cli", *args], capture_output=True, text=True,
                          preexec_fn=_limited(limit_mb) if limit_mb else None, timeout=300)


def test_predict_parquet_past_the_file_size_limit(tmp_path):
    checkpoint = tiny_text_classifier().save(tmp_path / "ckpt")
    inputs = _texts_file(tmp_path / "in.jsonl", 4000)
    output = tmp_path / "out"
    result = _cli(["predict", str(checkpoint), "--input", str(inputs), "--output", str(output)], limit_mb=0.03)
    assert result.returncode == 1
    line = one_line_error(result.stderr, "predict")
    assert "File too large" in line and "part-00000.parquet" in line
    assert sorted(p.name for p in output.iterdir()) == ["manifest.json"]  # no half-written part is left
    assert json.loads((output / "manifest.json").read_text())["complete"] is False
    again = _cli(["predict", str(checkpoint), "--input", str(inputs), "--output", str(output)])
    assert again.returncode == 0, again.stderr
    assert len(list(modelkit.read_predictions(output))) == 4000


def test_export_past_the_file_size_limit_leaves_nothing_behind(tmp_path):
    checkpoint = tiny_text_classifier(num_buckets=1 << 16).save(tmp_path / "ckpt")
    result = _cli(["export", str(checkpoint), "--output", str(tmp_path / "onnx")], limit_mb=0.5)
    assert result.returncode == 1
    line = one_line_error(result.stderr, "export")
    assert "File too large" in line and "needs about" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_training_on_a_full_disk_stops_with_one_line(synthetic_splits, tmp_path, monkeypatch, capsys):
    import modelkit.checkpoint as checkpoint_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module, "save_file", full)
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(ngram_recipe(synthetic_splits, tmp_path / "run", epochs=1)))
    assert main(["train", str(recipe)]) == 1
    line = one_line_error(capsys.readouterr().err, "train")
    assert "No space left on device" in line and str(tmp_path / "run") in line and "needs about" in line


@contextlib.contextmanager
def _read_only(folder: Path):
    """``folder`` made read-only for this process: immutable for root (which ignores permission
    bits), mode 0555 for anyone else."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root where chattr +i does not work: cannot make a read-only folder")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)


def test_read_only_output_folder(tmp_path, capsys):
    checkpoint = tiny_text_classifier().save(tmp_path / "ckpt")
    inputs = _texts_file(tmp_path / "in.jsonl", 50)
    output = tmp_path / "out"
    with _read_only(output):
        assert main(["predict", str(checkpoint), "--input", str(inputs), "--output", str(output)]) == 1
    line = one_line_error(capsys.readouterr().err, "predict")
    assert str(output) in line and ("Operation not permitted" in line or "Permission denied" in line)
    assert not list(output.iterdir())


def test_read_only_checkpoint_folder_for_calibrate(tmp_path, synthetic_splits, capsys):
    checkpoint = tiny_text_classifier(categories=modelkit.Taxonomy.load().enabled().ids).save(tmp_path / "ckpt")
    before = _tree_digest(checkpoint)
    with _read_only(checkpoint):
        assert main(["calibrate", str(checkpoint), "--data", str(synthetic_splits["dev"])]) == 1
    line = one_line_error(capsys.readouterr().err, "calibrate")
    assert str(checkpoint) in line
    assert _tree_digest(checkpoint) == before


def test_moderate_past_the_file_size_limit_names_the_file_and_resumes(tmp_path):
    from modelkit.data.synthetic import write_jsonl
    from modelkit.posts.synthetic import make_synthetic_posts

    checkpoint = train_tiny_image_model(tmp_path / "train", categories=("gore",), size=16)
    rows = make_synthetic_posts(tmp_path / "posts", 120, categories=["gore"], images=(1, 1), video_fraction=0.0,
                                seed=3)
    source = write_jsonl(tmp_path / "posts" / "posts.jsonl", rows)
    args = ["moderate", "--image", str(checkpoint), "--input", str(source), "--output", str(tmp_path / "out"),
            "--format", "jsonl", "--shard-size", "30", "--heatmaps"]
    failed = _cli(args, limit_mb=0.02)
    assert failed.returncode == 1
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith("modelkit moderate: error: ") and "File too large" in message
    assert str(tmp_path / "out") in message  # names the file that could not be written
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith((".tmp", ".partial"))]
    assert _cli(args).returncode == 0
    assert (tmp_path / "out" / "decisions.html").is_file()
