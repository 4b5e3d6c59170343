"""``make demo``: run the quickstart notebook headless, save it executed and as HTML."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent


def main(source: Path = ROOT / "notebooks" / "01_quickstart.ipynb") -> int:
    """Execute ``source`` in a fresh kernel in build/, write build/quickstart.{ipynb,html}."""
    build = ROOT / "build"
    build.mkdir(exist_ok=True)
    book = nbformat.read(source, as_version=4)
    started = time.perf_counter()
    # Panels leave static summaries; the closed widgets' state would only bloat the file.
    client = NotebookClient(book, timeout=600, kernel_name="python3", store_widget_state=False)
    client.execute(cwd=str(build))
    executed = build / "quickstart.ipynb"
    nbformat.write(book, executed)
    html, _ = HTMLExporter().from_notebook_node(book)
    page = build / "quickstart.html"
    page.write_text(html, encoding="utf-8")
    seconds = time.perf_counter() - started
    print(f"ran {source.relative_to(ROOT)} in {seconds:.1f} s")
    print(f"  executed notebook: {executed.relative_to(ROOT)}")
    print(f"  HTML copy:         {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
