"""First boot with Ignition in the VM tests: configs, SSH keys, and what a provisioned host shows.

A config (spec 3.3.0) gives a host its hostname, a user `core` with an SSH key, a file under
/var, and a declared container (/etc/cairn/containers/NAME.toml) whose local image a unit the
config also writes imports first (a drop-in on cairn-container@NAME orders it). The guest gets
the config through qemu's fw_cfg (Guest(ignition=…)), where Ignition's qemu platform reads it.
"""

import json
import os
import subprocess
import time
import urllib.parse

from harness import TestFailure, capture, log

# The local image the declared containers run: bash, sleep and their libraries from the host's
# own tree, imported once (there is no registry in the test).
MINI_IMAGE_SCRIPT = """#!/bin/sh
set -eu
podman image exists localhost/e2e-mini && exit 0
libs=$( (ldd /bin/bash; ldd /bin/sleep) | grep -o '/[^ ]*' | sort -u | sed 's|^/||')
tar -chf /run/e2e-mini.tar -C / bin/bash bin/sleep $libs
podman import -q /run/e2e-mini.tar localhost/e2e-mini >/dev/null
rm -f /run/e2e-mini.tar
"""


def ssh_key(workdir, name):
    """A new ed25519 key pair; returns (private key path, public key text)."""
    path = os.path.join(workdir, f"{name}.key")
    for p in (path, path + ".pub"):
        if os.path.exists(p):
            os.remove(p)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path],
                   check=True, timeout=60)
    with open(path + ".pub") as f:
        return path, f.read().strip()


def data_url(text):
    return "data:," + urllib.parse.quote(text)


def write_config(path, hostname, pubkey, container):
    """Writes the Ignition config of one host to `path`."""
    spec = "\n".join([
        'image = "localhost/e2e-mini"',
        'pull = "never"',
        f'volumes = ["/var/lib/e2e-{container}:/data"]',
        'command = ["/bin/bash", "-c", "echo started >> /data/starts; '
        'trap exit TERM; sleep infinity & wait"]',
        "",
    ])
    config = {
        "ignition": {"version": "3.3.0"},
        "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": [pubkey]}]},
        "storage": {"files": [
            {"path": "/etc/hostname", "mode": 0o644, "overwrite": True,
             "contents": {"source": data_url(hostname + "\n")}},
            {"path": f"/etc/cairn/containers/{container}.toml", "mode": 0o644,
             "contents": {"source": data_url(spec)}},
            {"path": "/etc/e2e/mini-image", "mode": 0o755,
             "contents": {"source": data_url(MINI_IMAGE_SCRIPT)}},
            # Under /var: it must land in the stateroot's /var (cairn-ignition-setup.service).
            {"path": "/var/lib/e2e-ignition/host", "mode": 0o644,
             "contents": {"source": data_url(hostname + "\n")}},
        ]},
        "systemd": {"units": [
            {"name": "e2e-mini-image.service",
             "contents": "[Unit]\nDescription=e2e: the local image of the declared containers\n"
                         "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
                         "ExecStart=/etc/e2e/mini-image\n"},
            {"name": f"cairn-container@{container}.service",
             "dropins": [{"name": "e2e-image.conf",
                          "contents": "[Unit]\nRequires=e2e-mini-image.service\n"
                                      "After=e2e-mini-image.service\n"}]},
        ]},
    }
    with open(path, "w") as f:
        json.dump(config, f, indent=1)
    # What the image builder would check, here too: a typo in this file is the test's bug.
    capture(["ignition-validate", path], 60)


def ssh(key, port, command, timeout=180):
    """Runs `command` on the guest as core over SSH (the key Ignition installed); retries
    while sshd comes up. Returns its output."""
    deadline = time.monotonic() + timeout
    while True:
        p = subprocess.run(
            ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "core@127.0.0.1", command],
            capture_output=True, text=True, timeout=120)
        if p.returncode == 0:
            return p.stdout
        if time.monotonic() > deadline:
            raise TestFailure(f"ssh core@guest with the key from Ignition failed "
                              f"({p.returncode}): {p.stderr.strip()}")
        time.sleep(5)


def check_host(guest, hostname, key, ssh_port, first_boot, platform="qemu", url=None):
    """The host is the one its config described; on `first_boot` Ignition ran in this boot
    (on `platform`; with `url`, the first boot's kernel arguments named it), otherwise it did
    not run (and the flag that would make it is gone either way)."""
    _, out = guest.sh("hostname", 30)
    if out.strip() != hostname:
        raise TestFailure(f"expected hostname {hostname}, got {out.strip()!r}")
    _, cmdline = guest.sh("cat /proc/cmdline", 30)
    _, files = guest.sh("journalctl -b -q -o cat -u ignition-files.service | tail -n 20", 60,
                        check=False)
    if first_boot:
        if "ignition.firstboot" not in cmdline or f"ignition.platform.id={platform}" not in cmdline:
            raise TestFailure(f"the first boot had no ignition.firstboot on {platform}: "
                              f"{cmdline.strip()}")
        if url and f"ignition.config.url={url}" not in cmdline.split():
            raise TestFailure(f"the first boot's kernel arguments do not name {url}: "
                              f"{cmdline.strip()}")
        if "files" not in files.lower():
            raise TestFailure(f"Ignition's files stage left nothing in the journal: {files!r}")
    else:
        if "ignition.firstboot" in cmdline:
            raise TestFailure(f"a later boot still had ignition.firstboot: {cmdline.strip()}")
        if files.strip():
            raise TestFailure(f"Ignition ran again on a later boot:\n{files}")
    # The flag goes once the first boot reached the real root (cairn-firstboot-complete).
    guest.sh("systemctl is-system-running --wait >/dev/null || true; "
             "test ! -e /boot/ignition.firstboot && test ! -e /boot/ignition", 120)
    guest.sh(f"test \"$(cat /var/lib/e2e-ignition/host)\" = {hostname}", 30)
    # Written for Ignition in the initramfs only: libostree would refresh an SELinux policy on
    # every deploy if the deployment had it.
    guest.sh("test ! -e /etc/selinux/config", 30)
    out = ssh(key, ssh_port, "hostname; id -un")
    if out.split() != [hostname, "core"]:
        raise TestFailure(f"ssh as core printed {out!r}, expected {hostname} and core")
    log(f"host {hostname}: provisioned by Ignition, ssh core@ works with its key"
        + (" (first boot)" if first_boot else " (Ignition did not run again)"))


def container_starts(guest, name):
    """Waits until the declared container `name` runs; returns how often it has been started
    in all (its volume /var/lib/e2e-NAME keeps the count across boots and deployments)."""
    deadline = time.monotonic() + 300
    while True:
        _, out = guest.sh("cairn container list --json", 60)
        found = [c for c in json.loads(out) if c["name"] == name]
        if found and found[0]["running"]:
            break
        if time.monotonic() > deadline:
            _, j = guest.sh(f"journalctl -b -u cairn-container@{name} -u e2e-mini-image "
                            "--no-pager -o cat | tail -20", 60, check=False)
            raise TestFailure(f"the declared container {name} is not running: {out}\n{j}")
        time.sleep(5)
    _, out = guest.sh(f"cat /var/lib/e2e-{name}/starts", 30)
    return out.split().count("started")


def container_running(guest, name, starts):
    """The declared container `name` runs, and has been started `starts` times in all."""
    got = container_starts(guest, name)
    if got != starts:
        raise TestFailure(f"expected {starts} start(s) of the declared container {name}, got {got}")
    log(f"declared container {name} running (start {starts})")
