"""`--strategy {default,mirrored,multiworker}`: building the tf.distribute strategy of a run.

- `default`: no distribution (one device).
- `mirrored`: `tf.distribute.MirroredStrategy` over the local GPUs; on a machine without GPUs,
  `cpu_replicas=N` splits the CPU into N logical devices (how the tests run it).
- `multiworker`: `tf.distribute.MultiWorkerMirroredStrategy`; the cluster comes from the
  `TF_CONFIG` environment variable of each worker process. Every worker runs the same command; the
  chief (task 0, or the task of type "chief") alone writes checkpoints, logs and the summary.

Both strategies must be created before TensorFlow runs its first op in the process (that is why
`fit_*` create the strategy first, and why `cpu_replicas` is rejected once TF has started).
"""

import json
import os

STRATEGIES = ("default", "mirrored", "multiworker")


def configure_cpu_devices(count):
    """Splits the first CPU into `count` logical devices (before TF initializes)."""
    import tensorflow as tf

    if not count:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != count:
            raise ValueError(
                f"cpu_replicas={count}: TensorFlow has already started in this process with {have} "
                "logical CPU device(s), and they can no longer be split; allowed: set cpu_replicas "
                "in a fresh process (e.g. `keras-csp train --cpu-replicas N`)."
            ) from None


def _cluster_from_env():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "strategy='multiworker' needs the TF_CONFIG environment variable of each worker "
            '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
            '"index": 0}}); allowed: set TF_CONFIG, or strategy "default" / "mirrored".'
        )
    try:
        config = json.loads(raw)
        workers = config["cluster"]
        task = config["task"]
        return workers, task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"TF_CONFIG={raw!r} is not a valid cluster description; allowed: JSON with 'cluster' "
            "and 'task': {'type', 'index'}."
        ) from None


def make_strategy(name, cpu_replicas=0):
    """The strategy for `name` (see the module docstring)."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"strategy={name!r} is not allowed; allowed: {', '.join(STRATEGIES)}.")
    if name == "multiworker":
        _cluster_from_env()
    configure_cpu_devices(cpu_replicas)
    if name == "default":
        if cpu_replicas > 1:
            raise ValueError(
                f"cpu_replicas={cpu_replicas} only makes sense with strategy='mirrored'; "
                "allowed: 0 with strategy='default'."
            )
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = None
        if not tf.config.list_logical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.MultiWorkerMirroredStrategy()


def worker_role(strategy):
    """(is_chief, worker_index, num_workers) of this process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True, 0, 1
    spec = resolver.cluster_spec().as_dict()
    task_type, task_id = resolver.task_type, resolver.task_id
    num_workers = sum(len(v) for k, v in spec.items() if k in ("chief", "worker"))
    if "chief" in spec:
        is_chief = task_type == "chief"
    else:
        is_chief = task_type == "worker" and task_id == 0
    index = task_id + (1 if task_type == "worker" and "chief" in spec else 0)
    return is_chief, index, num_workers


def check_batch_size(batch_size, strategy):
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {replicas} replicas of the strategy; "
            f"allowed: a multiple of {replicas} (e.g. {replicas * max(1, batch_size // replicas)})."
        )
    return batch_size // replicas


def check_same_position(strategy, state):
    """Every worker must start from the same checkpoint (or all from scratch)."""
    import tensorflow as tf

    position = float(state["epoch"] * 1_000_000 + state["step"])

    @tf.function
    def gather(x):
        def both(v):
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce("SUM", tf.stack([v, v * v, tf.constant(1.0, tf.float64)]))

        return strategy.run(both, args=(x,))

    reduced = strategy.experimental_local_results(gather(tf.constant(position, tf.float64)))[0]
    total, squares, n = (float(v) for v in reduced)
    if abs(squares * n - total * total) > 1e-6 * max(1.0, total * total):
        raise ValueError(
            f"the workers start from different positions (this one: epoch {state['epoch']}, step "
            f"{state['step']}): the checkpoint in output_dir is not visible to every worker. "
            "Allowed: an output_dir on a file system that every worker shares (or the same "
            "checkpoint copied to each)."
        )
