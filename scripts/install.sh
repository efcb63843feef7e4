#!/usr/bin/env bash
# Installs or upgrades Forewarn from a release tarball (docs/install.md). Idempotent: a second run changes nothing.
#
#   install.sh [--root DIR] [--no-start] TARBALL
#
#   --root DIR   install under DIR instead of / (an image, a test): never touches this host's users or services;
#                creates the forewarn user in DIR/etc/passwd only when that file exists and we are root
#   --no-start   do not enable, start or restart the systemd unit
#
# Layout: /opt/forewarn/<version> (root-owned, read-only to the agent), /opt/forewarn/current → <version>,
# /etc/forewarn/forewarn.yaml (0640 root:forewarn, written only when missing), /var/lib/forewarn (0700 forewarn),
# /etc/systemd/system/forewarn.service, /usr/local/bin/forewarn. Upgrades keep the config and the data and the
# two previous versions (for rollback: docs/install.md).
set -euo pipefail

readonly USER_NAME=forewarn
readonly UNIT=forewarn.service
readonly KEEP_VERSIONS=3

say() { printf 'install.sh: %s\n' "$*"; }
die() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}
usage() {
  sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

root=""
no_start=0
tarball=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root)
      [ $# -ge 2 ] || usage
      root=$2
      shift 2
      ;;
    --root=*)
      root=${1#--root=}
      shift
      ;;
    --no-start)
      no_start=1
      shift
      ;;
    -h | --help) usage 0 ;;
    -*)
      printf 'install.sh: unknown option: %s\n' "$1" >&2
      usage
      ;;
    *)
      [ -z "$tarball" ] || usage
      tarball=$1
      shift
      ;;
  esac
done
[ -n "$tarball" ] || usage
[ -f "$tarball" ] || die "no such tarball: $tarball"
for cmd in tar sha256sum readlink mktemp install cmp; do
  command -v "$cmd" > /dev/null || die "$cmd is required"
done

is_root=0
[ "$(id -u)" = 0 ] && is_root=1
if [ -n "$root" ]; then
  mkdir -p "$root" || die "cannot create --root $root"
  root=$(cd "$root" && pwd -P)
  [ "$root" != / ] || root=""
fi
if [ -z "$root" ] && [ "$is_root" != 1 ]; then
  die "installing into / needs root (or use --root DIR)"
fi

base="$root/opt/forewarn"
mkdir -p "$base"
stage=$(mktemp -d "$base/.install.XXXXXX")
cleanup() { rm -rf "$stage"; }
trap cleanup EXIT

# 1. Unpack into a staging folder beside the destination (same file system: the final move is a rename).
tar -xzf "$tarball" -C "$stage" --no-same-owner --no-same-permissions || die "cannot unpack $tarball"
mapfile -t tops < <(find "$stage" -mindepth 1 -maxdepth 1)
if [ "${#tops[@]}" != 1 ] || [ ! -d "${tops[0]}" ]; then
  die "$tarball is not a Forewarn package (expected one top folder)"
fi
pkg=${tops[0]}
if [ ! -f "$pkg/VERSION" ] || [ ! -f "$pkg/SHA256SUMS" ]; then
  die "$tarball is not a Forewarn package (no VERSION or SHA256SUMS)"
fi

# 2. Verify before anything is installed: every checksum matches, and every file is listed.
(cd "$pkg" && sha256sum --quiet --strict -c SHA256SUMS > /dev/null 2>&1) ||
  die "checksum mismatch in $tarball: the package is damaged or was altered; nothing was installed"
listed=$(cut -c67- "$pkg/SHA256SUMS" | LC_ALL=C sort)
present=$(cd "$pkg" && find . -mindepth 1 ! -type d ! -path ./SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort)
[ "$listed" = "$present" ] || die "$tarball holds files that SHA256SUMS does not list (or is missing some); nothing was installed"
[ -z "$(find "$pkg" ! -type f ! -type d)" ] || die "$tarball holds links or special files; nothing was installed"

