"""SIGKILL while several threads log: every line an experiment log leaves on disk is whole.

Reliability 2026-12-06 #10. Linux looks for a fatal signal between the pages of one
``write(2)``, so a process killed in the middle of writing a line that crosses a page
boundary leaves the first part of it in the file. Many kills in one test, each of a forked
child with three threads writing lines of 3,000 to 3,900 bytes, make one torn line all but
certain on a writer that lets a line cross a page: on 8eba587, 23 of 750 kills tore the last
line (five runs of this test: 9, 7, 2, 3, 2; each run failed); with the padding, 0 of 2,100.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

TRIALS = 150

# Runs in a fresh interpreter (no pytest threads to fork with): forks one child per trial,
# lets its three threads log for a random few milliseconds, SIGKILLs it, reads the file.
_KILLER = textwrap.dedent(
    """
    import json, os, random, signal, sys, threading, time
    from resmagic import experiment_log

    folder, trials = sys.argv[1], int(sys.argv[2])
    rng = random.Random(7)
    torn, records = [], 0
    for trial in range(trials):
        path = os.path.join(folder, f"{trial}.jsonl")
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            def work(t, log):
                sizes = random.Random(t)
                for i in range(10**9):
                    pad = "y" * sizes.randrange(3000, 3900)  # under a page, mostly crossing one
                    log.info("tick", extra={"worker": t, "i": i, "pad": pad})
            log_scope = experiment_log(path, name="killed", fmt="jsonl")
            log = log_scope.__enter__()
            for t in range(3):
                threading.Thread(target=work, args=(t, log), daemon=True).start()
            os.write(ready_w, b"x")
            time.sleep(60)
            os._exit(0)
        os.read(ready_r, 1)
        time.sleep(rng.uniform(0.003, 0.01))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r); os.close(ready_w)
        data = open(path, "rb").read()
        lines = data.split(b"\\n")
        if lines[-1]:
            torn.append((trial, len(data), lines[-1][:60].decode("utf-8", "replace")))
        for line in lines[:-1]:
            json.loads(line)  # a whole line in the middle is a given; a bad one raises
        records += len(lines) - 1
        os.unlink(path)
    print(json.dumps({"torn": torn, "records": records}))
    """
)


def test_a_killed_writer_with_three_threads_never_leaves_a_torn_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLER, str(tmp_path), str(TRIALS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["records"] > TRIALS * 5  # the children did log before they were killed
    assert result["torn"] == [], f"{len(result['torn'])} of {TRIALS} kills left a torn line"
