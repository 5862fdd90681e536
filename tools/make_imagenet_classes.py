#!/usr/bin/env python3
"""Writes keras_csp/assets/imagenet_class_index.json from files that ship inside installed packages.

    python3 tools/make_imagenet_classes.py [--timm-info DIR] [--tfds-labels FILE] [--output FILE]

Nothing is downloaded. The sources are timm's `timm/data/_info/` files (installed in .venv-ref):

* `imagenet_synsets.txt`: the 1000 ImageNet-1k WordNet ids in class-index order (the order of
  every timm/torchvision/Keras ImageNet classifier: sorted synset ids);
* `imagenet_synset_to_lemma.txt`: `<wnid>\\t<lemma>, <lemma>, ...` for every synset.

The output has Keras' `imagenet_class_index.json` format, `{"0": ["n01440764", "tench"], ...}`,
with each class named by its first lemma, spaces replaced by underscores. When
tensorflow-datasets is installed (it is in .venv) its `datasets/imagenet2012/labels.txt` is used
to cross-check the synset order. Runs with any Python 3 (standard library only).
"""

import argparse
import glob
import importlib.util
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(ROOT, "keras_csp", "assets", "imagenet_class_index.json")


def _package_dir(name, venv_globs):
    """The folder of an installed package, found without importing it (timm would import torch)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    for pattern in venv_globs:
        hits = sorted(glob.glob(os.path.join(ROOT, pattern)))
        if hits:
            return hits[-1]
    return None


def find_timm_info():
    timm = _package_dir("timm", [".venv-ref/lib/python3*/site-packages/timm"])
    if timm is None:
        raise SystemExit(
            "timm is not installed here nor in .venv-ref/; pass --timm-info "
            "<site-packages>/timm/data/_info"
        )
    return os.path.join(timm, "data", "_info")


def find_tfds_labels():
    tfds = _package_dir(
        "tensorflow_datasets", [".venv/lib/python3*/site-packages/tensorflow_datasets"]
    )
    if tfds is None:
        return None
    path = os.path.join(tfds, "datasets", "imagenet2012", "labels.txt")
    return path if os.path.isfile(path) else None


def _read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def build_index(timm_info, tfds_labels=None):
    synsets = _read_lines(os.path.join(timm_info, "imagenet_synsets.txt"))
    if len(synsets) != 1000 or len(set(synsets)) != 1000:
        raise SystemExit(f"expected 1000 distinct synsets, found {len(synsets)}")
    if synsets != sorted(synsets):
        raise SystemExit("timm's imagenet_synsets.txt is not in sorted (class index) order")
    if tfds_labels is not None:
        other = _read_lines(tfds_labels)
        if other != synsets:
            raise SystemExit(f"{tfds_labels} disagrees with timm's synset order")
    lemmas = {}
    for line in _read_lines(os.path.join(timm_info, "imagenet_synset_to_lemma.txt")):
        wnid, _, text = line.partition("\t")
        lemmas[wnid] = text
    index = {}
    for i, wnid in enumerate(synsets):
        if wnid not in lemmas:
            raise SystemExit(f"no lemma for {wnid}")
        first = lemmas[wnid].split(",")[0].strip()
        index[str(i)] = [wnid, first.replace(" ", "_")]
    return index


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timm-info", help="timm's data/_info folder (default: found)")
    parser.add_argument("--tfds-labels", help="tensorflow-datasets imagenet2012/labels.txt")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    timm_info = args.timm_info or find_timm_info()
    tfds_labels = args.tfds_labels or find_tfds_labels()
    index = build_index(timm_info, tfds_labels)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(index, f, ensure_ascii=False, separators=(", ", ": "))
        f.write("\n")
    os.replace(tmp, args.output)
    checked = f", order checked against {tfds_labels}" if tfds_labels else ""
    print(f"wrote {args.output}: {len(index)} classes from {timm_info}{checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
