#!/bin/sh
# Redraws the pictures drawn from sources in the repository: docs/architecture.png
# from docs/architecture.dot, with Graphviz's dot (Debian: apt-get install graphviz).
set -eu
cd "$(dirname "$0")/.."
if ! command -v dot >/dev/null 2>&1; then
	echo "diagrams.sh: dot not found; install Graphviz (Debian: apt-get install graphviz)" >&2
	exit 1
fi
dot -Tpng -Gdpi=110 -o docs/architecture.png docs/architecture.dot
echo "docs/architecture.png"
