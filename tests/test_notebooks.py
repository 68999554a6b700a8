
import nbformat
from nbclient import NotebookClient

from conftest import REPO


def test_quickstart_notebook_runs(ngram_checkpoint, monkeypatch):
    monkeypatch.setenv("MODELKIT_CHECKPOINT", str(ngram_checkpoint))
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    outputs = "".join(str(o) for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "abuse" in outputs and "Error" not in outputs


def test_evaluation_notebook_runs(ngram_checkpoint, synthetic_splits, tmp_path, monkeypatch):
    import modelkit

    modelkit.evaluate(ngram_checkpoint, synthetic_splits["test"], output_dir=tmp_path, slice_by=["language"],
                      bootstrap_resamples=20)
    monkeypatch.setenv("MODELKIT_REPORT", str(tmp_path))
    notebook = nbformat.read(REPO / "notebooks" / "evaluation.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    outputs = "".join(str(o) for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "Error" not in outputs and "image/png" in outputs and "precision@0.95" in outputs and "by language" in outputs
    threshold_outputs = str(notebook.cells[-1].outputs)
    assert "0.7 " in threshold_outputs and "pornography" in threshold_outputs


def test_images_and_video_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELKIT_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("MODELKIT_NOTEBOOK_QUICK", "1")
    notebook = nbformat.read(REPO / "notebooks" / "images_and_video.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    outputs = "".join(str(o) for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "Error" not in outputs.replace("error: ", "")
    assert "image/png" in str(notebook.cells[-1].outputs)  # the timeline plot
    assert (tmp_path / "image-model" / "model.safetensors").is_file()
    assert "missing.png" in outputs and "error: " in outputs  # the unreadable picture is an error row


def test_moderation_notebook_runs(post_members, tmp_path, monkeypatch):
    for name, path in post_members.items():
        monkeypatch.setenv(f"MODELKIT_{name.upper()}", str(path))
    monkeypatch.setenv("MODELKIT_NOTEBOOK_OUT", str(tmp_path))
    notebook = nbformat.read(REPO / "notebooks" / "moderation.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    outputs = "".join(str(o) for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "Error" not in outputs and '"action"' in outputs and "image/png" in outputs and "[[" in outputs
    assert (tmp_path / "decisions" / "decisions.html").is_file()
