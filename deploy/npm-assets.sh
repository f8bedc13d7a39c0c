#!/usr/bin/env bash
# Pinned browser files from the npm registry, checked by hash: the console's htmx and the
# browser tests' axe-core (deploy/npm-assets.lock lists them). Idempotent.
# usage: deploy/npm-assets.sh        files go to $RUN_DIR/assets/<name>-<version>/<file>
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ASSETS="$RUN_DIR/assets"
mkdir -p "$ASSETS"
while read -r name version integrity file; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  target="$ASSETS/$name-$version/$(basename "$file")"
  [[ -s "$target" ]] && continue
  apt_ensure npm npm || die "npm is required to fetch $name"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  log "fetching $name@$version (npm pack)"
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  tarball="$(ls "$tmp"/*.tgz)"
  got="sha512-$(node -e 'const c = require("crypto"), f = require("fs");
    process.stdout.write(c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
  [[ "$got" == "$integrity" ]] || die "$name@$version: integrity $got, expected $integrity"
  tar -xzf "$tarball" -C "$tmp" "$file"
  mkdir -p "$(dirname "$target")"
  mv "$tmp/$file" "$target"
  rm -rf "$tmp"
  trap - EXIT
done <"$DEPLOY_DIR/npm-assets.lock"
