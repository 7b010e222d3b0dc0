#!/bin/sh
# Installs kube-oidc-proxy into a new virtualenv at PREFIX: the runtime dependencies from requirements.lock
# (exact versions, hashes required, wheels only: nothing is compiled), then the project itself.
# The image's build stage runs this (deploy/image/Dockerfile), and tests/deploy/test_image_recipe.py runs it
# into a temporary directory, so the recipe the image uses is tested here without a container engine.
#
#   PYTHON=python3 deploy/image/install.sh /opt/kube-oidc-proxy
set -eu

prefix=${1:?usage: install.sh PREFIX}
python=${PYTHON:-python3}
src=$(cd "$(dirname "$0")/../.." && pwd)

echo "[image] creating a virtualenv at $prefix with $("$python" --version)"
"$python" -m venv "$prefix"
echo "[image] installing the locked runtime dependencies (hashes required, wheels only)"
"$prefix/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
    --require-hashes --only-binary=:all: --no-deps -r "$src/requirements.lock"
echo "[image] installing kube-oidc-proxy from $src"
# Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$src/src" "$src/pyproject.toml" "$src/README.md" "$src/LICENSE" "$src/NOTICE" "$work/"
"$prefix/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check --no-deps "$work"
# The runtime needs neither pip nor setuptools (which Python 3.11's venv adds): less to ship and to scan.
if "$prefix/bin/python" -c "import setuptools" 2>/dev/null; then
    "$prefix/bin/python" -m pip uninstall --quiet --yes setuptools
fi
"$prefix/bin/python" -m pip uninstall --quiet --yes pip
"$prefix/bin/kube-oidc-proxy" --version
