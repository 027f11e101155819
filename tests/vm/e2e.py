#!/usr/bin/env python3
"""Cairn's VM end-to-end test: compose, build an image, boot it, upgrade, roll back — for real.

    sudo tests/vm/e2e.py [--workdir DIR] [--keep] [--v1-from REPO] [--no-build]

Phases (each timed; the summary prints them):
  compose-v1  cairn-compose tree manifests/container-host.toml into a temp repo
  image       cairn-compose image tests/vm/recipe.toml (qcow2; remote = this test's HTTP server)
  image-url   the same recipe on Ignition's metal platform, `--ignition-url` on this test's
              second HTTP server (host delta's disk)
  ign-fail    delta's first boot fetches a config Ignition cannot parse: the boot stops in the
              initramfs, the console shows the failed fetch stage's journal (cairn-ignition-failed)
  host-url    the same disk again, now with delta's own config at the URL but the server down:
              the console says what Ignition waits for (cairn-ignition-waiting: the URL, the
              connection error); the server comes back and first boot goes on, with DHCP in
              the initramfs; hostname delta, core's SSH key (ssh works), container cache
              running; the server saw both fetches
  image-drive the same recipe on Ignition's openstack platform (host epsilon's disk; its first
              boot brings the network up) and a config drive (vfat, label config-2) with
              epsilon's config
  host-drive  epsilon boots with the config drive attached: hostname, ssh, container queue;
              Ignition's fetch stage read config-2
  host-b      a qcow2 overlay of the first image with beta's own Ignition config (fw_cfg):
              hostname beta, core's SSH key, container db running
  boot-v1     the qcow2 grown by 1 GiB first; qemu -accel tcg with host alpha's Ignition
              config; wait for the root shell on ttyS0 and for systemd to settle
  check-v1    Ignition provisioned alpha (hostname, ssh as core, a file under /var, container
              web declared and running); `cairn status --json` says v1 is booted; cairn-growfs
              grew the root filesystem into the extra GiB; podman runs a container; /etc is
              edited
  compose-v2  tests/vm/v2.toml (container-host + htop + a marker file) into the same repo: apt
              adds htop to v1's kept install (an incremental install; checked); v2's initramfs
              is v1's object (dracut made it again, reproducibly)
  upgrade     `cairn upgrade --reboot` from http://10.0.2.2:PORT (the host's 127.0.0.1): it
              fetches the delta bundle v1 -> v2 the compose wrote beside the repository
  check-v2    v2 booted, v1 listed as rollback, v2's package and file are there, the /etc edit
              made on v1 was carried into v2 (three-way merge), so was what Ignition wrote;
              Ignition did not run
  rollback    edit /etc, write /var, `cairn rollback --reboot`
  check-rb    v1 booted again, the /var write survived, the /etc edit made on v2 did not reach v1

The guest is driven over its serial console (harness.py). The console log is always written to
WORKDIR/console.log; on failure the work directory is kept and its path printed.

Needs root, qemu-system-x86_64, qemu-img, grub-pc-bin, ostree, python3 (no modules beyond
the standard library). Budget: under 25 minutes on 2 cores without KVM.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    BOOTING, COMPOSE, REF, ROOT, Guest, Phases, TestFailure, booted, capture, compose_v1,
    free_port, head_version, keep_or_clean, log, make_config_drive, run, serve, status, stop,
    versions, wait_booted,
)
from provision import check_host, container_running, ssh_key, write_config  # noqa: E402

V2_MANIFEST = os.path.join(ROOT, "tests", "vm", "v2.toml")
RECIPE = os.path.join(ROOT, "tests", "vm", "recipe.toml")
GROW_GIB = 1  # the qcow2 grows by this much before its first boot


def recipe_on(platform, workdir):
    """The test recipe with Ignition's `platform` instead of qemu, written into `workdir`."""
    with open(RECIPE) as f:
        text = f.read()
    qemu_platform = 'ignition-platform = "qemu"'
    if qemu_platform not in text:
        raise TestFailure(f"{RECIPE} no longer says {qemu_platform}")
    path = os.path.join(workdir, "recipe.toml")
    with open(path, "w") as f:
        f.write(text.replace(qemu_platform, f'ignition-platform = "{platform}"'))
    return path


