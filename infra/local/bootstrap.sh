#!/usr/bin/env bash
# Installs what a fresh machine lacks to run Forge, then the Python workspace and the stack's own
# tools. Idempotent: when everything is there it takes a couple of seconds.
#   - system packages (Debian/Ubuntu): PostgreSQL server, a JDK, Maven, Go, OpenLDAP, ffmpeg, MariaDB,
#     Node.js + npm, Chromium (only those missing)
#   - uv (from PyPI) and the locked workspace (`uv sync --frozen`)
#   - Kafka broker jars and Keycloak (Maven Central), MinIO built from source, the web console built with
#     Vite (npm), cached in ~/.cache/forge
set -euo pipefail
cd "$(dirname "$0")/../.."

have() { command -v "$1" >/dev/null 2>&1; }
missing=()
have initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql postgresql-contrib)
have java || missing+=(openjdk-17-jdk-headless)
have mvn || missing+=(maven)
have go || [ -x /usr/local/go/bin/go ] || missing+=(golang-go)
# OpenLDAP: the stack runs its own slapd (forge_cli.identity); Debian's default instance is not wanted.
{ [ -x /usr/sbin/slapd ] && have ldapsearch; } || missing+=(slapd ldap-utils)
# Media previews (thumbnails, waveforms, poster frames) and the SQL-import tests' second database.
{ have ffmpeg && have ffprobe; } || missing+=(ffmpeg)
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
# The web console is built with npm (Vite); its browser tests drive Debian's Chromium (with CJK fonts for
# the Chinese pages), never a downloaded browser.
have npm || missing+=(nodejs npm)
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core fonts-wqy-microhei)
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "bootstrap: installing system packages: ${missing[*]}"
  if [[ " ${missing[*]} " == *" slapd "* ]]; then
    echo "slapd slapd/no_configuration boolean true" | $sudo debconf-set-selections
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [[ " ${missing[*]} " == *" slapd "* ]]; then  # never leave the system slapd running
    $sudo systemctl disable --now slapd >/dev/null 2>&1 || $sudo service slapd stop >/dev/null 2>&1 || true
  fi
  if [[ " ${missing[*]} " == *" mariadb-server "* ]]; then  # tests start their own, nothing else may run
    $sudo systemctl disable --now mariadb >/dev/null 2>&1 || $sudo service mariadb stop >/dev/null 2>&1 || true
  fi
fi
# initdb refuses to run as root; under root the stack runs Postgres as the `postgres` user.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
fi
[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"

if ! have uv; then
  echo "bootstrap: installing uv"
  python3 -m pip install -q --user uv 2>/dev/null || python3 -m pip install -q uv
  export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --frozen --quiet
uv run --frozen forge stack install
