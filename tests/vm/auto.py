#!/usr/bin/env python3
"""Cairn's automatic-update VM test: updates at boot, health rollback, GRUB boot counting.

    sudo tests/vm/auto.py [--workdir DIR] [--keep] [--v1-from REPO]

Nothing is typed into the guest between the first boot and the checks of scenarios (1)-(3): the
agent (cairn-agent.service at boot, cairn-agent.timer every minute in this image), the health
service and GRUB do everything. The test only publishes releases on the HTTP server and reads
the serial console.

The disk is hybrid (BIOS and UEFI; Debian's signed shim and GRUB on the ESP). By default it
boots through SeaBIOS; with `--firmware ovmf-secure-boot` (what CI runs) it boots under OVMF with
Microsoft's keys enrolled and Secure Boot enforced, and after each scenario the guest must show
it booted through UEFI with Secure Boot on, so the boot counting of (3) (load_env/save_env of
/boot/grub/grubenv) runs in Debian's signed GRUB under Secure Boot.

Phases (each timed; the summary prints them):
  compose-v1   cairn-compose tree manifests/container-host.toml into a temp repo
  image        cairn-compose image tests/vm/auto-recipe.toml (hybrid disk, secure-boot; strategy
               immediate, 1-min timer) with an Ignition config embedded (--ignition): the
               first boot must apply it (hostname gamma, declared container app) from the
               image, not from fw_cfg
  publish-v2   v1 + a marker file, committed onto the ref (ostree commit --tree=ref= --tree=dir=)
  auto-update  (1) boot v1; the agent stages v2 at boot and reboots; v2 comes up on its own,
               still gamma, Ignition ran on the first boot only (from the embedded config)
  publish-v3   v2 + a drop-in that makes every declared container's start fail
  health-rb    (2) the timer stages v3, reboots; the container app (declared by gamma's config)
               crash-loops, so the required builtin:containers check fails without waiting
               out its timeout; the host records v3, rolls back to v2 and reboots; app
               runs again; the agent then leaves v3 alone
  publish-v4   v2 with an initramfs the kernel cannot use (its root cannot be mounted; panic=10)
  boot-counter (3) the timer stages v4, reboots; v4 panics 3 times; GRUB's counter boots v2;
               the health service records v4 and makes v2 the default again
  publish-v5   v2 + a marker file; the test sets reboot_when_logged_in = false on the host
  manners      (4) the timer stages v5; the serial console's logged-in root holds the reboot
               back (agent.json, `cairn status`); with reboot_when_logged_in = true a shutdown
               inhibitor (systemd-inhibit) still holds it; once the inhibitor is gone and root
               logs out of the console, the agent reboots into v5

Scenarios (1)-(3) reboot with root logged in on the console (the recipe allows it), and (1)
checks the agent's wall warning reached that console before its reboot.

v2–v4 are derived from the composed v1 with `ostree commit` overlays (seconds each) instead of
full composes: what is tested is the host side.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as vm  # noqa: E402
from harness import BOOTING, COMPOSE, REF, ROOT, TestFailure, capture, log, run  # noqa: E402
from provision import container_running, container_starts, ssh_key, write_config  # noqa: E402

RECIPE = os.path.join(ROOT, "tests", "vm", "auto-recipe.toml")
AGENT_PERIOD = 60  # seconds: the timer in auto-recipe.toml
# The agent's wall message before a reboot (wall wraps long lines; this is the start of it).
WALL = re.compile(r"Cairn: this machine reboots in \d+ s into")


def next_version(v):
    head, _, n = v.rpartition(".")
    return f"{head}.{int(n) + 1}"


def rev_parse(repo, rev):
    return capture(["ostree", "rev-parse", f"--repo={repo}", rev], 60).strip()


def publish(repo, base_rev, overlay, version, subject):
    """Commits `overlay` on top of the tree of `base_rev` as the next commit of REF.

    No commit modifier (--owner-uid and the like; the overlay is written by root anyway): with
    one, libostree reads back every file of the base tree instead of reusing its directory
    objects, a minute here instead of a fraction of a second."""
    keep = ["ostree.bootable", "ostree.linux", "cairn.packages", "cairn.source-date-epoch"]
    run(["ostree", "commit", f"--repo={repo}", "-b", REF, f"--tree=ref={base_rev}",
         f"--tree=dir={overlay}", f"--add-metadata-string=version={version}",
         f"--bind-ref={REF}", f"--subject={subject}"]
        + [f"--keep-metadata={k}" for k in keep], 600)
    run(["ostree", "summary", "-u", f"--repo={repo}"], 120)
    commit = rev_parse(repo, REF)
    log(f"published {version} = {commit[:12]} ({subject})")
    return commit


def write(path, content, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode())
    os.chmod(path, mode)


def set_reboot_when_logged_in(guest, allowed):
    value = "true" if allowed else "false"
    guest.sh(f"sed -i 's/^reboot_when_logged_in = .*/reboot_when_logged_in = {value}/' "
             f"/etc/cairn/config.toml && grep -qx 'reboot_when_logged_in = {value}' "
             "/etc/cairn/config.toml", 30)


def held_reason(agent):
    return (agent.get("reboot_held") or {}).get("reason", "")


def wait_agent(status, done, timeout, what):
    """Polls `cairn status --json` until `done(agent record)`; returns that record."""
    deadline = time.monotonic() + timeout
    while True:
        agent = status()["automatic"]["agent"] or {}
        if done(agent):
            log(f"agent: {agent.get('message')}")
            return agent
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out after {timeout}s waiting for {what}: {agent.get('message')!r}")
        time.sleep(15)


def wait_agent_reboot(guest, timeout, start, what):
    """Waits for GRUB to boot after the agent rebooted the host. On a timeout the failure
    carries the agent's journal (a stage that keeps failing shows only there)."""
    try:
        return guest.wait_for(BOOTING, timeout, start, what)
    except TestFailure as e:
        try:
            _, out = guest.sh("journalctl -b -u cairn-agent --no-pager -o cat -n 30", 60,
                              check=False)
        except TestFailure:
            out = "(the guest shell did not answer)"
        raise TestFailure(f"{e}\ncairn-agent's journal:\n{out}") from e


