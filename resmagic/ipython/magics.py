"""The magics: one thin method each; options declared as with IPython's ``magic_arguments``.

In a cell IPython runs, our ``%%`` lines never reach these methods: the header transformer
builds their layers with :meth:`ResMagics.layer` and IPython runs the body itself
(:mod:`resmagic.ipython.cells.runner`). A method is called when IPython hands it the body: from code
(``get_ipython().run_cell_magic(...)``), under ``%%time``, or for ``--help``; it then peels
any further resmagic lines stacked under it and runs the body with
:func:`resmagic.ipython.cells.stack.run_layers`. Option ``dest`` names equal the scope's
keyword-only parameters and unset options are left out, so every default lives once, in the
scope's signature.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import (
    Magics,
    cell_magic,
    line_magic,
    magics_class,
    output_can_be_silenced,
)

from resmagic.ipython.cells.header import read_header
from resmagic.ipython.cells.options import BIND_RULE, BINDS, BUILDERS, asks_help, split_once
from resmagic.ipython.cells.stack import Layer, run_layers
from resmagic.ipython.magic_options import Parsers, argument, kwds, options, parser_of
from resmagic.scopes import MAX_TIMEOUT_S, RECLAIM

if TYPE_CHECKING:
    from resmagic.ipython.session import Session

__all__ = ["ResMagics"]

_quiet = argument("-q", "--quiet", action="store_true", help="Record the report, show nothing.")
_help = argument("-h", "--help", action="store_true", help="Show this help; the cell does not run.")


@magics_class
class ResMagics(Magics):
    """``%%gpu_scope``, ``%%timed``, ``%%experiment_log``, ``%%db_transaction``, ``%resmagic``."""

    builders: ClassVar[Mapping[str, Callable[..., Any]]] = BUILDERS

    def __init__(self, shell: InteractiveShell, session: Session, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self.session = session
        """This shell's resmagic: the layer factory, watch mode, the guard, the store."""

    @classmethod
    def parsers(cls) -> Parsers:
        """Each cell magic's option parser, by magic name, built when first looked up."""
        return Parsers(cls, tuple(BUILDERS))

    # options("%name"): IPython's usage line adds one "%", right only for line magics. The
    # parsers are built when first needed, not at import (issue 26: ~3 ms of %load_ext).
    @options("%gpu_scope")
    @kwds(argument_default=argparse.SUPPRESS)
    @argument(
        "device",
        nargs="?",
        help="cuda:N (or N) for one GPU, 'host' for host memory only; default: every GPU.",
    )
    @argument("--gc", action="store_true", help="Run gc.collect() before and after the cell.")
    @argument(
        "--no-empty-cache",
        dest="empty_cache",
        action="store_false",
        help="Do not call torch.cuda.empty_cache() before and after the cell.",
    )
    @argument(
        "--reclaim",
        choices=RECLAIM,
        help="After which errors to free the failed cell's locals (default: oom).",
    )
    @argument(
        "--guard",
        metavar="SHARE",
        help="Stop the cell with MemoryLimitError once the container's working set passes"
        " this share of its limit: 90%%, 90 or 0.9 (a number above 1 is a percent).",
    )
    @argument("--no-panel", dest="panel", action="store_false", help="Print text, no widget.")
    @_quiet
    @_help
    @output_can_be_silenced
    @cell_magic
    def gpu_scope(self, line: str, cell: str) -> Any:
        """Measure memory per device before, during, at peak and after the cell.

        Host memory is always shown (RSS, with the exact peak from the kernel's VmHWM on
        Linux); each GPU by the torch allocator (exact peak) once torch has initialised CUDA,
        and by NVML (device-wide, peak sampled). CUDA's cache is emptied before and after,
        and after an out-of-memory error the failed cell's locals are freed.

        Example::

            %%gpu_scope cuda:0
            model = Net().cuda()
            train(model)
        """
        __tracebackhide__ = True
        return self._run("gpu_scope", line, cell)

    @options("%timed")
    @kwds(argument_default=argparse.SUPPRESS)
    @argument("label", nargs="?", help="A name for this timing, e.g. train.")
    @argument(
        "--no-sync",
        dest="sync_cuda",
        action="store_false",
        help="Do not synchronise CUDA at both ends (by default: only if CUDA is initialised).",
    )
    @_quiet
    @_help
    @output_can_be_silenced
    @cell_magic
    def timed(self, line: str, cell: str) -> Any:
        """Time the cell: wall and CPU time, counting queued CUDA work.

        Example::

            %%timed train
            train(model, epochs=1)
        """
        __tracebackhide__ = True
        return self._run("timed", line, cell)

    @options("%experiment_log")
    @kwds(argument_default=argparse.SUPPRESS)
    @argument(
        "path",
        help="The log file: a file, or one to create (not a folder, device or FIFO;"
        " /dev/null throws the log away); ~ and relative paths work, folders are created.",
    )
    @argument("--name", help="The logger's name (default: experiment).")
    @argument(
        "--level",
        help="Lowest level written: DEBUG, INFO (default), WARNING, ERROR, CRITICAL, a number"
        " from 0 to 50, or a level name registered with logging.addLevelName.",
    )
    @argument(
        "--format", dest="fmt", choices=("text", "jsonl"), help="Line format (default: text)."
    )
    @argument("--mode", choices=("a", "w"), help="a: append (default); w: start afresh.")
    @argument(
        "--as",
        dest="var",
        help=f"Name to bind the logger to in the cell (default: logger): {BIND_RULE}.",
    )
    @argument("--tee", action="store_true", help="Also log what the cell prints.")
    @_quiet
    @_help
    @output_can_be_silenced
    @cell_magic
    def experiment_log(self, line: str, cell: str) -> Any:
        """Log the cell to a file: start, your records, errors with tracebacks, end.

        The logger is bound to ``logger`` (or ``--as NAME``) while the cell runs; its handler
        is removed and the file closed when the cell ends, however it ends.

        Example::

            %%experiment_log runs/lr-3e-4.log --format jsonl
            logger.info("lr=%g", 3e-4)
        """
        __tracebackhide__ = True
        return self._run("experiment_log", line, cell, bind="logger")

    @options("%db_transaction")
    @kwds(argument_default=argparse.SUPPRESS)
    @argument(
        "path",
        help="The SQLite file (created if missing; not a folder, device or FIFO) or :memory:.",
    )
    @argument(
        "--as",
        dest="var",
        help=f"Name to bind the cursor to in the cell (default: cursor): {BIND_RULE}.",
    )
    @argument(
        "--timeout",
        type=float,
        help="Seconds to wait for another connection's lock: from 0 to"
        f" {MAX_TIMEOUT_S:.0f} (default: 5).",
    )
    @_quiet
    @_help
    @output_can_be_silenced
    @cell_magic
    def db_transaction(self, line: str, cell: str) -> Any:
        """Run the cell in one SQLite transaction: commit on success, roll back on any error.

        Example::

            %%db_transaction results.db
            cursor.execute("insert into runs values (?, ?)", (run_id, loss))
        """
        __tracebackhide__ = True
        return self._run("db_transaction", line, cell, bind="cursor")

    @line_magic
    def resmagic(self, line: str) -> Any:
        """Show what resmagic can measure here, the session's reports; change settings.

        Usage::

            %resmagic [status]                  what each probe can measure here, and why not
            %resmagic history [N]               a table of this session's reports (last N)
            %resmagic runs [N]                  the run store's last N reports, every session
            %resmagic top [N] [--by peak|held|time] [--session this|all] [--device DEV]
                                                this notebook's N cells that used the most
                                                (peak above start, held after, wall time),
                                                from the run store, across restarts
            %resmagic clear                     forget the reports so far
            %resmagic config [KEY=VALUE ...]    show or set sample_interval, history_limit,
                                                sampler_linger, held_mib, watch_panel_s,
                                                watch_panel_mib, sink, store (a path,
                                                on or off), store_limit,
                                                store_per_cell, ranks_timeout_s
            %resmagic config sink=mlflow        also send every report to MLflow (one run
                                                per session, off the cell path); sink=off
            %resmagic watch [on|off] [--scopes gpu_scope,timed] [--log PATH] [--no-panel]
                                                measure every cell from the next one on: one
                                                line per cell, the full panel for a cell
                                                that runs over watch_panel_s (2 s) or moves
                                                over watch_panel_mib (256 MiB); --log PATH
                                                appends one JSON line per cell; with no
                                                argument, say whether it does
            %resmagic guard [on|off] [--at 90%] stop a cell with MemoryLimitError before the
                                                container's OOM killer kills the kernel
            %resmagic who [N] [--device cuda:0] which variables hold the memory (largest N)
            %resmagic panel                     a live table of this session's reports
            %resmagic timings [--clear]         per-label totals of every timed run (count,
                                                total, mean, max): @timed(keep="totals")
                                                keeps only these
            %resmagic help                      this text

        Examples::

            %resmagic status
            %resmagic history 20
            %resmagic runs 50
            %resmagic config store=off
            %resmagic config sample_interval=0.05 history_limit=1000
            %resmagic watch on --scopes timed --log runs/session.jsonl
            %resmagic guard on --at 85%
        """
        try:
            tokens = list(split_once(line))
        except ValueError as exc:
            msg = f"%resmagic: cannot read {line!r}: {exc}; check the quotes"
            raise UsageError(msg) from None
        from resmagic.ipython import commands  # its parsers and views load with its first use

        # The run store starts with the first command (runs, config store=, status), if no
        # measured cell or report has started it (issue 26: not at %load_ext).
        self.session.store.ready()
        return commands.run(self.session, tokens, doc=_RESMAGIC_DOC)

    # -- the shared path -------------------------------------------------------------------

    @property
    def _shell(self) -> InteractiveShell:
        shell = self.shell
        if shell is None:  # only before registration; IPython always passes a shell
            msg = "resmagic's magics are not attached to a shell"
            raise RuntimeError(msg)
        return shell

    def _run(self, magic: str, line: str, cell: str, bind: str | None = None) -> Any:
        __tracebackhide__ = True
        prepared = self._prepare(magic, line, cell, bind)
        if prepared is None:
            return None
        output = self.session.output
        expecting = output.expecting
        # Its reports show as run_layers returns: a clear pending then needs a placeholder.
        output.expecting = expecting or any(layer.render is not None for layer in prepared[0])
        disown = self.session.store.owning([layer.scope for layer in prepared[0]])
        try:
            return run_layers(self._shell, *prepared)
        finally:
            disown()
            output.expecting = expecting

    def _prepare(
        self, magic: str, line: str, cell: str, bind: str | None
    ) -> tuple[list[Layer], str, int] | None:
        """Peel stacked resmagic lines, build every layer's scope; None when help was asked."""
        __tracebackhide__ = True
        lines = cell.split("\n")
        # The lines under the first, read exactly as the header transformer reads them.
        more = read_header([text.strip() for text in lines], self.builders.__contains__)
        stacked = [(magic, line, bind)]
        factory = self.session.factory
        stacked += [(name, factory.expand(text), BINDS.get(name)) for name, text in more]
        lines = lines[len(more) :]
        asked = [name for name, text, _ in stacked if asks_help(text)]
        for name in asked:
            print(parser_of(getattr(self, name)).format_help())
        if asked:
            return None
        layers = [factory.layer(name, text, default) for name, text, default in stacked]
        body = "\n".join(lines)
        if not body.strip():
            msg = f"%%{layers[-1].magic} needs code under it: the cell body is empty"
            raise UsageError(msg)
        return layers, body, len(layers)


_RESMAGIC_DOC = ResMagics.__dict__["resmagic"].__doc__ or ""
"""What ``%resmagic help`` prints: the line magic's own docstring."""
