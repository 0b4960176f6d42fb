#!/usr/bin/env bash
# Installs what a fresh machine lacks to run Forge, then the Python workspace and the stack's own
# tools. Idempotent: when everything is there it takes a couple of seconds.
#   - system packages (Debian/Ubuntu): PostgreSQL server, a JDK, Maven, Go (only those missing)
#   - uv (from PyPI) and the locked workspace (`uv sync --frozen`)
#   - Kafka broker jars (Maven Central) and MinIO built from source, cached in ~/.cache/forge
set -euo pipefail
cd "$(dirname "$0")/../.."

have() { command -v "$1" >/dev/null 2>&1; }
missing=()
have initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql postgresql-contrib)
have java || missing+=(openjdk-17-jdk-headless)
have mvn || missing+=(maven)
have go || [ -x /usr/local/go/bin/go ] || missing+=(golang-go)
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "bootstrap: installing system packages: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
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
