"""The hard detection setting of `synthetic_shapes`: cluttered scenes of shapes on real photographs.

`synthetic_shapes("detection")` puts 1-4 equal-sized shapes in separate grid cells on flat
backgrounds; small detectors saturate it within minutes. `difficulty="hard"` draws, from the same
`(seed, index)` and with the same six shapes:

- a random crop (35-100% of the shorter side, flipped half the time, brightness and contrast
  jittered) of one of scikit-image's photographs (`keras_csp.data.photos`) as the background;
- unlabelled clutter under the objects: long thin ellipses and bars, which share edges and colours
  with the shapes but none of their outlines;
- 1 to `max_objects` shapes of log-uniform area (by default 0.4% to 20% of the image: a few pixels
  across up to half the image), stretched by up to 1.25x along one axis, rotated, filled with a
  random colour or a two-colour gradient, placed anywhere, so they overlap, occlude each other and
  run over the border;
- thin distractor lines on top and Gaussian pixel noise.

Every box is the tight box of the object's visible pixels. An object whose visible pixels are less
than `min_visible` (40%) of its area, after occlusion by the objects above it and cropping by the
border, is not drawn at all, so nothing in an image is an unlabelled part of a shape.
"""

import math

from keras_csp.data.shapes import ShapeDrawer

# Unlabelled clutter shapes per image (at most), and the visible fraction an object needs to be kept.
CLUTTER = 4
MIN_VISIBLE = 0.4
# Smallest number of visible pixels of a kept object (matters only at small image sizes).
MIN_PIXELS = 6
_STRETCH = 1.25
# Random-stream purposes of this drawer, apart from ShapeDrawer's (0-150).
_P = 200


