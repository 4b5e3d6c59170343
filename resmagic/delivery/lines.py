"""The lines of a code object where an exception raised at the line start skips a cleanup.

An exception raised at the start of a line of ``lock.acquire(); try: ... finally:
lock.release()`` is harmless on the ``acquire`` line (nothing is held yet) and inside the
``try`` body (the ``finally`` releases), but not on the ``try:`` line itself (held, and the
handler does not cover it yet), nor on the ``release`` line of the ``finally`` body, nor on
the ``with`` line when the block exits (``__exit__`` is not called). Those are the lines this
module finds, from the bytecode, so it works where there is no source (``python -c``, ``exec``)
and never disagrees with what runs (reliability 2026-12-06 #2):

- every line of code that only an exception reaches (``except`` and ``finally`` bodies, the
  exit of ``with`` and ``async with``; the normal-path copy of a ``finally`` body carries the
  same lines);
- the line that sets up a handler before the handler covers it: the ``try:`` line (a
  ``SETUP_*`` instruction up to 3.10; from 3.11 a ``NOP`` just before the protected range);
- every line that starts with a ``NOP`` (``try:``, ``pass``, ``else:``): the compiler leaves
  instructions that cannot raise out of the protected ranges, so a ``try`` body of only
  ``pass`` is no protection at all. Such a line does nothing; waiting for the next costs
  nothing. (Where ``try:`` shares its line with the body, the ``NOP`` is gone and the line
  starts inside the protected range.)

Marking a line that is in fact harmless only makes the stop wait for the next line (code
reached only through a handler, after a ``try`` body that always raises, counts too).
"""

from __future__ import annotations

import dis
import weakref
from types import CodeType

__all__ = ["cleanup_lines"]

# Up to 3.10, a handler is set up by an instruction whose target only an exception reaches.
_SETUP = frozenset({"SETUP_FINALLY", "SETUP_WITH", "SETUP_ASYNC_WITH", "SETUP_CLEANUP"})
# Instructions after which control never falls through to the next one.
_NO_FALLTHROUGH = frozenset(
    {
        "RETURN_VALUE",
        "RETURN_CONST",
        "RAISE_VARARGS",
        "RERAISE",
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "JUMP_ABSOLUTE",
        "JUMP",
        "JUMP_NO_INTERRUPT",
    }
)
_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)

# id(code) -> (a weak reference to it, its cleanup lines): by identity, since code objects
# compare (and hash, slowly) by value.
_known: dict[int, tuple[weakref.ref[CodeType], frozenset[int]]] = {}


def cleanup_lines(code: CodeType) -> frozenset[int]:
    """The line numbers of ``code`` where a raise at the line start would skip a cleanup."""
    known = _known.get(id(code))
    if known is not None and known[0]() is code:
        return known[1]
    lines = _find(code)
    key = id(code)
    _known[key] = (weakref.ref(code, lambda _ref: _known.pop(key, None)), lines)
    return lines


def _find(code: CodeType) -> frozenset[int]:
    instructions = list(dis.get_instructions(code))
    line_at = _lines_by_offset(code)
    normal = _reachable(instructions)
    unsafe = {line_at.get(ins.offset) for n, ins in enumerate(instructions) if n not in normal}
    nops = {ins.offset for ins in instructions if ins.opname == "NOP"}
    unsafe.update(line for start, _end, line in code.co_lines() if start in nops)
    unsafe.update(line_at.get(ins.offset) for ins in instructions if ins.opname in _SETUP)
    return frozenset(line for line in unsafe if line is not None)


def _lines_by_offset(code: CodeType) -> dict[int, int | None]:
    line_at: dict[int, int | None] = {}
    for start, end, line in code.co_lines():
        for offset in range(start, end, 2):
            line_at[offset] = line
    return line_at


def _reachable(instructions: list[dis.Instruction]) -> set[int]:
    """The indexes of the instructions that run without an exception (jumps and fall-through)."""
    index = {ins.offset: n for n, ins in enumerate(instructions)}
    seen: set[int] = set()
    todo = [0]
    while todo:
        n = todo.pop()
        if n in seen or n >= len(instructions):
            continue
        seen.add(n)
        ins = instructions[n]
        if ins.opcode in _JUMPS and ins.opname not in _SETUP and ins.argval in index:
            todo.append(index[ins.argval])
        if ins.opname not in _NO_FALLTHROUGH:
            todo.append(n + 1)
    return seen
