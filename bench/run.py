#!/usr/bin/env python3
"""Cairn's benchmark suite: every case beside its reference, in the same run, several times.

    sudo python3 bench/run.py [--runs 3] [--work build/bench] [--out BENCHMARKS.md]

Writes a Markdown table (min and median of each side, ratio of the medians) to BENCHMARKS.md and
the raw numbers of every run to WORK/results.json. Needs root (mmdebstrap, sysroots), the
packages of .ci/deps and a warm package cache (`build/cache`, filled by README's compose; a cold
cache makes the first run's composes download, so run once more or read the medians).

One round (repeated --runs times; sides that compete for the same caches alternate order):
  1  full compose of manifests/container-host.toml        / mmdebstrap of the same locked
     package set (same dracut settings, .debs from the same cache) + `ostree commit` of its tree
  2  no-change recompose / full; one package added (bench/one-package.toml) / full
  3  our commit step / `ostree commit` on the same trees, archive and bare-user repos, a ref's
     first tree and its second, near-identical one (cargo bench --bench commit)
  4  `cairn upgrade` / `ostree pull` + `ostree admin deploy` (bench/upgrade.sh, temp sysroots)
  5  bytes of a one-package update by object pull, static delta, delta bundle, bundle / the changed .debs
     and / `zstd --patch-from` of the two trees' tars (bench/transport.sh; the bound once)
  6  deployment write (`ostree admin deploy`) / `cp -al` of the same tree (bench/upgrade.sh)
  7  full bundle write (`cairn-compose bundle`, no --from) / `tar -c | zstd -T0 -19 --long` of
     the same tree; bundle check on that bundle: sha256 of its members / `sha256sum`;
     `bundle::open` / zstd | tar + sha256sum (cargo bench --bench verify)
  8  peak RSS (largest process) of the compose and of the upgrade / their references
Times are never asserted anywhere; this only measures.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
REF = "cairn/bookworm/x86_64/stable"
COMPOSE = os.path.join(ROOT, "target", "release", "cairn-compose")
MANIFEST = os.path.join(ROOT, "manifests", "container-host.toml")
ONE_PACKAGE = os.path.join(ROOT, "bench", "one-package.toml")
# BENCHMARKS.md's section written by hand from bench/fleet_load's output; kept on rewrite.
FLEET_SECTION = "## FleetLock load"
# The composer's dracut settings (composer/src/install.rs), so the reference builds the same
# initramfs when the kernel package is configured.
DRACUT_CONF = 'hostonly="no"\\nadd_dracutmodules+=" ostree "\\ncompress="zstd -q -3 -T0"\\n'


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def measure(cmd, out=None, **kw):
    """Runs cmd; returns (wall seconds, peak RSS in KiB of its largest process, stdout text).
    stdout goes to `out` (a path) when given, else it is captured."""
    log("$ " + " ".join(cmd))
    sink = open(out, "w") if out else subprocess.PIPE
    t = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=sink, text=True, **kw)
    text = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.monotonic() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if out:
        sink.close()
        with open(out) as f:
            text = f.read()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} exited with {proc.returncode}")
    return secs, usage.ru_maxrss, text


def result_line(text):
    """The JSON a bench script or target prints last (`RESULT {...}` or a bare object)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"no result in:\n{text[-2000:]}")


def cargo_bench(package, name, args):
    _, _, text = measure(["cargo", "bench", "-q", "-p", package, "--bench", name, "--"] + args,
                         cwd=ROOT)
    return result_line(text)


def remove(path):
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=True)


def host_sources():
    """The build machine's apt sources, as the composer takes them by default."""
    files = [f for f in ["/etc/apt/sources.list"] if os.path.isfile(f)]
    files += sorted(glob.glob("/etc/apt/sources.list.d/*.list") +
                    glob.glob("/etc/apt/sources.list.d/*.sources"))
    if not files:
        raise SystemExit("this machine has no apt sources for the reference mmdebstrap")
    return files


def compose(manifest, repo, cache, key, extra, out):
    secs, rss, text = measure([COMPOSE, "tree", manifest, "--repo", repo, "--cache-dir", cache,
                               "--sign-key", key, "--json"] + extra, out=out)
    return secs, rss, json.loads(text)


