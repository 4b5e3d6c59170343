"""resmagic side by side with the tools users would pick instead, in real ipykernels.

    python benchmarks/run.py [--write docs/benchmarks.md] [--json FILE] [--before REF] [--patch FILE]
                             [--library-before REF]

One run measures, each tool in a fresh kernel of this interpreter:

1. per-cell overhead over a bare cell, timed inside the kernel over many nested
   ``get_ipython().run_cell(...)`` calls with their output swallowed (no messaging noise);
2. ``%load_ext`` time per tool and whether it imported torch;
3. peak fidelity: what each memory tool reports for cells holding a 400 MiB array;
4. time fidelity: what each tool reports for ``time.sleep(0.2)``;
5. the CPU cost of resmagic's sampler thread at 10 Hz and 20 Hz;
6. the library form per block (``with timed(): pass``, ``with gpu_scope(): pass``) beside
   ``codetiming`` and ``contexttimer`` and the raw reads under it, in fresh interpreters
   (benchmarks/library.py);
7. the same blocks where users call them: in a notebook's shell with resmagic loaded, every
   report also written to the run store (benchmarks/library_loaded.py).

It prints markdown tables and, with ``--write``, regenerates docs/benchmarks.md (with the
machine, the versions and the raw numbers); ``benchmarks/notes.md`` is copied in as the
"profile and fixes" section. ``--before REF`` and ``--patch FILE`` time resmagic's own
sessions again, as of a git ref and with proposed patches applied, in the same run;
``--library-before REF`` gives tables 6 and 7 a "before" of their own (default: ``--before``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# What is measured: plan.py; how: measure.py (parse.py reads the peers, machine.py the host);
# the markdown: tables.py and render.py. This file is only the command line.
from measure import run_all, say
from plan import QUICK, Plan
from render import render
from tables import tables


def main(argv: list[str] | None = None) -> int:
    """Measure (or ``--render`` a saved run), print the tables, write what was asked."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", metavar="MD", help="regenerate this markdown file")
    parser.add_argument("--json", metavar="FILE", help="save the raw results as JSON")
    parser.add_argument(
        "--before", metavar="REF", help="also time resmagic as of this git ref (its own column)"
    )
    parser.add_argument(
        "--patch",
        action="append",
        default=[],
        metavar="FILE",
        help="also time this tree with this patch applied (repeatable; one column for all)",
    )
    parser.add_argument(
        "--library-before",
        metavar="REF",
        help="the ref table 6 (the library form) is compared with; default: --before",
    )
    parser.add_argument("--render", metavar="FILE", help="render a saved --json, measure nothing")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for trying the script")
    parser.add_argument(
        "--only",
        help="comma list of sessions (resmagic, ipython-autotime, ..., load, library,"
        " notebook-library)",
    )
    args = parser.parse_args(argv)
    if args.render:
        results = json.loads(Path(args.render).read_text())
    else:
        only = set(args.only.split(",")) if args.only else None
        results = run_all(
            QUICK if args.quick else Plan(),
            only,
            args.before,
            args.patch,
            library_before=args.library_before or args.before,
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(tables(results))
    if args.write:
        Path(args.write).write_text(render(results))
        say(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