version=$(head -n1 "$pkg/VERSION")
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] || die "bad VERSION in $tarball: $version"
[ "$(basename "$pkg")" = "forewarn-$version-linux-x64" ] || die "VERSION ($version) does not match the package folder $(basename "$pkg")"
say "package forewarn $version: checksums OK"

# 3. Node.js: the host needs node >= 20, with the ABI the native addons were built for (better-sqlite3).
want_abi=$(sed -n 's/^node_abi=//p' "$pkg/BUILD-INFO" 2> /dev/null || true)
if command -v node > /dev/null; then
  read -r have_version have_major have_abi < <(node -p '[process.version, process.versions.node.split(".")[0], process.versions.modules].join(" ")')
  problem=""
  [ "$have_major" -ge 20 ] || problem="Node.js $have_version is too old (>= 20 needed)"
  [ -z "$want_abi" ] || [ "$have_abi" = "$want_abi" ] || problem="Node.js $have_version has module ABI $have_abi; this package's native addons need ABI $want_abi (see BUILD-INFO)"
  if [ -n "$problem" ]; then
    [ -n "$root" ] || die "$problem"
    say "warning: $problem (this host's node; --root installs for another)"
  fi
else
  [ -n "$root" ] || die "Node.js >= 20 is required: node is not on PATH"
  say "warning: node is not on this host's PATH; the target needs Node.js >= 20"
fi

# 4. The version folder: left alone when the same package is already there; replaced when it differs.
dest="$base/$version"
if [ -d "$dest" ] && cmp -s "$dest/SHA256SUMS" "$pkg/SHA256SUMS" &&
  (cd "$dest" && sha256sum --quiet --strict -c SHA256SUMS > /dev/null 2>&1); then
  say "$dest is already installed and intact"
else
  chmod 0755 "$pkg"
  if [ -d "$dest" ]; then
    say "replacing $dest (its files differ from the package)"
    mv "$dest" "$stage/old"
  fi
  mv "$pkg" "$dest"
  say "installed $dest"
fi

# 5. The user: a system user with no login shell, home /var/lib/forewarn.
uid=""
gid=""
nologin=/usr/sbin/nologin
[ -x "$root$nologin" ] || [ -x "$nologin" ] || nologin=/bin/false
if [ -z "$root" ]; then
  if ! getent passwd "$USER_NAME" > /dev/null; then
    group_opt=(--user-group)
    getent group "$USER_NAME" > /dev/null && group_opt=(--gid "$USER_NAME")
    useradd --system "${group_opt[@]}" --home-dir /var/lib/forewarn --no-create-home --shell "$nologin" "$USER_NAME" ||
      die "cannot create the user $USER_NAME"
    say "created system user $USER_NAME"
  fi
  uid=$(id -u "$USER_NAME")
  gid=$(id -g "$USER_NAME")
elif [ -f "$root/etc/passwd" ] && [ "$is_root" = 1 ]; then
  if ! grep -q "^$USER_NAME:" "$root/etc/passwd"; then
    group_opt=(--user-group)
    grep -q "^$USER_NAME:" "$root/etc/group" 2> /dev/null && group_opt=(--gid "$USER_NAME")
    useradd --root "$root" --system "${group_opt[@]}" --home-dir /var/lib/forewarn --no-create-home --shell "$nologin" "$USER_NAME" ||
      die "cannot create the user $USER_NAME in $root/etc/passwd"
    say "created system user $USER_NAME in $root/etc/passwd"
  fi
  uid=$(awk -F: -v u="$USER_NAME" '$1 == u { print $3 }' "$root/etc/passwd")
  gid=$(awk -F: -v u="$USER_NAME" '$1 == u { print $4 }' "$root/etc/passwd")
else
  say "not creating the user $USER_NAME: $root/etc/passwd does not exist or we are not root;" \
    "on the target run: useradd --system --user-group --home-dir /var/lib/forewarn --no-create-home --shell $nologin $USER_NAME"
