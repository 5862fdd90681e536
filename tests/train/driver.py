"""Runs `keras-csp train` in a subprocess for the tests, with two test-only hooks.

    python tests/train/driver.py [--hang-at EPOCH:STEP MARKER] [--dump-weights FILE] -- <train flags>

`--hang-at`: after that step (0-based epoch, 1-based step), write MARKER and sleep, so the test can
SIGKILL the process at a known point mid-epoch. `--dump-weights`: save the trained model's weights
(npz) at the end, from every worker. The training itself is exactly `keras-csp train`'s.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv):
    hooks, train_args = argv, []
    if "--" in argv:
        cut = argv.index("--")
        hooks, train_args = argv[:cut], argv[cut + 1 :]
    hp = argparse.ArgumentParser()
    hp.add_argument("--hang-at", nargs=2, default=None)
    hp.add_argument("--dump-weights", default=None)
    hooks = hp.parse_args(hooks)

    from keras_csp.train.cli import add_parser, config_from_args

    parser = argparse.ArgumentParser(prog="keras-csp")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", *train_args])
    try:
        cfg = config_from_args(args)
        callbacks = []
        if hooks.hang_at:
            import keras

            epoch, step = (int(v) for v in hooks.hang_at[0].split(":"))
            marker = hooks.hang_at[1]

            class Hang(keras.callbacks.Callback):
                def on_epoch_begin(self, e, logs=None):
                    self.epoch = e

                def on_train_batch_end(self, s, logs=None):
                    if self.epoch == epoch and s + 1 == step:
                        with open(marker, "w") as f:
                            f.write(f"{epoch}:{step}\n")
                        while True:
                            time.sleep(1)

            callbacks.append(Hang())
        from keras_csp.train.loop import train

        result = train(cfg.task, cfg, callbacks=callbacks)
    except ValueError as e:
        print(f"keras-csp: error: {e}", file=sys.stderr)
        return 2
    if hooks.dump_weights:
        import numpy as np

        np.savez(hooks.dump_weights, *result.model.get_weights())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
