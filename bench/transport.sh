#!/usr/bin/env bash
# Transport benchmark (issue 6): for a one-package change of the container-host commit
# (bench/one-package.toml adds htop, which pulls two libraries), what a host downloads and how
# long it takes to write the new commit into its repository, by three transports:
#   object-by-object pull over HTTP | static delta pull over HTTP (both stock libostree) |
#   delta bundle over HTTP (what `cairn upgrade` fetches when the composer wrote one) |
#   offline bundle
# Bytes are divided by the size of the changed packages' .debs (what apt would download);
# times by `ostree pull-local` of the same commit into the same starting repository.
#
# Both commits are composed here, with the same binaries, so that the only difference is the
# package (a tip composed elsewhere may carry another build of /usr/bin/cairn).
#
# Usage (root, from anywhere; after `cargo build --release`):
#   bash bench/transport.sh [WORKDIR]
# Environment: REPO, KEY, LOCK (use REPO's last two commits instead of composing; bench/run.py
#   passes its compose round's, bench/updates.sh its own), CHANGE (the report's title), CACHE
#   (package cache; default build/cache), BIN (directory with cairn-compose; default
#   target/release, else target/debug).
# Costs two composes (~4 min CPU each, package cache warm after the first).
#
# Results of repeated runs: BENCHMARKS.md (bench/run.py).
# Pull bytes include the summary, commit object and detached metadata. Without the
# metadata-first step, libostree 2022.7 fetched ~29 loose objects next to the delta (2.3 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath -m "${1:-build/transport-bench}")
ref=cairn/bookworm/x86_64/stable
cache=${CACHE:-build/cache}
bin=${BIN:-target/release}
[ -x "$bin/cairn-compose" ] || bin=target/debug
compose="$bin/cairn-compose"
rm -rf "$work" && mkdir -p "$work"

