"""Full-integer int8 against float, on trained models: top-1 agreement and XNNPACK coverage.

    python benchmarks/int8_agreement.py                                  # cspresnext50, cspdarknet53
    python benchmarks/int8_agreement.py --models resnext50 darknet53 --epochs 4 --json out.json

Run by hand, never in CI. Int8 agreement needs a network whose logits separate the classes: with
random weights nearly every input ties, so the agreement says nothing (see benchmarks/README.md).
The ImageNet checkpoints cannot be fetched here, so each model is trained from scratch on
`keras_csp.data.synthetic_shapes` (six classes, 64x64 by default) with the package's trainer, then
exported with `keras_csp.export.tflite(quantize="int8")`, calibrated on training images, and both
run on the same held-out validation images: the Keras model in TensorFlow, the `.tflite` file with
`keras_csp.lite` (XNNPACK, 2 threads). Reported per model: validation top-1 of each, the share of
images whose top-1 class is the same in both (the issue's >= 99%), the largest probability
difference, and the ops XNNPACK leaves to the interpreter (none expected).
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_MODELS = ("cspresnext50", "cspdarknet53")


def measure(name, data, args, workdir):
    import numpy as np

    from keras_csp import export, lite
    from keras_csp.data.core import normalize_images
    from keras_csp.train.loop import fit_classifier

    start = time.time()
    result = fit_classifier(
        data=data, model=name, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_epochs=0.5, optimizer="sgd", seed=0,
        augment="none", output_dir=os.path.join(workdir, name), overwrite=True, verbose=2,
    )
    train_s = time.time() - start
    images, labels = [], []
    for x, y in data.validation.as_dataset(64, shuffle=False):
        images.append(x.numpy())
        labels.append(np.argmax(y.numpy(), axis=-1))
    images, labels = np.concatenate(images), np.concatenate(labels)
    calibration = []
    for x, _ in data.train.as_dataset(64, shuffle=False):
        calibration.extend(x.numpy())
        if len(calibration) >= args.calibration_images:
            break

    model = result.model
    keras_probs = np.asarray(model.predict(normalize_images(images), verbose=0))
    path = os.path.join(workdir, f"{name}_int8.tflite")
    export.tflite(
        model, path, quantize="int8", batch=1, verbose=False,
        representative_data=calibration[: args.calibration_images],
        calibration_steps=args.calibration_images,
    )
    lite_model = lite.LiteModel(path, num_threads=2)
    lite_probs = next(iter(lite_model(images).values()))
    keras_top1, lite_top1 = np.argmax(keras_probs, -1), np.argmax(lite_probs, -1)
    return {
        "model": name,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "train_s": round(train_s, 1),
        "validation_images": int(len(images)),
        "keras_top1": float(np.mean(keras_top1 == labels)),
        "int8_top1": float(np.mean(lite_top1 == labels)),
        "agreement": float(np.mean(keras_top1 == lite_top1)),
        "max_prob_diff": float(np.max(np.abs(lite_probs - keras_probs))),
        "undelegated_ops": lite_model.undelegated_ops(),
        "int8_size_bytes": os.path.getsize(path),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--calibration-images", type=int, default=64)
    parser.add_argument("--workdir", default=None, help="keep runs and .tflite files here")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from keras_csp.data import synthetic_shapes

    data = synthetic_shapes(
        num_train=args.train_size, num_validation=args.val_size, image_size=args.image_size, seed=0
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        for name in args.models:
            print(f"== {name}: training {args.epochs} epoch(s) on {data!r}", flush=True)
            rows.append(measure(name, data, args, workdir))
            print(json.dumps(rows[-1]), flush=True)

    header = (
        f"{'model':<14} {'Keras top-1':>11} {'int8 top-1':>10} {'agreement':>9} "
        f"{'max |dp|':>8}  undelegated"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<14} {r['keras_top1']:>11.4f} {r['int8_top1']:>10.4f} "
            f"{100 * r['agreement']:>8.1f}% {r['max_prob_diff']:>8.4f}  "
            f"{', '.join(r['undelegated_ops']) or 'none'}"
        )
    if args.json:
        from keras_csp.files import write_bytes_atomic

        text = json.dumps({"args": vars(args), "rows": rows}, indent=2)
        write_bytes_atomic(args.json, text.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
