#!/usr/bin/env bash
# package.sh: the Debian package.  Builds postgresql-15-cai-synergy from the
# tracked files of this checkout (debian/, dpkg-buildpackage -b), installs it
# with dpkg -i, checks what it installed and what it depends on, then uses it
# in a fresh cluster: CREATE EXTENSION, train, predict, export, and the
# packaged `cai` command answering as SQL does.  The package stays installed
# (its files are the same build as `make install`'s, without -Werror).
# Skipped with a message where it cannot run: not root, or no debhelper.
NAME=package
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "# SKIP: dpkg -i needs root"; echo "$NAME: 0 passed, 0 failed"; exit 0
fi
if ! command -v dpkg-buildpackage >/dev/null || ! dpkg-query -W -f='${Status}' debhelper 2>/dev/null | grep -q "install ok installed"; then
	echo "# SKIP: dpkg-buildpackage or debhelper is missing (scripts/setup.sh installs them)"; echo "$NAME: 0 passed, 0 failed"; exit 0
fi

work=$(mktemp -d /tmp/cai_package.XXXXXX)
on_exit "rm -rf '$work'"
mkdir "$work/src"
(cd "$FAULTS_ROOT" && git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work/src") || bail "copy the checkout"
(cd "$work/src" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1
ok $? "dpkg-buildpackage -b builds the package" || tail -n 20 "$work/build.log" | sed 's/^/# /'
deb=$(ls "$work"/postgresql-15-cai-synergy_*_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ]; ok $? "the .deb exists ($(basename "${deb:-none}"))" || finish
is "$(dpkg-deb -f "$deb" Package)" postgresql-15-cai-synergy "package name"
dpkg-deb -f "$deb" Depends | grep -q "postgresql-15" && dpkg-deb -f "$deb" Depends | grep -q "libjson-c"
ok $? "it depends on postgresql-15 and json-c ($(dpkg-deb -f "$deb" Depends))"
listing=$(dpkg-deb -c "$deb")
for f in usr/lib/postgresql/15/lib/cai_synergy.so usr/share/postgresql/15/extension/cai_synergy.control \
	usr/share/postgresql/15/extension/cai_synergy--0.1.0.sql usr/share/postgresql/15/extension/cai_synergy--0.2.0.sql \
	usr/share/postgresql/15/extension/cai_synergy--0.1.0--0.2.0.sql usr/lib/postgresql/15/bin/cai; do
	grep -q " \./$f\$" <<<"$listing"; ok $? "it ships $f"
done
dpkg -i "$deb" >"$work/install.log" 2>&1
ok $? "dpkg -i installs it" || sed 's/^/# /' "$work/install.log"
is "$(dpkg-query -W -f='${Status}' postgresql-15-cai-synergy)" "install ok installed" "dpkg reports it installed"
is "$(dpkg -S /usr/lib/postgresql/15/lib/cai_synergy.so | cut -d: -f1)" postgresql-15-cai-synergy \
	"the library on disk is the package's"
cmp -s /usr/lib/postgresql/15/lib/cai_synergy.so <(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/lib/postgresql/15/lib/cai_synergy.so)
ok $? "... byte for byte"

# a fresh cluster uses the packaged extension
cluster_start
q -c "CREATE EXTENSION cai_synergy" && make_reviews postgres reviews 400 || bail "CREATE EXTENSION from the package"
is "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")" 0.2.0 "CREATE EXTENSION installs 0.2.0"
q -c "SELECT 1 FROM cai_train('pkg', 'sentiment', 'reviews', options => '{\"epochs\": 3, \"seed\": 1}')" >/dev/null
ok $? "cai_train with the packaged library"
is "$(q -c "SELECT cai_predict('pkg', 'a great film')")" positive "cai_predict"
q -c "SELECT encode(cai_export('pkg'), 'base64')" | base64 -d >"$work/pkg.cai"
chmod a+r "$work/pkg.cai"
sql=$(q -c "SELECT cai_predict('pkg', 'truly awful acting')")
cli=$(printf 'truly awful acting\n' | /usr/lib/postgresql/15/bin/cai predict "$work/pkg.cai" 2>&1)
is "$cli" "$sql" "the packaged cai command predicts as SQL does ($sql)"
finish
