"""End-to-end: two workspaces (two experiments of one researcher, or two researchers' under
one login) running on the same ssh host at once. Each has a workdir of its own there by
default (kiln-work/FOLDER-HASH under the login's home), so the second kiln neither stops the
first one's running job (a job in its workdir that no attempt of its own names) nor takes a
task of the same name there for a stale attempt of its own. A workdir hosts{} names for both
holds the first one's copy: the second is refused in words, the first's job untouched
("{workspace}" in a workdir gives each its own). A
device the first one's job holds there is busy for the second until that job ends, also while
it uses neither memory nor compute yet."""
import os
import unittest

from kilntest import KilnTestCase, Workspace, main, wait_for
import sshhosts

SKIP = sshhosts.skip_reason()

# the same task name in both workspaces: six steps, each line in a trace there
TRAIN = ('task { name = "train", host = "v800", outputs = {"out.txt"}, run = "for i in 1 2 3 4 5 6; do '
         'echo %s $i >> $HOME/steps.txt; sleep 0.5; done; echo %s > out.txt" }\n')


@unittest.skipIf(SKIP, SKIP or "")
class TwoWorkspacesOnOneHost(sshhosts.LabCase, KilnTestCase):
    HOSTS = {"v800": []}

    def setUp(self):
        super().setUp()
        self.other = Workspace()
        self.addCleanup(self.other.cleanup)
        self.host = self.lab.hosts["v800"]
        self.steps = os.path.join(self.host.home, "steps.txt")
        if os.path.exists(self.steps):
            os.remove(self.steps)

    def hosts(self, workdir=None):
        """The lab's host without a workdir (the default), or with this one."""
        return ('hosts { v800 = { address = "v800", %sssh = {"-F", "%s"} } }\n'
                % ('workdir = "%s", ' % workdir if workdir else "", self.lab.ssh_config))

    def run_both(self, workdir=None, task=TRAIN):
        """The first workspace's kiln, its job running on v800, then the second's to its end."""
        self.ws.write("kiln.lua", self.hosts(workdir) + task % ("first", "first"))
        self.other.write("kiln.lua", self.hosts(workdir) + task % ("second", "second"))
        first = self.ws.spawn("run", "--executor", "ssh")
        self.addCleanup(lambda: first.poll() is None and first.kill())
        wait_for(lambda: "first 1" in open(self.steps).read() if os.path.exists(self.steps) else False, 30)
        second = self.other.kiln("run", "--executor", "ssh", "--host-wait", "2s", timeout=60)
        out, err = first.communicate(timeout=60)
        steps = open(self.steps).read().split("\n")
        return first.returncode, out + err, second, steps

    def test_each_workspace_has_its_own_workdir_and_leaves_the_others_job_alone(self):
        rc, out, second, steps = self.run_both()
        self.assertEqual(rc, 0, out)
        self.assertEqual(second.rc, 0, second)
        self.assertEqual(self.ws.read("out.txt"), "first\n")
        self.assertEqual(self.other.read("out.txt"), "second\n")
        for who in ("first", "second"):  # each job ran once, whole
            self.assertEqual([s for s in steps if s.startswith(who)], ["%s %d" % (who, i) for i in range(1, 7)], steps)
        self.assertNotIn("killed kiln", second.out + second.err)
        made = sorted(os.listdir(os.path.join(self.host.home, "kiln-work")))
        self.assertEqual(len(made), 2, made)  # under the login's home, named for each folder
        for ws in (self.ws, self.other):
            self.assertTrue(any(m.startswith(os.path.basename(ws.dir) + "-") for m in made), made)

    def test_a_workdir_another_workspace_holds_is_refused_and_its_job_runs_on(self):
        rc, out, second, steps = self.run_both(workdir="shared")
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.ws.read("out.txt"), "first\n")
        self.assertEqual([s for s in steps if s], ["first %d" % i for i in range(1, 7)])
        self.assertEqual(second.rc, 1, second)
        self.assertFalse(self.other.exists("out.txt"))
        self.assertIn("workdir %s holds the copy of workspace %s" % (os.path.join(self.host.home, "shared"),
                                                                    os.path.realpath(self.ws.dir)), second.out)
        # a workspace's own workdir stays its own: the first one's next run is a no-op there
        again = self.ws.kiln("run", "--executor", "ssh")
        self.assertEqual(again.rc, 0, again)
        self.assertIn("1 up to date", again.out)
        # a workdir of its own where hosts{} says: {workspace} is its name there
        self.other.write("kiln.lua", self.hosts("lab/{workspace}") + TRAIN % ("second", "second"))
        own = self.other.kiln("run", "--executor", "ssh")
        self.assertEqual(own.rc, 0, own)
        made = os.listdir(os.path.join(self.host.home, "lab"))
        self.assertEqual(len(made), 1, made)
        self.assertTrue(made[0].startswith(os.path.basename(self.other.dir) + "-"), made)
        self.assertTrue(os.path.exists(os.path.join(self.host.home, "lab", made[0], "out.txt")))

    def test_a_device_another_workspaces_job_holds_there_is_busy_here_until_it_ends(self):
        # to nvidia-smi the device is idle all along: the first job is still loading its model
        self.host.set_gpus([(0, 81920, 200, 0), (1, 81920, 70000, 95)])  # 1: someone else's, busy
        task = ('task { name = "eval", host = "v800", gpus = 1, outputs = {"out.txt"}, run = "echo %s 1 '
                '$(date +%%s.%%N) $CUDA_VISIBLE_DEVICES >> $HOME/steps.txt; sleep 3; echo %s 2 $(date +%%s.%%N) '
                '>> $HOME/steps.txt; echo ok > out.txt" }\n')
        rc, out, second, steps = self.run_both(task=task)
        self.assertEqual(rc, 0, out)
        self.assertEqual(second.rc, 0, second)
        times = {tuple(s.split()[:2]): float(s.split()[2]) for s in steps if s}
        self.assertEqual([s.split()[3] for s in steps if s.endswith(" 0")], ["0", "0"], steps)  # both on device 0
        self.assertGreaterEqual(times[("second", "1")], times[("first", "2")], "the second started on a device in use")
        self.assertIn("eval waits for a GPU: v800: GPU 0 held by another kiln's job there, GPU 1 busy 85 % memory", second.out)
        self.assertRegex(second.out, r"1 task waited for GPUs")


if __name__ == "__main__":
    main()
