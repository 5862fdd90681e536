"""On-device runtime for keras_csp's `.tflite` models: no TensorFlow, no Keras.

Needs numpy and one interpreter runtime, tried in this order: `ai-edge-litert` (LiteRT), then
`tflite-runtime`, then TensorFlow's `tf.lite.Interpreter` as a last resort (set
`KERAS_CSP_LITE_BACKEND` to `litert`, `tflite-runtime` or `tensorflow` to choose). Image files are
decoded with Pillow (PNG, JPEG, BMP, GIF), which is small and installs everywhere numpy does.

    from keras_csp import lite
    model = lite.LiteModel("cspresnext50.tflite")
    image = lite.load_image("cat.jpg", size=model.input_size, resize="crop")
    probabilities = model(image)["probabilities"][0]
    lite.top_k(probabilities, 5)

An exported model takes raw pixel values and normalizes them itself (see
`keras_csp/export/serving.py` for the contract: input `images`, outputs `probabilities`, or
`boxes`/`scores`/`classes` for detectors, or named features).

`LiteModel(path, accelerator="gpu")` runs the file on LiteRT's GPU accelerator (ai-edge-litert
>= 2.3 and a Vulkan device; see `keras_csp/lite/accelerator.py`), `"auto"` uses it when it
starts and the CPU otherwise; `model.gpu_placement` says whether the whole graph is on the GPU.

The runtime's modules, one idea each: `runtime` (which interpreter), `flatbuffer` and `checks`
(what a file may hold, checked before an interpreter reads it), `checksum` (the export's SHA-256),
`model` (`LiteModel`), `delegate` (ops XNNPACK leaves out), `accelerator` and `gpu` (LiteRT's GPU
accelerator, GPU vs CPU), `results` (top-k, detections, drawing), `evaluation` (folder accuracy),
`coco`, `yolo` and `voc` (detection annotations: COCO JSON, ultralytics' YOLO layout, Pascal VOC
XML). Images are `keras_csp.images`; every name is importable from here.
"""

from keras_csp.images import (  # noqa: F401
    DEFAULT_CROP_FRACTION,
    IMAGE_EXTENSIONS,
    RESIZE_MODES,
    UnreadableImageError,
    check_image_size,
    check_resize,
    describe_skipped,
    list_images,
    load_image,
    read_images,
)
from keras_csp.lite.accelerator import (  # noqa: F401
    ACCELERATORS,
    GpuUnavailableError,
    check_accelerator,
    use_swiftshader,
)
from keras_csp.lite.checks import check_tflite_model, physical_memory  # noqa: F401
from keras_csp.lite.checksum import (  # noqa: F401
    CHECKSUM_NAME,
    CHECKSUM_PREFIX,
    checksum_position,
    file_digest,
    verify_checksum,
)
from keras_csp.lite.delegate import undelegated_nodes  # noqa: F401
from keras_csp.lite.evaluation import _accuracy, evaluate, image_folder  # noqa: F401
from keras_csp.lite.flatbuffer import (  # noqa: F401
    _ints,
    _scalar,
    _slot,
    _tables,
    _target,
    verify_tflite_bytes,
)
from keras_csp.lite.model import LiteModel, TensorInfo  # noqa: F401
from keras_csp.lite.results import detections, draw_boxes, top_k  # noqa: F401
from keras_csp.lite.runtime import BACKENDS, interpreter_class  # noqa: F401