fi
owner() { # chown to forewarn when we know its ids and may chown
  if [ -n "$uid" ] && [ "$is_root" = 1 ]; then chown "$1" "$2"; fi
}

# 6. Data and configuration. Existing files are never rewritten; the modes of the folders are enforced.
mkdir -p "$root/var/lib/forewarn"
chmod 0700 "$root/var/lib/forewarn"
owner "$uid:$gid" "$root/var/lib/forewarn"
mkdir -p "$root/etc/forewarn"
chmod 0750 "$root/etc/forewarn"
owner "0:$gid" "$root/etc/forewarn"
config="$root/etc/forewarn/forewarn.yaml"
if [ -e "$config" ]; then
  say "kept the existing $config"
else
  install -m 0640 "$dest/scripts/forewarn.default.yaml" "$config.new"
  owner "0:$gid" "$config.new"
  mv "$config.new" "$config"
  say "wrote the default configuration $config"
fi

# 7. The systemd unit and the command.
unit_changed=0
if [ -f "$dest/scripts/$UNIT" ]; then
  unit_path="$root/etc/systemd/system/$UNIT"
  if ! cmp -s "$dest/scripts/$UNIT" "$unit_path"; then
    mkdir -p "$root/etc/systemd/system"
    install -m 0644 "$dest/scripts/$UNIT" "$unit_path.new"
    mv "$unit_path.new" "$unit_path"
    unit_changed=1
    say "installed $unit_path"
  fi
else
  say "warning: this package has no scripts/$UNIT; no service was installed"
fi
link="$root/usr/local/bin/forewarn"
if [ "$(readlink "$link" 2> /dev/null || true)" != /opt/forewarn/current/bin/forewarn ]; then
  mkdir -p "$root/usr/local/bin"
  ln -sfn /opt/forewarn/current/bin/forewarn "$link"
  say "linked $link"
fi

# 8. Switch `current` atomically (a new symlink renamed over the old one).
previous=$(readlink "$base/current" 2> /dev/null || true)
switched=0
if [ "$previous" != "$version" ]; then
  ln -sfn "$version" "$base/.current.new"
  mv -T "$base/.current.new" "$base/current"
  touch "$dest" # the newest-installed version: pruning keeps by this time
  switched=1
  say "current → $version${previous:+ (was $previous)}"
else
  say "current is already $version"
fi

# 9. Keep the current version and the two most recently installed others; remove older ones.
kept=1
while IFS= read -r dir; do
  name=$(basename "$dir")
  [ "$name" != "$version" ] || continue
  [ -f "$dir/VERSION" ] || continue
  if [ "$kept" -lt "$KEEP_VERSIONS" ]; then
    kept=$((kept + 1))
  else
    rm -rf "$dir"
    say "removed old version $name"
  fi
done < <(find "$base" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)

# 10. The service: enabled and (re)started on a real systemd host only.
if [ -n "$root" ]; then
  say "done (--root: no service was enabled or started)"
elif [ "$no_start" = 1 ]; then
  say "done (--no-start: start it with: systemctl enable --now $UNIT)"
elif [ ! -d /run/systemd/system ] || ! command -v systemctl > /dev/null; then
  say "done (systemd is not running: start the agent with: forewarn run --config /etc/forewarn/forewarn.yaml)"
elif [ ! -f "/etc/systemd/system/$UNIT" ]; then
  say "done (no unit installed)"
else
  [ "$unit_changed" = 0 ] || systemctl daemon-reload
  systemctl enable "$UNIT" > /dev/null 2>&1 || die "systemctl enable $UNIT failed"
  if [ "$switched" = 1 ] || [ "$unit_changed" = 1 ] || ! systemctl is-active --quiet "$UNIT"; then
    systemctl restart "$UNIT" || die "systemctl restart $UNIT failed: see journalctl -u $UNIT"
    say "done: $UNIT (re)started"
  else
    say "done: $UNIT already running $version"
  fi
fi
