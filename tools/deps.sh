# Sourced by tools/test and tools/quickstart: installs the Debian packages
# lsmfs needs to build and test, when any is missing.
LSMFS_DEPS=(
  gcc meson ninja-build pkg-config clang-format valgrind
  libcmocka-dev liblz4-dev libzstd-dev libxxhash-dev
  libfuse3-dev fuse3
  librocksdb-dev libleveldb-dev
  python3 python3-pytest git
)

lsmfs_install_deps() {
  local missing=() p
  for p in "${LSMFS_DEPS[@]}"; do
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
