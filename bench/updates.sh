#!/usr/bin/env bash
# Transport benchmark for a larger change than one package: the container host composed from
# the release suite alone (say bookworm, as of its last point release), then again from the
# machine's full apt sources (the release plus its -updates and -security suites): the update
# is every package those suites changed since, the kernel among them. bench/transport.sh then
# measures each transport against the .debs apt would download for the same change.
#
# Usage (root, after `cargo build --release`; the machine's apt sources must list the
# release's -updates or -security suite, else there is no change):
#   bash bench/updates.sh [WORKDIR]
# The release-only sources are derived from the machine's own (/etc/apt/sources.list.d/*.sources
# and /etc/apt/sources.list): the same mirrors, keys and components, without the suites whose
# name has a "-" in it. Costs two composes and the download of the changed packages.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath -m "${1:-build/updates-bench}")
ref=cairn/bookworm/x86_64/stable
cache=${CACHE:-build/cache}
compose=target/release/cairn-compose
rm -rf "$work" && mkdir -p "$work"

python3 - "$work/release-only.sources" <<'PY'
import glob, re, sys
out = []
def keep(suites):
    return [s for s in suites if "-" not in s]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields, last = {}, None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and last:
                fields[last] += "\n" + line
                continue
            key, _, value = line.partition(":")
            last = key.strip()
            fields[last] = value.strip()
        suites = keep(fields.get("Suites", "").split())
        if not suites or "debian" not in fields.get("URIs", ""):
            continue
        fields["Suites"] = " ".join(suites)
        out.append("\n".join(f"{k}: {v}" for k, v in fields.items()))
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        continue
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) >= 3 and words[0] == "deb" and "debian" in line:
            i = 2 if not words[1].startswith("[") else next(
                n for n, w in enumerate(words) if w.endswith("]")) + 2
            if "-" not in words[i]:
                out.append(line)
if not out:
    sys.exit("no release suite found in the machine's apt sources")
open(sys.argv[1], "w").write("\n\n".join(out) + "\n")
PY

key=$work/release.key; lock=$work/new.lock.json
"$compose" keygen -o "$key" >/dev/null
echo "== compose the container host from the release suite alone (base)"
"$compose" tree manifests/container-host.toml --repo "$work/repo" --cache-dir "$cache" \
  --sources "$work/release-only.sources" --sign-key "$key" --force --json > "$work/base.json"
echo "== compose it from the machine's sources (the release and its updates), with deltas"
"$compose" tree manifests/container-host.toml --repo "$work/repo" --cache-dir "$cache" \
  --write-lockfile "$lock" --sign-key "$key" --deltas 1 --json > "$work/new.json"
[ "$(ostree rev-parse --repo="$work/repo" "$ref")" != "$(ostree rev-parse --repo="$work/repo" "$ref^")" ] \
  || { echo "the second compose made no new commit" >&2; exit 1; }
CHANGE="Updates since the release" REPO="$work/repo" KEY="$key" LOCK="$lock" \
  bash bench/transport.sh "$work/transport"