now() { date +%s.%N; }
py() { python3 -c "$@"; }
ratio() { py "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }

if [ -n "${REPO:-}" ]; then
  # A repository from bench/run.py's compose round: REF^ is the base, REF the one-package
  # change, KEY signed both, LOCK is the change's lockfile.
  repo=$(realpath "$REPO"); key=$KEY; lock=$LOCK
  base=$(ostree rev-parse --repo="$repo" "$ref^")
  new=$(ostree rev-parse --repo="$repo" "$ref")
else
  repo=$work/repo; key=$work/release.key; lock=$work/one.lock.json
  "$compose" keygen -o "$key" >/dev/null
  echo "== compose the container host (base)"
  "$compose" tree manifests/container-host.toml --repo "$repo" --cache-dir "$cache" \
    --write-lockfile "$work/base.lock.json" --sign-key "$key" --force --json \
    > "$work/base.json"
  base=$(ostree rev-parse --repo="$repo" "$ref")

  echo "== compose the one-package change, signed, with a static delta from the base"
  "$compose" tree bench/one-package.toml --repo "$repo" --cache-dir "$cache" \
    --write-lockfile "$lock" --sign-key "$key" --deltas 1 --json \
    > "$work/compose.json"
  new=$(ostree rev-parse --repo="$repo" "$ref")
  [ "$new" != "$base" ] || { echo "the compose made no new commit" >&2; exit 1; }
fi

echo "== changed packages and their .debs"
"$compose" diff "$base" "$new" --repo "$repo" --json > "$work/diff.json"
debs=$(py "
import json, os, sys, urllib.parse
d = json.load(open('$work/diff.json'))
arch = {p['name']: p['architecture'] for p in json.load(open('$lock'))['packages']}
changed = [(p['name'], p['version']) for p in d['added']] + [(c['name'], c['to']) for c in d['upgraded']]
total = 0
for name, ver in changed:
    f = f'$cache/archives/{name}_{ver.replace(\":\", \"%3a\")}_{arch[name]}.deb'
    total += os.path.getsize(f)
    print(f'   {os.path.basename(f)}: {os.path.getsize(f)}', file=sys.stderr)
print(total)")
echo "   total: $debs bytes"

echo "== bundle $base -> $new"
"$compose" bundle --repo "$repo" --from "$base" --to "$new" -o "$work/update.cairnbundle" \
  --sign-key "$key" >/dev/null
bundle_bytes=$(stat -c %s "$work/update.cairnbundle")

# A host repository (bare, as in a sysroot) holding the base commit.
host() {
  rm -rf "$work/host-$1"
  ostree init --repo="$work/host-$1" --mode=bare
  ostree pull-local --repo="$work/host-$1" "$repo" "$base" >/dev/null
  ostree remote add --repo="$work/host-$1" --no-gpg-verify origin "$url"
}
# Bytes the server sent since the log was cleared: sum of the sizes of the files requested.
served() {
  py "
import os
print(sum(os.path.getsize(os.path.join('$work/www', l.strip().lstrip('/').split('?')[0]))
          for l in open('$work/server.log') if l.strip() and os.path.isfile(os.path.join('$work/www', l.strip().lstrip('/').split('?')[0]))))"
}

mkdir -p "$work/www" && ln -s "$repo" "$work/www/repo"
: > "$work/server.log"
exec 3< <(exec python3 updater/tests/data/server.py "$work/www" --log "$work/server.log")
server_pid=$!
read -r port <&3
url="http://127.0.0.1:$port/repo"
trap 'kill $server_pid 2>/dev/null || true' EXIT

echo "== ostree pull-local (baseline)"
host local
t0=$(now); ostree pull-local --repo="$work/host-local" "$repo" "$new" >/dev/null; t1=$(now)
t_local=$(py "print($t1-$t0)")

echo "== object-by-object pull over HTTP"
# As `cairn upgrade` does: the commit object and its detached metadata first (the signature is
# checked between the two), then the tree by checksum. Both steps are counted.
host objects; : > "$work/server.log"
t0=$(now)
ostree pull --repo="$work/host-objects" --commit-metadata-only origin "$new" >/dev/null
ostree pull --repo="$work/host-objects" --disable-static-deltas origin "$new" >/dev/null
t1=$(now)
t_objects=$(py "print($t1-$t0)"); b_objects=$(served)

echo "== static delta pull over HTTP"
host delta; : > "$work/server.log"
t0=$(now)
ostree pull --repo="$work/host-delta" --commit-metadata-only origin "$new" >/dev/null
ostree pull --repo="$work/host-delta" origin "$new" >/dev/null
t1=$(now)
t_delta=$(py "print($t1-$t0)"); b_delta=$(served)
grep -q /deltas/ "$work/server.log" || { echo "the pull did not use the delta" >&2; exit 1; }

echo "== delta bundle over HTTP (what cairn upgrade fetches when the remote has one)"
host cdelta; : > "$work/server.log"
cargo bench -q -p cairn-release --bench bundle_apply --no-run 2>/dev/null
t0=$(now)
ostree pull --repo="$work/host-cdelta" --commit-metadata-only origin "$new" >/dev/null
py "import shutil, urllib.request
with urllib.request.urlopen('$url/cairn-deltas/$base-$new.cairnbundle') as r, open('$work/host-cdelta/tmp/d.cairnbundle', 'wb') as f:
    shutil.copyfileobj(r, f)"
t1=$(now)
apply=$(cargo bench -q -p cairn-release --bench bundle_apply -- "$work/host-cdelta/tmp/d.cairnbundle" \
  "$work/host-cdelta" "$work/host-cdelta/tmp/b" | tail -1)
t_cdelta=$(py "import json, sys; print($t1-$t0+json.loads(sys.argv[1])['apply_s'])" "$apply")
b_cdelta=$(served)
ostree fsck --repo="$work/host-cdelta" >/dev/null

echo "== bundle: extract + check (sha256 of members) + decompress against the host + apply"
# The same steps `cairn upgrade --bundle` takes before it deploys (bundle::open, the delta
# decompressed against the host's objects, applied in one transaction), timed in process.
host bundle
apply=$(cargo bench -q -p cairn-release --bench bundle_apply -- "$work/update.cairnbundle" \
  "$work/host-bundle" "$work/host-bundle/tmp/b" | tail -1)
t_bundle=$(py "import json, sys; print(json.loads(sys.argv[1])['apply_s'])" "$apply")
ostree fsck --repo="$work/host-bundle" >/dev/null
ostree show --repo="$work/host-bundle" "$new" >/dev/null

cat <<REPORT | tee "$work/report.md"

${CHANGE:-One-package change} ($base -> $new), changed .debs: $debs bytes
| transport | bytes | / .debs | apply s | / pull-local |
|---|---|---|---|---|
| object-by-object pull | $b_objects | $(ratio "$b_objects" "$debs") | $(printf %.2f "$t_objects") | $(ratio "$t_objects" "$t_local") |
| static delta pull | $b_delta | $(ratio "$b_delta" "$debs") | $(printf %.2f "$t_delta") | $(ratio "$t_delta" "$t_local") |
| delta bundle pull (cairn) | $b_cdelta | $(ratio "$b_cdelta" "$debs") | $(printf %.2f "$t_cdelta") | $(ratio "$t_cdelta" "$t_local") |
| bundle (zstd tar) | $bundle_bytes | $(ratio "$bundle_bytes" "$debs") | $(printf %.2f "$t_bundle") | $(ratio "$t_bundle" "$t_local") |
| ostree pull-local | - | - | $(printf %.2f "$t_local") | 1.00 |
REPORT
echo "RESULT {\"debs\": $debs, \"objects_bytes\": $b_objects, \"delta_bytes\": $b_delta, \"bundle_bytes\": $bundle_bytes, \"cdelta_bytes\": $b_cdelta, \"cdelta_s\": $t_cdelta, \"objects_s\": $t_objects, \"delta_s\": $t_delta, \"bundle_s\": $t_bundle, \"pull_local_s\": $t_local}"
