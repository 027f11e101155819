#!/usr/bin/env bash
# Compose benchmarks (issue 2), as ratios measured in one run:
#   no-change recompose / full compose
#   one-package-changed recompose (warm cache) / full compose
#   our commit step / `ostree commit` CLI on the same tree (fresh archive repo, and the second
#   tree into a repo that already holds the first)
# Usage (root, after `cargo build --release`): bash bench/compose.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/bench}
cache=build/cache
compose=./target/release/cairn-compose
rm -rf "$work" && mkdir -p "$work"

now() { date +%s.%N; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.3f}')" "$1" "$2"; }
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$1" "$2"; }
commit_step() { field "$1" "[v for k,v in d['steps'].items() if k.startswith('Committing')][0]"; }

echo "== full compose (warm package cache)"
$compose tree manifests/container-host.toml --repo "$work/repo" --cache-dir "$cache" \
  --write-lockfile "$work/full.lock.json" --keep-tree "$cache/bench-tree1" --json > "$work/full.json"
mv "$cache/bench-tree1" "$work/tree1" 2>/dev/null || true
full=$(field "$work/full.json" "d['seconds']")

echo "== no-change recompose"
$compose tree manifests/container-host.toml --repo "$work/repo" --cache-dir "$cache" --json > "$work/nochange.json"
test "$(field "$work/nochange.json" "d['result']")" = unchanged
nochange=$(field "$work/nochange.json" "d['seconds']")

echo "== one package added (htop), warm cache"
$compose tree bench/one-package.toml --repo "$work/repo" --cache-dir "$cache" \
  --write-lockfile "$work/one.lock.json" --keep-tree "$cache/bench-tree2" --json > "$work/one.json"
mv "$cache/bench-tree2" "$work/tree2" 2>/dev/null || true
one=$(field "$work/one.json" "d['seconds']")

echo "== ostree commit CLI on the same trees"
ostree init --repo="$work/cli-repo" --mode=archive
t0=$(now)
ostree commit --repo="$work/cli-repo" --branch=bench --tree=dir="$work/tree1" --no-xattrs >/dev/null
t1=$(now)
ostree commit --repo="$work/cli-repo" --branch=bench --tree=dir="$work/tree2" --no-xattrs >/dev/null
t2=$(now)
cli1=$(python3 -c "print($t1-$t0)")
cli2=$(python3 -c "print($t2-$t1)")
ours1=$(commit_step "$work/full.json")
ours2=$(commit_step "$work/one.json")

cat <<REPORT
| measure | seconds | ratio |
|---|---|---|
| full compose (warm cache) | $full | 1 |
| no-change recompose / full | $nochange | $(ratio "$nochange" "$full") |
| one-package recompose / full | $one | $(ratio "$one" "$full") |
| our commit, first tree / ostree commit CLI | $ours1 / $cli1 | $(ratio "$ours1" "$cli1") |
| our commit, second tree / ostree commit CLI | $ours2 / $cli2 | $(ratio "$ours2" "$cli2") |
REPORT
