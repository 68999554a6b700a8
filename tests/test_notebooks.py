
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
