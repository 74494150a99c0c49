#!/usr/bin/env bash
# Fetch the classification datasets into data/ in the layouts mmal's datasets read (needs internet;
# nothing in mmal downloads at run time).
#
#   bash tools/download_data.sh cifar10|cifar100|caltech101|caltech256|all [DATA_DIR=data]
#
#   data/cifar10/cifar-10-batches-py/        CIFAR10     https://www.cs.toronto.edu/~kriz/cifar.html
#   data/cifar100/cifar-100-python/          CIFAR100
#   data/caltech101/101_ObjectCategories/    Caltech101  https://data.caltech.edu/records/mzrjq-6wc02
#   data/caltech256/256_ObjectCategories/    Caltech256  https://data.caltech.edu/records/nyy15-4j048
#
# Each archive is downloaded next to its target, unpacked into a temporary folder and renamed into
# place, so an interrupted run leaves no half-unpacked dataset; an existing dataset is kept.
set -euo pipefail

WHAT="${1:-}"
DATA="${2:-data}"
case "$WHAT" in cifar10|cifar100|caltech101|caltech256|all) ;; *)
  echo "usage: bash tools/download_data.sh cifar10|cifar100|caltech101|caltech256|all [DATA_DIR]" >&2; exit 2;;
esac
command -v wget >/dev/null 2>&1 || command -v curl >/dev/null 2>&1 || {
  echo "download_data.sh: neither wget nor curl is installed; install one of them and rerun." >&2; exit 1; }

fetch() {  # url file
  if command -v wget >/dev/null 2>&1; then wget -c -O "$2" "$1"; else curl -L -C - -o "$2" "$1"; fi
}

get() {  # name url archive inner_folder
  local name=$1 url=$2 archive=$3 inner=$4 dest="$DATA/$1"
  if [ -d "$dest/$inner" ]; then echo "[data] $dest/$inner exists: kept"; return; fi
  mkdir -p "$dest"
  echo "[data] downloading $name from $url"
  fetch "$url" "$dest/$archive.part"
  mv "$dest/$archive.part" "$dest/$archive"
  local tmp
  tmp=$(mktemp -d "$dest/.unpack.XXXXXX")
  case "$archive" in
    *.zip) unzip -q "$dest/$archive" -d "$tmp" ;;
    *) tar -xf "$dest/$archive" -C "$tmp" ;;
  esac
  # caltech-101.zip holds caltech-101/101_ObjectCategories.tar.gz, one more level to unpack.
  if [ -f "$tmp/caltech-101/101_ObjectCategories.tar.gz" ]; then
    tar -xzf "$tmp/caltech-101/101_ObjectCategories.tar.gz" -C "$tmp"
  fi
  local found
  found=$(find "$tmp" -maxdepth 2 -type d -name "$inner" | head -n 1)
  if [ -z "$found" ]; then echo "download_data.sh: $archive has no $inner folder; delete $dest/$archive and retry." >&2; exit 1; fi
  mv "$found" "$dest/$inner"
  rm -rf "$tmp"
  echo "[data] $name ready in $dest/$inner"
}

if [ "$WHAT" = cifar10 ] || [ "$WHAT" = all ]; then
  get cifar10 https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz cifar-10-python.tar.gz cifar-10-batches-py
fi
if [ "$WHAT" = cifar100 ] || [ "$WHAT" = all ]; then
  get cifar100 https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz cifar-100-python.tar.gz cifar-100-python
fi
if [ "$WHAT" = caltech101 ] || [ "$WHAT" = all ]; then
  get caltech101 'https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1' caltech-101.zip \
    101_ObjectCategories
fi
if [ "$WHAT" = caltech256 ] || [ "$WHAT" = all ]; then
  get caltech256 'https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar?download=1' \
    256_ObjectCategories.tar 256_ObjectCategories
fi
