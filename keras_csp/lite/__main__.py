"""`python -m keras_csp.lite predict|evaluate ...`: the same commands as `keras-csp`.

An entry point (the top layer): the commands live in `keras_csp.lite.cli`, which needs only the
runtime.
"""

import sys

from keras_csp.lite import cli


def main(argv=None):
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
