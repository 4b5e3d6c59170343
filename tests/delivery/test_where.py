"""Where a stop may land: the user's own code, at a safe line, not called back by a library.

Under pytest every test is itself called by a library, so the checks name the test's frame
as the block's anchor, as the guard does with the frame of its ``with``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import FrameType, ModuleType

from resmagic.delivery import where
from resmagic.delivery.where import FRAMEWORK, LIBRARY, USER, frame_kind, safe_point

CALLS_BACK = """
def call(f):
    try:
        return f()
    except Exception:
        pass
"""


def here() -> FrameType:
    return sys._getframe(1)


def test_the_standard_library_and_site_packages_are_libraries(
    library: Callable[[str], ModuleType],
) -> None:
    seen: list[FrameType] = []

    class Spy(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append(sys._getframe(1))  # logging's Filterer.filter
            return False

    log = logging.getLogger("resmagic-test-where")
    log.addFilter(Spy())
    log.warning("x")
    assert frame_kind(seen[0]) == LIBRARY
    assert frame_kind(library(CALLS_BACK).call(here)) == LIBRARY  # here() names its caller


def test_resmagic_is_the_framework_and_this_file_is_the_users() -> None:
    assert where._kind(where.safe_point.__code__) == FRAMEWORK
    assert frame_kind(here()) == USER


def test_code_made_at_run_time_is_of_the_kind_of_the_code_that_runs_it(
    library: Callable[[str], ModuleType],
) -> None:
    made = compile("import sys\nframe = sys._getframe()", "<string>", "exec")
    mine: dict[str, FrameType] = {}
    exec(made, mine)
    assert frame_kind(mine["frame"]) == USER
    theirs: dict[str, FrameType] = {}
    library("def run(code, into):\n    exec(code, into)\n").run(made, theirs)
    assert frame_kind(theirs["frame"]) == LIBRARY  # a dataclass's __init__ a library runs


def test_a_dataclass_made_in_a_library_is_the_librarys_wherever_it_is_built(
    library: Callable[[str], ModuleType],
) -> None:
    module = library(
        "import dataclasses, sys\n"
        "@dataclasses.dataclass\n"
        "class Run:\n"
        "    frame: object = dataclasses.field(default_factory=lambda: sys._getframe(1))\n"
    )
    built = module.Run().frame  # the generated __init__ (<string>), called from here
    assert built.f_code.co_filename == "<string>"
    assert frame_kind(built) == LIBRARY


def test_a_line_of_the_users_block_is_a_safe_point() -> None:
    block = here()
    assert safe_point(block, handling=False, anchor=block)


def test_not_while_an_exception_is_handled() -> None:
    block = here()
    try:
        int("not a number")
    except ValueError:
        assert not safe_point(block, handling=True, anchor=block)


def test_not_in_the_users_code_that_a_library_calls_back(
    library: Callable[[str], ModuleType],
) -> None:
    block = here()
    seen: dict[str, bool] = {}

    def called_back() -> None:
        frame = sys._getframe()
        seen["user"] = frame_kind(frame) == USER
        seen["strict"] = safe_point(frame, handling=False, anchor=block)
        seen["relaxed"] = safe_point(frame, handling=False, anchor=block, callbacks=True)

    library(CALLS_BACK).call(called_back)
    assert seen == {"user": True, "strict": False, "relaxed": True}


def test_not_in_anything_an_exit_calls() -> None:
    block = here()
    seen: list[bool] = []

    class Closing:
        def __enter__(self) -> None:
            pass

        def __exit__(self, *exc: object) -> None:
            seen.append(_safe_here(block))

    with Closing():
        seen.append(_safe_here(block))
    assert seen == [True, False]


def test_not_in_what_a_finally_body_calls() -> None:
    block = here()
    try:
        in_body = _safe_here(block)
    finally:
        in_finally = _safe_here(block)
    assert in_body
    assert not in_finally


def _safe_here(block: FrameType) -> bool:
    return safe_point(sys._getframe(), handling=False, anchor=block)
