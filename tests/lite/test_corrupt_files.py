"""Damaged `.tflite` files: a clear error or the right answer, never a crash, a kill, or (with the
export's checksum) a silently different answer.

Every file is loaded in a separate worker process with a cap on its address space, so a crash or
a runaway allocation shows up as a failed case instead of taking pytest down; a crashed worker is
replaced and the run goes on.
"""

import json
import os
import select
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_csp import lite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COPIES = 1500
SECONDS = 60  # the fuzz stops after this long (1,500 copies take about 10 s on 2 shared cores)
ADDRESS_SPACE = 4 << 30

WORKER = r"""
import json, resource, sys
import numpy as np
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from keras_csp import lite
image = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3)).astype(np.uint8)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    path = line.strip()
    try:
        model = lite.LiteModel(path, max_memory=1 << 30)
        result = {"ok": model(image)["probabilities"].tolist(), "checked": model.checksum_verified}
    except ValueError as e:
        result = {"error": "ValueError", "message": str(e)}
    except BaseException as e:
        result = {"error": type(e).__name__, "message": str(e)}
    print(json.dumps(result), flush=True)
"""


class Worker:
    def __init__(self, tmp_path):
        self.script = tmp_path / "worker.py"
        self.script.write_text(WORKER)
        self.proc = None

    def _start(self):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), str(ADDRESS_SPACE)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def load(self, path, timeout=30):
        """The worker's answer for one file, or {"error": "crash ..." / "timeout"}."""
        if self.proc is None:
            self._start()
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        if not ready:
            self.proc.kill()
        code = self.proc.wait()
        self.proc = None
        return {"error": "timeout" if not ready else f"crash (exit {code})"}

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def worker(tmp_path):
    w = Worker(tmp_path)
    yield w
    w.close()


