# Sourced by scripts/test, scripts/bench-ingest and scripts/bench-lambda: moto, the AWS
# emulator, pinned, in the project venv (.venv), and a server of it on loopback.

MOTO_VERSION=5.2.5

# Installs moto[server] at MOTO_VERSION into .venv unless it is there already.
install_moto() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
        || .venv/bin/pip install --quiet "moto[server]==$MOTO_VERSION"
}

# start_moto PORT LOG: starts moto on 127.0.0.1:PORT answering one request at a time
# (see scripts/moto-server.py for why), its output in LOG; sets moto_pid and returns once
# it answers.
start_moto() {
    .venv/bin/python scripts/moto-server.py 127.0.0.1 "$1" >"$2" 2>&1 &
    moto_pid=$!
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$1/moto-api/" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "moto did not answer on 127.0.0.1:$1 (its log: $2)" >&2
    return 1
}