def booted_version(st):
    return vm.booted(st)["version"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--v1-from", metavar="REPO", help="take v1 from REPO (must carry this branch's units)")
    ap.add_argument("--cache-dir", default=os.path.join(ROOT, "build", "cache"))
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--firmware", choices=["bios", "ovmf-secure-boot"], default="bios",
                    help="boot the hybrid disk through SeaBIOS (default) or through OVMF with "
                         "Secure Boot enforced (what CI runs)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("auto.py needs root")

    workdir = args.workdir or tempfile.mkdtemp(prefix="cairn-auto-", dir="/var/tmp")
    os.makedirs(workdir, exist_ok=True)
    repo = os.path.join(workdir, "repo")
    disk = os.path.join(workdir, "disk.qcow2")
    results = []
    guest = http = None
    phase = vm.Phases()
    ok = False

    def status():
        return vm.status(guest)

    def leaves_alone(version):
        """Waits until an agent run after the fallback says it skips `version`, then one more
        timer period: nothing may be staged and no reboot may start. Returns the message."""
        deadline = time.monotonic() + 300
        while True:
            st = status()
            msg = (st["automatic"]["agent"] or {}).get("message", "")
            if version in msg and "not applying" in msg:
                break
            if time.monotonic() > deadline:
                raise TestFailure(f"no agent run said it skips {version} within 300 s: {msg!r}")
            time.sleep(15)
        time.sleep(AGENT_PERIOD + 10)
        st = status()
        if booted_version(st) != v2 or any(d.get("pending") or d.get("staged") for d in st["deployments"]):
            raise TestFailure(f"{version} was staged again: {vm.versions(st)}")
        return msg

    try:
        if not args.no_build:
            with phase("build"):
                run(["cargo", "build", "--release", "--quiet"], 1800, cwd=ROOT)

        with phase("compose-v1"):
            v1 = vm.compose_v1(repo, args.v1_from, args.cache_dir, 2400)
            v1_commit = rev_parse(repo, REF)
            log(f"v1 = {v1}")

        http, url = vm.serve(repo, workdir)

        with phase("image"):
            # Host gamma, with a declared container (app) that scenario (2) breaks.
            embedded = os.path.join(workdir, "embedded.ign")
            _, pub = ssh_key(workdir, "gamma")
            write_config(embedded, "gamma", pub, "app")
            run([COMPOSE, "image", RECIPE, "--repo", repo, "--ref", REF, "-o", disk,
                 "--remote-url", url, "--ignition", embedded], 1200)

        with phase("publish-v2"):
            ov = os.path.join(workdir, "overlay-v2")
            write(os.path.join(ov, "usr/lib/cairn-e2e/release"), "v2\n")
            v2 = next_version(v1)
            v2_commit = publish(repo, v1_commit, ov, v2, "e2e v2: v1 + a marker file")

        # (1) The host boots v1, finds v2, stages it and reboots into it by itself.
        with phase("auto-update"):
            t = time.monotonic()
            guest = vm.Guest(disk, workdir, firmware=args.firmware)
            g1 = guest.wait_for(BOOTING, 180, 0, "GRUB (v1)")
            g2 = wait_agent_reboot(guest, 1800, g1.end(), "the agent to reboot into v2")
            until_reboot = time.monotonic() - t
            # The agent warned the logged-in console (wall) before it rebooted.
            if not WALL.search(guest.buf, g1.end(), g2.start()):
                raise TestFailure("no wall warning from the agent on the console before its reboot")
            boot = vm.wait_booted(guest, g2.end(), time.monotonic())
            st = status()
            if booted_version(st) != v2:
                raise TestFailure(f"expected {v2} booted: {vm.versions(st)}")
            if not any(d["version"] == v1 and d["rollback"] for d in st["deployments"]):
                raise TestFailure(f"expected {v1} as the rollback deployment: {vm.versions(st)}")
            guest.sh("test \"$(cat /usr/lib/cairn-e2e/release)\" = v2", 30)
            # Provisioned on the first boot from the config embedded in the image (through
            # the signed GRUB under Secure Boot: an initrd GRUB loads after the initramfs).
            _, name = guest.sh("hostname", 30)
            if name.strip() != "gamma":
                raise TestFailure(f"the embedded Ignition config was not applied: hostname {name!r}")
            _, fetched = guest.sh("journalctl -b -1 -u ignition-fetch-offline.service --no-pager "
                                  "-o cat | grep -c user.ign", 60, check=False)
            if not fetched.strip().isdigit() or int(fetched.strip()) == 0:
                raise TestFailure("the first boot's Ignition did not read the embedded user.ign")
            guest.sh("! grep -q ignition.firstboot /proc/cmdline && test ! -e /boot/ignition.firstboot "
                     "&& test ! -e /boot/ignition", 30)
            guest.sh("test -z \"$(journalctl -b -q -u ignition-files.service)\"", 60)
            results.append("Ignition: the first boot applied the config embedded in the image "
                           "(hostname gamma); it did not run again")
            guest.sh("systemctl is-active cairn-health.service", 120)
            st = status()
            agent = st["automatic"]["agent"] or {}
            if (agent.get("rebooted_into") or {}).get("version") != v2:
                raise TestFailure(f"the agent did not record rebooting into {v2}: {agent}")
            # The first boot's journal is persistent: it tells what the agent did there.
            _, j = guest.sh("journalctl -b -1 -t cairn --no-pager -o cat 2>&1 | tail -n 8", 60, check=False)
            log("journal of the v1 boot (cairn): " + " | ".join(j.strip().splitlines()))
            if v2 not in j or "not available" in j:
                raise TestFailure(f"the first boot's journal does not show the agent staging {v2}:\n{j}")
            h = st["automatic"]["health"]
            if not h or not h["healthy"] or h["release"]["version"] != v2:
                raise TestFailure(f"v2 not marked healthy: {json.dumps(h, indent=1)}")
            if st["automatic"]["boot_counter"]["state"] != "idle":
                raise TestFailure(f"boot counter not cleared: {st['automatic']['boot_counter']}")
            if args.firmware == "ovmf-secure-boot":
                lockdown = vm.check_uefi_secure_boot(guest)
                log(f"guest booted through UEFI, Secure Boot enforced; kernel lockdown: {lockdown}")
                results.append(f"UEFI under OVMF, Secure Boot enforced (SecureBoot=1), kernel lockdown: {lockdown}")
            app_starts = container_starts(guest, "app")
            log(f"declared container app running on {v2} (started {app_starts} times so far)")
            results.append(f"(1) v1 -> v2 at boot, no command typed: {until_reboot:.0f}s from qemu "
                           f"start to GRUB booting v2, then {boot:.0f}s to a settled system")

        with phase("publish-v3"):
            ov = os.path.join(workdir, "overlay-v3")
            write(os.path.join(ov, "usr/lib/cairn-e2e/release"), "v3\n")
            # The release breaks the declared containers' service: each start fails before
            # podman runs, and the unit restarts every 10 s without end.
            write(os.path.join(ov, "usr/lib/systemd/system/cairn-container@.service.d",
                               "50-e2e-v3-breaks.conf"),
                  "[Service]\nExecStartPre=/bin/sh -c 'echo e2e: v3 breaks containers >&2; exit 1'\n")
            v3 = next_version(v2)
            mark = guest.mark()
            publish(repo, v2_commit, ov, v3, "e2e v3: breaks the declared containers")

        # (2) The timer stages v3 and reboots; v3 breaks the declared container, which fails
        # the required builtin:containers check; back to v2.
        with phase("health-rb"):
            t = time.monotonic()
            g3 = wait_agent_reboot(guest, 900, mark, "the agent to reboot into v3")
            to_v3 = time.monotonic() - t
            g4 = guest.wait_for(BOOTING, 900, g3.end(), "the health service to roll back and reboot")
            to_rb = time.monotonic() - t
            vm.wait_booted(guest, g4.end(), time.monotonic())
            st = status()
            if booted_version(st) != v2:
                raise TestFailure(f"expected {v2} booted after the health rollback: {vm.versions(st)}")
            failed = {f["version"]: f for f in st["automatic"]["failed_versions"]}
            if failed.get(v3, {}).get("reason") != "health-check":
                raise TestFailure(f"{v3} not recorded as failed: {failed}")
            _, text = guest.sh("cairn status", 60)
            if v3 not in text or "failed its required health checks" not in text \
                    or "builtin:containers" not in text:
                raise TestFailure(f"`cairn status` does not say why:\n{text}")
            # The check gave up on the crash-looping container without waiting out its 300 s.
            _, verdict = guest.sh("journalctl -b -1 -u cairn-health.service --no-pager -o cat "
                                  "| grep -m1 'builtin:containers failed'", 60, check=False)
            if "restarted" not in verdict:
                raise TestFailure(f"v3's health journal does not name the crash loop: {verdict!r}")
            log("v3's health check: " + verdict.strip())
            # The container did not run on v3 and runs again on v2.
            container_running(guest, "app", app_starts + 1)
            if args.firmware == "ovmf-secure-boot":
                vm.check_uefi_secure_boot(guest)
            log("cairn status:\n" + text)
            # The agent runs at boot and every minute: it must leave v3 alone.
            quiet = guest.mark()
            msg = leaves_alone(v3)
            waited = time.monotonic() - t - to_rb
            if BOOTING in guest.buf[quiet:]:
                raise TestFailure("the host rebooted again after the rollback")
            results.append(f"(2) v3 breaks the declared container: {to_v3:.0f}s until GRUB booted v3, "
                           f"{to_rb:.0f}s until GRUB booted v2 again; v3 not retried in {waited:.0f} s "
                           f"(agent: {msg})")

        with phase("publish-v4"):
            ov = os.path.join(workdir, "overlay-v4")
            kver = capture(["ostree", "ls", f"--repo={repo}", v2_commit, "/usr/lib/modules"], 60)
            kvers = [line.split("/")[-1] for line in kver.splitlines() if line.startswith("d")
                     and line.rstrip().split("/")[-1] != "modules"]
            if len(kvers) != 1:
                raise TestFailure(f"expected one kernel in v2: {kver}")
            write(os.path.join(ov, "usr/lib/modules", kvers[0], "initramfs.img"),
                  b"not an initramfs: the kernel cannot mount its root\n" * 64)
            write(os.path.join(ov, "usr/lib/cairn-e2e/release"), "v4\n")
            v4 = next_version(v3)
            mark = guest.mark()
            publish(repo, v2_commit, ov, v4, "e2e v4: an initramfs that cannot mount root")

        # (3) The timer stages v4 and reboots; v4 panics; GRUB counts down and boots v2.
        with phase("boot-counter"):
            t = time.monotonic()
            g5 = wait_agent_reboot(guest, 900, mark, "the agent to reboot into v4")
            to_v4 = time.monotonic() - t
            used = guest.wait_for(r"used up its boot attempts", 1200, g5.end(),
                                  "GRUB's boot counter to run out")
            attempts = guest.buf[mark:used.start()].count(BOOTING)
            panics = guest.buf[mark:used.start()].count("Kernel panic")
            g6 = guest.wait_for(BOOTING, 300, used.end(), "GRUB to boot the previous deployment")
            to_fallback = time.monotonic() - t
            vm.wait_booted(guest, g6.end(), time.monotonic())
            guest.sh("systemctl is-active cairn-health.service", 120, check=False)
            st = status()
            if booted_version(st) != v2:
                raise TestFailure(f"expected {v2} booted after the fallback: {vm.versions(st)}")
            if st["deployments"][0]["version"] != v2 or not st["deployments"][0]["booted"]:
                raise TestFailure(f"{v2} is not the default again: {vm.versions(st)}")
            failed = {f["version"]: f for f in st["automatic"]["failed_versions"]}
            if failed.get(v4, {}).get("reason") != "boot-attempts":
                raise TestFailure(f"{v4} not recorded as failed: {failed}")
            if args.firmware == "ovmf-secure-boot":
                vm.check_uefi_secure_boot(guest)
            _, text = guest.sh("cairn status", 60)
            log("cairn status:\n" + text)
            quiet = guest.mark()
            leaves_alone(v4)
            waited = time.monotonic() - t - to_fallback
            if BOOTING in guest.buf[quiet:]:
                raise TestFailure("the host rebooted again after the fallback")
            results.append(f"(3) v4 cannot mount root: {to_v4:.0f}s until GRUB booted v4, {attempts} "
                           f"boots of v4 ({panics} kernel panics seen), {to_fallback:.0f}s until GRUB "
                           f"booted v2 by itself; v4 recorded, not retried in {waited:.0f} s")
        with phase("publish-v5"):
            set_reboot_when_logged_in(guest, False)
            ov = os.path.join(workdir, "overlay-v5")
            write(os.path.join(ov, "usr/lib/cairn-e2e/release"), "v5\n")
            v5 = next_version(v4)
            mark = guest.mark()
            publish(repo, v2_commit, ov, v5, "e2e v5: v2 + a marker file (reboot manners)")

        # (4) A logged-in user, then a shutdown inhibitor, hold the agent's reboot into v5 back;
        # with both gone it goes through.
        with phase("manners"):
            t = time.monotonic()
            agent = wait_agent(status, lambda a: "logged in" in held_reason(a), 600,
                               "the agent to hold the reboot into v5 for the logged-in root")
            sessions = agent["reboot_held"]["sessions"]
            if not any(s["user"] == "root" and s["tty"] == "ttyS0" for s in sessions):
                raise TestFailure(f"the hold does not name root on ttyS0: {agent['reboot_held']}")
            _, text = guest.sh("cairn status", 60)
            if "reboot held back since" not in text or "root on ttyS0 is logged in" not in text:
                raise TestFailure(f"`cairn status` does not say the reboot is held back:\n{text}")
            log("cairn status:\n" + text)
            by_login = time.monotonic() - t

            # The inhibitor first: with logins allowed and nothing held the next run reboots.
            guest.sh("systemd-run --unit=e2e-inhibit systemd-inhibit --what=shutdown --mode=block "
                     "--who=auto.py --why='auto.py holds the reboot' sleep 3600", 60)
            set_reboot_when_logged_in(guest, True)
            agent = wait_agent(status, lambda a: "auto.py holds the reboot" in held_reason(a), 600,
                               "the agent to hold the reboot into v5 for the inhibitor")
            if agent["reboot_held"]["sessions"]:
                raise TestFailure(f"users may be rebooted on, yet they hold it: {agent['reboot_held']}")
            if BOOTING in guest.buf[mark:]:
                raise TestFailure("the host rebooted while its reboot was held back")
            by_inhibitor = time.monotonic() - t - by_login

            # Release the inhibitor, hold for logins again, and log out of the console (the
            # autologin is switched off until the next boot, from /run).
            set_reboot_when_logged_in(guest, False)
            guest.sh("systemctl stop e2e-inhibit.service", 60)
            guest.sh("mkdir -p /run/systemd/system/serial-getty@ttyS0.service.d && printf "
                     "'[Service]\\nExecStart=\\nExecStart=-/sbin/agetty --noclear --keep-baud "
                     "115200,57600,38400,9600 %%I dumb\\n' > "
                     "/run/systemd/system/serial-getty@ttyS0.service.d/zz-no-autologin.conf && "
                     "systemctl daemon-reload", 60)
            out = guest.mark()
            guest.send("\rexit\r")
            guest.wait_for(r"login:", 120, out, "a login prompt after logging out")
            logged_out = time.monotonic()
            g7 = wait_agent_reboot(guest, 600, out, "the agent to reboot into v5 after the logout")
            after_logout = time.monotonic() - logged_out
            vm.wait_booted(guest, g7.end(), time.monotonic())
            st = status()
            if booted_version(st) != v5:
                raise TestFailure(f"expected {v5} booted: {vm.versions(st)}")
            agent = st["automatic"]["agent"] or {}
            if (agent.get("rebooted_into") or {}).get("version") != v5:
                raise TestFailure(f"the agent did not record rebooting into {v5}: {agent}")
            results.append(f"(4) v5 held back {by_login:.0f}s until the agent named root on ttyS0, then "
                           f"{by_inhibitor:.0f}s until it named the inhibitor; rebooted into v5 "
                           f"{after_logout:.0f}s after root logged out")
        ok = True
    except TestFailure as e:
        log(f"FAILED: {e}")
    except Exception as e:  # noqa: BLE001
        log(f"FAILED: {type(e).__name__}: {e}")
    finally:
        vm.stop(guest, http)

    phase.summary("Cairn automatic-update VM test", ok)
    for r in results:
        print("  " + r)
    vm.keep_or_clean(workdir, ok, args.keep)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
