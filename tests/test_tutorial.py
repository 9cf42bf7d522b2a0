"""The tutorial notebook (docs/tutorial.ipynb) runs, top to bottom, in a kernel of this
interpreter (nbclient), and its committed outputs are what it gives.

With the real MNIST files (../shared/data beside the repository, as on the development
machine) the notebook runs on them, and its log p(x) of 100 test images is checked against
the record's eval.json and against its committed output. Without them, it runs on tiny fake
MNIST files in the real format (tests/conftest.py), whose checksums it is given through
$VAE_TUTORIAL_DATA_SETTINGS as the record's config pins the real files': never skipped,
never on the network.
"""

import json
import math
import re
import sys
from pathlib import Path

import nbformat
from conftest import ROOT, make_tiny_data
from nbclient import NotebookClient

NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
RECORD = ROOT / "docs" / "runs" / "mnist_latent50_1.3e8"
REAL_DATA = ROOT.parent / "shared" / "data"
MNIST_FILES = [
    f"{prefix}-{kind}-ubyte.gz"
    for prefix in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
]
IS_LINE = re.compile(
    r"IS log p\(x\), K = (?P<k>\d+), seed (?P<seed>\d+), (?P<n>\d+) test images: "
    r"(?P<mean>-?\d+\.\d+) nats per image \(standard error (?P<sem>\d+\.\d+)\)"
)
FIGURES = 3  # samples, the interpolation, the latent means


def real_mnist() -> Path | None:
    folder = REAL_DATA / "MNIST" / "raw"
    return REAL_DATA if all((folder / name).is_file() for name in MNIST_FILES) else None


def kernel_environment(tmp_path: Path, monkeypatch) -> None:
    """A kernel named python3 that runs this interpreter (this venv's packages), whatever
    kernels the machine has installed, with Jupyter's and IPython's files in tmp_path."""
    kernels = tmp_path / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (vae-lightning tests)",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline figures


def outputs(notebook) -> tuple[str, int, list[str]]:
    """(what the code cells printed, the number of PNG figures, the errors and the text on
    stderr)."""
    text, figures, errors = [], 0, []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                (text if output.name == "stdout" else errors).append(output.text)
            elif output.output_type == "error":
                errors.append(f"{output.ename}: {output.evalue}")
            if "image/png" in output.get("data", {}):
                figures += 1
    return "".join(text), figures, errors


def estimate(text: str) -> dict[str, float]:
    match = IS_LINE.search(text)
    assert match, text
    return {key: float(value) for key, value in match.groupdict().items()}


def test_the_committed_notebook_shows_its_outputs():
    """As committed: executed in order, figures embedded, the estimate printed, no error."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    text, figures, errors = outputs(notebook)
    assert figures == FIGURES and errors == []
    committed = estimate(text)
    assert (committed["k"], committed["seed"], committed["n"]) == (5000, 0, 100)
    assert "/work/" not in text  # no path of the machine that executed it


def test_the_notebook_runs_and_gives_the_records_log_likelihood(tmp_path, monkeypatch):
    kernel_environment(tmp_path, monkeypatch)
    real = real_mnist()
    if real is not None:
        monkeypatch.setenv("VAE_DATA_DIR", str(real))
        monkeypatch.delenv("VAE_TUTORIAL_DATA_SETTINGS", raising=False)
    else:
        fake = tmp_path / "data"
        checksums = make_tiny_data(fake)["mnist"]  # 300 training and 100 test images
        monkeypatch.setenv("VAE_DATA_DIR", str(fake))
        monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
        settings = {"checksums": checksums, "val_size": 50, "download": False}
        monkeypatch.setenv("VAE_TUTORIAL_DATA_SETTINGS", json.dumps(settings))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails

    text, figures, errors = outputs(notebook)
    assert figures == FIGURES
    assert not [e for e in errors if "Error" in e or "Traceback" in e], errors  # warnings may be
    fresh = estimate(text)
    assert (fresh["k"], fresh["seed"], fresh["n"]) == (5000, 0, 100)
    assert math.isfinite(fresh["mean"]) and fresh["mean"] < 0 and fresh["sem"] > 0
    if real is None:
        return
    # The mean over 100 of the 10,000 images against the record's mean over all of them:
    # apart by the choice of images, whose standard error the notebook prints.
    recorded = json.loads((RECORD / "eval.json").read_text())["metrics"]["log_likelihood_is"]
    assert abs(fresh["mean"] - recorded["mean"]) < 4 * fresh["sem"]
    # What the committed notebook shows is what it gives: the same seeded draws, the same
    # number to its printed 2 decimals (one more for another CPU's rounding).
    committed = estimate(outputs(nbformat.read(NOTEBOOK, as_version=4))[0])
    assert abs(fresh["mean"] - committed["mean"]) <= 0.02
    assert abs(fresh["sem"] - committed["sem"]) <= 0.02