def by_hand(lockfile, cache, tree, repo):
    """Case 1's reference: what a maintainer would run by hand for the same package set."""
    lock = json.load(open(lockfile))
    pkgs = lock["packages"]
    include = ",".join(f"{p['name']}={p['version']}" for p in pkgs)
    arch = next(p["architecture"] for p in pkgs if p["architecture"] != "all")
    debs = os.path.join(tree + ".debs")
    remove(debs)
    os.makedirs(debs)
    for p in pkgs:
        name = f"{p['name']}_{p['version'].replace(':', '%3a')}_{p['architecture']}.deb"
        os.link(os.path.join(cache, "archives", name), os.path.join(debs, name))
    setup_conf = ("mkdir -p \"$1/etc/dracut.conf.d\" && printf '" + DRACUT_CONF +
                  "' > \"$1/etc/dracut.conf.d/50-cairn.conf\"")
    setup_debs = f"mkdir -p \"$1/var/cache/apt/archives\" && cp -l {debs}/*.deb \"$1/var/cache/apt/archives/\""
    s1, r1, _ = measure(["mmdebstrap", "--variant=custom", "--mode=root", "--format=directory",
                         f"--architectures={arch}", "--aptopt=APT::Install-Recommends \"false\"",
                         "--skip=download/empty", "--skip=essential/unlink",
                         f"--setup-hook={setup_conf}", f"--setup-hook={setup_debs}",
                         f"--include={include}", "-q", "bookworm", tree] + host_sources(),
                        out=os.devnull, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    remove(debs)
    # mmdebstrap (root mode, directory output) creates /dev's nodes; ostree cannot commit them.
    for node in os.listdir(os.path.join(tree, "dev")):
        remove(os.path.join(tree, "dev", node))
    subprocess.run(["ostree", "init", f"--repo={repo}", "--mode=archive"], check=True)
    s2, r2, _ = measure(["ostree", "commit", f"--repo={repo}", f"--branch={REF}",
                         f"--tree=dir={tree}", "--no-xattrs"])
    return {"mmdebstrap_s": s1, "commit_s": s2, "s": s1 + s2, "rss_kib": max(r1, r2)}


def step(result, prefix):
    return next(v for k, v in result["steps"].items() if k.startswith(prefix))


def patch_from_bound(tree1, tree2, work):
    """zstd --patch-from between tars of the two trees: what a generic binary diff achieves."""
    t1, t2 = os.path.join(work, "tree1.tar"), os.path.join(work, "tree2.tar")
    for tree, tar in ((tree1, t1), (tree2, t2)):
        subprocess.run(["tar", "--sort=name", "-cf", tar, "-C", tree, "."], check=True)
    out = os.path.join(work, "tree2.patch.zst")
    secs, _, _ = measure(["zstd", "-q", "-f", "-9", "--long=31", "-T0", f"--patch-from={t1}", t2,
                          "-o", out])
    size = os.path.getsize(out)
    for f in (t1, t2, out):
        os.remove(f)
    return {"bytes": size, "level": 9, "s": secs}


def full_bundle_write(repo, key, work, swap):
    """Case 7's write: a full bundle of REF / `tar -c | zstd -T0 -19 --long` of its checked-out
    tree (the same bytes, compressed the same way, with no delta around them). Returns the
    numbers and the bundle's path (case 7's check reads it)."""
    tree = os.path.join(work, "bundle-tree")
    bundle = os.path.join(work, "full.cairnbundle")
    tar_zst = os.path.join(work, "bundle-tree.tar.zst")
    subprocess.run(["ostree", "checkout", f"--repo={repo}", "-U", REF, tree], check=True)
    res = {}

    def ours():
        s, rss, _ = measure([COMPOSE, "bundle", "--repo", repo, "--to", REF, "-o", bundle,
                             "--sign-key", key])
        res.update(s=s, rss_kib=rss, bytes=os.path.getsize(bundle))

    def reference():
        s, rss, _ = measure(["sh", "-c", 'tar -C "$1" -cf - . | zstd -T0 -19 --long -q -o "$2"',
                             "sh", tree, tar_zst])
        res.update(reference_s=s, reference_rss_kib=rss, reference_bytes=os.path.getsize(tar_zst))

    for side in ([reference, ours] if swap else [ours, reference]):
        side()
    remove(tree)
    remove(tar_zst)
    return res, bundle


def round_(r, args, key, rounds_dir):
    work = os.path.join(rounds_dir, f"r{r}")
    remove(work)
    os.makedirs(work)
    repo = os.path.join(work, "repo")
    res = {}
    swap = r % 2 == 1

    def compose_kept(manifest, name, tree, extra=()):
        """A compose that keeps its tree and writes NAME.lock.json; records its time, peak RSS,
        its install and commit steps and how it installed as res[NAME]."""
        s, rss, j = compose(manifest, repo, args.cache, key,
                            ["--write-lockfile", os.path.join(work, f"{name}.lock.json"),
                             "--keep-tree", os.path.join(work, tree)] + list(extra),
                            os.path.join(work, f"{name}.json"))
        # --keep-tree copies the tree for case 3 after the commit: not part of composing.
        keep_s = step(j, "Keeping the tree")
        res[name] = {"s": s - keep_s, "keep_tree_s": keep_s, "rss_kib": rss,
                     "commit_s": step(j, "Committing"),
                     "install_s": step(j, "Installing"), "install": j["install"]}

    def ours_full():
        # Every package from scratch, as the reference does (the cache keeps the install of the
        # container host from earlier rounds); that install becomes the one-package compose's base.
        compose_kept(MANIFEST, "full", "tree1", ["--fresh-install"])
        shutil.copy(os.path.join(work, "full.lock.json"), os.path.join(rounds_dir, "full.lock.json"))

    def reference():
        res["by_hand"] = by_hand(os.path.join(work, "full.lock.json"), args.cache,
                                 os.path.join(work, "by-hand-tree"), os.path.join(work, "by-hand-repo"))
        remove(os.path.join(work, "by-hand-tree"))
        remove(os.path.join(work, "by-hand-repo"))

    log(f"== round {r + 1}/{args.runs}: case 1, full compose and the by-hand reference")
    # The reference needs the lockfile, so our compose always runs first in round 1; later
    # rounds alternate (the lockfile is the same: the package cache and sources do not move).
    if swap:
        shutil.copy(os.path.join(rounds_dir, "full.lock.json"), os.path.join(work, "full.lock.json"))
        reference()
        ours_full()
    else:
        ours_full()
        reference()

    log("== case 2: no-change and one-package recomposes")
    s, _, j = compose(MANIFEST, repo, args.cache, key, [], os.path.join(work, "nochange.json"))
    if j["result"] != "unchanged":
        raise SystemExit(f"the no-change recompose made a commit: {j}")
    res["nochange"] = {"s": s}
    compose_kept(ONE_PACKAGE, "one", "tree2")
    if res["one"]["install"]["mode"] != "incremental":
        raise SystemExit(f"the one-package recompose installed from scratch: {res['one']['install']}")

    log("== case 3: commit step / ostree commit, archive and bare-user")
    for mode in ("archive", "bare-user"):
        res[f"commit_{mode}"] = cargo_bench(
            "cairn-composer", "commit",
            [mode, os.path.join(work, "tree1"), os.path.join(work, "tree2"),
             os.path.join(work, "commit-bench")] + (["--cli-first"] if swap else []))
        remove(os.path.join(work, "commit-bench"))

    if r == 0:
        log("== case 5: zstd --patch-from bound (once)")
        res["patch_from"] = patch_from_bound(os.path.join(work, "tree1"), os.path.join(work, "tree2"), work)
    remove(os.path.join(work, "tree1"))
    remove(os.path.join(work, "tree2"))

    log("== cases 4, 6, 8: host upgrade")
    _, _, text = measure(["bash", "bench/upgrade.sh", os.path.join(work, "upgrade")], cwd=ROOT,
                         env=dict(os.environ, REPO=repo, REF=REF))
    res["upgrade"] = result_line(text)
    for d in glob.glob(os.path.join(work, "upgrade", "*", "ostree", "deploy", "*", "deploy", "*")):
        subprocess.run(["chattr", "-i", d], check=False)
    remove(os.path.join(work, "upgrade"))

    log("== case 5: transport")
    _, _, text = measure(["bash", "bench/transport.sh", os.path.join(work, "transport")], cwd=ROOT,
                         env=dict(os.environ, REPO=repo, KEY=key, LOCK=os.path.join(work, "one.lock.json"),
                                  CACHE=args.cache))
    res["transport"] = result_line(text)
    remove(os.path.join(work, "transport"))

    log("== case 7: full bundle write and bundle check")
    res["bundle_write"], bundle = full_bundle_write(repo, key, work, swap)
    res["verify"] = cargo_bench("cairn-release", "verify",
                                [bundle, os.path.join(work, "verify")] +
                                (["--reference-first"] if swap else []))
    remove(os.path.join(work, "verify"))
    if r + 1 < args.runs:
        remove(work)
    return res


def table(rounds):
    """Rows of (case, measure, ours[], reference[], unit, note key)."""
    def col(path):
        out = []
        for rd in rounds:
            v = rd
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                out.append(float(v))
        return out

    pf = rounds[0].get("patch_from", {}).get("bytes")
    rows = [
        ("1", "full compose / mmdebstrap + `ostree commit` by hand (s)", col(["full", "s"]), col(["by_hand", "s"]), "full"),
        ("2", "no-change recompose / full compose (s)", col(["nochange", "s"]), col(["full", "s"]), "nochange"),
        ("2", "one-package recompose, warm cache / full compose (s)", col(["one", "s"]), col(["full", "s"]), "one"),
    ]
    for mode in ("archive", "bare-user"):
        rows += [
            ("3", f"commit, first tree, {mode} / `ostree commit` (s)", col([f"commit_{mode}", "ours_first"]),
             col([f"commit_{mode}", "cli_first"]), "commit_first"),
            ("3", f"commit, second tree, {mode} / `ostree commit` (s)", col([f"commit_{mode}", "ours_second"]),
             col([f"commit_{mode}", "cli_second"]), "commit_second"),
        ]
    up = [r["upgrade"] for r in rounds]
    tr = [r["transport"] for r in rounds]
    rows += [
        ("4", "`cairn upgrade` / `ostree pull` + `ostree admin deploy` (s)", [u["cairn_s"] for u in up],
         [u["pull_s"] + u["deploy_s"] for u in up], "upgrade"),
        ("5", "object pull bytes / changed .debs", [t["objects_bytes"] for t in tr], [t["debs"] for t in tr], "bytes"),
        ("5", "static delta bytes / changed .debs", [t["delta_bytes"] for t in tr], [t["debs"] for t in tr], "bytes"),
        ("5", "delta bundle pull bytes (cairn upgrade) / changed .debs", [t["cdelta_bytes"] for t in tr],
         [t["debs"] for t in tr], "bytes"),
        ("5", "bundle bytes / changed .debs", [t["bundle_bytes"] for t in tr], [t["debs"] for t in tr], "bytes"),
    ]
    if pf:
        rows += [
            ("5", "object pull bytes / zstd --patch-from bound", [t["objects_bytes"] for t in tr], [pf], "patch_from"),
            ("5", "static delta bytes / zstd --patch-from bound", [t["delta_bytes"] for t in tr], [pf], "patch_from"),
            ("5", "bundle bytes / zstd --patch-from bound", [t["bundle_bytes"] for t in tr], [pf], "patch_from"),
        ]
    rows += [
        ("5", "apply: object pull / `ostree pull-local` (s)", [t["objects_s"] for t in tr], [t["pull_local_s"] for t in tr], "apply"),
        ("5", "apply: static delta pull / `ostree pull-local` (s)", [t["delta_s"] for t in tr], [t["pull_local_s"] for t in tr], "apply"),
        ("5", "apply: delta bundle pull / `ostree pull-local` (s)", [t["cdelta_s"] for t in tr],
         [t["pull_local_s"] for t in tr], "apply"),
        ("5", "apply: bundle / `ostree pull-local` (s)", [t["bundle_s"] for t in tr], [t["pull_local_s"] for t in tr], "apply"),
        ("6", "deployment write / `cp -al` of the tree (s)", [u["deploy_s"] for u in up], [u["cp_al_s"] for u in up], "deploy"),
        ("7", "full bundle write / tar | zstd -T0 -19 --long (s)", col(["bundle_write", "s"]),
         col(["bundle_write", "reference_s"]), "bundle_write"),
        ("7", "full bundle bytes / tar | zstd -T0 -19 --long", col(["bundle_write", "bytes"]),
         col(["bundle_write", "reference_bytes"]), "bundle_write"),
        ("7", "bundle members' sha256 / `sha256sum` (s)", col(["verify", "hash"]), col(["verify", "hash_reference"]), "hash"),
        ("7", "bundle members' sha256 / `openssl dgst -sha256` (s)", col(["verify", "hash"]),
         col(["verify", "hash_openssl"]), "hash_openssl"),
        ("7", "bundle open (unpack + check) / `zstd -dc \\| tar -x` + `sha256sum` (s)", col(["verify", "open"]),
         col(["verify", "open_reference"]), "open"),
        ("8", "peak RSS, full compose / by hand (MiB)", [v / 1024 for v in col(["full", "rss_kib"])],
         [v / 1024 for v in col(["by_hand", "rss_kib"])], "rss_compose"),
        ("8", "peak RSS, upgrade / ostree pull + deploy (MiB)", [u["cairn_rss_kib"] / 1024 for u in up],
         [u["ostree_rss_kib"] / 1024 for u in up], "rss_upgrade"),
        ("8", "peak private memory, upgrade / ostree pull + deploy (MiB)",
         [u["cairn_anon_kib"] / 1024 for u in up], [u["ostree_anon_kib"] / 1024 for u in up], "anon_upgrade"),
    ]
    return rows


def fmt(v):
    if v >= 10000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}" if v >= 1 else f"{v:.3f}"


