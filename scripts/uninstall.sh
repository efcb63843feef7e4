#!/usr/bin/env bash
# Removes Forewarn (docs/install.md). Keeps the data and the configuration unless --purge.
#
#   uninstall.sh [--root DIR] [--purge]
#
#   --root DIR   uninstall from DIR instead of / (never touches this host's users or services)
#   --purge      also remove /var/lib/forewarn (the buffered data), /etc/forewarn and the forewarn user
set -euo pipefail

readonly USER_NAME=forewarn
readonly UNIT=forewarn.service

say() { printf 'uninstall.sh: %s\n' "$*"; }
die() {
  printf 'uninstall.sh: error: %s\n' "$*" >&2
  exit 1
}
usage() {
  sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

root=""
purge=0
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
    --purge)
      purge=1
      shift
      ;;
    -h | --help) usage 0 ;;
    *)
      printf 'uninstall.sh: unknown argument: %s\n' "$1" >&2
      usage
      ;;
  esac
done

is_root=0
[ "$(id -u)" = 0 ] && is_root=1
if [ -n "$root" ]; then
  [ -d "$root" ] || die "no such --root folder: $root"
  root=$(cd "$root" && pwd -P)
  [ "$root" != / ] || root=""
fi
[ -n "$root" ] || [ "$is_root" = 1 ] || die "uninstalling from / needs root (or use --root DIR)"

# 1. Stop and disable the service (real hosts with systemd running only).
unit_path="$root/etc/systemd/system/$UNIT"
if [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl > /dev/null; then
  if systemctl is-enabled --quiet "$UNIT" 2> /dev/null || systemctl is-active --quiet "$UNIT" 2> /dev/null; then
    systemctl disable --now "$UNIT" || die "cannot stop $UNIT"
    say "stopped and disabled $UNIT"
  fi
fi

# 2. The unit, the command and the program.
if [ -e "$unit_path" ]; then
  rm -f "$unit_path"
  say "removed $unit_path"
  if [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl > /dev/null; then
    systemctl daemon-reload
  fi
fi
link="$root/usr/local/bin/forewarn"
if [ -L "$link" ] && [[ "$(readlink "$link")" == /opt/forewarn/* ]]; then
  rm -f "$link"
  say "removed $link"
fi
if [ -d "$root/opt/forewarn" ]; then
  rm -rf "$root/opt/forewarn"
  say "removed $root/opt/forewarn"
else
  say "$root/opt/forewarn is not there: nothing to remove"
fi

# 3. Data, configuration and the user: only with --purge.
if [ "$purge" = 0 ]; then
  say "kept the data $root/var/lib/forewarn and the configuration $root/etc/forewarn (--purge removes them)"
  exit 0
fi
rm -rf "$root/var/lib/forewarn" "$root/etc/forewarn"
say "removed $root/var/lib/forewarn and $root/etc/forewarn"
if [ -z "$root" ]; then
  if getent passwd "$USER_NAME" > /dev/null; then
    userdel "$USER_NAME" || die "cannot remove the user $USER_NAME"
    say "removed the user $USER_NAME"
  fi
  if getent group "$USER_NAME" > /dev/null; then
    groupdel "$USER_NAME" || die "cannot remove the group $USER_NAME"
  fi
elif [ -f "$root/etc/passwd" ] && [ "$is_root" = 1 ]; then
  if grep -q "^$USER_NAME:" "$root/etc/passwd"; then
    userdel --root "$root" "$USER_NAME" || die "cannot remove the user $USER_NAME from $root/etc/passwd"
    say "removed the user $USER_NAME from $root/etc/passwd"
  fi
  if grep -q "^$USER_NAME:" "$root/etc/group" 2> /dev/null; then
    groupdel --root "$root" "$USER_NAME" || die "cannot remove the group $USER_NAME from $root/etc/group"
  fi
else
  say "not removing the user $USER_NAME: $root/etc/passwd does not exist or we are not root"
fi
say "purged"
