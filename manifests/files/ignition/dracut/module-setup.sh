#!/bin/bash
# dracut module cairn-ignition: Cairn's part of first boot with Ignition in the initramfs.
#
# Ignition's own module (30ignition, package ignition) runs its stages with --root=/sysroot
# after ostree-prepare-root has made /sysroot the deployment. The deployment's /var is an empty
# directory there: the real root bind-mounts the stateroot's /var over it only later
# (ostree-system-generator). So that users' home directories and files under /var land where
# the host will see them, cairn-ignition-setup.service mounts the stateroot's /var in its place
# before Ignition's mount and files stages, and unmounts it before the switch to the real root
# (it also hands Ignition the SELinux configuration it insists on reading; see the script).

check() {
    # Only when asked for: manifests/ignition.toml names it in add_dracutmodules.
    return 255
}

depends() {
    echo ignition ostree
}

install() {
    inst_multiple readlink systemd-tmpfiles grep cat mkdir rmdir printf systemctl journalctl sleep
    # Ignition relabels for SELinux with setfiles (see the script); a real one wins.
    if ! find_binary setfiles >/dev/null; then
        inst_script "$moddir/setfiles" /usr/sbin/setfiles
    fi
    inst_script "$moddir/cairn-ignition-setup" /usr/lib/cairn/cairn-ignition-setup
    inst_simple "$moddir/cairn-ignition-setup.service" \
        "$systemdsystemunitdir/cairn-ignition-setup.service"
    # Pulled in with Ignition's own units, i.e. only on first boot (ignition-generator).
    mkdir -p "$initdir/$systemdsystemunitdir/ignition-complete.target.requires"
    ln_r "$systemdsystemunitdir/cairn-ignition-setup.service" \
        "$systemdsystemunitdir/ignition-complete.target.requires/cairn-ignition-setup.service"
    # While a stage waits (a config URL that does not answer), say so on the console; also
    # first boot only.
    inst_script "$moddir/cairn-ignition-waiting" /usr/lib/cairn/cairn-ignition-waiting
    inst_simple "$moddir/cairn-ignition-waiting.service" \
        "$systemdsystemunitdir/cairn-ignition-waiting.service"
    mkdir -p "$initdir/$systemdsystemunitdir/ignition-complete.target.wants"
    ln_r "$systemdsystemunitdir/cairn-ignition-waiting.service" \
        "$systemdsystemunitdir/ignition-complete.target.wants/cairn-ignition-waiting.service"
    # When a stage fails, Ignition's units isolate emergency.target: say why on the console.
    inst_script "$moddir/cairn-ignition-failed" /usr/lib/cairn/cairn-ignition-failed
    inst_simple "$moddir/cairn-ignition-failed.service" \
        "$systemdsystemunitdir/cairn-ignition-failed.service"
    mkdir -p "$initdir/$systemdsystemunitdir/emergency.target.wants"
    ln_r "$systemdsystemunitdir/cairn-ignition-failed.service" \
        "$systemdsystemunitdir/emergency.target.wants/cairn-ignition-failed.service"
}
