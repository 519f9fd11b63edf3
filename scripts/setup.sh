#!/usr/bin/env bash
# Fresh-machine install: Debian packages (apt-get; sudo when not root), then npm, then the Jupyter kernel.
# Idempotent: installed packages are skipped, and rerunning only re-checks.
set -euo pipefail
cd "$(dirname "$0")/.."
# libdnnl-dev: oneDNN for the native CPU backend. python3-torch: the independent reference
# (tests/pytorch-reference.test.ts) and the speed yardstick of `npm run bench`; the library never uses it.
# jupyter-*, python3-nbclient, python3-ipykernel: Jupyter Notebook 6.4 + nbconvert 6.5, which run the
# tslab notebooks (npm start, npm run jupyter). chromium: prints the HTML report to PDF.
# fonts-dejavu-core: the font of the charts (SVG and PNG). poppler-utils: pdftoppm, with which the
# tests render the report PDF's pages to check that they show the charts. slurmctld, slurmd,
# slurm-client, munge: a single-node Slurm cluster (scripts/slurm-local.sh) on which the tests run a
# sweep (npm run sweep -- --slurm); the library only calls sbatch/squeue when asked to.
APT_PACKAGES=(libdnnl-dev python3-torch
  jupyter-notebook jupyter-nbconvert python3-nbclient python3-ipykernel jupyter-client
  chromium fonts-dejavu-core poppler-utils
  slurmctld slurmd slurm-client munge)
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "setup: not root and no sudo: install these Debian packages yourself, then rerun: ${missing[*]}"
        missing=()
      fi
    fi
    if [ ${#missing[@]} -gt 0 ]; then
      echo "setup: installing Debian packages: ${missing[*]}"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
  fi
else
  echo "setup: apt-get not found; install yourself (see environment.md): oneDNN (else the wasm backend is used)," \
    "Jupyter Notebook + nbconvert with python3 (for the notebooks and npm start), Chromium (for the PDF report)"
fi
npm install --no-audit --no-fund
# Registers the tslab kernel in <repo>/.jupyter (git-ignored); prints why and goes on when Jupyter is missing.
npm run -s setup:jupyter
