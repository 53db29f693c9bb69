"""End-to-end: a host of hosts{} that never answers (it takes TCP connections and says
nothing, as a hung server or a network dropping packets does: ssh waits its 5 s
ConnectTimeout each try) holds up no start on the others — not the run's first contacts,
not the retries kiln keeps making while it is down — and is named down at the end."""
import unittest

from kilntest import KilnTestCase, main
import sshhosts

SKIP = sshhosts.skip_reason()


@unittest.skipIf(SKIP, SKIP or "")
class SilentHost(sshhosts.SshCase, KilnTestCase):
    HOSTS = {"v800": [], "v801": []}

    def test_a_host_that_never_answers_holds_up_no_start_on_the_others(self):
        silent = sshhosts.SilentHost()
        try:
            live = self.lab.hosts_lua({"v800": "jobs = 2", "v801": "jobs = 2"})
            self.ws.write("hosts.lua", live.rstrip().rstrip("}") + silent.hosts_entry("vquiet", self.lab) + "}\n")
            # a chain: each task starts only once kiln has seen the one before it end
            recipe = ""
            for i in range(45):
                dep = ', inputs = {"c/%d.txt"}' % (i - 1) if i else ""
                recipe += ('task { name = "c%d"%s, outputs = {"c/%d.txt"}, run = "date +%%s.%%N > c/%d.txt; sleep 0.1" }\n'
                           % (i, dep, i, i))
            self.ws.write("kiln.lua", recipe)
            r = self.kiln(timeout=300)
        finally:
            silent.close()
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"host vquiet: .*DOWN")
        starts = sorted(float(self.ws.read("c/%d.txt" % i)) for i in range(45))
        # every try ssh gave up on (the first contact, then the retries every 2, 4, 8 ... s)
        # while the chain still had work left: tasks started on the other hosts meanwhile
        tries = [(o, c) for o, c in silent.windows if c and c < starts[-1]]
        self.assertGreaterEqual(len(tries), 2, (silent.windows, starts))
        for opened, closed in tries:
            self.assertTrue(any(opened < s < closed for s in starts),
                            "no task started while ssh waited for vquiet (%.2f..%.2f): %s" % (opened, closed, starts))


if __name__ == "__main__":
    main()
