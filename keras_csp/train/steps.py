"""The compiled steps of a run, each run on every replica by `strategy.run`: training, evaluation,
and the averaging of BatchNormalization's moving statistics across replicas."""


def _summed_over_replicas(strategy, replica_fn):
    """A `tf.function` running `replica_fn(batch)` on every replica; its dict of values, summed."""
    import tensorflow as tf

    @tf.function
    def step(batch):
        stats = strategy.run(replica_fn, args=(batch,))
        return {k: strategy.reduce("SUM", v, axis=None) for k, v in stats.items()}

    return step


class DistributedSteps:
    """`train_step(batch)` and `eval_step(batch)` return the task's statistics summed over the
    replicas; `sync()` averages the moving statistics."""

    def __init__(self, strategy, task, net, optimizer, jit_compile):
        replicas = strategy.num_replicas_in_sync
        self.train_step = _summed_over_replicas(
            strategy, self._replica_train(task, net, optimizer, replicas, jit_compile)
        )
        self.eval_step = _summed_over_replicas(strategy, lambda b: task.replica_eval(net, b))
        self._average_statistics = _statistics_averaging(strategy, net) if replicas > 1 else None

    @staticmethod
    def _replica_train(task, net, optimizer, replicas, jit_compile):
        import tensorflow as tf

        def replica_train(batch):
            with tf.GradientTape() as tape:
                loss, stats = task.replica_loss(net, batch, replicas)
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, net.trainable_variables)
            optimizer.apply_gradients(zip(grads, net.trainable_variables))
            return stats

        return tf.function(replica_train, jit_compile=jit_compile, reduce_retracing=True)

    def sync(self):
        if self._average_statistics is not None:
            self._average_statistics()


def _statistics_averaging(strategy, net):
    """BatchNormalization's moving statistics are updated by each replica from its own batches, so
    replicas (and workers) drift apart. Averaging them across replicas before every checkpoint
    and evaluation keeps every worker's model identical, and the saved one representative.
    None when the model has no such statistics."""
    import tensorflow as tf

    floats = ("float32", "float16", "bfloat16")
    stat_vars = [v for v in net.non_trainable_variables if v.dtype in floats]
    if not stat_vars:
        return None

    @tf.function
    def sync_statistics():
        def average():
            ctx = tf.distribute.get_replica_context()
            means = ctx.all_reduce("MEAN", [tf.identity(v.value) for v in stat_vars])
            for v, m in zip(stat_vars, means):
                v.assign(m)

        strategy.run(average)

    return sync_statistics
