"""Re-run the tutorials and store their outputs (what GitHub shows and nbval compares).

Run it after changing what a notebook prints: ``.venv/bin/python notebooks/refresh.py``.
Each notebook runs in a fresh kernel with notebooks/ as its working directory, as under
nbval; widget state is not stored (model ids change every run and the panel leaves a
static summary anyway), and execution metadata is dropped so a re-run changes only what
really changed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def refresh(path: Path) -> None:
    """Execute ``path`` in place."""
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=600, kernel_name="python3", store_widget_state=False, allow_errors=True
    )
    client.execute(cwd=str(HERE))
    for cell in book.cells:
        cell.metadata.pop("execution", None)
    book.metadata.pop("widgets", None)
    nbformat.write(book, path)


def main(names: list[str]) -> int:
    """Refresh the named notebooks, or every ``NN_*.ipynb`` here."""
    paths = [HERE / n for n in names] or sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        refresh(path)
        print(f"refreshed {path.name}")
    shutil.rmtree(HERE / "runs", ignore_errors=True)  # logs the tutorials wrote
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
