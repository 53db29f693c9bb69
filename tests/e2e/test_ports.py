"""End-to-end: {port} and {gpus}. Attempts running at once get distinct free TCP ports
(each really binds its own), exported as KILN_PORT; the port is not in the key; ports = N
gives {port1}...; {gpus} is the number of leased devices."""

from kilntest import KilnTestCase, lua_str, main

# binds the port it was given and keeps it a while, so overlapping attempts would clash
BIND = ("/usr/bin/python3 -c \"import socket,sys,time; s=socket.socket(); s.bind(('0.0.0.0', int(sys.argv[1]))); "
        "s.listen(); time.sleep(0.6); open(sys.argv[2], 'w').write(sys.argv[1] + ' ' + sys.argv[3] + chr(10))\"")


class Ports(KilnTestCase):
    def test_concurrent_attempts_get_distinct_ports_outside_the_key(self):
        tasks = "\n".join('task { name = "t%d", outputs = {"o%d.txt"}, run = %s }'
                          % (i, i, lua_str(BIND + " {port} {out} $KILN_PORT")) for i in range(3))
        self.ws.write("kiln.lua", tasks)
        r = self.ws.kiln("run", "-j", "3")
        self.assertEqual(r.rc, 0, r)
        seen = []
        for i in range(3):
            port, env_port = self.ws.read("o%d.txt" % i).split()
            self.assertEqual(port, env_port, "KILN_PORT is the port {port} expanded to")
            self.assertTrue(1024 <= int(port) < 65536)
            seen.append(port)
            log = self.ws.read(".kiln/logs/t%d@1.log" % i)
            self.assertIn("KILN_PORT=%s" % port, log)
        self.assertEqual(len(set(seen)), 3, "three attempts at once, three ports: %s" % seen)
        self.assertEqual(self.ws.kiln("run").ran, set(), "the port is not part of the key")

    def test_several_ports_and_the_argv_form(self):
        self.ws.write("kiln.lua", 'task { name = "t", outputs = {"o.txt"}, ports = 3, run = { "sh", "-c", '
                      '"echo $1 $2 $3 $KILN_PORTS > o.txt", "x", "{port}", "p{port1}", "{port2}" } }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 0, r)
        a, b, c, listed = self.ws.read("o.txt").split()
        self.assertTrue(b.startswith("p"))
        ports = [a, b[1:], c]
        self.assertEqual(len(set(ports)), 3)
        self.assertEqual(listed, ",".join(ports))

    def test_undeclared_extra_port_is_a_recipe_error(self):
        self.ws.write("kiln.lua", 'task { name = "t", run = "echo {port} {port2}", ports = 2 }\n')
        r = self.ws.kiln("run")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("kiln.lua:1:", r.err)
        self.assertIn("uses {port2} but declares ports = 2", r.err)

    def test_gpus_is_the_number_of_leased_devices(self):
        self.ws.write("kiln.lua", 'task { name = "two", gpus = 2, outputs = {"o2.txt"}, run = "echo {gpus} $CUDA_VISIBLE_DEVICES > {out}" }\n'
                      'task { name = "cpu", outputs = {"o0.txt"}, env = { N = "{gpus}" }, run = "echo {gpus} $N > {out}" }\n')
        r = self.ws.kiln("run", "--gpus", "0,1,2")
        self.assertEqual(r.rc, 0, r)
        n, devices = self.ws.read("o2.txt").split()
        self.assertEqual(n, "2")
        self.assertEqual(len(devices.split(",")), 2)
        self.assertEqual(self.ws.read("o0.txt").split(), ["0", "0"])


if __name__ == "__main__":
    main()