NOTES = {
    "full": "The reference installs the same locked .debs (given by exact version, so it resolves "
            "nothing) with the same dracut settings, and does no post-processing (kernel move, /etc "
            "→ /usr/etc, /var → tmpfiles, dpkg database move): its tree is not bootable by ostree. "
            "The composer's extra work is resolving the manifest against the sources (apt update "
            "+ solve, ~6 s), checking the cached .debs and indexing them as a local pool, and the "
            "post-processing; its install runs dpkg without per-file fsync (the tree of a failed "
            "compose is thrown away; the commit syncs the objects) and makes the initramfs once, "
            "after all packages are configured, where a plain mmdebstrap makes it twice (the "
            "kernel's hook, then dracut's trigger: ~5 s each). The full compose here runs with "
            "--fresh-install (the package cache holds earlier rounds' installs).",
    "nochange": "Resolution only (apt update + resolve), then the inputs hash matches: nothing is "
                "installed or written.",
    "one": "The full compose keeps its raw install; the recompose mounts an overlayfs view of it "
           "and apt installs only the three new packages (~1 s), the initramfs is made again only "
           "if a changed package owns a file in it (not here), and the commit hashes the tree and "
           "writes only new objects. What is left is mostly fixed cost: apt update + resolve "
           "(~6 s), checking the cached .debs, the kernel checks and the static deltas.",
    "commit_first": "A ref's first commit goes through libostree's own writer from a directory fd "
                    "(`write_dfd_to_mtree`), the entry point the CLI uses: parity by construction "
                    "(the GFile entry point, `write_directory_to_mtree`, was slower).",
    "commit_second": "Checksum-first: files are hashed (`ostree_checksum_file_at`) and only missing "
                     "objects are written, where libostree compresses (archive) or copies every file "
                     "before it learns the object exists.",
    "upgrade": "Same libostree pull and deploy; cairn also checks the commit's signature before "
               "pulling the tree and writes its own GRUB menu.",
    "bytes": "What apt would download for the same change is the natural floor; ostree objects are "
             "zlib-compressed files (object pull) or an xz/bsdiff delta (static delta), both as "
             "stock libostree clients fetch them; the delta bundle (what `cairn upgrade` fetches "
             "beside the repository) and the offline bundle carry a delta compressed with zstd "
             "against the objects the host has at the changed paths. Pulls count the commit "
             "object and its signatures too.",
    "patch_from": "`zstd -9 --long=31 --patch-from` between tars of the whole old and new trees; a "
                  "generic binary diff that knows nothing of packages.",
    "apply": "Writing the new commit into a host repository holding the old one; pull-local reads "
             "objects straight from the source repository.",
    "deploy": "libostree's deployment write (hardlink checkout, /etc three-way merge, boot files, "
              "fsync): cairn calls it as it is; `cp -al` is the floor it cannot reach because it also "
              "syncs and writes /etc and /boot.",
    "bundle_write": "The same tree (the ref's head) both ways, on every core: the bundle's full "
                    "delta is uncompressed objects (libostree's own would be lzma on one core), "
                    "compressed by the bundle's zstd stream at the reference's settings.",
    "hash": "The same files from the page cache. Debian's coreutils sha256sum does not use the "
            "CPU's SHA instructions; the sha2 crate detects and uses them.",
    "hash_openssl": "OpenSSL uses the SHA instructions too: this is the machine's limit.",
    "open": "One pass in process (zstd decoder → tar → files, then sha256) against two processes "
            "in a pipe plus sha256sum.",
    "rss_compose": "Largest single process of the whole run (mmdebstrap's apt/dpkg, dracut, the "
                   "composer, `ostree commit`).",
    "rss_upgrade": "Largest single process: cairn (pull + deploy in one process) against the larger of "
                   "`ostree pull` and `ostree admin deploy`. The gap is file-backed pages: one process "
                   "maps the pages of the pull's libraries (curl, TLS) and the deploy's, and cairn's own "
                   "binary.",
    "anon_upgrade": "RssAnon sampled every 5 ms: the heap and other private memory, without the "
                    "binary's and shared libraries' pages (page cache shared with other processes).",
}


