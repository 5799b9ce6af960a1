# Sourced by tools/test, tools/quickstart and tools/bench-fs: installs the
# Debian packages lsmfs needs to build and test (LSMFS_DEPS), and those only
# the filesystem benchmark needs (LSMFS_BENCH_DEPS), when any is missing.
LSMFS_DEPS=(
  gcc meson ninja-build pkg-config clang-format valgrind
  libcmocka-dev liblz4-dev libzstd-dev libxxhash-dev
  libfuse3-dev fuse3
  librocksdb-dev libleveldb-dev
  python3 python3-pytest git
)

# Installed only by tools/bench-fs (fs_mark comes from fsmark).
LSMFS_BENCH_DEPS=(fio bindfs fsmark tar)

lsmfs_install_deps() {
  lsmfs_install_list "${LSMFS_DEPS[@]}"
}

lsmfs_install_bench_deps() {
  lsmfs_install_list "${LSMFS_BENCH_DEPS[@]}"
}

# lsmfs_install_list PKG... - apt-get installs the packages not installed.
lsmfs_install_list() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "error: packages missing (${missing[*]}) and not root; install them or run as root" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
