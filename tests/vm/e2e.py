#!/usr/bin/env python3
"""Cairn's VM end-to-end test: compose, build an image, boot it, upgrade, roll back — for real.

    sudo tests/vm/e2e.py [--workdir DIR] [--keep] [--v1-from REPO]

Phases (each timed; the summary prints them):
  compose-v1  cairn-compose tree manifests/container-host.toml into a temp repo
  image       cairn-compose image tests/vm/recipe.toml (qcow2; remote = this test's HTTP server)
  boot-v1     qemu -accel tcg; wait for the root shell on ttyS0 and for systemd to settle
  check-v1    `cairn status --json` says v1 is booted; podman runs a container from a local image
  compose-v2  tests/vm/v2.toml (container-host + htop + a marker file) into the same repo
  upgrade     `cairn upgrade --reboot` from http://10.0.2.2:PORT (the host's 127.0.0.1)
  check-v2    v2 booted, v1 listed as rollback, v2's package and file are there
  rollback    edit /etc, write /var, `cairn rollback --reboot`
  check-rb    v1 booted again, the /var write survived

The guest is driven over its serial console (a unix socket): an autologin root shell from the
recipe's getty drop-in. Every command is wrapped in unique markers (`__S_n__0` before,
`__E_n__<exit code>` after; the shell's echo of the command line shows `$((0))` and `$?`
unexpanded, so it never matches). Every wait has a timeout. The console log is always written
to WORKDIR/console.log; on failure the work directory is kept and its path printed.

Needs root, qemu-system-x86_64, qemu-img, grub-pc-bin, ostree, python3 (no modules beyond
the standard library). Budget: under 25 minutes on 2 cores without KVM.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REF = "cairn/bookworm/x86_64/stable"
V1_MANIFEST = os.path.join(ROOT, "manifests", "container-host.toml")
V2_MANIFEST = os.path.join(ROOT, "tests", "vm", "v2.toml")
RECIPE = os.path.join(ROOT, "tests", "vm", "recipe.toml")
COMPOSE = os.path.join(ROOT, "target", "release", "cairn-compose")


class TestFailure(Exception):
    pass


def log(msg):
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, timeout, **kw):
    """Runs a host command; its output goes to our stdout. Fails on a non-zero exit."""
    log("$ " + " ".join(cmd))
    try:
        subprocess.run(cmd, check=True, timeout=timeout, **kw)
    except subprocess.CalledProcessError as e:
        raise TestFailure(f"{cmd[0]} exited with {e.returncode}") from None
    except subprocess.TimeoutExpired:
        raise TestFailure(f"{' '.join(cmd)} took more than {timeout}s") from None


def capture(cmd, timeout):
    return subprocess.run(cmd, check=True, timeout=timeout, capture_output=True, text=True).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """A qemu VM and its serial console."""

    def __init__(self, disk, workdir):
        self.sock_path = os.path.join(workdir, "console.sock")
        self.log = open(os.path.join(workdir, "console.log"), "ab")
        self.buf = ""
        self.cond = threading.Condition()
        self.n = 0
        self.eof = False
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", "2048", "-smp", "2", "-nographic",
            "-monitor", "none",
            "-chardev", f"socket,id=s0,path={self.sock_path},server=on,wait=on",
            "-serial", "chardev:s0",
            "-drive", f"file={disk},if=virtio,format=qcow2",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
        ]
        log("$ " + " ".join(cmd))
        self.qemu_log = open(os.path.join(workdir, "qemu.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.qemu_log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(self.sock_path)
                break
            except OSError:
                self.sock.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise TestFailure("qemu did not open its serial socket (see qemu.log)")
                time.sleep(0.2)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.log.write(data)
                self.log.flush()
                self.buf += data.decode("utf-8", "replace")
                self.cond.notify_all()

    def mark(self):
        """A position in the console output; waits only look after it."""
        with self.cond:
            return len(self.buf)

    def wait_for(self, pattern, timeout, start, what=None):
        """Waits until `pattern` (a regex) appears after `start`; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.buf, start)
                if m:
                    return m
                if self.eof or self.proc.poll() is not None:
                    raise TestFailure(f"the VM stopped while waiting for {what or pattern}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"timed out after {timeout}s waiting for {what or pattern}")
                self.cond.wait(min(left, 1.0))

    def send(self, text):
        self.sock.sendall(text.encode())

    def wait_shell(self, timeout, start):
        """Waits for the autologin shell to answer (pokes it every 5 s until it does)."""
        deadline = time.monotonic() + timeout
        self.n += 1
        token = f"__READY_{self.n}__"
        # The echo of the command shows `$((6*7))`; only the executed command prints 42.
        while True:
            self.send(f"\recho {token}$((6*7))\r")
            try:
                self.wait_for(re.escape(token) + "42", 5, start, "the shell")
                break
            except TestFailure:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise TestFailure(f"no shell on the serial console after {timeout}s")
        # Quiet the console, no pagers or colours, wide lines.
        self.sh("dmesg -n 1; stty cols 500 -echo 2>/dev/null; export PAGER=cat SYSTEMD_PAGER= "
                "SYSTEMD_COLORS=0 TERM=dumb; true", 30)

    def sh(self, cmd, timeout, check=True):
        """Runs `cmd` in the guest shell; returns (exit code, output)."""
        self.n += 1
        n = self.n
        start = self.mark()
        self.send(f"echo __S_{n}__$((0)); {cmd}; echo __E_{n}__$?\r")
        s = self.wait_for(rf"__S_{n}__0\r?\n", timeout, start, f"the start of `{cmd}`")
        e = self.wait_for(rf"__E_{n}__(\d+)", timeout, s.end(), f"`{cmd}` to finish")
        with self.cond:
            out = self.buf[s.end():e.start()].replace("\r", "")
        code = int(e.group(1))
        if check and code != 0:
            raise TestFailure(f"guest command `{cmd}` exited with {code}:\n{out[-3000:]}")
        return code, out

    def reboot_with(self, cmd, timeout):
        """Runs a command that reboots the guest; waits for GRUB to boot the next entry."""
        self.n += 1
        n = self.n
        start = self.mark()
        self.send(f"echo __S_{n}__$((0)); {cmd}; echo __E_{n}__$?\r")
        m = self.wait_for(rf"__E_{n}__(\d+)|Booting `", timeout, start, f"`{cmd}` and a reboot")
        if m.group(1) is not None and m.group(1) != "0":
            with self.cond:
                out = self.buf[start:m.start()].replace("\r", "")
            raise TestFailure(f"guest command `{cmd}` exited with {m.group(1)}:\n{out[-3000:]}")
        return self.wait_for(r"Booting `", 300, start, "GRUB to boot after the reboot")

    def stop(self, timeout=120):
        if self.proc.poll() is None:
            try:
                self.send("\rsystemctl poweroff\r")
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        self.sock.close()
        self.log.close()


def status(guest):
    _, out = guest.sh("cairn status --json", 60)
    start = out.find("{")
    if start < 0:
        raise TestFailure(f"`cairn status --json` printed no JSON:\n{out}")
    return json.loads(out[start:])


def booted(st):
    b = [d for d in st["deployments"] if d.get("booted")]
    if len(b) != 1:
        raise TestFailure(f"expected one booted deployment: {json.dumps(st, indent=1)}")
    return b[0]


def versions(st):
    return [(d["version"], d["booted"], d["rollback"]) for d in st["deployments"]]


def head_version(repo):
    out = capture(["ostree", "log", f"--repo={repo}", REF], 60)
    m = re.search(r"^Version: (\S+)", out, re.M)
    if not m:
        raise TestFailure(f"no version on {REF} in {repo}")
    return m.group(1)


def wait_booted(guest, start, phase_start):
    """After GRUB's `Booting`: the shell, then systemd settled. Returns seconds since GRUB."""
    guest.wait_shell(420, start)
    guest.sh("systemctl is-system-running --wait || true", 300)
    took = time.monotonic() - phase_start
    _, out = guest.sh("systemd-analyze time 2>/dev/null | head -n 2 || true", 60, check=False)
    log("guest: " + " ".join(out.split()))
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", help="where the repo, image and logs go (default: a new dir under /var/tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory after success")
    ap.add_argument("--v1-from", metavar="REPO",
                    help="take v1 from REPO's ref head instead of composing it (faster, for development)")
    ap.add_argument("--cache-dir", default=os.path.join(ROOT, "build", "cache"),
                    help="the composer's package cache (default: build/cache)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("e2e.py needs root (loop devices, mounts, mmdebstrap)")

    workdir = args.workdir or tempfile.mkdtemp(prefix="cairn-e2e-", dir="/var/tmp")
    os.makedirs(workdir, exist_ok=True)
    repo = os.path.join(workdir, "repo")
    disk = os.path.join(workdir, "disk.qcow2")
    times = []
    guest = None
    http = None
    t0 = time.monotonic()
    ok = False

    def phase(name):
        class P:
            def __enter__(self):
                self.t = time.monotonic()
                log(f"== {name}")

            def __exit__(self, *exc):
                d = time.monotonic() - self.t
                times.append((name, d, exc[0] is None))
                log(f"== {name}: {d:.1f}s" + ("" if exc[0] is None else " (FAILED)"))
        return P()

    try:
        with phase("build"):
            run(["cargo", "build", "--release", "--quiet"], 900, cwd=ROOT)

        with phase("compose-v1"):
            if args.v1_from:
                run(["ostree", "init", f"--repo={repo}", "--mode=archive"], 60)
                run(["ostree", "pull-local", f"--repo={repo}", args.v1_from, REF], 600)
                run(["ostree", "summary", "-u", f"--repo={repo}"], 60)
            else:
                run([COMPOSE, "tree", V1_MANIFEST, "--repo", repo, "--cache-dir", args.cache_dir], 1200)
            v1 = head_version(repo)
            log(f"v1 = {v1}")

        port = free_port()
        http_log = open(os.path.join(workdir, "http.log"), "ab")
        http = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                 "--directory", repo, str(port)],
                                stdin=subprocess.DEVNULL, stdout=http_log, stderr=subprocess.STDOUT)
        url = f"http://10.0.2.2:{port}/"

        with phase("image"):
            run([COMPOSE, "image", RECIPE, "--repo", repo, "--ref", REF, "-o", disk,
                 "--remote-url", url], 600)
            log(f"image: {os.path.getsize(disk) / 2**20:.0f} MiB qcow2")

        with phase("boot-v1"):
            guest = Guest(disk, workdir)
            grub = guest.wait_for(r"Booting `", 120, 0, "GRUB")
            boot_v1 = wait_booted(guest, grub.end(), time.monotonic())

        with phase("check-v1"):
            st = status(guest)
            b = booted(st)
            if b["version"] != v1 or b["refspec"] != f"cairn:{REF}":
                raise TestFailure(f"expected {v1} (cairn:{REF}) booted: {versions(st)}")
            guest.sh("findmnt /boot >/dev/null && test -e /boot/loader/grub.cfg", 30)
            # A container from a local image: bash and its libraries, imported as a rootfs.
            guest.sh("tar -chf /tmp/mini.tar -C / bin/bash "
                     "$(ldd /bin/bash | grep -o '/[^ ]*' | sed 's|^/||') "
                     "&& podman import -q /tmp/mini.tar localhost/e2e-mini >/dev/null", 300)
            _, out = guest.sh("podman run --rm --network none localhost/e2e-mini "
                              "/bin/bash -c 'echo hello-from-container-$((40+2))'", 300)
            if "hello-from-container-42" not in out:
                raise TestFailure(f"podman run printed: {out}")

        with phase("compose-v2"):
            run([COMPOSE, "tree", V2_MANIFEST, "--repo", repo, "--cache-dir", args.cache_dir], 1200)
            v2 = head_version(repo)
            if v2 == v1:
                raise TestFailure("composing v2 did not make a new version")
            log(f"v2 = {v2}")

        with phase("upgrade"):
            guest.sh("/usr/lib/systemd/systemd-networkd-wait-online --timeout=120", 150)
            t = time.monotonic()
            grub = guest.reboot_with("cairn upgrade --reboot", 900)
            upgrade_cmd = time.monotonic() - t
            boot_v2 = wait_booted(guest, grub.end(), time.monotonic())

        with phase("check-v2"):
            st = status(guest)
            b = booted(st)
            if b["version"] != v2:
                raise TestFailure(f"expected {v2} booted: {versions(st)}")
            if not any(d["version"] == v1 and d["rollback"] for d in st["deployments"]):
                raise TestFailure(f"expected {v1} as the rollback deployment: {versions(st)}")
            guest.sh("test \"$(cat /usr/lib/cairn-e2e/release)\" = v2 && htop --version", 30)
            guest.sh("dpkg -s htop >/dev/null", 30)
            # v2 comes from the current base.toml, which grows the root filesystem at boot.
            guest.sh("systemctl is-active cairn-growfs.service", 30)
            _, failed = guest.sh("systemctl --failed --no-legend --plain", 30, check=False)
            if failed.strip():
                log("failed units on v2: " + " ".join(failed.split()))

        with phase("rollback"):
            guest.sh("echo edited-on-v2 > /etc/cairn-e2e.conf && mkdir -p /var/lib/cairn-e2e "
                     "&& echo written-on-v2 > /var/lib/cairn-e2e/data && sync", 30)
            t = time.monotonic()
            grub = guest.reboot_with("cairn rollback --reboot", 300)
            rollback_cmd = time.monotonic() - t
            boot_rb = wait_booted(guest, grub.end(), time.monotonic())

        with phase("check-rb"):
            st = status(guest)
            b = booted(st)
            if b["version"] != v1:
                raise TestFailure(f"expected {v1} booted after the rollback: {versions(st)}")
            guest.sh("test \"$(cat /var/lib/cairn-e2e/data)\" = written-on-v2", 30)
            guest.sh("test ! -e /usr/lib/cairn-e2e/release && ! command -v htop", 30)
            # /etc belongs to each deployment: v1's /etc never saw the edit made on v2.
            code, _ = guest.sh("test -e /etc/cairn-e2e.conf", 30, check=False)
            log("the /etc edit made on v2 is " + ("visible" if code == 0 else "not visible") + " on v1")
            log("deployments: " + ", ".join(f"{v}{' (booted)' if bt else ''}{' (rollback)' if rb else ''}"
                                           for v, bt, rb in versions(st)))
        ok = True
    except TestFailure as e:
        log(f"FAILED: {e}")
    except Exception as e:  # noqa: BLE001 — report anything with the artifacts
        log(f"FAILED: {type(e).__name__}: {e}")
    finally:
        if guest:
            guest.stop()
        if http:
            http.terminate()
            http.wait(10)

    print()
    print("Cairn VM end-to-end: " + ("PASSED" if ok else "FAILED"))
    for name, d, good in times:
        print(f"  {name:<12} {d:7.1f}s{'' if good else '  FAILED'}")
    print(f"  {'total':<12} {time.monotonic() - t0:7.1f}s")
    if ok:
        print(f"  boot to a settled multi-user system (from GRUB): v1 {boot_v1:.0f}s, "
              f"v2 {boot_v2:.0f}s, after rollback {boot_rb:.0f}s")
        print(f"  until GRUB booted the next entry: `cairn upgrade --reboot` (pull, stage, shutdown, "
              f"finalize) {upgrade_cmd:.0f}s, `cairn rollback --reboot` {rollback_cmd:.0f}s")
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"  artifacts: {workdir} (console.log, qemu.log, http.log, repo, disk.qcow2)")
        if not ok:
            try:
                with open(os.path.join(workdir, "console.log"), "rb") as f:
                    tail = f.read()[-3000:].decode("utf-8", "replace")
                print("--- end of console.log ---\n" + tail)
            except OSError:
                pass
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