def _mutate(data, rng):
    """A damaged copy: random bytes, a 4-byte field set to an extreme value, or a cut."""
    copy = bytearray(data)
    mode = rng.integers(0, 4)
    if mode == 0:  # 1 to 8 bytes anywhere
        for _ in range(rng.integers(1, 9)):
            at = int(rng.integers(0, len(copy)))
            copy[at] = (copy[at] + int(rng.integers(1, 256))) % 256
    elif mode == 1:  # a bit flip in the flatbuffer's tables (after the weights, in this file)
        at = int(rng.integers(len(copy) * 3 // 4, len(copy)))
        copy[at] ^= 1 << int(rng.integers(0, 8))
    elif mode == 2:  # an index, size, shape or offset field made extreme
        at = int(rng.integers(0, len(copy) - 4)) & ~3
        value = int(rng.choice([-1, 0, 0x7FFFFFFF, 0x10000000, 0x100000, 35841]))
        new = value.to_bytes(4, "little", signed=True)
        copy[at : at + 4] = new if bytes(copy[at : at + 4]) != new else b"\x01\x00\x00\x01"
    else:  # cut short
        copy = copy[: int(rng.integers(8, len(copy)))]
    return bytes(copy)


def _classify(answer, reference):
    if "ok" in answer:
        same = np.array_equal(np.asarray(answer["ok"]), np.asarray(reference))
        return "right answer" if same else "WRONG ANSWER"
    if answer["error"] == "ValueError":
        assert answer["message"].startswith("model='"), answer["message"]  # names the file
        assert "allowed:" in answer["message"], answer["message"]
        return "clear error"
    return answer["error"].split(" ")[0] if " " in answer["error"] else "raw " + answer["error"]


def test_fuzzed_copies_of_an_exported_model(artifacts, tmp_path, worker):
    data = artifacts["float"].read_bytes()
    intact = worker.load(artifacts["float"])
    assert intact["checked"] is True, intact  # the export wrote its checksum
    rng = np.random.default_rng(17)
    outcomes, examples = {}, {}
    start = time.time()
    for i in range(COPIES):
        if time.time() - start > SECONDS:
            break
        path = tmp_path / f"copy{i % 4}.tflite"
        path.write_bytes(_mutate(data, rng))
        kind = _classify(worker.load(path), intact["ok"])
        outcomes[kind] = outcomes.get(kind, 0) + 1
        examples.setdefault(kind, i)
    seconds = time.time() - start
    done = sum(outcomes.values())
    print(f"\nfuzz: {done} copies in {seconds:.1f} s: {outcomes}")
    assert done >= min(COPIES, 100), (done, seconds)
    # With the checksum every damaged copy is refused (a right answer would need a change that
    # leaves the file as it was, which _mutate never makes).
    assert outcomes == {"clear error": done}, (outcomes, examples)


def _without_checksum(data):
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    entry = next(m for m in model.metadata if m.name == lite.CHECKSUM_NAME.encode())
    model.metadata.remove(entry)
    assert entry.buffer == len(model.buffers) - 1  # the export appends it last
    model.buffers.pop()
    return flatbuffer_utils.convert_object_to_bytearray(model)


def _patch(data, at, value, size=4):
    copy = bytearray(data)
    copy[at : at + size] = int(value).to_bytes(size, "little", signed=True)
    return bytes(copy)


def test_files_without_checksum_are_checked_before_the_interpreter(artifacts, tmp_path, worker):
    """Damage found by fuzzing a file without checksum, each of which crashed or ran away."""
    data = _without_checksum(artifacts["float"].read_bytes())
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(data)
    answer = worker.load(plain)
    assert answer.get("checked") is False, answer
    assert answer["ok"] == worker.load(artifacts["float"])["ok"]
    root = int.from_bytes(data[:4], "little")
    subgraph = lite._tables(data, root, 2)[0]
    tensors = lite._tables(data, subgraph, 0)
    ops = lite._tables(data, subgraph, 3)
    conv = next(op for op in ops if lite._scalar(data, op, 3, 1) == 1)  # Conv2DOptions
    options = lite._target(data, conv, 4)
    inputs = lite._target(data, ops[0], 1)
    buffers = lite._tables(data, root, 4)
    held = [lite._target(data, buffers[lite._scalar(data, t, 2)], 0) is not None for t in tensors]
    activation = tensors[held.index(False)]
    constant = tensors[held.index(True)]
    cases = {
        # SIGSEGV in LiteRT 2.3 and tflite-runtime 2.14: a -1 input read as a tensor.
        "reads tensor -1 as input 0": _patch(data, inputs + 4, -1),
        "reads tensor 268435456": _patch(data, inputs + 4, 1 << 28),
        # SIGFPE in tflite-runtime 2.14: strides of 0 and 35841, padding 127.
        "stride, dilation or pool size of 0": _patch(
            data, options + lite._slot(data, options, 1), 0),
        "stride, dilation or pool size of 35841": _patch(
            data, options + lite._slot(data, options, 1), 35841),
        "has option 0 = 127": _patch(data, options + lite._slot(data, options, 0), 127, 1),
        "has options of type 73, not 1": _patch(data, conv + lite._slot(data, conv, 3), 73, 1),
        # Shapes: an activation of 2^40 bytes, a constant that its buffer does not hold.
        "more than max_memory=1.0 GiB": _patch(
            data, lite._target(data, activation, 0) + 8, 1 << 24),
        "but its buffer holds": _patch(data, lite._target(data, constant, 0) + 4, 3),
    }
    for expected, damaged in cases.items():
        path = tmp_path / "damaged.tflite"
        path.write_bytes(damaged)
        answer = worker.load(path)
        assert answer.get("error") == "ValueError", (expected, answer)
        assert "is truncated or corrupt" in answer["message"], answer
        assert expected in answer["message"], (expected, answer["message"])


def test_checksum_refuses_any_change_and_a_hidden_entry(artifacts, tmp_path):
    data = artifacts["int8"].read_bytes()
    assert lite.verify_checksum(data) is True
    at = lite.checksum_position(data)
    for where in (100, len(data) // 2, at, at + 31, len(data) - 20):
        changed = bytearray(data)
        changed[where] ^= 0x10
        with pytest.raises(ValueError, match="differs from the one the export wrote|damaged|no "
                                             "longer lists|past the end|outside"):
            lite.verify_tflite_bytes(bytes(changed))
            lite.verify_checksum(bytes(changed))
    # Damage to the metadata entry's name must not pass as "a file without checksum".
    renamed = data.replace(lite.CHECKSUM_NAME.encode() + b"\x00", b"keras_csp.sha257\x00", 1)
    assert renamed != data
    with pytest.raises(ValueError, match="no longer lists"):
        lite.verify_checksum(renamed)
    path = tmp_path / "renamed.tflite"
    path.write_bytes(renamed)
    with pytest.raises(ValueError, match=r"model='.*renamed.tflite' is truncated or corrupt \(it "
                                         r"holds a keras_csp checksum that its metadata no longer"):
        lite.LiteModel(path)
