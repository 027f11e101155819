#!/usr/bin/env bash
# Host upgrade benchmark, as ratios in one run:
#   `cairn upgrade` (pull + deploy) / `ostree pull` + `ostree admin deploy` of the same commit
#   deployment write (`ostree admin deploy` of a pulled commit) / `cp -al` of the same tree
#   peak memory of both upgrades: max RSS, and the peak of private (anonymous) memory, which
#   leaves out the pages of the binary and shared libraries mapped from files (page cache,
#   shared with every other process using them)
# Both hosts are temporary sysroots on version N-1 of the ref, pulling version N over HTTP from
# 127.0.0.1. `cairn` writes the deployment directly there (libostree stages only on a booted
# host), the same way `ostree admin deploy` does, so the two do the same work.
# Usage (root, after `cargo build --release`, with two versions of the ref in REPO):
#   bash bench/upgrade.sh [WORKDIR]      REPO=build/repo REF=cairn/bookworm/x86_64/stable
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath -m "${1:-build/upgrade-bench}")
repo=$(realpath "${REPO:-build/repo}")
ref=${REF:-cairn/bookworm/x86_64/stable}
cairn=$(realpath target/release/cairn)
# libostree marks deployment roots immutable; a previous run's must be unmarked to go.
for d in "$work"/*/ostree/deploy/*/deploy/*; do [ -d "$d" ] && chattr -i "$d"; done 2>/dev/null || true
rm -rf "$work" && mkdir -p "$work"

new=$(ostree rev-parse --repo="$repo" "$ref")
old=$(ostree rev-parse --repo="$repo" "$ref^")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$repo" "$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 1

# run_measured NAME CMD...: wall seconds and max RSS (KiB) of the command and its children, and
# the command's peak RssAnon (KiB; /proc/PID/status sampled every 5 ms, so a spike shorter
# than that can be missed).
run_measured() {
  local name=$1; shift
  python3 - "$name" "$@" <<'PY'
import resource, subprocess, sys, time
name, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
anon = 0
while p.poll() is None:
    try:
        with open(f"/proc/{p.pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = max(anon, int(line.split()[1]))
    except (FileNotFoundError, ProcessLookupError):
        pass
    time.sleep(0.005)
if p.returncode:
    sys.exit(f"{cmd[0]} failed: exit status {p.returncode}")
secs = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{name} {secs:.3f} {rss} {anon}")
PY
}

host() {
  local dir=$1
  mkdir -p "$dir"
  ostree admin init-fs "$dir" >/dev/null
  ostree admin os-init cairn --sysroot="$dir" >/dev/null
  ostree remote add --repo="$dir/ostree/repo" --no-gpg-verify cairn "http://127.0.0.1:$port/"
  ostree pull-local --repo="$dir/ostree/repo" "$repo" "$old" >/dev/null
  ostree refs --repo="$dir/ostree/repo" --create="cairn:$ref" "$old"
  ostree admin deploy --sysroot="$dir" --os=cairn "cairn:$ref" >/dev/null 2>&1
}
echo "== two hosts on $(ostree show --repo="$repo" --print-metadata-key=version "$old")"
host "$work/a"
host "$work/b"

# Both pulls read the server's files from the page cache, not one cold and one warm.
find "$repo/objects" "$repo/deltas" -type f -exec cat {} + >/dev/null 2>&1 || true

echo "== cairn upgrade"
read -r _ cairn_s cairn_rss cairn_anon < <(run_measured cairn "$cairn" --sysroot "$work/a" upgrade)
echo "== ostree pull + ostree admin deploy"
read -r _ pull_s pull_rss pull_anon < <(run_measured pull ostree pull --repo="$work/b/ostree/repo" cairn "$ref")
read -r _ deploy_s deploy_rss deploy_anon < <(run_measured deploy ostree admin deploy --sysroot="$work/b" --os=cairn "cairn:$ref")
test "$(ostree admin status --sysroot="$work/a" | grep -c "$new")" -ge 1

echo "== cp -al of the deployed tree"
deployment=$(ls -d "$work/b/ostree/deploy/cairn/deploy/$new".*[0-9] | head -1)
read -r _ cp_s _ _ < <(run_measured cp cp -al "$deployment" "$work/cp-al-copy")

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }
ref_s=$(python3 -c "print(round($pull_s + $deploy_s, 3))")
ref_rss=$(( pull_rss > deploy_rss ? pull_rss : deploy_rss ))
ref_anon=$(( pull_anon > deploy_anon ? pull_anon : deploy_anon ))
cat <<REPORT
| measure | ours | reference | ratio |
|---|---|---|---|
| host upgrade: cairn upgrade / ostree pull + admin deploy (s) | $cairn_s | $ref_s | $(ratio "$cairn_s" "$ref_s") |
| deployment write: ostree admin deploy / cp -al (s) | $deploy_s | $cp_s | $(ratio "$deploy_s" "$cp_s") |
| peak RSS of the upgrade (KiB) | $cairn_rss | $ref_rss | $(ratio "$cairn_rss" "$ref_rss") |
| peak private (anonymous) memory of the upgrade (KiB) | $cairn_anon | $ref_anon | $(ratio "$cairn_anon" "$ref_anon") |
REPORT
echo "RESULT {\"cairn_s\": $cairn_s, \"pull_s\": $pull_s, \"deploy_s\": $deploy_s, \"cp_al_s\": $cp_s, \"cairn_rss_kib\": $cairn_rss, \"ostree_rss_kib\": $ref_rss, \"cairn_anon_kib\": $cairn_anon, \"ostree_anon_kib\": $ref_anon}"