class SceneDrawer(ShapeDrawer):
    """Draws one hard detection example from `(seed, index)` with TensorFlow ops."""

    def __init__(self, image_size, classes, seed, area_range, noise, distractors, max_objects):
        super().__init__(
            image_size, classes, seed, area_range, noise, distractors, max_objects, "detection"
        )

    def bind(self):
        """Loads the photographs as constants; call where TensorFlow may start (inside `load`)."""
        import tensorflow as tf

        from keras_csp.data.photos import background_photos

        stack, sizes = background_photos()
        self._photos = tf.constant(stack)
        self._photo_sizes = tf.constant(sizes, tf.float32)
        return self

    def _photo(self, index):
        import tensorflow as tf

        s = self.size
        count = int(self._photos.shape[0])
        pad_h, pad_w = (float(d - 1) for d in self._photos.shape[1:3])
        k = self._integer(index, _P, count)
        hw = tf.gather(self._photo_sizes, k)
        side = self._uniform(index, _P + 1, (), 0.35, 1.0) * tf.reduce_min(hw)
        y0 = self._uniform(index, _P + 2) * (hw[0] - side)
        x0 = self._uniform(index, _P + 3) * (hw[1] - side)
        # crop_and_resize samples the box's corners; put the samples at the output pixels' centres.
        half = 0.5 * side / s
        y1, y2 = y0 + half - 0.5, y0 + side - half - 0.5
        x1, x2 = x0 + half - 0.5, x0 + side - half - 0.5
        flip = self._uniform(index, _P + 4) < 0.5
        x1, x2 = tf.where(flip, x2, x1), tf.where(flip, x1, x2)  # x1 > x2 samples mirrored
        box = tf.stack([y1 / pad_h, x1 / pad_w, y2 / pad_h, x2 / pad_w])[None]
        image = tf.image.crop_and_resize(self._photos, box, tf.reshape(k, [1]), [s, s])[0] / 255.0
        contrast = self._uniform(index, _P + 5, (), 0.6, 1.2)
        brightness = self._uniform(index, _P + 6, (), 0.75, 1.15)
        mean = tf.reduce_mean(image)
        return tf.clip_by_value(((image - mean) * contrast + mean) * brightness, 0.0, 1.0)

    def _clutter(self, index, image, xs, ys):
        import tensorflow as tf

        s, n = float(self.size), CLUTTER
        count = self._integer(index, _P + 10, n + 1)
        length = self._uniform(index, _P + 11, (n,), 0.08, 0.35) * s
        width = length / self._uniform(index, _P + 12, (n,), 3.0, 7.0)
        centre = self._uniform(index, _P + 13, (n, 2), 0.0, s)
        theta = self._uniform(index, _P + 14, (n,), 0.0, math.pi)
        ellipse = self._uniform(index, _P + 15, (n,)) < 0.5
        colours = self._uniform(index, _P + 16, (n, 3))
        for j in range(n):
            dx, dy = xs - centre[j, 0], ys - centre[j, 1]
            u = tf.abs(tf.cos(theta[j]) * dx + tf.sin(theta[j]) * dy) / (length[j] / 2.0)
            v = tf.abs(-tf.sin(theta[j]) * dx + tf.cos(theta[j]) * dy) / (width[j] / 2.0)
            inside = tf.where(ellipse[j], u * u + v * v <= 1.0, (u <= 1.0) & (v <= 1.0))
            image = tf.where((inside & (j < count))[..., None], colours[j], image)
        return image

    def __call__(self, index):
        """Returns `(image float32 HxWx3 in 0-255, boxes xyxy (n, 4), classes (n,))`."""
        import tensorflow as tf

        s, m = self.size, self.max_objects
        grid = tf.range(s, dtype=tf.float32) + 0.5
        ys, xs = tf.meshgrid(grid, grid, indexing="ij")
        image = self._clutter(index, self._photo(index), xs, ys)

        count = 1 + self._integer(index, _P + 20, m)
        lo, hi = self.area_range
        area = tf.exp(self._uniform(index, _P + 21, (m,), math.log(lo), math.log(hi))) * s * s
        kinds = self._integer(index, _P + 22, len(self.classes), (m,))
        radius = self._radius(kinds, area)
        stretch = tf.exp(self._uniform(index, _P + 23, (m,), -math.log(_STRETCH), math.log(_STRETCH)))
        extent = self._extent(kinds, radius) * tf.maximum(stretch, 1.0 / stretch)
        # Centres keep at least ~30% of the extent inside the image; the visibility rule below
        # drops what the border cuts too much.
        margin = tf.minimum(0.3 * extent, s / 2.0)
        centre = margin[:, None] + self._uniform(index, _P + 24, (m, 2)) * (s - 2.0 * margin)[:, None]
        theta = self._uniform(index, _P + 25, (m,), 0.0, 2.0 * math.pi)
        first = self._uniform(index, _P + 26, (m, 3))
        second = self._uniform(index, _P + 27, (m, 3))
        graded = self._uniform(index, _P + 28, (m,)) < 0.3
        grade_angle = self._uniform(index, _P + 29, (m,), 0.0, 2.0 * math.pi)

        # All objects at once, as (m, s, s) maps: one op per step instead of one per object.
        dx, dy = xs - centre[:, 0, None, None], ys - centre[:, 1, None, None]
        cos, sin = tf.cos(theta)[:, None, None], tf.sin(theta)[:, None, None]
        u = (cos * dx + sin * dy) / stretch[:, None, None]
        v = (cos * dy - sin * dx) * stretch[:, None, None]
        makers = self._mask_makers(u, v, radius[:, None, None])
        by_kind = tf.stack([makers[name]() for name in self.classes])  # (kinds, m, s, s)
        chosen = tf.one_hot(kinds, len(self.classes), on_value=True, off_value=False, dtype=tf.bool)
        masks = tf.reduce_any(by_kind & tf.transpose(chosen)[:, :, None, None], axis=0)
        masks = masks & (tf.range(m) < count)[:, None, None]

        # From the top object down: each keeps the pixels no kept object above it covers; one with
        # too few of them is dropped (not drawn), so it hides nothing and needs no label.
        covered = tf.zeros([s, s], tf.bool)
        keep, visible = [None] * m, [None] * m
        for i in reversed(range(m)):
            visible[i] = masks[i] & ~covered
            pixels = tf.reduce_sum(tf.cast(visible[i], tf.float32))
            keep[i] = pixels >= tf.maximum(MIN_VISIBLE * area[i], float(MIN_PIXELS))
            covered = covered | (masks[i] & keep[i])
        keep, visible = tf.stack(keep), tf.stack(visible) & tf.stack(keep)[:, None, None]

        # Each pixel shows the fill of the topmost kept object covering it (or the background).
        along = tf.cos(grade_angle)[:, None, None] * dx + tf.sin(grade_angle)[:, None, None] * dy
        t = tf.clip_by_value(along / (2.0 * extent[:, None, None]) + 0.5, 0.0, 1.0)
        t = t * tf.cast(graded, tf.float32)[:, None, None]
        fills = first[:, None, None] + (second - first)[:, None, None] * t[..., None]
        top = tf.cast(visible, tf.float32)[..., None]  # visible maps are disjoint
        image = image * (1.0 - tf.reduce_sum(top, axis=0)) + tf.reduce_sum(top * fills, axis=0)

        rows, cols = tf.reduce_any(visible, axis=2), tf.reduce_any(visible, axis=1)  # (m, s)

        def first_last(any_):
            ramp = tf.range(s, dtype=tf.float32)[None]
            on = tf.cast(any_, tf.float32)
            low = tf.reduce_min(tf.where(any_, ramp, float(s)), axis=1)
            high = tf.reduce_max(on * (ramp + 1.0), axis=1)
            return low, high

        x1, x2 = first_last(cols)
        y1, y2 = first_last(rows)
        boxes = tf.stack([x1, y1, x2, y2], axis=1)
        image = self._distractor_lines(index, image, xs, ys, None)
        image = self._finish(index, image)
        boxes = tf.boolean_mask(boxes, keep)
        classes = tf.boolean_mask(tf.cast(kinds, tf.float32), keep)
        return image, boxes, classes
