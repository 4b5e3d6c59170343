"""Reading memory: plain values, no IPython, no policy. Heavy modules load only when used."""

from __future__ import annotations

from resmagic.probes.reading import DeviceMemory, ProbeStatus

__all__ = ["DeviceMemory", "ProbeStatus"]
