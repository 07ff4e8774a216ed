#!/usr/bin/env bash
# Makes a Docker engine and the test image available on a Debian machine:
#   scripts/docker.sh ensure   install docker.io (and the test tools) if missing,
#                              start dockerd if it is not answering, build clogs-busybox:latest
#   scripts/docker.sh image    (re)build the test image only
# There is no image registry here, so the test image is busybox-static imported
# from a folder: bin/busybox plus a symlink per applet.
set -euo pipefail

IMAGE=clogs-busybox:latest
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/clogs-dockerd.log}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v tmux >/dev/null || missing+=(tmux)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "docker.sh: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

start_engine() {
  if docker info >/dev/null 2>&1; then return; fi
  echo "docker.sh: starting dockerd (log: $DOCKERD_LOG)"
  as_root bash -c "nohup dockerd >'$DOCKERD_LOG' 2>&1 &"
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then return; fi
    sleep 1
  done
  echo "docker.sh: dockerd did not answer within 60 s; its log ends with:" >&2
  tail -n 30 "$DOCKERD_LOG" >&2 || true
  exit 1
}

build_image() {
  local dir
  dir=$(mktemp -d)
  mkdir -p "$dir/bin" "$dir/tmp"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$dir/bin/$applet"
  done
  tar -C "$dir" -c . | docker import -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
  rm -rf "$dir"
  echo "docker.sh: built $IMAGE"
}

case "${1:-ensure}" in
  ensure)
    install_packages
    start_engine
    docker image inspect "$IMAGE" >/dev/null 2>&1 || build_image
    ;;
  image) build_image ;;
  *) echo "usage: $0 ensure|image" >&2; exit 2 ;;
esac
