# Shared by scripts/build-wheels and scripts/test-pi (sourced, not run): the
# cache, the one-line checks of the set-up, Debian roots made by debootstrap
# and commands run inside them.
# shellcheck shell=bash

cache=${MBUSPICO_PI_CACHE:-/var/cache/mbuspico-pi}
mirror=${MBUSPICO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
me=${me:-$(basename "$0")}

die() { echo "$me: $*" >&2; exit 1; }
say() { printf '== %s\n' "$*" >&2; }

# The Debian packages these scripts need on the host (installed by --deps).
host_packages=(qemu-user-static binfmt-support debootstrap systemd-container
               debian-archive-keyring ca-certificates curl time python3-venv)

install_deps() {
  [ "$(id -u)" -eq 0 ] || die "--deps installs Debian packages: run it as root (sudo $0 --deps)"
  command -v apt-get >/dev/null || die "--deps needs apt-get (Debian); install: ${host_packages[*]}"
  say "installing ${host_packages[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${host_packages[@]}" >/dev/null
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "not root: debootstrap and chroot need it (sudo $0)"
}

need_debootstrap() {
  command -v debootstrap >/dev/null || die "no debootstrap: run $0 --deps (apt-get install debootstrap)"
}

need_archive() {
  curl -fsS --max-time 20 -o /dev/null "$mirror/dists/trixie/Release" ||
    die "no network to the Debian archive ($mirror): connect, or set MBUSPICO_DEBIAN_MIRROR to a mirror"
}

# qemu-user for <debian arch> registered with binfmt_misc (mounting it if needed).
need_qemu() {
  local arch=$1 q
  case $arch in arm64) q=aarch64 ;; armhf) q=arm ;; *) return 0 ;; esac
  command -v "qemu-$q-static" >/dev/null || die "no qemu-$q-static: run $0 --deps (apt-get install qemu-user-static)"
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
      die "no binfmt_misc: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc (needs root; in a container, a privileged one)"
  fi
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$q" ]; then
    command -v update-binfmts >/dev/null && update-binfmts --enable "qemu-$q" >/dev/null 2>&1 || true
    [ -e /etc/init.d/binfmt-support ] && /etc/init.d/binfmt-support start >/dev/null 2>&1 || true
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$q" ] || [ ! -f "/usr/lib/binfmt.d/qemu-$q.conf" ] ||
      cat "/usr/lib/binfmt.d/qemu-$q.conf" > /proc/sys/fs/binfmt_misc/register 2>/dev/null || true
  fi
  [ -e "/proc/sys/fs/binfmt_misc/qemu-$q" ] ||
    die "qemu-$q not registered with binfmt_misc: apt-get install binfmt-support qemu-user-static, then update-binfmts --enable qemu-$q"
}

# make_root <dir> <arch> <suite> <comma-separated packages>: a minimal Debian
# root, made once; the marker file says it finished.
make_root() {
  local dir=$1 arch=$2 suite=$3 include=$4
  if [ -f "$dir/.mbuspico-root-done" ]; then return 0; fi
  need_debootstrap; need_archive; need_qemu "$arch"
  say "debootstrap $suite $arch into $dir (once; kept in the cache)"
  rm -rf "$dir"; mkdir -p "$dir" "$cache/apt-$arch"
  local t0=$SECONDS
  debootstrap --variant=minbase --arch="$arch" --cache-dir="$cache/apt-$arch" \
    "$suite" "$dir" "$mirror" > "$dir.log" 2>&1 ||
    { tail -5 "$dir.log" >&2; die "debootstrap $suite $arch failed (log: $dir.log)"; }
  echo "deb $mirror $suite main" > "$dir/etc/apt/sources.list"
  # apt, not debootstrap, for the rest: it resolves virtual packages (rustc's libc-dev).
  in_root "$dir" bash -ec "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends ${include//,/ } && apt-get clean" >> "$dir.log" 2>&1 ||
    { tail -5 "$dir.log" >&2; die "apt-get install in the $suite $arch root failed (log: $dir.log)"; }
  touch "$dir/.mbuspico-root-done"
  say "root $suite $arch made in $((SECONDS - t0)) s"
}

