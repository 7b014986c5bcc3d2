#!/usr/bin/env bash
# Builds loomworks-erp_<version>_<arch>.deb and loomworks-erp-<version>-1.<arch>.rpm from one self-contained,
# untrimmed `dotnet publish` per architecture. Natively: dpkg-deb and rpmbuild, no containers.
#
#   infrastructure/packaging/build-packages.sh [--arch amd64|arm64]… [--format deb|rpm|all] [--output DIR] [--fast]
#
# --fast packs with gzip -1 instead of xz (the tests use it; releases do not). Prints the paths it wrote.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
archs=()
format=all
output="$root/artifacts/packages"
fast=0

usage() {
  echo "usage: $0 [--arch amd64|arm64]... [--format deb|rpm|all] [--output DIR] [--fast]" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ $# -ge 2 ] || usage; archs+=("$2"); shift 2 ;;
    --format) [ $# -ge 2 ] || usage; format=$2; shift 2 ;;
    --output) [ $# -ge 2 ] || usage; output=$2; shift 2 ;;
    --fast) fast=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[ ${#archs[@]} -gt 0 ] || archs=(amd64)
case "$format" in deb|rpm|all) ;; *) echo "unknown format: $format" >&2; usage ;; esac

version_value() {
  sed -n "s/^$1=\(.*\)$/\1/p" "$root/VERSION" | head -n 1
}
loomworks_version=$(version_value LOOMWORKS_VERSION)
odoo_version=$(version_value ODOO_VERSION)
if ! [[ "$loomworks_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ && "$odoo_version" =~ ^[0-9]+\.[0-9]+$ ]]; then
  echo "VERSION must hold LOOMWORKS_VERSION=X.Y.Z and ODOO_VERSION=X.Y (found '$loomworks_version', '$odoo_version')" >&2
  exit 1
fi
version="${loomworks_version}+odoo${odoo_version}"
release_date=$(version_value RELEASE_DATE)

mkdir -p "$output"
output=$(cd "$output" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# mktemp makes 0700 folders; everything packed below must be world-readable.
chmod 0755 "$work"

# Self-contained: the package carries its runtime. Not trimmed: trimming breaks reflection-based JSON at run time.
publish() {
  local rid=$1 dir=$2
  dotnet publish "$root/src/Loomworks.Server/Loomworks.Server.csproj" -c Release -r "$rid" --self-contained true \
    -p:PublishTrimmed=false -p:DebugType=none -nologo -v quiet -nodeReuse:false -o "$dir" >&2
}

# dotnet publish leaves most files at 0744: normalise to 0644, executables (ELF programs, not libraries) 0755.
normalise_modes() {
  local dir=$1
  find "$dir" -type d -exec chmod 0755 {} +
  find "$dir" -type f -exec chmod 0644 {} +
  chmod 0755 "$dir/loomworks"
  [ ! -f "$dir/createdump" ] || chmod 0755 "$dir/createdump"
}

# The tree both packages share.
stage() {
  local arch=$1 tree=$2 program=$3
  install -d -m 0755 "$tree/usr/lib" "$tree/usr/bin" "$tree/etc/loomworks" "$tree/var/lib/loomworks" \
    "$tree/var/lib/loomworks.state" "$tree/var/log/loomworks" "$tree/usr/share/doc/loomworks-erp"
  cp -a "$program" "$tree/usr/lib/loomworks"
  ln -s ../lib/loomworks/loomworks "$tree/usr/bin/loomworks"
  install -m 0644 "$here/loomworks.conf" "$tree/etc/loomworks/loomworks.conf"
  install -m 0644 "$root/README.md" "$tree/usr/share/doc/loomworks-erp/README.md"
  install -d -m 0755 "$tree/usr/share/man/man1"
  gzip -9n <"$here/loomworks.1" >"$tree/usr/share/man/man1/loomworks.1.gz"
  chmod 0644 "$tree/usr/share/man/man1/loomworks.1.gz"
}

build_deb() {
  local arch=$1 program=$2
  local tree="$work/deb-$arch"
  stage "$arch" "$tree" "$program"
  install -d -m 0755 "$tree/DEBIAN" "$tree/lib/systemd/system" "$tree/usr/share/lintian/overrides"
  install -m 0644 "$here/loomworks.service" "$tree/lib/systemd/system/loomworks.service"
  install -m 0644 "$here/debian/copyright" "$tree/usr/share/doc/loomworks-erp/copyright"
  # A native package's changelog.gz must be in Debian's format; the project's own CHANGELOG.md goes beside it.
  {
    echo "loomworks-erp ($version) stable; urgency=medium"
    echo
    echo "  * Loomworks $loomworks_version for the Odoo $odoo_version API; see CHANGELOG.md.gz."
    echo
    echo " -- Loomworks Team <dev@loomworks.app>  $(LC_ALL=C date -R -u -d "${release_date:-1970-01-01}")"
  } | gzip -9n >"$tree/usr/share/doc/loomworks-erp/changelog.gz"
  gzip -9n <"$root/CHANGELOG.md" >"$tree/usr/share/doc/loomworks-erp/CHANGELOG.md.gz"
  chmod 0644 "$tree/usr/share/doc/loomworks-erp/changelog.gz" "$tree/usr/share/doc/loomworks-erp/CHANGELOG.md.gz"
  install -m 0644 "$here/debian/lintian-overrides" "$tree/usr/share/lintian/overrides/loomworks-erp"
  install -m 0755 "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm" "$here/debian/config" "$tree/DEBIAN/"
  install -m 0644 "$here/debian/templates" "$tree/DEBIAN/"
  echo /etc/loomworks/loomworks.conf >"$tree/DEBIAN/conffiles"
  chmod 0644 "$tree/DEBIAN/conffiles"
  (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
    >"$tree/DEBIAN/md5sums"
  chmod 0644 "$tree/DEBIAN/md5sums"
  local size
  size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
  # Self-contained .NET needs only these native libraries; ICU is not among them because the server runs with
  # invariant globalization. postgresql-client and pgbackrest are what backups and restores call.
  cat >"$tree/DEBIAN/control" <<EOF
Package: loomworks-erp
Version: $version
Architecture: $arch
Maintainer: Loomworks Team <dev@loomworks.app>
Installed-Size: $size
Depends: adduser, debconf (>= 0.5) | debconf-2.0, libc6 (>= 2.34), libgcc-s1, libssl3, libstdc++6, zlib1g, tzdata, ca-certificates, postgresql-client, pgbackrest
Recommends: postgresql (>= 15)
Section: web
Priority: optional
Homepage: https://loomworks.app
Description: multi-tenant ERP host speaking Odoo's external API
 Loomworks hosts an ERP for many customers at once: one PostgreSQL database
 per tenant, requests routed to their tenant, Odoo's XML-RPC and JSON-RPC
 APIs, and undo of single operations or whole tenants to a point in time
 through pgBackRest.
EOF
  chmod 0644 "$tree/DEBIAN/control"
  local file="$output/loomworks-erp_${version}_${arch}.deb"
  local compression=(-Zxz)
  [ "$fast" -eq 0 ] || compression=(-Zgzip -z1)
  dpkg-deb --root-owner-group "${compression[@]}" --build "$tree" "$file" >/dev/null
  echo "$file"
}

build_rpm() {
  local arch=$1 program=$2
  local rpm_arch
  case "$arch" in amd64) rpm_arch=x86_64 ;; arm64) rpm_arch=aarch64 ;; esac
  local tree="$work/rpm-$arch"
  stage "$arch" "$tree" "$program"
  install -d -m 0755 "$tree/usr/lib/systemd/system" "$tree/usr/share/licenses/loomworks-erp"
  install -m 0644 "$here/loomworks.service" "$tree/usr/lib/systemd/system/loomworks.service"
  install -m 0644 "$here/debian/copyright" "$tree/usr/share/licenses/loomworks-erp/LICENSE"
  install -m 0644 "$root/CHANGELOG.md" "$tree/usr/share/doc/loomworks-erp/CHANGELOG.md"
  local top="$work/rpmbuild-$arch"
  mkdir -p "$top"/{BUILD,RPMS,SPECS,SRPMS,BUILDROOT}
  local payload=w6.xzdio
  [ "$fast" -eq 0 ] || payload=w1.gzdio
  rpmbuild -bb --quiet --target "$rpm_arch" \
    --define "_topdir $top" \
    --define "_binary_payload $payload" \
    --define "loomworks_version $version" \
    --define "loomworks_tree $tree" \
    "$here/loomworks.spec" >&2
  local built
  built=$(find "$top/RPMS" -name '*.rpm' | head -n 1)
  local file
  file="$output/$(basename "$built")"
  mv "$built" "$file"
  echo "$file"
}

for arch in "${archs[@]}"; do
  case "$arch" in
    amd64) rid=linux-x64 ;;
    arm64) rid=linux-arm64 ;;
    *) echo "unknown architecture: $arch (amd64 or arm64)" >&2; exit 2 ;;
  esac
  program="$work/publish-$arch/loomworks"
  publish "$rid" "$program"
  normalise_modes "$program"
  if [ "$format" = deb ] || [ "$format" = all ]; then build_deb "$arch" "$program"; fi
  if [ "$format" = rpm ] || [ "$format" = all ]; then build_rpm "$arch" "$program"; fi
done
