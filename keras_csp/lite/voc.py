"""Pascal VOC detection sets, read and checked without TensorFlow: the reader of
`keras_csp.data.voc_detection` (training) and of `keras_csp.coco_eval` (mAP on a device).

    VOC_ROOT/Annotations/2008_000008.xml     <object><name>horse</name><difficult>0</difficult>
                                               <bndbox><xmin>53</xmin>...</bndbox></object>
    VOC_ROOT/JPEGImages/2008_000008.jpg
    VOC_ROOT/ImageSets/Main/train.txt        one image id per line (val.txt, trainval.txt, ...)

Classes are the sorted object names of the training split (`train_set`), so every split of one
root maps a name to the same class index; a name of another split outside them is an error. For
the 20 classes of VOC 2007/2012 the sorted order is the order of VOC's devkit. `difficult`
objects come back flagged: training leaves them out, evaluation ignores them (VOC's protocol:
neither a miss nor, when found, a false positive).

The XML is parsed by expat with a DOCTYPE refused before anything is expanded (no entity
declarations, so no "billion laughs" and no external files). Bad input is a `ValueError` naming
the file and line.
"""

import math
import os
import xml.parsers.expat

from keras_csp.images import image_header, not_regular

# VOC boxes are 1-based pixel indices, xmin..xmax inclusive: the box covers the continuous
# [xmin - 1, xmax] (VOC's devkit and most detectors read it so). Edges off the image by up to a
# pixel (0-based tools write xmin=0) are clipped; beyond it the file is refused.
EDGE_TOLERANCE_PIXELS = 1.0


class Node:
    """An XML element with the line it starts on (ElementTree keeps no line numbers)."""

    def __init__(self, tag, line):
        self.tag, self.line, self.children, self.parts = tag, line, [], []

    @property
    def text(self):
        return "".join(self.parts).strip()

    def find(self, tag):
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag):
        return [c for c in self.children if c.tag == tag]


def _refuse_doctype(*_):
    raise ValueError("a DOCTYPE (entity declarations are refused)")


def parse_xml(path):
    """The root `Node` of an XML file; a ValueError naming the file and line if it does not parse
    or declares a DOCTYPE."""
    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack, root = [], []

    def start(tag, _attributes):
        node = Node(tag, parser.CurrentLineNumber)
        (stack[-1].children if stack else root).append(node)
        stack.append(node)

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda _tag: stack.pop()
    parser.CharacterDataHandler = lambda data: stack[-1].parts.append(data) if stack else None
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    special = not_regular(path)
    if special:  # a FIFO would wait for a writer, /dev/zero be read forever
        raise ValueError(f"{path} is {special}; allowed: a Pascal VOC annotation file.")
    try:
        with open(path, "rb") as f:
            parser.ParseFile(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such annotation file; allowed: Annotations/<id>.xml for "
                         "every id of the image set.") from None
    except xml.parsers.expat.ExpatError as e:
        raise ValueError(
            f"{path} line {e.lineno}: not well-formed XML ({xml.parsers.expat.ErrorString(e.code)}"
            "); allowed: a Pascal VOC annotation file."
        ) from None
    except ValueError as e:
        raise ValueError(
            f"{path} line {parser.CurrentLineNumber}: {e}; allowed: plain XML without a DOCTYPE."
        ) from None
    return root[0]


