#!/usr/bin/env bash
# setup.sh: install the Debian packages cai_synergy needs, then build and
# install the extension into the local PostgreSQL 15.  Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
	build-essential clang libclang-rt-14-dev
	postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	libopenblas-dev libjson-c-dev
	postgresql-15-cron
	libkrb5-dev	# Citus's build includes gssapi/gssapi.h through PostgreSQL's libpq-be.h
	debhelper dpkg-dev	# the Debian package (debian/, test/faults/package.sh)
	nodejs	# scripts/glove-to-copy.js (scripts/get-vectors.sh) and its test
)
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
# a portable build without -Werror unless the environment says WERROR=1 (CI
# does: .ci/run) or OPTFLAGS=-march=native (README "Building and layout")
make -s PG_CONFIG="$PG_CONFIG"
$SUDO make -s install PG_CONFIG="$PG_CONFIG"
echo "setup: cai_synergy $(grep default_version cai_synergy.control | cut -d"'" -f2) installed into $("$PG_CONFIG" --pkglibdir)"

# Citus, for the test command's Citus stage (test/faults/citus.sh): Debian has
# no package, so ../shared/tools/citus/build.sh builds it from the upstream
# source there (about 2 minutes, once per machine; it exits at once when Citus
# is installed).  CITUS=0 skips it; without the tools directory the stage is
# skipped with a message.
CITUS_BUILD=${CITUS_BUILD:-$(cd .. && pwd)/shared/tools/citus/build.sh}
if [ "${CITUS:-1}" != 0 ] && [ -f "$CITUS_BUILD" ]; then
	bash "$CITUS_BUILD" || echo "setup: warning: Citus could not be built; the test command skips its Citus stage" >&2
fi