def initramfs_object(repo, rev):
    """The checksum of the initramfs file object in `rev`."""
    out = capture(["ostree", "ls", f"--repo={repo}", "-R", "-C", rev, "/usr/lib/modules"], 60)
    for line in out.splitlines():
        if line.endswith("/initramfs.img"):
            return line.split()[4]
    raise TestFailure(f"no /usr/lib/modules/*/initramfs.img in {rev}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", help="where the repo, image and logs go (default: a new dir under /var/tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory after success")
    ap.add_argument("--v1-from", metavar="REPO",
                    help="take v1 from REPO's ref head instead of composing it (faster, for development)")
    ap.add_argument("--no-build", action="store_true",
                    help="use the binaries in target/release as they are (after `cargo test --release`)")
    ap.add_argument("--cache-dir", default=os.path.join(ROOT, "build", "cache"),
                    help="the composer's package cache (default: build/cache)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("e2e.py needs root (loop devices, mounts, mmdebstrap)")

    workdir = args.workdir or tempfile.mkdtemp(prefix="cairn-e2e-", dir="/var/tmp")
    os.makedirs(workdir, exist_ok=True)
    repo = os.path.join(workdir, "repo")
    disk = os.path.join(workdir, "disk.qcow2")
    guest = None
    host = None
    http = config_http = None
    phase = Phases()
    ok = False

    try:
        if not args.no_build:
            with phase("build"):
                run(["cargo", "build", "--release", "--quiet"], 900, cwd=ROOT)

        with phase("compose-v1"):
            v1 = compose_v1(repo, args.v1_from, args.cache_dir, 1200)
            log(f"v1 = {v1}")

        http, url = serve(repo, workdir)

        with phase("image"):
            run([COMPOSE, "image", RECIPE, "--repo", repo, "--ref", REF, "-o", disk,
                 "--remote-url", url], 600)
            log(f"image: {os.path.getsize(disk) / 2**20:.0f} MiB qcow2")

        # Two hosts from one image, each with its own Ignition config through fw_cfg (alpha,
        # beta), and a third (delta) on its own disk that fetches its config from a URL.
        key_a, pub_a = ssh_key(workdir, "alpha")
        key_b, pub_b = ssh_key(workdir, "beta")
        key_d, pub_d = ssh_key(workdir, "delta")
        key_e, pub_e = ssh_key(workdir, "epsilon")
        config_a = os.path.join(workdir, "alpha.ign")
        config_b = os.path.join(workdir, "beta.ign")
        config_d = os.path.join(workdir, "delta.ign")
        config_e = os.path.join(workdir, "epsilon.ign")
        write_config(config_a, "alpha", pub_a, "web")
        write_config(config_b, "beta", pub_b, "db")
        write_config(config_d, "delta", pub_d, "cache")
        write_config(config_e, "epsilon", pub_e, "queue")
        port_a, port_b, port_d, port_e = free_port(), free_port(), free_port(), free_port()
        # Disks are often larger than the image: cairn-growfs must grow root into the rest.
        run(["qemu-img", "resize", "-q", disk, f"+{GROW_GIB}G"], 60)

        dir_b = os.path.join(workdir, "beta")
        os.makedirs(dir_b, exist_ok=True)
        disk_b = os.path.join(dir_b, "disk.qcow2")
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", disk, "-F", "qcow2", disk_b], 60)

        # Delta's config server: a second HTTP server, its own log.
        served = os.path.join(workdir, "served")
        os.makedirs(served, exist_ok=True)
        config_http, config_base = serve(served, workdir, "config-http.log")
        delta_url = config_base + "delta.ign"
        dir_d = os.path.join(workdir, "delta")
        os.makedirs(dir_d, exist_ok=True)
        disk_d = os.path.join(dir_d, "disk.qcow2")

        with phase("image-url"):
            # The test recipe on Ignition's metal platform, the one that reads
            # ignition.config.url.
            recipe_d = recipe_on("metal", dir_d)
            run([COMPOSE, "image", recipe_d, "--repo", repo, "--ref", REF, "-o", disk_d,
                 "--remote-url", url, "--ignition-url", delta_url], 600)

        with phase("ign-fail"):
            # Delta's first boot fetches a config Ignition cannot parse: the boot stops in the
            # initramfs and the console says why; nothing of the host is provisioned.
            with open(os.path.join(served, "delta.ign"), "w") as f:
                f.write('{"ignition": {"version": "3.3.0"}, "passwd": ')
            dir_f = os.path.join(dir_d, "broken")
            os.makedirs(dir_f, exist_ok=True)
            host = Guest(disk_d, dir_f)
            grub = host.wait_for(BOOTING, 120, 0, "GRUB")
            told = host.wait_for(r"=== Ignition failed: this host is not provisioned ===", 420,
                                 grub.end(), "the console to say Ignition failed")
            done = host.wait_for(r"=== Fix the Ignition config", 120, told.end(),
                                 "the end of Ignition's failure report")
            with host.cond:
                report = host.buf[told.end():done.start()].replace("\r", "")
            # The config needs the network, so the online fetch stage is the one that fails,
            # after it fetched the URL.
            header = "--- ignition-fetch.service ---"
            journal = report.split(header, 1)[-1]
            if header not in report or delta_url not in journal \
                    or not re.search(r"(?i)critical|error|fail", journal):
                raise TestFailure(f"the console does not show why Ignition failed:\n{report}")
            log("Ignition's failure on the console:\n" + report.strip()[-1500:])
            host.wait_shell(180, done.end())
            code, _ = host.sh("test -e /etc/initrd-release", 30, check=False)
            if code != 0:
                raise TestFailure("the boot went past the initramfs after Ignition failed")
            host.stop()
            host = None

        # The same disk, with delta's real config at the URL: first boot runs again (its flag
        # stayed), with the network up in the initramfs. The config server is down when the
        # boot starts: Ignition retries, the console says what it waits for, and once the
        # server is back the boot goes on.
        with phase("host-url"):
            shutil.copyfile(config_d, os.path.join(served, "delta.ign"))
            stop(None, config_http)
            config_http = None
            host = Guest(disk_d, dir_d, ssh_port=port_d)
            grub = host.wait_for(BOOTING, 120, 0, "GRUB")
            told = host.wait_for(r"=== Ignition is still waiting after \d+ s", 420, grub.end(),
                                 "the console to say Ignition waits for its config")
            done = host.wait_for(r"=== Ignition retries until", 60, told.end(),
                                 "the end of the report on what Ignition waits for")
            with host.cond:
                report = host.buf[told.end():done.start()].replace("\r", "")
            if "--- ignition-fetch.service ---" not in report or delta_url not in report \
                    or not re.search(r"(?i)refused|error|timeout", report):
                raise TestFailure(f"the console does not show what Ignition waits for:\n{report}")
            log("Ignition waiting, on the console:\n" + report.strip()[-1500:])
            config_http, _ = serve(served, workdir, "config-http.log",
                                   urllib.parse.urlsplit(config_base).port)
            wait_booted(host, done.end(), time.monotonic())
            check_host(host, "delta", key_d, port_d, first_boot=True, platform="metal",
                       url=delta_url)
            container_running(host, "cache", 1)
            with open(os.path.join(workdir, "config-http.log")) as f:
                fetched = f.read().count('"GET /delta.ign HTTP/1.1" 200')
            if fetched != 2:
                raise TestFailure(f"the config server saw {fetched} fetches of delta.ign, "
                                  "expected 2 (the broken config, then the good one)")
            host.stop()
            host = None

        # A fourth host, epsilon, on Ignition's openstack platform: its config is on a config
        # drive (a vfat disk labelled config-2); the first boot also brings the network up
        # for the platform's metadata service, which does not exist here.
        dir_e = os.path.join(workdir, "epsilon")
        os.makedirs(dir_e, exist_ok=True)
        disk_e = os.path.join(dir_e, "disk.qcow2")
        drive_e = os.path.join(dir_e, "config-2.img")
        with phase("image-drive"):
            out = subprocess.run([COMPOSE, "image", recipe_on("openstack", dir_e), "--repo", repo,
                                  "--ref", REF, "-o", disk_e, "--remote-url", url, "--json"],
                                 check=True, timeout=600, stdout=subprocess.PIPE, text=True).stdout
            kargs = json.loads(out)["ignition_first_boot_kargs"]
            if kargs != "ip=dhcp rd.neednet=1":
                raise TestFailure(f"the openstack image's first boot has kargs {kargs!r}")
            make_config_drive(drive_e, config_e)

        with phase("host-drive"):
            host = Guest(disk_e, dir_e, ssh_port=port_e, config_drive=drive_e)
            grub = host.wait_for(BOOTING, 120, 0, "GRUB")
            wait_booted(host, grub.end(), time.monotonic())
            check_host(host, "epsilon", key_e, port_e, first_boot=True, platform="openstack")
            _, fetch = host.sh("journalctl -b -o cat -u ignition-fetch.service --no-pager", 60,
                               check=False)
            if "config-2" not in fetch:
                raise TestFailure(f"Ignition's fetch stage did not read the config drive:\n{fetch}")
            container_running(host, "queue", 1)
            host.stop()
            host = None

        with phase("host-b"):
            host = Guest(disk_b, dir_b, ignition=config_b, ssh_port=port_b)
            grub = host.wait_for(BOOTING, 120, 0, "GRUB")
            wait_booted(host, grub.end(), time.monotonic())
            check_host(host, "beta", key_b, port_b, first_boot=True)
            container_running(host, "db", 1)
            # Later boots (Ignition does not run again, the container starts again) are
            # checked on alpha, through its upgrade and rollback.
            host.stop()
            host = None

        with phase("boot-v1"):
            guest = Guest(disk, workdir, ignition=config_a, ssh_port=port_a)
            grub = guest.wait_for(BOOTING, 120, 0, "GRUB")
            boot_v1 = wait_booted(guest, grub.end(), time.monotonic())

        with phase("check-v1"):
            check_host(guest, "alpha", key_a, port_a, first_boot=True)
            container_running(guest, "web", 1)
            st = status(guest)
            b = booted(st)
            if b["version"] != v1 or b["refspec"] != f"cairn:{REF}":
                raise TestFailure(f"expected {v1} (cairn:{REF}) booted: {versions(st)}")
            guest.sh("findmnt /boot >/dev/null && test -e /boot/loader/grub.cfg", 30)
            guest.sh("systemctl is-active cairn-growfs.service", 30)
            _, out = guest.sh("findmnt -bno SIZE /sysroot", 30)
            root_size = int(out.split()[-1])
            # Built as 4 GiB in all (513 MiB of it before root), root cannot exceed 3.5 GiB
            # unless it grew into the extra GiB (then about 4.4 GiB).
            if root_size <= 4 * 2**30:
                _, j = guest.sh("journalctl -b -u cairn-growfs --no-pager -o cat", 60, check=False)
                raise TestFailure(f"the root filesystem did not grow into the resized disk: "
                                  f"{root_size} bytes; cairn-growfs said:\n{j}")
            log(f"root filesystem grown to {root_size / 2**30:.2f} GiB")
            # A local /etc change: the upgrade must carry it into v2 (three-way merge).
            guest.sh("echo edited-on-v1 > /etc/cairn-e2e-v1.conf && sync", 30)
            # A container from the local image Ignition's unit imported.
            _, out = guest.sh("podman run --rm --network none localhost/e2e-mini "
                              "/bin/bash -c 'echo hello-from-container-$((40+2))'", 300)
            if "hello-from-container-42" not in out:
                raise TestFailure(f"podman run printed: {out}")
            guest.sh("cairn container check", 30)

        with phase("compose-v2"):
            v1_initramfs = initramfs_object(repo, REF)
            cmd = [COMPOSE, "tree", V2_MANIFEST, "--repo", repo, "--cache-dir", args.cache_dir, "--json"]
            log("$ " + " ".join(cmd))
            composed = json.loads(subprocess.run(cmd, check=True, timeout=1200,
                                                 stdout=subprocess.PIPE, text=True).stdout)
            log(f"v2 install: {composed['install']}")
            # v2 is v1's packages plus htop: it must be v1's kept install with apt's changes, so
            # the boot below also proves that an incrementally installed tree works.
            if not args.v1_from and composed["install"]["mode"] != "incremental":
                raise TestFailure(f"v2 was installed from scratch: {composed['install']}")
            v2 = head_version(repo)
            if v2 == v1:
                raise TestFailure("composing v2 did not make a new version")
            log(f"v2 = {v2}")
            # htop puts nothing into the initramfs, so v2's (made again for the manifest's
            # dracut files) must be v1's, byte for byte: the update does not carry 60 MB.
            v2_initramfs = initramfs_object(repo, REF)
            if not args.v1_from and v2_initramfs != v1_initramfs:
                raise TestFailure(f"v2's initramfs differs from v1's ({v2_initramfs[:12]} vs "
                                  f"{v1_initramfs[:12]}): dracut's output is not reproducible")

        with phase("upgrade"):
            guest.sh("/usr/lib/systemd/systemd-networkd-wait-online --timeout=120", 150)
            t = time.monotonic()
            grub = guest.reboot_with("cairn upgrade --reboot", 900)
            upgrade_cmd = time.monotonic() - t
            boot_v2 = wait_booted(guest, grub.end(), time.monotonic())
            # The compose wrote a delta bundle from v1 beside the repository: the upgrade
            # fetched it instead of pulling objects.
            with open(os.path.join(workdir, "http.log")) as f:
                served = f.read()
            bundles = re.findall(r'"GET /cairn-deltas/(\S+) HTTP/1.1" 200', served)
            if len(bundles) != 1:
                raise TestFailure(f"the upgrade fetched {len(bundles)} delta bundles, expected "
                                  "the one from v1 (http.log)")
            log(f"upgrade fetched the delta bundle {bundles[0]}")

        with phase("check-v2"):
            st = status(guest)
            b = booted(st)
            if b["version"] != v2:
                raise TestFailure(f"expected {v2} booted: {versions(st)}")
            if not any(d["version"] == v1 and d["rollback"] for d in st["deployments"]):
                raise TestFailure(f"expected {v1} as the rollback deployment: {versions(st)}")
            guest.sh("test \"$(cat /usr/lib/cairn-e2e/release)\" = v2 && htop --version", 30)
            guest.sh("dpkg -s htop >/dev/null", 30)
            # The deployment the host wrote shares its files with the repository (hardlinks),
            # as libostree means it to; a copy costs a whole tree of disk per update.
            _, links = guest.sh("stat -c %h /usr/bin/bash", 30)
            if int(links.strip().splitlines()[-1]) < 2:
                raise TestFailure("v2's files are copies, not hardlinks of the repository's "
                                  f"objects (/usr/bin/bash has {links.strip()} link)")
            guest.sh("test \"$(cat /etc/cairn-e2e-v1.conf)\" = edited-on-v1", 30)
            check_host(guest, "alpha", key_a, port_a, first_boot=False)
            # The declared container came up with the new release, and the health checks
            # after the boot covered it.
            container_running(guest, "web", 2)
            _, out = guest.sh("journalctl -b -u cairn-health --no-pager -o cat", 60)
            if "builtin:containers" not in out:
                raise TestFailure(f"cairn-health did not check the declared container:\n{out}")
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
            # /etc belongs to each deployment: v1's /etc never saw the edit made on v2, and
            # still has its own.
            guest.sh("test ! -e /etc/cairn-e2e.conf", 30)
            guest.sh("test \"$(cat /etc/cairn-e2e-v1.conf)\" = edited-on-v1", 30)
            check_host(guest, "alpha", key_a, port_a, first_boot=False)
            container_running(guest, "web", 3)
            # A required container that is not running fails the health checks.
            guest.sh("systemctl stop cairn-container@web.service", 120)
            code, out = guest.sh("cairn health run --no-reboot --json 2>/tmp/health.err", 300,
                                 check=False)
            # The console may carry other lines (kernel messages): the report is the object.
            out = out[out.find("{"):out.rfind("}") + 1]
            checks = {c["name"]: c for c in json.loads(out)["report"]["checks"]}
            web = checks.get("builtin:containers", {})
            if code == 0 or web.get("ok") is not False or "web" not in web.get("outcome", ""):
                raise TestFailure(f"health passed with the declared container stopped: {out}")
            log(f"health with the container stopped: {web['outcome']}")
            log("deployments: " + ", ".join(f"{v}{' (booted)' if bt else ''}{' (rollback)' if rb else ''}"
                                           for v, bt, rb in versions(st)))
        ok = True
    except TestFailure as e:
        log(f"FAILED: {e}")
    except Exception as e:  # noqa: BLE001 — report anything with the artifacts
        log(f"FAILED: {type(e).__name__}: {e}")
    finally:
        if host:
            host.stop()
        stop(guest, http)
        stop(None, config_http)

    phase.summary("Cairn VM end-to-end", ok)
    if ok:
        print(f"  boot to a settled multi-user system (from GRUB): v1 {boot_v1:.0f}s, "
              f"v2 {boot_v2:.0f}s, after rollback {boot_rb:.0f}s")
        print(f"  until GRUB booted the next entry: `cairn upgrade --reboot` (pull, stage, shutdown, "
              f"finalize) {upgrade_cmd:.0f}s, `cairn rollback --reboot` {rollback_cmd:.0f}s")
    keep_or_clean(workdir, ok, args.keep)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
