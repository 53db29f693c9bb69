"""campaign_timing.py — what the fault campaigns share: an uninterrupted run timed once, so
their kills land while work is on its way (between its first start and its end), and a
trial's end: its problems printed with its workspace kept, or its workspace removed."""
import shutil
import subprocess
import sys
import time

# A trainer's SIGTERM handler as the campaigns' trainers write it (Python text): it sets
# `stop`, which the loop reads after the step under way, then saves
STOP_FLAG = """stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
"""


def time_uninterrupted(argv, cwd, env, started):
    """Runs argv in cwd to its end: (seconds to the first start, as started() first says one
    happened; seconds to its end; its output; its status). The first is None when started()
    never said so."""
    t0 = time.time()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_s = None
    while p.poll() is None:
        if first_s is None and started():
            first_s = time.time() - t0
        time.sleep(0.02)
    return first_s, time.time() - t0, p.stdout.read(), p.returncode


def stop_window(argv, make_ws, env, steps, tail_s):
    """Times an uninterrupted run of argv in a fresh workspace (make_ws(), removed after;
    steps(ws) says whether work has started): (seconds to its end, seconds to its first
    start, the window stops are drawn from: that start to tail_s before the end). Exits
    when the run failed."""
    ws = make_ws()
    first_s, full_s, out, rc = time_uninterrupted(argv, ws, env, lambda: steps(ws))
    shutil.rmtree(ws, ignore_errors=True)
    if rc != 0 or first_s is None:
        sys.exit("an uninterrupted run failed: " + out[-1600:])
    return full_s, first_s, (first_s, max(first_s + 0.1, full_s - tail_s))


def trial_ended(trial, what, problems, ws):
    """Ends trial (0-based) of `what` ("2 kills"): 1 when it failed (printed, ws kept), else 0 (ws removed)."""
    if problems:
        print("trial %d (%s): FAILED\n  %s\n  workspace kept: %s" % (trial + 1, what, "\n  ".join(problems), ws))
        return 1
    shutil.rmtree(ws, ignore_errors=True)
    return 0