def write_markdown(path, rounds, args, started, took):
    rows = table(rounds)
    lines = [
        "# Benchmarks",
        "",
        f"Made by `sudo python3 bench/run.py --runs {args.runs}` on {started} "
        f"({os.cpu_count()} cores, {platform.machine()}, kernel {platform.release()}, "
        f"load average {os.getloadavg()[0]:.2f} at the start; {took / 60:.0f} min). "
        "Each case ran beside its reference in the same round; min and median are over the "
        "rounds; the ratio is median / median (below 1: Cairn is faster or smaller). Numbers "
        "are from this one machine, without KVM, and drift with its load: read the ratios.",
        "",
        "| case | measure (ours / reference) | ours min | ours median | ref min | ref median | ratio | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    seen = []
    for case, what, ours, ref, note in rows:
        if not ours or not ref:
            continue
        if note not in seen:
            seen.append(note)
        n = seen.index(note) + 1
        ratio = statistics.median(ours) / statistics.median(ref)
        lines.append(f"| {case} | {what} | {fmt(min(ours))} | {fmt(statistics.median(ours))} | "
                     f"{fmt(min(ref))} | {fmt(statistics.median(ref))} | {ratio:.2f} | [{n}] |")
    lines += ["", "Notes:", ""]
    for i, note in enumerate(seen, 1):
        lines.append(f"{i}. {NOTES[note]}")
    r0 = rounds[0]
    extra = []
    if "patch_from" in r0:
        pf = r0["patch_from"]
        extra.append(f"zstd --patch-from bound: {pf['bytes']:,} bytes, level {pf['level']}, took "
                     f"{pf['s']:.0f} s (once).")
    extra.append(f"Case 7's bundle payload: {r0['verify']['payload_bytes']:,} bytes.")
    steps = [(r["full"]["install_s"], r["full"]["commit_s"], r["one"]["install_s"], r["one"]["commit_s"],
              r["by_hand"]["mmdebstrap_s"], r["by_hand"]["commit_s"]) for r in rounds]
    med = [statistics.median(c) for c in zip(*steps)]
    extra.append(f"Medians of the compose steps: full compose install {med[0]:.0f} s, commit {med[1]:.1f} s; "
                 f"one-package recompose install {med[2]:.1f} s, commit {med[3]:.1f} s; by hand "
                 f"mmdebstrap {med[4]:.0f} s, `ostree commit` {med[5]:.0f} s.")
    lines += [""] + extra + ["", "Raw numbers of every round: `build/bench/results.json` after a run."]
    # Sections this script does not measure (the FleetLock load of bench/fleet_load) are kept.
    kept = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        at = old.find(FLEET_SECTION)
        if at >= 0:
            kept = "\n" + old[at:]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + kept)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "build", "cache"))
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--from-results", metavar="JSON", help="only write the table from a results.json")
    args = ap.parse_args()
    if args.from_results:
        data = json.load(open(args.from_results))
        args.runs = len(data["rounds"])
        write_markdown(args.out, data["rounds"], args, data["started"], data["seconds"])
        return 0
    if os.geteuid() != 0:
        sys.exit("bench/run.py needs root (mmdebstrap, sysroots)")
    args.work = os.path.abspath(args.work)
    args.cache = os.path.abspath(args.cache)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "bench", "--no-run", "-q", "-p", "cairn-composer", "-p", "cairn-release"],
                   cwd=ROOT, check=True)
    remove(args.work)
    os.makedirs(args.work)
    key = os.path.join(args.work, "release.key")
    subprocess.run([COMPOSE, "keygen", "-o", key], check=True, stdout=subprocess.DEVNULL)
    rounds_dir = os.path.join(args.work, "rounds")
    rounds = []
    for r in range(args.runs):
        rounds.append(round_(r, args, key, rounds_dir))
        with open(os.path.join(args.work, "results.json"), "w") as f:
            json.dump({"started": started, "seconds": time.monotonic() - t0, "rounds": rounds}, f, indent=1)
    write_markdown(args.out, rounds, args, started, time.monotonic() - t0)
    log(f"wrote {args.out}")
    print(open(args.out).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
