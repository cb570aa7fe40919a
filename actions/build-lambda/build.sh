#!/usr/bin/env bash
# The shell behind actions/build-lambda/action.yml (kept in a file so it can be tested and read as a whole).
#
#   build.sh plan    validate the inputs; write platform (the container's) to $GITHUB_OUTPUT
#   build.sh build   run BUILD_COMMAND in the container or on the runner; write zip-path, sha256, size to $GITHUB_OUTPUT
#
# The container runs on the runner's own platform whatever the architecture: the zip is pure JavaScript (ssh2's native
# addons are left out, see scripts/package.ts), the same bytes for arm64 and x86_64, so building it under emulation
# (QEMU) would only make it slower. The architecture names the file.
#
# Inputs arrive as environment variables (never interpolated into the script): BUILD_ARCHITECTURE, BUILD_USE_CONTAINER,
# BUILD_IMAGE, RUNNER_ARCH. Runs from the repository root (the composite step's default working directory).
set -euo pipefail

# The one build both modes run. $ARCH is set by the caller; the zip goes to build/, outputs to build/.outputs-$ARCH.
# shellcheck disable=SC2016 # expanded by the bash that runs it, on the runner or in the container
BUILD_COMMAND='npm ci --no-audit --no-fund && node -r @swc-node/register scripts/package.ts --arch "$ARCH" --out build --github-output "build/.outputs-$ARCH"'

fail() {
  echo "::error title=build-lambda::$*" >&2
  exit 1
}

arch=${BUILD_ARCHITECTURE:-arm64}
case "$arch" in
  arm64 | x86_64) ;;
  *) fail "architecture must be arm64 or x86_64 (Lambda's names), got '$arch'" ;;
esac
use_container=${BUILD_USE_CONTAINER:-true}
case "$use_container" in
  true | false) ;;
  *) fail "use-container must be true or false, got '$use_container'" ;;
esac
# RUNNER_ARCH is GitHub's name for the runner's CPU; outside a runner, the machine's.
runner_arch=${RUNNER_ARCH:-$(uname -m)}
case "$runner_arch" in
  X64 | x86_64 | amd64) platform=linux/amd64 ;;
  ARM64 | aarch64 | arm64) platform=linux/arm64 ;;
  *)
    platform=
    if [ "$use_container" = true ]; then
      fail "the build image runs on X64 and ARM64 runners, not $runner_arch; use one of those, or use-container: false"
    fi
    ;;
esac
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: build.sh runs as a step of actions/build-lambda}"

case "${1:-}" in
  plan)
    echo "platform=$platform" >>"$GITHUB_OUTPUT"
    echo "build-lambda: $arch, container: $use_container ($platform, the runner's own)"
    ;;
  build)
    if [ ! -f package.json ] || [ ! -f scripts/package.ts ]; then
      fail "run from the repository root (no package.json and scripts/package.ts in $PWD); check out the repository first"
    fi
    mkdir -p build
    outputs="build/.outputs-$arch"
    rm -f "$outputs"
    if [ "$use_container" = true ]; then
      command -v docker >/dev/null || fail "use-container: true needs docker on the runner (or set use-container: false)"
      image=${BUILD_IMAGE:-public.ecr.aws/sam/build-nodejs24.x:latest}
      # The workspace is mounted at /var/task; an anonymous volume hides its node_modules, so npm ci installs the
      # container's own and the runner's copy is left alone. The container runs as root: build/ is handed back to
      # the runner's user at the end. SOURCE_DATE_EPOCH goes through when set.
      docker run --rm --platform "$platform" \
        -v "$PWD:/var/task" -v /var/task/node_modules -w /var/task \
        -e ARCH="$arch" -e HOST_UID="$(id -u)" -e HOST_GID="$(id -g)" -e SOURCE_DATE_EPOCH \
        "$image" \
        bash -c "set -euo pipefail; trap 'chown -R \"\$HOST_UID:\$HOST_GID\" build' EXIT; $BUILD_COMMAND"
    else
      ARCH="$arch" bash -c "set -euo pipefail; $BUILD_COMMAND"
    fi
    [ -s "$outputs" ] || fail "the build wrote no outputs ($outputs)"
    cat "$outputs" >>"$GITHUB_OUTPUT"
    rm -f "$outputs"
    ;;
  *)
    fail "usage: build.sh plan|build"
    ;;
esac
