"""The shapes of `synthetic_shapes` (`data/synthetic.py`), drawn on the fly from a seed.

Every image is a pure function of `(seed, index)`: stateless random ops draw a background (solid,
gradient or stripes), a shape (circle, ring, triangle, square, star, cross) at a random position,
size and rotation, thin distractor lines and pixel noise. Nothing is downloaded or cached; the same
seed gives the same images on every machine, in any order and under any parallelism.

What makes it more than a colour test:

- colours carry no class information: the shape and the background take their colours from opposite
  brightness bands (one dark, one light, chosen by a coin flip), independently of the class;
- every shape is scaled to the same pixel area (drawn per image), so the number of foreground pixels
  does not tell the classes apart either; edges are hard, so no anti-aliasing blend leaks the
  perimeter;
- stripes, distractor lines and noise put edges everywhere, so the model has to see outlines.

A colour-histogram classifier therefore stays at chance (tested), while a small CNN reaches >90%.
"""

import math

import numpy as np

SHAPES = ("circle", "ring", "triangle", "square", "star", "cross")

_RING_INNER = 0.55  # inner radius / outer radius
_STAR_INNER = 0.45  # valley radius / tip radius
_CROSS_HALF_WIDTH = 1.0 / 3.0  # arm half-width / arm half-length

# Pixel area of each shape at unit size (radius, or half-length for the cross), and its extent
# (the largest distance from the centre) at unit size.
_UNIT_AREA = {
    "circle": math.pi,
    "ring": math.pi * (1.0 - _RING_INNER**2),
    "triangle": 3.0 * math.sqrt(3.0) / 4.0,
    "square": 2.0,
    "star": 5.0 * _STAR_INNER * math.sin(math.pi / 5.0),
    "cross": 8.0 * _CROSS_HALF_WIDTH - 4.0 * _CROSS_HALF_WIDTH**2,
}
_UNIT_EXTENT = {name: 1.0 for name in SHAPES}
_UNIT_EXTENT["cross"] = math.sqrt(1.0 + _CROSS_HALF_WIDTH**2)

BACKGROUNDS = ("solid", "gradient", "stripes")
DIFFICULTIES = ("easy", "hard")
BOUNDING_BOX_FORMATS = ("xyxy", "xywh", "yxyx", "center_xywh", "rel_xyxy", "rel_xywh", "rel_yxyx")


def check_int(name, value, low, high=None):
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {allowed}.")
    return int(value)


def check_range(name, value, low, high):
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not allowed; allowed: a pair (min, max).") from None
    if not low <= a <= b <= high:
        raise ValueError(
            f"{name}={value!r} is not allowed; allowed: {low} <= min <= max <= {high}."
        )
    return a, b


def check_classes(classes):
    if classes is None:
        return SHAPES
    names = tuple(classes)
    unknown = [c for c in names if c not in SHAPES]
    if unknown or len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(
            f"classes={classes!r} is not allowed; allowed: at least two distinct names out of "
            f"{', '.join(SHAPES)}."
        )
    return names