def image_ids(root, image_set):
    """The ids listed in `ImageSets/Main/<image_set>.txt` (VOC's per-class files add a second
    column, `id  1`: the first is the id)."""
    listing = os.path.join(root, "ImageSets", "Main", f"{image_set}.txt")
    if not os.path.isfile(listing):
        there = os.path.join(root, "ImageSets", "Main")
        have = sorted(f[:-4] for f in os.listdir(there) if f.endswith(".txt")) \
            if os.path.isdir(there) else []
        raise ValueError(
            f"{listing}: no such image set; allowed: "
            + (", ".join(have[:10]) if have else "a VOC root with ImageSets/Main/<set>.txt") + "."
        )
    try:
        with open(listing, encoding="utf-8-sig") as f:
            ids = [line.split()[0] for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise ValueError(f"{listing}: not UTF-8 text (byte {e.start}: {e.reason}); allowed: one "
                         "image id per line.") from None
    if not ids:
        raise ValueError(f"{listing}: lists no image; allowed: one image id per line.")
    return listing, ids


def _number(parent, tag, path):
    child = parent.find(tag)
    where = f"{path} line {(child or parent).line}"
    if child is None:
        raise ValueError(f"{where}: <{parent.tag}> lacks <{tag}>; allowed: <{tag}> in pixels.")
    try:
        value = float(child.text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{where}: <{tag}> is {child.text!r}; allowed: a finite number.")
    return value


def _box(obj, path, width, height):
    """xyxy pixels of an `<object>`'s `<bndbox>`, checked against the image's size."""
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise ValueError(f"{path} line {obj.line}: <object> lacks <bndbox>; allowed: an object "
                         "with <bndbox><xmin/><ymin/><xmax/><ymax/></bndbox>.")
    xmin, ymin, xmax, ymax = (_number(bndbox, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
    x1, y1, x2, y2 = xmin - 1, ymin - 1, xmax, ymax  # 1-based inclusive -> continuous (see top)
    t = EDGE_TOLERANCE_PIXELS
    if x2 <= x1 or y2 <= y1 or x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        raise ValueError(
            f"{path} line {bndbox.line}: box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} "
            f"ymax={ymax:g} " + ("is empty" if x2 <= x1 or y2 <= y1 else "lies outside the image")
            + f" ({width}x{height}); allowed: 1 <= xmin <= xmax <= width, 1 <= ymin <= ymax <= "
            "height (VOC's 1-based pixels, within a pixel)."
        )
    return [max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))]


def _image(root, node, image_id, path):
    """The image file of an annotation: JPEGImages/<filename>, else JPEGImages/<id>.jpg."""
    folder = os.path.join(root, "JPEGImages")
    filename = node.find("filename")
    candidates = [filename.text] if filename is not None and filename.text else []
    candidates.append(f"{image_id}.jpg")
    for name in candidates:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    line = filename.line if filename is not None else node.line
    raise ValueError(
        f"{path} line {line}: the image is missing (looked for "
        f"{', '.join(os.path.join(folder, c) for c in candidates)}); allowed: an existing image "
        "in JPEGImages/."
    )


def read_annotation(root, image_id):
    """`(image path, objects)` of `Annotations/<id>.xml`; objects are `(name, box, difficult,
    line)`."""
    path = os.path.join(root, "Annotations", f"{image_id}.xml")
    node = parse_xml(path)
    if node.tag != "annotation":
        raise ValueError(f"{path} line {node.line}: the root is <{node.tag}>; allowed: "
                         "<annotation>.")
    image = _image(root, node, image_id, path)
    try:  # image_header: a decompression bomb or a FIFO is unreadable, never decoded or opened
        width, height = image_header(image)
    except ValueError:  # unreadable (or missing): skipped and counted when loaded
        return image, []
    objects = []
    for obj in node.findall("object"):
        name = obj.find("name")
        if name is None or not name.text:
            raise ValueError(f"{path} line {obj.line}: <object> without a <name>; allowed: an "
                             "object with its class name.")
        difficult = obj.find("difficult")
        flag = difficult is not None and difficult.text not in ("", "0")
        objects.append((name.text, _box(obj, path, width, height), flag, name.line, path))
    return image, objects


def class_names(root, train_set="train"):
    """The sorted object names of the image set `train_set` (difficult objects included)."""
    _, ids = image_ids(root, train_set)
    return sorted({o[0] for i in ids for o in read_annotation(root, i)[1]})


def read_voc(root, split="val", categories=None, train_set="train"):
    """Parses and checks one image set of a VOC root; returns `(categories, records)`.

    `categories` is `{class index: name}` (or a list of names in class order: a model's own
    order, VOC's 20 classes): the sorted names of `train_set` unless given. `records` is a list
    of `(path, boxes [[x1, y1, x2, y2] pixels], class ids, difficult flags)`.
    """
    if isinstance(categories, (list, tuple)):
        categories = dict(enumerate(str(c) for c in categories))
    root = str(root)
    if not os.path.isdir(os.path.join(root, "Annotations")):
        raise ValueError(
            f"{root!r} has no Annotations/ folder; allowed: a Pascal VOC root (Annotations/, "
            "JPEGImages/, ImageSets/Main/)."
        )
    listing, ids = image_ids(root, split)
    annotations = [read_annotation(root, i) for i in ids]
    derived = categories is None
    if derived:
        names = (sorted({o[0] for _, objects in annotations for o in objects})
                 if split == train_set else class_names(root, train_set))
        if not names:
            raise ValueError(f"the image set {train_set!r} of {root!r} has no objects; allowed: "
                             "a training set with at least one box.")
        categories = dict(enumerate(names))
    index = {name: k for k, name in categories.items()}
    records = []
    for image, objects in annotations:
        for name, _, _, line, path in objects:
            if name not in index:
                raise ValueError(
                    f"{path} line {line}: the class {name!r} is not among the "
                    + (f"training set's ({train_set!r})" if derived else "given")
                    + f" classes; allowed: {', '.join(list(index)[:20])}."
                )
        records.append((
            image,
            [o[1] for o in objects],
            [index[o[0]] for o in objects],
            [o[2] for o in objects],
        ))
    return categories, records
