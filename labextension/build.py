"""Build the JupyterLab extension into labextension/dist, only when its sources changed.

``python labextension/build.py`` runs ``npm ci`` (when package-lock.json changed), ``tsc``
and ``jupyter-builder build``; a stamp keyed on the sources and the lock file makes a second
run a no-op. ``--link PREFIX`` also makes the build visible to the Jupyter server of the
environment at PREFIX without ``jupyter lab build``: a symlink in
``share/jupyter/labextensions/resmagic`` and the server extension's config file. setup.py
runs it before a wheel or sdist takes the files (node 20 and npm needed only when stale).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIST = HERE / "dist"
STAMP = DIST / ".stamp"
SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "src", "schema", "style")
NAME = "resmagic"  # the npm package's name: the folder JupyterLab finds it under
SERVER_CONFIG = HERE / "jupyter-config" / "resmagic.json"


def digest(*names: str) -> str:
    """SHA-256 over the named files and folders (paths and contents, in a fixed order)."""
    h = hashlib.sha256()
    for name in names:
        root = HERE / name
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.is_file():
                h.update(str(path.relative_to(HERE)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _run(*argv: str) -> None:
    # jupyter-builder lives beside this interpreter (a venv, or pip's isolated build env).
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    subprocess.run(argv, cwd=HERE, env=env, check=True)


def _npm_ci() -> None:
    marker = HERE / "node_modules" / ".resmagic-lock"
    lock = digest("package-lock.json")
    if marker.exists() and marker.read_text() == lock:
        return
    if shutil.which("npm") is None:
        sys.exit("labextension/build.py: npm not found (apt-get install nodejs npm)")
    _run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
    marker.write_text(lock)


def build() -> bool:
    """Build if the sources changed since the last build; True when it built."""
    wanted = digest(*SOURCES)
    if STAMP.exists() and STAMP.read_text() == wanted and (DIST / "package.json").exists():
        return False
    _npm_ci()
    shutil.rmtree(DIST, ignore_errors=True)
    shutil.rmtree(HERE / "lib", ignore_errors=True)
    _run(str(HERE / "node_modules" / ".bin" / "tsc"))
    _run("jupyter-builder", "build", ".")
    STAMP.write_text(wanted)
    return True


def link(prefix: Path) -> None:
    """Point ``prefix``'s JupyterLab at the build, and enable the server extension there."""
    target = prefix / "share" / "jupyter" / "labextensions" / NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    target.symlink_to(DIST, target_is_directory=True)
    config = prefix / "etc" / "jupyter" / "jupyter_server_config.d" / SERVER_CONFIG.name
    config.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SERVER_CONFIG, config)


def main() -> None:
    """Build when stale; link into ``--link PREFIX`` if given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link", type=Path, metavar="PREFIX", help="an environment's prefix")
    options = parser.parse_args()
    print("labextension: built" if build() else "labextension: up to date")
    if options.link is not None:
        link(options.link)


if __name__ == "__main__":
    main()
