"""What Cairn's VM tests share: the guest on a serial console, host commands, phases, the repo.

The guest is driven over its serial console (a unix socket): an autologin root shell from the
recipe's getty drop-in. Every command is wrapped in unique markers (`__S_n__0` before,
`__E_n__<exit code>` after; the shell's echo of the command line shows `$((0))` and `$?`
unexpanded, so it never matches). Every wait has a timeout. The console log is always written
to WORKDIR/console.log.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REF = "cairn/bookworm/x86_64/stable"
V1_MANIFEST = os.path.join(ROOT, "manifests", "container-host.toml")
COMPOSE = os.path.join(ROOT, "target", "release", "cairn-compose")
BOOTING = r"Booting `"
# Terminal control sequences (GRUB's menu moves the cursor even in the middle of a word:
# "Boot\x1b[01;06H\x1b[01;07Hing `…'"); waits match the text with them taken out.
CONTROL = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[()][A-Za-z0-9]|[A-Za-z=>])")
# A control sequence cut off at the end of a read: kept until the next read completes it.
CUT_CONTROL = re.compile(r"\x1b(?:\[[0-9;?]*|[()])?$")


# UEFI firmware for `Guest(firmware="ovmf-secure-boot")` (package ovmf): the Secure Boot build
# (it needs SMM, hence q35,smm=on and a secure pflash) with the variable store that has
# Microsoft's keys enrolled and Secure Boot enabled (see /usr/share/doc/ovmf/README.Debian).
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
# The EFI global variable UEFI firmware sets to 1 when Secure Boot is enforced.
# EFI_GLOBAL_VARIABLE is 8be4df61-93ca-11d2-aa0d-00e098032b8c.
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


class TestFailure(Exception):
    pass


def log(msg):
    print(f"[vm {time.strftime('%H:%M:%S')}] {msg}", flush=True)


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

    def __init__(self, disk, workdir, firmware="bios", ignition=None, ssh_port=None,
                 config_drive=None):
        """`firmware`: "bios" (SeaBIOS, qemu's default machine) or "ovmf-secure-boot" (OVMF
        with Secure Boot enforced on q35; a writable copy of the variable store in `workdir`,
        kept across the guest's reboots). `ignition`: an Ignition config file handed to the
        guest through fw_cfg (where Ignition's qemu platform reads it, at every boot of this
        VM). `ssh_port`: the host's 127.0.0.1:PORT forwarded to the guest's port 22.
        `config_drive`: a raw disk image attached read-only as a second virtio disk (an
        OpenStack-style config drive, see `make_config_drive`)."""
        self.sock_path = os.path.join(workdir, "console.sock")
        self.monitor_path = os.path.join(workdir, "monitor.sock")
        self.monitor_log = os.path.join(workdir, "monitor.log")
        self.log = open(os.path.join(workdir, "console.log"), "ab")
        self.buf = ""  # the console text, without control sequences
        self.cut = ""  # the start of a control sequence split across reads
        self.cond = threading.Condition()
        self.n = 0
        self.eof = False
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", "2048", "-smp", "2", "-nographic",
            # qemu's human monitor, only read when a wait times out (`monitor_dump`).
            "-monitor", f"unix:{self.monitor_path},server=on,wait=off",
            "-chardev", f"socket,id=s0,path={self.sock_path},server=on,wait=on",
            "-serial", "chardev:s0",
        ]
        if firmware == "bios":
            cmd += [
                "-drive", f"file={disk},if=virtio,format=qcow2",
                "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
            ]
        elif firmware == "ovmf-secure-boot":
            vars_copy = os.path.join(workdir, "ovmf-vars.fd")
            shutil.copyfile(OVMF_VARS, vars_copy)
            cmd += [
                "-machine", "q35,smm=on",
                "-global", "driver=cfi.pflash01,property=secure,value=on",
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
                # The disk first (the variable store has no boot entries: OVMF boots the
                # removable path EFI/BOOT/BOOTX64.EFI); no network boot ROM.
                "-drive", f"file={disk},if=none,id=d0,format=qcow2",
                "-device", "virtio-blk-pci,drive=d0,bootindex=0",
                "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=",
            ]
        else:
            raise ValueError(f"unknown firmware {firmware!r}")
        if config_drive:
            cmd += ["-drive", f"file={config_drive},if=virtio,format=raw,readonly=on"]
        if ssh_port:
            i = cmd.index("user,id=n0")
            cmd[i] += f",hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
        if ignition:
            cmd += ["-fw_cfg", f"name=opt/com.coreos/config,file={ignition}"]
        # A reset of the guest (a reboot, a kernel panic) makes qemu exit; `_power_cycle`
        # starts it again on the same disk and variable store: every reboot is a cold boot.
        # A warm reset of OVMF with SMM under TCG hangs now and then in the firmware before
        # GRUB (CI saw it: 15 minutes with both vCPUs in OVMF's code), which is qemu's and
        # OVMF's flake, not the host's; a power cycle is also what a real machine may get.
        cmd.append("-no-reboot")
        self.cmd = cmd
        self.stopping = False  # `stop` powers the guest off: its exit is not a reset
        self.power_cycles = 0
        self.qemu_log = open(os.path.join(workdir, "qemu.log"), "ab")
        self._launch()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _launch(self):
        """Starts qemu and connects to its serial socket (`self.proc`, `self.sock`)."""
        log("$ " + " ".join(self.cmd))
        self.launched_at = len(self.buf)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.qemu_log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.connect(self.sock_path)
                self.sock = sock
                return
            except OSError:
                sock.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise TestFailure("qemu did not open its serial socket (see qemu.log)")
                time.sleep(0.2)

    def _power_cycle(self):
        """The console closed: when qemu exited because the guest reset, starts it again and
        returns True. False when the guest is gone (powered off, `stop`, qemu failed)."""
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            return False
        with self.cond:
            # The kernel's last words tell a power-off from a restart.
            powered_off = "reboot: Power down" in self.buf[self.launched_at:]
        if self.stopping or code != 0 or powered_off:
            return False
        self.sock.close()
        self.power_cycles += 1
        log(f"the guest reset; qemu starts again (power cycle {self.power_cycles})")
        try:
            self._launch()
        except TestFailure as e:
            log(str(e))
            return False
        return True

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data and self._power_cycle():
                continue
            with self.cond:
                if not data:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.log.write(data)
                self.log.flush()
                text = self.cut + data.decode("utf-8", "replace")
                cut = CUT_CONTROL.search(text)
                self.cut = text[cut.start():] if cut else ""
                self.buf += CONTROL.sub("", text[:cut.start()] if cut else text)
                self.cond.notify_all()

    def mark(self):
        """A position in the console output; waits only look after it."""
        with self.cond:
            return len(self.buf)

    def wait_for(self, pattern, timeout, start, what=None, dump=True):
        """Waits until `pattern` (a regex) appears after `start`; returns the match. A timeout
        writes the vCPUs' state to monitor.log first (unless `dump` is false)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                m = rx.search(self.buf, start)
                if m:
                    return m
                if self.eof:
                    raise TestFailure(f"the VM stopped while waiting for {what or pattern}")
                left = deadline - time.monotonic()
                if left <= 0:
                    if not dump:
                        raise TestFailure(f"timed out after {timeout}s waiting for {what or pattern}")
                    self.monitor_dump(f"timed out after {timeout}s waiting for {what or pattern}")
                    raise TestFailure(f"timed out after {timeout}s waiting for {what or pattern} "
                                      "(vCPU state in monitor.log)")
                self.cond.wait(min(left, 1.0))

    def monitor_dump(self, why):
        """Appends where the vCPUs are (qemu's `info status`, `info cpus`, `info registers -a`,
        twice, 5 s apart: a guest that hangs shows the same RIPs) to WORKDIR/monitor.log."""
        try:
            with socket.socket(socket.AF_UNIX) as m, open(self.monitor_log, "ab") as out:
                m.settimeout(5)
                m.connect(self.monitor_path)
                out.write(f"=== {time.strftime('%H:%M:%S')} {why}\n".encode())
                for i in range(2):
                    if i:
                        time.sleep(5)
                    m.sendall(b"info status\ninfo cpus\ninfo registers -a\n")
                    end = time.monotonic() + 5
                    while time.monotonic() < end:
                        try:
                            data = m.recv(65536)
                        except socket.timeout:
                            break
                        if not data:
                            break
                        out.write(data)
        except OSError as e:
            log(f"qemu monitor: {e}")

    def send(self, text):
        """Types `text` on the console. Lost while qemu starts again after a reset (waits
        time out or see the VM gone)."""
        try:
            self.sock.sendall(text.encode())
        except OSError:
            pass

    def wait_shell(self, timeout, start):
        """Waits for the autologin shell to answer (pokes it every 5 s until it does)."""
        deadline = time.monotonic() + timeout
        self.n += 1
        token = f"__READY_{self.n}__"
        # The echo of the command shows `$((6*7))`; only the executed command prints 42.
        while True:
            self.send(f"\recho {token}$((6*7))\r")
            try:
                self.wait_for(re.escape(token) + "42", 5, start, "the shell", dump=False)
                break
            except TestFailure:
                if time.monotonic() > deadline or self.eof:
                    if not self.eof:
                        self.monitor_dump(f"no shell on the serial console after {timeout}s")
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
        self.stopping = True
        if self.proc.poll() is None:
            try:
                self.send("\rsystemctl poweroff\r")
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        self.sock.close()
        self.log.close()


def make_config_drive(path, config):
    """Writes an OpenStack-style config drive to `path`: a small vfat filesystem labelled
    config-2 holding `config` (an Ignition config file) as openstack/latest/user_data, where
    Ignition's openstack platform looks."""
    # mtools writes into the image without mounting it (the build machine's kernel may not
    # have vfat), as the image builder fills an ESP.
    run(["mkfs.vfat", "-n", "config-2", "-C", path, "4096"], 60, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    run(["mmd", "-i", path, "::openstack", "::openstack/latest"], 60)
    run(["mcopy", "-i", path, config, "::openstack/latest/user_data"], 60)


def check_uefi_secure_boot(guest):
    """Fails unless the guest booted through UEFI with Secure Boot enforced. Returns the
    kernel's lockdown state for the log (Debian's kernel locks itself down under Secure Boot)."""
    guest.sh("test -d /sys/firmware/efi", 30)
    # efivarfs is normally mounted by systemd; mount it if it is not.
    guest.sh("mountpoint -q /sys/firmware/efi/efivars || { modprobe efivarfs && "
             "{ mountpoint -q /sys/firmware/efi/efivars || "
             "mount -t efivarfs efivarfs /sys/firmware/efi/efivars; }; }", 60)
    _, out = guest.sh(f"od -An -tu1 {SECURE_BOOT_VAR}", 30)
    # efivarfs: 4 bytes of attributes, then the value.
    if out.split()[-1:] != ["1"]:
        raise TestFailure(f"Secure Boot is not enforced: SecureBoot variable is {out.strip()!r}")
    _, lockdown = guest.sh("cat /sys/kernel/security/lockdown 2>/dev/null || echo unknown", 30,
                           check=False)
    return lockdown.strip()


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
    # An emergency shell in the initramfs (a failed Ignition stage, say) answers too.
    code, _ = guest.sh("test -e /etc/initrd-release", 30, check=False)
    if code == 0:
        _, out = guest.sh("systemctl --failed --no-legend --plain | while read -r unit rest; do "
                          "echo \"== $unit\"; journalctl -b -u \"$unit\" --no-pager -o cat -n 40; "
                          "done", 120, check=False)
        raise TestFailure(f"the boot stopped in the initramfs:\n{out}")
    guest.sh("systemctl is-system-running --wait || true", 300)
    took = time.monotonic() - phase_start
    _, out = guest.sh("systemd-analyze time 2>/dev/null | head -n 2 || true", 60, check=False)
    log("guest: " + " ".join(out.split()))
    return took


class Phases:
    """Times the named phases of a test run and prints them in the summary."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.times = []

    def __call__(self, name):
        phases = self

        class Phase:
            def __enter__(self):
                self.t = time.monotonic()
                log(f"== {name}")

            def __exit__(self, *exc):
                d = time.monotonic() - self.t
                phases.times.append((name, d, exc[0] is None))
                log(f"== {name}: {d:.1f}s" + ("" if exc[0] is None else " (FAILED)"))
        return Phase()

    def summary(self, title, ok):
        print()
        print(f"{title}: " + ("PASSED" if ok else "FAILED"))
        for name, d, good in self.times:
            print(f"  {name:<13} {d:7.1f}s{'' if good else '  FAILED'}")
        print(f"  {'total':<13} {time.monotonic() - self.t0:7.1f}s")


def compose_v1(repo, v1_from, cache_dir, timeout):
    """v1 on REF in a new archive repo: composed from the container-host manifest, or taken
    from another repo's ref head (faster, for development). Returns its version."""
    if v1_from:
        run(["ostree", "init", f"--repo={repo}", "--mode=archive"], 60)
        run(["ostree", "pull-local", f"--repo={repo}", v1_from, REF], timeout)
        run(["ostree", "summary", "-u", f"--repo={repo}"], 60)
    else:
        run([COMPOSE, "tree", V1_MANIFEST, "--repo", repo, "--cache-dir", cache_dir], timeout)
    return head_version(repo)


def serve(repo, workdir, log_name="http.log", port=None):
    """Serves `repo` (a directory) over HTTP on the host's 127.0.0.1 (the guest's 10.0.2.2),
    on `port` or a free one, logging requests to WORKDIR/`log_name`. Returns the server
    process and the URL the guest uses."""
    port = port or free_port()
    http_log = open(os.path.join(workdir, log_name), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                             "--directory", repo, str(port)],
                            stdin=subprocess.DEVNULL, stdout=http_log, stderr=subprocess.STDOUT)
    return proc, f"http://10.0.2.2:{port}/"


def stop(guest, http):
    if guest:
        guest.stop()
    if http:
        http.terminate()
        http.wait(10)


def keep_or_clean(workdir, ok, keep):
    """Removes the work directory after a success; otherwise says where it is and shows the
    end of the console log."""
    if ok and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    print(f"  artifacts: {workdir} (console.log, qemu.log, http.log, repo, disk.qcow2)")
    if not ok:
        try:
            with open(os.path.join(workdir, "console.log"), "rb") as f:
                print("--- end of console.log ---\n" + f.read()[-3000:].decode("utf-8", "replace"))
        except OSError:
            pass
