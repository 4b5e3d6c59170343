"""A cell younger than one sample interval gets no widget, even if a sample comes at once.

The sampler thread lingers between cells and samples a new watch at its next wake-up,
which may come right after the cell starts. The panel is fed here the way that thread
feeds it, so both sides of the rule are checked without waiting on a clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from resmagic import gpu_scope
from resmagic.config import settings
from resmagic.ipython.views.cell_panel import CellPanel

# The real IPython shell (``ip``): the panel displays its placeholder through it.
pytestmark = pytest.mark.usefixtures("ip")


@pytest.fixture
def interval() -> Iterator[None]:
    old = settings.sample_interval
    yield
    settings.sample_interval = old


def _sample_right_after_start(sample_interval: float) -> CellPanel:
    settings.sample_interval = sample_interval
    scope = gpu_scope("host")
    panel = CellPanel(scope)
    with scope:
        panel.start()
        panel._sampled(time.monotonic(), scope.readings())  # what the sampler thread calls
        panel.stop()
    return panel


def test_no_widget_for_a_sample_within_the_first_interval(interval: None) -> None:
    panel = _sample_right_after_start(sample_interval=60.0)
    assert panel.widget is None
    assert panel.error is None


def test_a_widget_once_the_cell_is_older_than_one_interval(interval: None) -> None:
    panel = _sample_right_after_start(sample_interval=0.0)
    try:
        assert panel.widget is not None
        assert "rm-panel" in panel.widget.value
    finally:
        panel.widget.close()
