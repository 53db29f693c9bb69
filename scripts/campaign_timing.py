"""campaign_timing.py — what the fault campaigns share: an uninterrupted run timed once, so
their kills land while work is on its way (between its first start and its end)."""
import subprocess
import time


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
