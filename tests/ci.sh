#!/usr/bin/env bash
# The project's one test command (README.md, "Development"; .ci/run runs exactly it):
#
#   bash tests/ci.sh              lint, the offline suite, then the live suites against real
#                                 A1111, Forge Neo, Forge Classic, WebUI Forge, reForge
#                                 and ComfyUI
#   bash tests/ci.sh --no-live    fast local mode: the same without the live part
#                                 (FLEXDIFFUSE_LIVE=0 does the same)
#   bash tests/ci.sh --live-only  the venv, then only the live part (to work on tests/live)
#
# 1. .venv (created when missing) with requirements-test.txt (pinned); ruff check; ruff format --check;
#    `comfy node validate` (comfy-cli, pinned in tests/requirements-comfy-cli.txt, in its own
#    venv build/comfy-cli-venv; no network once installed, telemetry off).
# 2. pytest: the engine, the glue in the fake hosts, and the fakes' signatures against the
#    hosts' sources unpacked from ../shared/hosts (they fail under CI=true when the kit is
#    missing); tests/live is collected (its imports checked) and skipped.
# 3. The live hosts of ../shared/hosts, one server at a time, each started with this checkout
#    as its extension on a free port of 127.0.0.1 and stopped again whatever happens:
#      a1111    live-a1111 --sdxl, built first (the others hard-link its models and torch)
#      neo      live-neo      (Forge Neo: the Forge 2 backend, gradio 4)
#      classic  live-classic  (Forge Classic: old Forge, ldm_patched)
#      forge    live-forge    (WebUI Forge main: Forge 2)
#      reforge  live-reforge  (reForge: old Forge)
#      comfyui  live-comfyui  (ComfyUI v0.33.0 and the node pack: tests/live_comfy; its models,
#               SDXL and ViT-bigG included, are hard links to the a1111 folder's when that is
#               built; tests/live_comfy/comfy_nodes/kit_models lets it load the shallow SDXL
#               and ViT-bigG; a random ViT-H/14 is built into it once; ComfyUI_IPAdapter_plus
#               from the kit and random IP-Adapter files beside it)
#    Each webui runs tests/live with SD 1.5 loaded; all but forge then start again
#    with the SDXL checkpoint for the tests marked `sdxl` or `every_family`
#    (FLEXDIFFUSE_LIVE_PASSES, default "sd15 sdxl", picks passes). Hosts named in
#    FLEXDIFFUSE_LIVE_SMOKE (default none) run only the `smoke` subset, SD 1.5 only.
#    Folders: $FLEXDIFFUSE_LIVE_ROOT/live-<host> (default ~/.cache/flexdiffuse), or
#    FLEXDIFFUSE_LIVE_DIR (a1111) and FLEXDIFFUSE_LIVE_<HOST>_DIR; a folder that is built is
#    reused (a build takes seconds then). FLEXDIFFUSE_LIVE_HOSTS (default all six, in that
#    order) picks hosts; FLEXDIFFUSE_LIVE_FORGE=0 drops forge, FLEXDIFFUSE_LIVE_COMFYUI=0
#    comfyui. A build that the disk cannot hold is refused before it starts. Cold and warm
#    times and disk per step: docs/development.md.
#
# Every test step runs even when an earlier one failed; the exit status is 0 only when all passed.
# shellcheck disable=SC2317  # functions called through `timed` and traps look unreachable
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT="$(pwd -P)"
KIT="$(cd "$ROOT/.." && pwd)/shared/hosts"
LIVE_ROOT="${FLEXDIFFUSE_LIVE_ROOT:-$HOME/.cache/flexdiffuse}"
LIVE="${FLEXDIFFUSE_LIVE:-1}" OFFLINE=1
for arg in "$@"; do
    case "$arg" in
        --no-live) LIVE=0 ;;
        --live-only) OFFLINE=0 ;;
        -h|--help) sed -n '2,37s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "tests/ci.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done
if (( ! OFFLINE )) && [[ "$LIVE" == 0 ]]; then
    echo "tests/ci.sh: --live-only and --no-live (FLEXDIFFUSE_LIVE=0) leave nothing to run" >&2
    exit 2
fi