class ShapeDrawer:
    """Draws one example from `(seed, index)` with TensorFlow ops (usable inside tf.data)."""

    def __init__(
        self,
        image_size,
        classes,
        seed,
        area_range,
        noise,
        distractors,
        max_objects,
        task,
    ):
        self.size = image_size
        self.classes = classes
        self.seed = seed
        self.area_range = area_range
        self.noise = noise
        self.distractors = distractors
        self.max_objects = max_objects
        self.task = task

    # --- random numbers: one independent stream per (index, purpose) ---------------------------

    def _uniform(self, index, purpose, shape=(), low=0.0, high=1.0):
        import tensorflow as tf

        seed = tf.stack([tf.cast(index, tf.int64), tf.constant(self.seed * 1024 + purpose, tf.int64)])
        return tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high)

    def _integer(self, index, purpose, high, shape=()):
        import tensorflow as tf

        seed = tf.stack([tf.cast(index, tf.int64), tf.constant(self.seed * 1024 + purpose, tf.int64)])
        return tf.random.stateless_uniform(shape, seed=seed, minval=0, maxval=high, dtype=tf.int32)

    # --- geometry ---------------------------------------------------------------------------------

    def _mask(self, kind, u, v, radius):
        """Boolean mask of shape number `kind` (index into self.classes) in local coords u, v."""
        import tensorflow as tf

        makers = self._mask_makers(u, v, radius)
        return tf.switch_case(kind, [makers[name] for name in self.classes])

    def _mask_makers(self, u, v, radius):
        """name -> function giving that shape's mask; elementwise, so u, v, radius may broadcast."""
        import tensorflow as tf

        r = tf.sqrt(u * u + v * v)
        phi = tf.atan2(v, u)

        def polygon(n):
            sector = 2.0 * math.pi / n
            local = tf.math.floormod(phi, sector) - sector / 2.0
            return r * tf.cos(local) <= radius * math.cos(math.pi / n)

        def star():
            sector = 2.0 * math.pi / 5.0
            # Angle from the nearest tip, in [0, sector / 2]; tip T at (R, 0), valley V at angle
            # sector / 2 and radius R * inner. Inside iff on the centre's side of the line T-V.
            psi = tf.abs(tf.math.floormod(phi, sector) - sector / 2.0)
            psi = sector / 2.0 - psi
            px, py = r * tf.cos(psi), r * tf.sin(psi)
            tx, ty = radius, 0.0
            vx = radius * _STAR_INNER * math.cos(sector / 2.0)
            vy = radius * _STAR_INNER * math.sin(sector / 2.0)
            cross_p = (vx - tx) * (py - ty) - (vy - ty) * (px - tx)
            cross_o = (vx - tx) * (0.0 - ty) - (vy - ty) * (0.0 - tx)
            return cross_p * cross_o >= 0.0

        def cross():
            w = radius * _CROSS_HALF_WIDTH
            au, av = tf.abs(u), tf.abs(v)
            return ((au <= radius) & (av <= w)) | ((av <= radius) & (au <= w))

        makers = {
            "circle": lambda: r <= radius,
            "ring": lambda: (r <= radius) & (r >= radius * _RING_INNER),
            "triangle": lambda: polygon(3),
            "square": lambda: polygon(4),
            "star": star,
            "cross": cross,
        }
        return makers

    def _radius(self, kind, area):
        """Size parameter that gives shape `kind` the pixel area `area`."""
        import tensorflow as tf

        unit_area = tf.constant([_UNIT_AREA[c] for c in self.classes], tf.float32)
        return tf.sqrt(area / tf.gather(unit_area, kind))

    def _extent(self, kind, radius):
        import tensorflow as tf

        unit = tf.constant([_UNIT_EXTENT[c] for c in self.classes], tf.float32)
        return radius * tf.gather(unit, kind)

    # --- drawing ----------------------------------------------------------------------------------

    def _background(self, index, xs, ys, dark_first):
        import tensorflow as tf

        s = float(self.size)
        dark = self._uniform(index, 1, (2, 3), 0.0, 0.4)
        light = self._uniform(index, 2, (2, 3), 0.6, 1.0)
        # Background from one band, shapes from the other.
        bg = tf.where(dark_first, light, dark)
        fg_band = tf.where(dark_first, dark, light)
        kind = self._integer(index, 3, len(BACKGROUNDS))
        angle = self._uniform(index, 4, (), 0.0, 2.0 * math.pi)
        along = (xs * tf.cos(angle) + ys * tf.sin(angle)) / s
        period = self._uniform(index, 5, (), 4.0, 12.0)
        phase = self._uniform(index, 6, (), 0.0, 2.0 * math.pi)
        t_grad = tf.clip_by_value((along + 1.0) / 2.0, 0.0, 1.0)[..., None]
        t_stripe = tf.cast(tf.sin(2.0 * math.pi * along * s / period + phase) > 0.0, tf.float32)
        t_stripe = t_stripe[..., None]
        solid = tf.ones_like(t_grad) * bg[0]
        gradient = bg[0] + (bg[1] - bg[0]) * t_grad
        stripes = bg[0] + (bg[1] - bg[0]) * t_stripe
        image = tf.switch_case(kind, [lambda: solid, lambda: gradient, lambda: stripes])
        return image, fg_band

    def _distractor_lines(self, index, image, xs, ys, dark_first):
        import tensorflow as tf

        if not self.distractors:
            return image
        s = float(self.size)
        n = self._integer(index, 7, self.distractors + 1)
        starts = self._uniform(index, 8, (self.distractors, 2), 0.0, s)
        angles = self._uniform(index, 9, (self.distractors,), 0.0, 2.0 * math.pi)
        lengths = self._uniform(index, 10, (self.distractors,), 0.1 * s, 0.3 * s)
        colours = self._uniform(index, 11, (self.distractors, 3), 0.0, 1.0)
        for i in range(self.distractors):
            ax, ay = starts[i, 0], starts[i, 1]
            dx, dy = lengths[i] * tf.cos(angles[i]), lengths[i] * tf.sin(angles[i])
            t = ((xs - ax) * dx + (ys - ay) * dy) / (dx * dx + dy * dy)
            t = tf.clip_by_value(t, 0.0, 1.0)
            dist2 = (xs - ax - t * dx) ** 2 + (ys - ay - t * dy) ** 2
            on = (dist2 <= 0.5) & (i < n)
            image = tf.where(on[..., None], colours[i], image)
        return image

    def _place(self, index, slot, kind, cell_x, cell_y, cell_size, xs, ys):
        """Mask of one shape of class `kind` placed inside the square cell at (cell_x, cell_y)."""
        import tensorflow as tf

        base = 20 + 8 * slot
        lo, hi = self.area_range
        area = self._uniform(index, base, (), lo, hi) * cell_size * cell_size
        radius = self._radius(kind, area)
        extent = self._extent(kind, radius)
        margin = tf.minimum(extent + 1.0, cell_size / 2.0)
        cx = cell_x + self._uniform(index, base + 1, (), 0.0, 1.0) * (cell_size - 2 * margin) + margin
        cy = cell_y + self._uniform(index, base + 2, (), 0.0, 1.0) * (cell_size - 2 * margin) + margin
        theta = self._uniform(index, base + 3, (), 0.0, 2.0 * math.pi)
        dx, dy = xs - cx, ys - cy
        u = tf.cos(theta) * dx + tf.sin(theta) * dy
        v = -tf.sin(theta) * dx + tf.cos(theta) * dy
        return self._mask(kind, u, v, radius)

    def __call__(self, index):
        """Returns `(image float32 HxWx3 in 0-255, label)` or `(image, boxes xyxy, classes)`."""
        import tensorflow as tf

        s = self.size
        grid = tf.range(s, dtype=tf.float32) + 0.5
        ys, xs = tf.meshgrid(grid, grid, indexing="ij")
        dark_first = self._uniform(index, 0) < 0.5
        image, fg_band = self._background(index, xs, ys, dark_first)
        num_classes = len(self.classes)
        if self.task == "classification":
            kind = self._integer(index, 12, num_classes)
            mask = self._place(index, 0, kind, 0.0, 0.0, float(s), xs, ys)
            colour = fg_band[0]
            image = tf.where(mask[..., None], colour, image)
            image = self._distractor_lines(index, image, xs, ys, dark_first)
            image = self._finish(index, image)
            return image, kind
        # Detection: objects in distinct cells of a g x g grid, so none occludes another and every
        # box is the tight box of its visible pixels.
        g = max(2, math.ceil(math.sqrt(self.max_objects)))
        cell = float(s) / g
        count = 1 + self._integer(index, 13, self.max_objects)
        cells = tf.argsort(self._uniform(index, 14, (g * g,)))[: self.max_objects]
        kinds = self._integer(index, 15, num_classes, (self.max_objects,))
        colours = tf.where(
            dark_first,
            self._uniform(index, 16, (self.max_objects, 3), 0.0, 0.4),
            self._uniform(index, 16, (self.max_objects, 3), 0.6, 1.0),
        )
        boxes, classes = [], []
        for slot in range(self.max_objects):
            cx0 = tf.cast(cells[slot] % g, tf.float32) * cell
            cy0 = tf.cast(cells[slot] // g, tf.float32) * cell
            mask = self._place(index, slot, kinds[slot], cx0, cy0, cell, xs, ys)
            mask = mask & (slot < count)
            image = tf.where(mask[..., None], colours[slot], image)
            rows = tf.where(tf.reduce_any(mask, axis=1))[:, 0]
            cols = tf.where(tf.reduce_any(mask, axis=0))[:, 0]
            present = (slot < count) & (tf.size(rows) > 0)
            box = tf.cond(
                present,
                lambda: tf.cast(
                    tf.stack(
                        [
                            tf.reduce_min(cols),
                            tf.reduce_min(rows),
                            tf.reduce_max(cols) + 1,
                            tf.reduce_max(rows) + 1,
                        ]
                    ),
                    tf.float32,
                ),
                lambda: tf.fill([4], -1.0),
            )
            boxes.append(box)
            classes.append(tf.where(present, tf.cast(kinds[slot], tf.float32), -1.0))
        image = self._distractor_lines(index, image, xs, ys, dark_first)
        image = self._finish(index, image)
        boxes, classes = tf.stack(boxes), tf.stack(classes)
        keep = classes >= 0
        return image, tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep)

    def _finish(self, index, image):
        import tensorflow as tf

        lo, hi = self.noise
        std = self._uniform(index, 17, (), lo, hi)
        noise = tf.random.stateless_normal(
            tf.shape(image),
            seed=tf.stack([tf.cast(index, tf.int64), tf.constant(self.seed * 1024 + 18, tf.int64)]),
        )
        image = tf.clip_by_value(image + std * noise, 0.0, 1.0)
        return image * 255.0
