"""``make demo``: run the quickstart notebook headless, save it executed and as HTML."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
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
    with tempfile.TemporaryDirectory(prefix="resmagic-demo-") as sockets:
        # IPC sockets, not TCP: a local kernel then has no open port to warn about.
        km = KernelManager(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")
        client = NotebookClient(book, km=km, timeout=600, store_widget_state=False)
        try:
            client.execute(cwd=str(build))
        finally:
            if km.has_kernel:  # a kernel passed in is ours to stop, not nbclient's
                km.shutdown_kernel()
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