say() { printf '[ci] %s\n' "$*"; }
FAILED=() TIMES=() PEAKS=() START_ALL="$(date +%s)"
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
    (( ${#PEAKS[@]} )) && say "servers' peak memory: $(joined "${PEAKS[@]}")"
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
comfy_validate() {  # the Comfy Registry's publishing checks; its warnings fail here
    local venv=build/comfy-cli-venv home out rc
    if [[ ! -x "$venv/bin/comfy" ]]; then
        python3 -m venv "$venv" && "$venv/bin/pip" install -q -r tests/requirements-comfy-cli.txt \
            || { rm -rf "$venv"; return 1; }
    fi
    # A fresh HOME and DO_NOT_TRACK: no config written, no consent prompt, nothing sent.
    home="$(mktemp -d)"
    out="$(HOME="$home" DO_NOT_TRACK=1 "$venv/bin/comfy" --skip-prompt node validate 2>&1)"
    rc=$?
    rm -rf "$home"
    printf '%s\n' "$out"
    (( rc == 0 )) || return "$rc"
    if grep -qiE 'warning|error' <<<"$out"; then
        say "comfy node validate warned: pyproject.toml's [project] or [tool.comfy] needs fixing"
        return 1
    fi
}

if (( OFFLINE )); then
    timed ruff-check .venv/bin/ruff check .
    timed ruff-format .venv/bin/ruff format --check .
    timed comfy-validate comfy_validate
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

host_dir() {  # host_dir HOST: its folder
    local var="FLEXDIFFUSE_LIVE_${1^^}_DIR"
    [[ "$1" == a1111 ]] && var=FLEXDIFFUSE_LIVE_DIR
    echo "${!var:-$LIVE_ROOT/live-$1}"
}

disk_needed_gb() {  # disk_needed_gb HOST DIR: GB a build of HOST in DIR still writes
    # From the kit's measured sizes (docs/development.md), by what `status` says is built.
    local status need=0
    status="$("$KIT/live-$1" status "$2" 2>/dev/null)"
    has() { grep -q -E "$1" <<<"$status"; }
    if [[ "$1" == a1111 ]]; then
        has '^built: +venv' || need=$(( need + 7 ))
        has '^built: +clip' || need=$(( need + 2 ))
        has '^built: +sd15' || need=$(( need + 4 ))
        has '^built: +sdxl' || need=$(( need + 9 ))
    elif [[ "$1" == comfyui ]]; then  # its own torch; models linked from the a1111 folder
        has '^built: +venv' || need=$(( need + 7 ))
        has '^built: +sd15' || need=$(( need + 6 ))
        [[ -f "$2/comfyui/models/clip_vision/rand-clip-vit-h-14.safetensors" ]] || need=$(( need + 2 ))
    else  # models and torch hard-linked from the a1111 folder
        has '^built: +venv' || need=$(( need + 3 ))
    fi
    echo "$need"
}

build_host() {  # build_host HOST DIR BUILD-ARGS...: build (or complete) HOST in DIR; 1 when it failed
    local name="$1" dir="$2" need free
    shift 2
    need="$(disk_needed_gb "$name" "$dir")"
    if (( need > 0 )); then
        mkdir -p "$dir" 2>/dev/null
        free="$(df -P -B1G "$dir" 2>/dev/null | awk 'NR == 2 {print $4}')"
        if [[ -n "$free" ]] && (( free < need + 2 )); then
            FAILED+=("live-$name-build (disk)")
            say "not building the live $name in $dir: it needs about $need GB of disk (and 2 GB to"
            say "spare), the disk there has $free GB free. Free some disk, point"
            say "FLEXDIFFUSE_LIVE_ROOT (or $( [[ $name == a1111 ]] && echo FLEXDIFFUSE_LIVE_DIR || echo "FLEXDIFFUSE_LIVE_${name^^}_DIR")) at a disk with room, or leave"
            say "the host out (FLEXDIFFUSE_LIVE_HOSTS)."
            return 1
        fi
    fi
    if ! timed "live-$name-build" "$KIT/live-$name" build "$dir" "$@"; then
        say "could not build the live $name in $dir; its logs are in $dir/logs/"
        return 1
    fi
}

wait_for_memory() {  # wait_for_memory GIB: until GIB are free (a shared machine), at most 10 min
    local need="$1" free waited=0
    while :; do
        free="$(awk '/^MemAvailable:/ {printf "%d", $2 / 1048576}' /proc/meminfo)"
        (( free >= need )) && return 0
        if (( waited >= ${FLEXDIFFUSE_LIVE_MEMORY_WAIT:-600} )); then
            say "warning: $free GiB of memory free after ${waited} s; the server needs about $need GiB"
            return 0
        fi
        (( waited == 0 )) && say "$free GiB of memory free, the server needs about $need GiB: waiting"
        sleep 10
        waited=$(( waited + 10 ))
    done
}

live_suite() {  # live_suite NAME HOST DIR GIB CHECKPOINT TESTS [PYTEST ARGS...]: start HOST's
    # server (GIB: the memory it needs; CHECKPOINT: its --checkpoint, "" for the default), run
    # pytest TESTS with the options its `start` printed and PYTEST ARGS, stop; 1 when it failed
    local name="$1" script="$KIT/live-$2" dir="$3" need_gib="$4" checkpoint="$5" tests="$6"
    shift 6
    # Without flock or a writable lock file, runs do not take turns (the host scripts still
    # refuse to build under a running server or to start a second one).
    if command -v flock >/dev/null && { exec 9>"${dir%/}.lock"; } 2>/dev/null; then
        if ! flock -n 9; then
            say "another run is using $dir: waiting for it (at most 30 minutes)"
            flock -w 1800 9 || { FAILED+=("live $name (folder busy)"); say "gave up waiting for $dir"; return 1; }
        fi
    fi
    server_line() { "$script" status "$dir" 2>/dev/null | sed -n "s/^$1: *//p"; }
    if [[ "$(server_line server)" == running* ]]; then
        if [[ "$(server_line extension)" == "$ROOT" ]]; then
            say "a server of $dir left by an earlier run of this checkout is running: stopping it"
            "$script" stop "$dir"
        else
            FAILED+=("live $name (folder in use)")
            say "a server of $dir is running with another extension ($(server_line extension))."
            say "Stop it ($script stop $dir) or give this run its own folder."
            return 1
        fi
    fi
    wait_for_memory "$need_gib"
    STARTED=1 START_LOG="$(mktemp)" STOP_HOST="$script" STOP_DIR="$dir" STOP_NAME="$name"
    PORT="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    local start_args=(--extension "$ROOT" --port "$PORT")
    [[ -n "$checkpoint" ]] && start_args+=(--checkpoint "$checkpoint")
    start_args+=("${SERVER_ARGS[@]}")  # the caller's extra `start` arguments, if any
    # 9>&-: the server must not inherit the lock, or a server left behind would hold it.
    start_server() { "$script" start "$dir" "${start_args[@]}" 9>&- | tee "$START_LOG"; }
    if ! timed "live-$name-start" start_server; then
        say "the live $name did not start; its log: $dir/server.log"
        tail -n 30 "$dir/server.log" 2>/dev/null | sed 's/^/    /'
        stop_server
        exec 9>&-
        return 1
    fi
    # A webui's `start` prints the suite's options (URL, towers, the checkpoints built) on its
    # "live tests:" line. PYTEST ARGS may name the server as {url} and its folder as {dir}
    # (a host whose `start` prints no such line, e.g. ComfyUI: --comfyui-url {url}).
    local live_args=() extra=() arg
    read -r -a live_args <<<"$(sed -n 's/^live tests: .* tests\/live //p' "$START_LOG")"
    for arg in "$@"; do
        arg="${arg//\{url\}/http://127.0.0.1:$PORT}"
        extra+=("${arg//\{dir\}/$dir}")
    done
    if (( ${#live_args[@]} == 0 )) && [[ "$*" != *"{url}"* ]]; then
        live_args=(--webui-url "http://127.0.0.1:$PORT" --webui-vit-l "$dir/towers/vit-l")
    fi
    timed "live-$name-tests" pytest_checked "$tests" "${live_args[@]}" "${extra[@]}"
    stop_server
    exec 9>&-  # the folder's lock
}

STARTED=0 START_LOG="" STOP_HOST="" STOP_DIR="" STOP_NAME="" SERVER_ARGS=()
stop_server() {
    if (( STARTED )); then
        STARTED=0
        local pid peak
        pid="$(cat "$STOP_DIR/server.pid" 2>/dev/null)"
        peak="$(awk '/^VmHWM:/ {printf "%.1f GiB", $2 / 1048576}' "/proc/${pid:-0}/status" 2>/dev/null)"
        [[ -n "$peak" ]] && PEAKS+=("$STOP_NAME $peak")
        timed "live-$STOP_NAME-stop" "$STOP_HOST" stop "$STOP_DIR"
    fi
    [[ -n "$START_LOG" ]] && rm -f "$START_LOG"
    START_LOG=""
}
trap 'stop_server' EXIT
trap 'say "interrupted"; exit 130' INT TERM

webui_host() {  # webui_host HOST GIB SDXL-GIB: build, then the suite with SD 1.5 (and SDXL)
    local name="$1" dir
    dir="$(host_dir "$name")"
    if [[ ! -x "$KIT/live-$name" ]]; then
        FAILED+=("live $name (no $KIT/live-$name)")
        say "cannot build the live $name: no host kit at $KIT (the project's shared folder belongs"
        say "beside the checkout). Run 'bash tests/ci.sh --no-live' to skip the live part."
        return 1
    fi
    if [[ "$name" == a1111 ]]; then
        build_host a1111 "$dir" --sdxl || return 1
    else
        build_host "$name" "$dir" --share-from "$(host_dir a1111)" || return 1
    fi
    if [[ " ${FLEXDIFFUSE_LIVE_SMOKE-} " == *" $name "* ]]; then
        live_suite "$name" "$name" "$dir" "$2" "" tests/live -m "smoke and not sdxl"
        return
    fi
    # Forge's built-in IP-Adapter beside FlexDiffuse (tests/live/test_ipadapter_live.py): on
    # one Forge 2 host, Neo, as the slow checks run on one host per backend.
    [[ "$name" == neo ]] && timed "live-$name-ipadapter" forge_ipadapter_setup "$dir"
    local passes="${FLEXDIFFUSE_LIVE_PASSES:-sd15 sdxl}"
    if [[ " $passes " == *" sd15 "* ]]; then
        live_suite "$name" "$name" "$dir" "$2" "" tests/live -m "not sdxl"
    fi
    if [[ " $passes " == *" sdxl "* && -n "$3" && -f "$dir/checkpoints/rand-sdxl.safetensors" ]]; then
        live_suite "$name-sdxl" "$name" "$dir" "$3" rand-sdxl.safetensors tests/live \
            -m "sdxl or every_family"
    fi
}

forge_ipadapter_setup() {  # forge_ipadapter_setup DIR: random IP-Adapter SD 1.5 and ViT-H/14
    # files (DIR/ipadapter-models, built once) where Forge's built-in IP-Adapter looks for them:
    # any models/ControlNet file, and the image encoder by its one name in ControlNetPreprocessor
    local models="$1/webui/models" built="$1/ipadapter-models"
    .venv/bin/python -m tests.live_comfy.random_ipadapter "$built" --vit-h || return 1
    mkdir -p "$models/ControlNet" "$models/ControlNetPreprocessor" &&
        { [[ -e "$models/ControlNet/rand-ip-adapter_sd15.safetensors" ]] ||
            ln "$built/ipadapter/rand-ip-adapter_sd15.safetensors" "$models/ControlNet/"; } &&
        { [[ -e "$models/ControlNetPreprocessor/CLIP-ViT-H-14.safetensors" ]] ||
            ln "$built/clip_vision/rand-CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors" \
                "$models/ControlNetPreprocessor/CLIP-ViT-H-14.safetensors"; }
}

ipadapter_setup() {  # ipadapter_setup DIR: ComfyUI_IPAdapter_plus (a test component only) and
    # random IP-Adapter SD 1.5 and ViT-H/14 files in DIR/ipadapter-models (built once, 1.3 GB),
    # linked into its models/, for tests/live_comfy/test_ipadapter_live.py; start keeps both
    # The ViT-H is the one the step before built (the same seeded build_vit_h), hard-linked.
    local vit_h="$1/comfyui/models/clip_vision/rand-clip-vit-h-14.safetensors"
    local ours="$1/ipadapter-models/clip_vision/rand-CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
    mkdir -p "${ours%/*}" && { [[ -e "$ours" || ! -f "$vit_h" ]] || ln "$vit_h" "$ours"; } &&
        "$KIT/unpack" ipadapter-plus-9d076a3 "$1/comfyui/custom_nodes/ComfyUI_IPAdapter_plus" &&
        .venv/bin/python -m tests.live_comfy.random_ipadapter "$1/ipadapter-models" --vit-h \
            --link "$1/comfyui/models"
}

comfyui_host() {  # the node pack in a real ComfyUI: build, tests/live_comfy
    local dir from=()
    dir="$(host_dir comfyui)"
    if [[ ! -x "$KIT/live-comfyui" ]]; then
        FAILED+=("live comfyui (no $KIT/live-comfyui)")
        say "cannot build the live ComfyUI: no host kit at $KIT. Run 'bash tests/ci.sh --no-live'."
        return 1
    fi
    [[ -e "$(host_dir a1111)/checkpoints/rand-sd15.safetensors" ]] &&
        from=(--models-from "$(host_dir a1111)")  # else live-comfyui builds its own models
    build_host comfyui "$dir" "${from[@]}" || return 1
    local models="$dir/comfyui/models" a1111 gib=9 options=(--comfyui-url {url} --comfyui-dir {dir})
    a1111="$(host_dir a1111)"
    # The a1111 folder's SDXL and ViT-bigG tower, hard-linked as --models-from links SD 1.5
    # (a name already there is kept); tests/live_comfy/comfy_nodes/kit_models lets ComfyUI
    # load these shallow test models.
    if [[ -f "$a1111/checkpoints/rand-sdxl.safetensors" && -f "$a1111/towers/vit-bigg.safetensors" ]] &&
        { [[ -e "$models/checkpoints/rand-sdxl.safetensors" ]] ||
            ln "$a1111/checkpoints/rand-sdxl.safetensors" "$models/checkpoints/"; } &&
        { [[ -e "$models/clip_vision/rand-clip-vit-bigg-14.safetensors" ]] ||
            ln "$a1111/towers/vit-bigg.safetensors" "$models/clip_vision/rand-clip-vit-bigg-14.safetensors"; }; then
        options+=(--comfyui-sdxl-checkpoint rand-sdxl.safetensors --comfyui-vit-bigg rand-clip-vit-bigg-14.safetensors)
        gib=18  # the server's peak while it loads SDXL after SD 1.5 (14.7 to 15.4 GiB measured) and 3
    fi
    # A random full-depth ViT-H/14 for ComfyUI's own loader (built once, 1.2 GB, about 30 s).
    timed live-comfyui-vit-h .venv/bin/python -m tests.live_comfy.random_towers "$models/clip_vision" &&
        options+=(--comfyui-vit-h rand-clip-vit-h-14.safetensors)
    local SERVER_ARGS=(-- --extra-model-paths-config "$ROOT/tests/live_comfy/extra_model_paths.yaml")
    timed live-comfyui-ipadapter ipadapter_setup "$dir"
    live_suite comfyui comfyui "$dir" "$gib" "" tests/live_comfy "${options[@]}"
}

# One server at a time, A1111 first (the others share its models). The GiB are each server's
# peak with this suite plus 3 to spare (tests/live/README.md).
HOSTS="${FLEXDIFFUSE_LIVE_HOSTS:-a1111 neo classic forge reforge comfyui}"
for host in $HOSTS; do
    [[ "$host" == forge && "${FLEXDIFFUSE_LIVE_FORGE:-1}" == 0 ]] && continue
    [[ "$host" == comfyui && "${FLEXDIFFUSE_LIVE_COMFYUI:-1}" == 0 ]] && continue
    case "$host" in
        a1111) webui_host a1111 9 16 ;;
        neo) webui_host neo 11 17 ;;
        classic) webui_host classic 10 16 ;;
        forge) webui_host forge 11 "" ;;
        reforge) webui_host reforge 10 16 ;;
        comfyui) comfyui_host ;;
        *) FAILED+=("live $host (unknown host)"); say "FLEXDIFFUSE_LIVE_HOSTS: no host '$host'" ;;
    esac
done
finish