# in_root <dir> <command...>: run in the root, in a private mount namespace
# (nothing stays mounted), with /proc, /dev (pseudo-terminals), /sys and the
# cache at /cache, and /work bound read-only to <work> when $root_work is set.
in_root() {
  local dir=$1; shift
  # shellcheck disable=SC2016  # expanded by the inner shell
  unshare --mount --propagation private -- bash -c '
    set -e; d=$1; shift
    mount -t proc proc "$d/proc"
    mount --rbind /dev "$d/dev"
    mount --rbind /sys "$d/sys"
    mkdir -p "$d/cache" "$d/work"
    mount --bind "$CACHE" "$d/cache"
    [ -z "$ROOT_WORK" ] || mount --bind -o ro "$ROOT_WORK" "$d/work"
    exec chroot "$d" env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root \
      LANG=C.UTF-8 TERM=dumb "$@"
  ' in_root "$dir" "$@"
}
export CACHE="$cache" ROOT_WORK="${ROOT_WORK:-}"

# peak_kib <file written by /usr/bin/time -v>: the maximum resident set size.
peak_kib() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }

# The roots, by name: "<arch> <suite> <packages debootstrap includes>".
declare -A root_spec=(
  [build-trixie-amd64]="amd64 trixie rustc,cargo,python3-venv,time,ca-certificates"
  [trixie-arm64]="arm64 trixie python3-venv,rustc,cargo,time,ca-certificates"
  [bookworm-arm64]="arm64 bookworm python3-venv,time,ca-certificates"
  [bookworm-armhf]="armhf bookworm python3-venv,time,ca-certificates"
  [systemd-bookworm-amd64]="amd64 bookworm systemd,systemd-sysv,dbus,python3-venv,curl,ca-certificates"
)
# root_dir <name>: the root, made on first use.
root_dir() {
  local name=$1 arch suite include
  read -r arch suite include <<< "${root_spec[$name]}"
  make_root "$cache/roots/$name" "$arch" "$suite" "$include"
  echo "$cache/roots/$name"
}

# platform_args <arch> <glibc minor>: pip download's --platform for every
# manylinux tag a system of glibc 2.<minor> accepts (pip does not widen them).
platform_args() {
  local arch=$1 minor=$2 m
  for ((m = minor; m >= 5; m--)); do printf -- '--platform\nmanylinux_2_%s_%s\n' "$m" "$arch"; done
  printf -- '--platform\n%s\n' manylinux2014_"$arch" manylinux2010_"$arch" manylinux1_"$arch" linux_"$arch"
}

# Debian bookworm's qemu-user (7.2) lacks the termios2 ioctls (TCGETS2) that
# the serial-port library uses: opening a pseudo-terminal as a serial port fails
# there with "Function not implemented" (a real Pi has them). So the Arm roots
# run under trixie's qemu-user (10.0), taken from the build root and registered
# with binfmt_misc as mbuspico-<arch> (flag F: the binary is opened now), with
# Debian's own qemu-<arch> entry disabled. Both stay so until the next boot.
use_trixie_qemu() {
  local b q conf magic mask
  b=$(root_dir build-trixie-amd64)
  if [ ! -x "$b/usr/bin/qemu-aarch64" ] || [ ! -x "$b/usr/bin/qemu-arm" ]; then
    say "installing trixie's qemu-user-static into the build root"
    in_root "$b" bash -ec 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null' ||
      die "apt-get install qemu-user-static in $b failed"
  fi
  for q in aarch64 arm; do
    [ -e "/proc/sys/fs/binfmt_misc/mbuspico-$q" ] && continue
    conf=$(cat "$b/usr/lib/binfmt.d/qemu-$q.conf")
    magic=$(echo "$conf" | cut -d: -f5); mask=$(echo "$conf" | cut -d: -f6)
    echo ":mbuspico-$q:M::$magic:$mask:$b/usr/bin/qemu-$q:F" > /proc/sys/fs/binfmt_misc/register ||
      die "registering trixie's qemu-$q with binfmt_misc failed"
  done
  for q in aarch64 arm; do
    [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$q" ] || echo 0 > "/proc/sys/fs/binfmt_misc/qemu-$q"
  done
}
