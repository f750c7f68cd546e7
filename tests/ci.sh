#!/usr/bin/env bash
# The project's one test command (README.md, "Development"; .ci/run runs exactly it):
#
#   bash tests/ci.sh              lint, the offline suite, then the live suite against a real A1111
#                                 and a real WebUI Forge
#   bash tests/ci.sh --no-live    fast local mode: the same without the live part
#                                 (FLEXDIFFUSE_LIVE=0 does the same)
#   bash tests/ci.sh --live-only  the venv, then only the live part (to work on tests/live)
#
# 1. .venv (created when missing) with requirements-test.txt (pinned); ruff check; ruff format --check.
# 2. pytest: the engine, the glue in the fake host, and the fake host's signatures
#    against A1111's source unpacked from ../shared/hosts (they fail under CI=true
#    when the kit is missing); tests/live is collected (its imports checked) and skipped.
# 3. The live A1111 of ../shared/hosts/live-a1111: built in $FLEXDIFFUSE_LIVE_DIR (default
#    ~/.cache/flexdiffuse/live-a1111; a cold build takes about 3 minutes and 13 GB, later runs
#    reuse it), started with this checkout as its extension on a free port of 127.0.0.1, then
#    pytest tests/live against it, and the server is stopped again whatever happens. Runs that
#    share the folder take turns (a lock file beside it).
# 4. The same with ../shared/hosts/live-forge (WebUI Forge main, the Forge 2 backend) in
#    $FLEXDIFFUSE_LIVE_FORGE_DIR (default ~/.cache/flexdiffuse/live-forge; a cold build takes
#    2.5 to 7 minutes and 13 GB), after the A1111 server stopped; FLEXDIFFUSE_LIVE_FORGE=0
#    skips it.
# 5. The same with ../shared/hosts/live-comfyui (ComfyUI v0.33.0, the node pack) in
#    $FLEXDIFFUSE_LIVE_COMFYUI_DIR (default ~/.cache/flexdiffuse/live-comfyui; its models are
#    hard links to the live A1111's), running tests/live_comfy; FLEXDIFFUSE_LIVE_COMFYUI=0 skips it.
#
# Every test step runs even when an earlier one failed; the exit status is 0 only when all passed.
# shellcheck disable=SC2317  # functions called through `timed` and traps look unreachable
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT="$(pwd -P)"
KIT="$(cd "$ROOT/.." && pwd)/shared/hosts"
LIVE_DIR="${FLEXDIFFUSE_LIVE_DIR:-$HOME/.cache/flexdiffuse/live-a1111}"
FORGE_DIR="${FLEXDIFFUSE_LIVE_FORGE_DIR:-$HOME/.cache/flexdiffuse/live-forge}"
LIVE="${FLEXDIFFUSE_LIVE:-1}" OFFLINE=1
for arg in "$@"; do
    case "$arg" in
        --no-live) LIVE=0 ;;
        --live-only) OFFLINE=0 ;;
        -h|--help) sed -n '2,27s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "tests/ci.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done
if (( ! OFFLINE )) && [[ "$LIVE" == 0 ]]; then
    echo "tests/ci.sh: --live-only and --no-live (FLEXDIFFUSE_LIVE=0) leave nothing to run" >&2
    exit 2
fi

