# Shared helpers for deploy/services and deploy/test (sourced, not run).
# Expects DEPLOY_DIR and ROOT to be set by the caller.

log() { printf '%s: %s\n' "${LOG_PREFIX:-deploy}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Privileged commands. fd 9 is the services lock: daemons started from here must not inherit it.
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@" 9>&-; else sudo "$@" 9>&-; fi
}
as_postgres() {
    # cd / so psql does not warn about a home directory the postgres user cannot read.
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@" 9>&-)
    else
        (cd / && sudo -u postgres "$@" 9>&-)
    fi
}

apt_install() {
    log "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
        || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 \
        || die "apt-get install $* failed"
}

# The project venv: created when missing, (re)installed when pyproject.toml is newer than the stamp.
VENV="$ROOT/.venv"
VENV_STAMP="$VENV/.csp-ledger-installed"
ensure_venv() {
    # Serialised: several people (or test runs) may share one checkout.
    mkdir -p "$ROOT/.services"
    exec 8>"$ROOT/.services/venv.lock"
    flock -w 600 8 || die "timed out waiting for $ROOT/.services/venv.lock"
    if [ ! -x "$VENV/bin/python" ]; then
        command -v python3 >/dev/null || apt_install python3
        if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
            apt_install python3-venv
        fi
        log "creating $VENV"
        python3 -m venv "$VENV" >&2 || die "python3 -m venv failed"
    fi
    if [ ! -f "$VENV_STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$VENV_STAMP" ]; then
        log "installing the project and its dev dependencies into .venv (pip install -e .[dev])"
        (cd "$ROOT" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]") >&2 \
            || die "pip install -e .[dev] failed"
        touch "$VENV_STAMP"
    fi
    exec 8>&-
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
