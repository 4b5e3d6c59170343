"""A cell magic's argparse options, built the first time they are needed, not at import.

IPython's ``@magic_arguments`` builds each magic's parser as the class body runs, and
with it the full help text that becomes the method's docstring: for our four cell magics
2.5-3.6 ms of every ``%load_ext`` in a kernel, a fifth of it (issue 26). :func:`options`,
:class:`argument` and :func:`kwds` mark a magic the same way (the attributes IPython's
decorators set) but leave the parser to :func:`parser_of`, which the first ``%%`` line,
``--help`` or ``?`` calls. IPython's own :func:`construct_parser` builds it, so the parser,
its help and the docstring it then writes are IPython's exactly; its module is imported
then too, not at ``%load_ext``.

Until then the method's ``__doc__`` is its own docstring; ``%%timed?`` and a frontend's
inspector ask ``getdoc()`` first (IPython's ``oinspect.getdoc``), which builds the parser
and answers the full help, options included.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["Option", "Parsers", "argument", "help_of", "kwds", "options", "parser_of"]

F = TypeVar("F", bound=Callable[..., Any])


def _decorators(func: Any) -> list[Any]:
    """The list IPython's ``construct_parser`` reads the options from (made on first use)."""
    if not getattr(func, "has_arguments", False):
        func.has_arguments = True  # IPython's mark
        func.decorators = []
    decorators: list[Any] = func.decorators
    return decorators


def options(name: str) -> Callable[[F], F]:
    """``@magic_arguments(name)`` without building the parser: the outermost decorator.

    The ``@argument`` decorators below it record the options as they do for IPython's.
    """

    def mark(func: F) -> F:
        _decorators(func)
        func.argcmd_name = name  # type: ignore[attr-defined]
        func.getdoc = functools.partial(help_of, func)  # type: ignore[attr-defined]
        return func

    return mark


class Option:
    """One option of a magic, recorded as IPython's ``argument`` records it."""

    def __init__(self, args: tuple[Any, ...], kwds: dict[str, Any]) -> None:
        self.args = args
        self.kwds = kwds

    def __call__(self, func: F) -> F:
        """Record this option on ``func`` (the decorator)."""
        _decorators(func).append(self)
        return func

    def add_to_parser(self, parser: Any, group: Any) -> None:
        """What ``construct_parser`` calls for each option, in the order they are written."""
        (parser if group is None else group).add_argument(*self.args, **self.kwds)


def argument(*args: Any, **kwds: Any) -> Option:
    """``@argument(...)`` as IPython's: ``parser.add_argument(*args, **kwds)`` once built."""
    return Option(args, kwds)


def kwds(**settings: Any) -> Callable[[F], F]:
    """``@kwds(...)`` as IPython's: keywords for the magic's ``ArgumentParser``."""

    def mark(func: F) -> F:
        _decorators(func)
        func.argcmd_kwds = settings  # type: ignore[attr-defined]
        return func

    return mark


def parser_of(magic: Callable[..., Any]) -> argparse.ArgumentParser:
    """The parser of a magic marked with :func:`options` (a function or a bound method)."""
    func: Any = getattr(magic, "__func__", magic)
    parser: argparse.ArgumentParser | None = func.__dict__.get("parser")
    if parser is None:
        from IPython.core.magic_arguments import construct_parser

        parser = func.parser = construct_parser(func)  # also sets __doc__ to the full help
    return parser


def help_of(magic: Callable[..., Any]) -> str:
    """The magic's full help: usage, description, every option (what ``?`` shows)."""
    parser_of(magic)
    return str(getattr(magic, "__func__", magic).__doc__)


class Parsers(Mapping[str, argparse.ArgumentParser]):
    """Magic name → its parser, each built when first looked up.

    Args:
        owner: the class whose methods the magics are.
        names: the magics' names.
    """

    def __init__(self, owner: type, names: tuple[str, ...]) -> None:
        self._owner = owner
        self._names = names

    def __getitem__(self, name: str) -> argparse.ArgumentParser:
        if name not in self._names:
            raise KeyError(name)
        return parser_of(getattr(self._owner, name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
