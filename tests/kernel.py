"""A real ipykernel driven through jupyter_client, for what only a kernel shows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager, start_new_kernel


@dataclass
class Execution:
    """One execute request: its reply and every iopub message it produced, with arrival times."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def stdout(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout"
        )

    @property
    def reports(self) -> list[dict[str, Any]]:
        """The data of every output resmagic displayed or updated (marked in its metadata)."""
        return [
            m["content"]["data"]
            for m in self.of_type("display_data", "update_display_data")
            if "resmagic" in m["content"].get("metadata", {})
        ]

    @property
    def report_text(self) -> str:
        """The ``text/plain`` of resmagic's outputs, one per line (empty placeholders left out)."""
        texts = [data.get("text/plain", "") for data in self.reports]
        return "\n".join(text for text in texts if text)

    @property
    def result(self) -> dict[str, Any] | None:
        results = self.of_type("execute_result")
        return results[-1]["content"]["data"] if results else None

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of_type("error")
        return errors[-1]["content"] if errors else None


class Kernel:
    """Start a kernel, run code in it, always shut it down (use as a context manager)."""

    def __init__(self, **start: Any) -> None:
        """``start`` goes to ``KernelManager.start_kernel`` (e.g. ``cwd=``, ``env=``)."""
        self.km: KernelManager
        self.km, self.kc = start_new_kernel(kernel_name="python3", **start)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The kernel process's id (to move it into a cgroup, for one)."""
        process = getattr(self.km.provisioner, "process", None)
        assert process is not None, "the kernel has no local process"
        return int(process.pid)

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def start(self, code: str, cell_id: str | None = None) -> str:
        """Send ``code`` without waiting (as cell ``cell_id``, as JupyterLab would); its msg_id."""
        if cell_id is None:
            return str(self.kc.execute(code))
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.kc.session.msg("execute_request", content, metadata={"cellId": cell_id})
        self.kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def collect(self, msg_id: str, timeout: float = 60) -> Execution:
        """Read iopub until the kernel is idle for ``msg_id``, then its reply."""
        messages, arrivals = [], []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.1))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            arrivals.append(time.monotonic())
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return Execution(reply, messages, arrivals)

    def run(self, code: str, timeout: float = 60, cell_id: str | None = None) -> Execution:
        """Execute ``code`` and wait for it."""
        return self.collect(self.start(code, cell_id), timeout)

    def value(self, expr: str) -> Any:
        """Evaluate ``expr`` in the kernel and return ``repr``-parsed Python data."""
        import ast

        result = self.run(expr).result
        assert result is not None, f"no value for {expr!r}"
        return ast.literal_eval(result["text/plain"])
