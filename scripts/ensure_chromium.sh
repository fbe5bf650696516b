#!/usr/bin/env bash
# The browser tests (tests/browser/) drive Chromium with Playwright. Playwright cannot
# download its own browsers here, so they use Debian's `chromium` package. This script,
# run by `make test` (target `browser`), installs it with apt-get when it is missing, plus
# fonts so pages and screenshots render Latin and Chinese text (fonts-liberation,
# fonts-wqy-zenhei). Idempotent: nothing happens when all of it is installed.
#
# CHROMIUM_PATH=/path/to/chrome (any Chromium or Chrome) skips all of this; the tests use it.
set -euo pipefail

PACKAGES_HINT="Debian/Ubuntu: apt-get install chromium fonts-liberation fonts-wqy-zenhei"

if [ -n "${CHROMIUM_PATH:-}" ]; then
    if [ -x "$CHROMIUM_PATH" ]; then
        exit 0
    fi
    echo "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file; point it at a Chromium or" \
        "Chrome executable, or unset it to use Debian's chromium ($PACKAGES_HINT)" >&2
    exit 1
fi

have_chromium() { command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; }

need=()
have_chromium || need+=(chromium)
if command -v dpkg-query >/dev/null 2>&1; then
    for font in fonts-liberation fonts-wqy-zenhei; do
        dpkg-query -W -f='${Status}' "$font" 2>/dev/null | grep -q 'ok installed' || need+=("$font")
    done
fi
[ "${#need[@]}" -eq 0 ] && exit 0

# Who may install: root itself, else sudo.
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    as_root=(none)
fi

if ! command -v apt-get >/dev/null 2>&1 || [ "${as_root[*]-}" = none ]; then
    if ! have_chromium; then
        why="no apt-get here"
        command -v apt-get >/dev/null 2>&1 && why="not root and no sudo"
        echo "The browser tests need Chromium, and it cannot be installed automatically" \
            "($why). Install it ($PACKAGES_HINT), or set CHROMIUM_PATH to a Chromium or" \
            "Chrome executable, then run make test again." >&2
        exit 1
    fi
    echo "note: fonts missing for the browser tests' screenshots (${need[*]}); install them" \
        "with apt-get for readable screenshots" >&2
    exit 0
fi

echo "Installing ${need[*]} with apt-get for the browser tests (once)..."
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >"$log" 2>&1; then
    # a fresh machine has no package lists yet (or stale ones): update them, then try again
    if ! { "${as_root[@]}" apt-get update -qq &&
        "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
        >"$log" 2>&1; then
        cat "$log" >&2
        echo "apt-get could not install ${need[*]} (output above). Install it by hand" \
            "($PACKAGES_HINT) or set CHROMIUM_PATH, then run make test again." >&2
        exit 1
    fi
fi
if ! have_chromium; then
    echo "apt-get finished but there is no chromium command; install it by hand" \
        "($PACKAGES_HINT) or set CHROMIUM_PATH." >&2
    exit 1
fi
echo "Installed: $(chromium --version 2>/dev/null || echo chromium)"
