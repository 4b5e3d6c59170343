"""ranks_of: the ranks=... option of gpu_scope and timed, checked when the scope is made.

The gathers themselves run on real gloo groups in tests/test_ranks.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from resmagic import gpu_scope, timed
from resmagic.errors import OptionError


@pytest.mark.parametrize("bad", ["no", "false", "yes", 1, 0, None, []])
@pytest.mark.parametrize("make", [gpu_scope, timed])
def test_ranks_that_is_not_true_or_false_is_refused_before_the_block(make: Any, bad: Any) -> None:
    with pytest.raises(OptionError, match=re.escape(f"ranks must be True or False, not {bad!r}")):
        make(ranks=bad)