say() { printf '[ci] %s\n' "$*"; }
FAILED=() TIMES=() START_ALL="$(date +%s)"
timed() {  # timed LABEL CMD...: run CMD, record its time and whether it failed
    local label="$1" start rc
    shift
    say "$label: $*"
    start="$(date +%s)"
    "$@"
    rc=$?
    TIMES+=("$label $(( $(date +%s) - start )) s")
    if (( rc != 0 )); then
        FAILED+=("$label (exit $rc)")
        say "$label FAILED (exit $rc)"
    fi
    return "$rc"
}
joined() { local out="" item; for item in "$@"; do out+="${out:+, }$item"; done; echo "$out"; }
finish() {
    say "times: $(joined "${TIMES[@]}"); total $(( $(date +%s) - START_ALL )) s"
    if (( ${#FAILED[@]} )); then
        say "FAILED: $(joined "${FAILED[@]}")"
        exit 1
    fi
    say "all passed"
    exit 0
}
pytest_checked() {  # pytest, where "no tests collected" (exit 5) is a failure with a message
    .venv/bin/python -m pytest "$@"
    local rc=$?
    (( rc == 5 )) && say "pytest collected no tests: that is a failure here"
    return "$rc"
}

# ------------------------------------------------------------------ 1. environment and lint
if [[ ! -x .venv/bin/python ]]; then
    timed venv python3 -m venv .venv || finish
fi
timed pip .venv/bin/pip install -q -r requirements-test.txt || finish
if (( OFFLINE )); then
    timed ruff-check .venv/bin/ruff check .
    timed ruff-format .venv/bin/ruff format --check .
fi

# ------------------------------------------------------------------ 2. offline suite
if (( OFFLINE )); then
    timed pytest pytest_checked  # tests/live is collected (imports checked) and skipped here
fi

# ------------------------------------------------------------------ 3. live suites
if [[ "$LIVE" == 0 ]]; then
    say "live part skipped (--no-live or FLEXDIFFUSE_LIVE=0): tests/live did not run"
    finish
fi

live_suite() {  # live_suite NAME SCRIPT DIR GIB [TESTS]: build, start (GIB: memory it needs),
    # run TESTS (default tests/live), stop; 1 when it failed
    local name="$1" HOST="$2" LIVE_DIR="$3" need_gib="$4" tests="${5:-tests/live}"
    if [[ ! -x "$HOST" ]]; then
        FAILED+=("live $name (no $HOST)")
        say "cannot build the live $name: no host kit at $KIT (the project's shared folder belongs"
        say "beside the checkout). Run 'bash tests/ci.sh --no-live' to skip the live part."
        return 1
    fi
    mkdir -p "$(dirname "$LIVE_DIR")" 2>/dev/null
    # Without flock or a writable lock file, runs do not take turns (the host scripts still
    # refuse to build under a running server or to start a second one).
    if command -v flock >/dev/null && { exec 9>"${LIVE_DIR%/}.lock"; } 2>/dev/null; then
        if ! flock -n 9; then
            say "another run is using $LIVE_DIR: waiting for it (at most 30 minutes)"
            flock -w 1800 9 || { FAILED+=("live $name (folder busy)"); say "gave up waiting for $LIVE_DIR"; return 1; }
        fi
    fi
    server_line() { "$HOST" status "$LIVE_DIR" 2>/dev/null | sed -n "s/^$1: *//p"; }
    if [[ "$(server_line server)" == running* ]]; then
        if [[ "$(server_line extension)" == "$ROOT" ]]; then
            say "a server of $LIVE_DIR left by an earlier run of this checkout is running: stopping it"
            "$HOST" stop "$LIVE_DIR"
        else
            FAILED+=("live $name (folder in use)")
            say "a server of $LIVE_DIR is running with another extension ($(server_line extension))."
            say "Stop it ($HOST stop $LIVE_DIR) or give this run its own folder."
            return 1
        fi
    fi
    if ! timed "live-$name-build" "$HOST" build "$LIVE_DIR"; then
        say "could not build the live $name in $LIVE_DIR; its logs are in $LIVE_DIR/logs/"
        return 1
    fi
    local free_gib
    free_gib="$(awk '/^MemAvailable:/ {printf "%d", $2 / 1048576}' /proc/meminfo)"
    if (( free_gib < need_gib )); then
        say "warning: $free_gib GiB of memory free; the live $name needs about $need_gib GiB"
    fi
    STARTED=1 START_LOG="$(mktemp)" STOP_HOST="$HOST" STOP_DIR="$LIVE_DIR" STOP_NAME="$name"
    PORT="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # 9>&-: the server must not inherit the lock, or a server left behind would hold it.
    start_server() { "$HOST" start "$LIVE_DIR" --extension "$ROOT" --port "$PORT" 9>&- | tee "$START_LOG"; }
    if ! timed "live-$name-start" start_server; then
        say "the live $name did not start; its log: $LIVE_DIR/server.log"
        tail -n 30 "$LIVE_DIR/server.log" 2>/dev/null | sed 's/^/    /'
        stop_server
        return 1
    fi
    # `start` prints the suite's options (URL, towers, the checkpoints built) on its "live tests:" line.
    local live_args
    read -r -a live_args <<<"$(sed -n 's/^live tests: .* tests\/live //p' "$START_LOG")"
    if [[ "$tests" == tests/live_comfy ]]; then
        live_args=(--comfyui-url "http://127.0.0.1:$PORT" --comfyui-dir "$LIVE_DIR")
    elif (( ${#live_args[@]} == 0 )); then
        live_args=(--webui-url "http://127.0.0.1:$PORT" --webui-vit-l "$LIVE_DIR/towers/vit-l")
    fi
    timed "live-$name-tests" pytest_checked "$tests" "${live_args[@]}"
    stop_server
    exec 9>&-  # the folder's lock
}

STARTED=0 START_LOG="" STOP_HOST="" STOP_DIR="" STOP_NAME=""
stop_server() {
    if (( STARTED )); then
        STARTED=0
        timed "live-$STOP_NAME-stop" "$STOP_HOST" stop "$STOP_DIR"
    fi
    [[ -n "$START_LOG" ]] && rm -f "$START_LOG"
    START_LOG=""
}
trap 'stop_server' EXIT
trap 'say "interrupted"; exit 130' INT TERM

# One server at a time: A1111, then WebUI Forge (the Forge 2 backend of Forge Neo and
# ersatzForge too; FLEXDIFFUSE_LIVE_FORGE=0 skips it).
live_suite a1111 "$KIT/live-a1111" "$LIVE_DIR" 7
if [[ "${FLEXDIFFUSE_LIVE_FORGE:-1}" != 0 ]]; then
    live_suite forge "$KIT/live-forge" "$FORGE_DIR" 9
else
    say "live Forge skipped (FLEXDIFFUSE_LIVE_FORGE=0)"
fi
# ---- ComfyUI (the node pack): its models are the live A1111's, hard-linked by live-comfyui.
if [[ "${FLEXDIFFUSE_LIVE_COMFYUI:-1}" != 0 ]]; then
    if [[ -z "${FLEXDIFFUSE_LIVE_COMFYUI_MODELS_FROM:-}" && -e "$LIVE_DIR/checkpoints/rand-sd15.safetensors" ]]; then
        export FLEXDIFFUSE_LIVE_COMFYUI_MODELS_FROM="$LIVE_DIR"  # else live-comfyui builds its own
    fi
    live_suite comfyui "$KIT/live-comfyui" \
        "${FLEXDIFFUSE_LIVE_COMFYUI_DIR:-$HOME/.cache/flexdiffuse/live-comfyui}" 9 tests/live_comfy
else
    say "live ComfyUI skipped (FLEXDIFFUSE_LIVE_COMFYUI=0)"
fi
# ---- end ComfyUI
finish
