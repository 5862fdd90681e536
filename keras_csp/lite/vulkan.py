"""The Vulkan side of LiteRT's GPU accelerator on Linux: which drivers the loader would use, and
SwiftShader (software Vulkan from Debian's `chromium` package) as this process's device.

The engine (ML Drift over WebGPU/Dawn, `keras_csp.lite.accelerator`) needs a Vulkan device: a real
GPU's driver, or SwiftShader, right for checking what the engine takes and computes, meaningless for
speed. Nothing here imports TensorFlow or Keras.
"""

import ctypes
import glob
import os
import tempfile
from pathlib import Path

# Debian's chromium package: SwiftShader's Vulkan driver and, next to it, a Vulkan loader.
SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"
# Where the Vulkan loader looks for driver manifests when no variable names one (Linux).
_ICD_DIRS = (
    "/etc/vulkan/icd.d", "/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d",
    "/etc/xdg/vulkan/icd.d",
)
_ICD_VARIABLES = ("VK_ICD_FILENAMES", "VK_DRIVER_FILES", "VK_ADD_DRIVER_FILES")
# chromium's Vulkan loader, once use_swiftshader() has loaded it (child processes load it too).
bundled_loader = None


class GpuUnavailableError(RuntimeError):
    """LiteRT's GPU accelerator cannot start here; the message says what is missing."""


def _named_drivers():
    """Vulkan driver manifests named by a variable (`VK_ICD_FILENAMES`, ...)."""
    return [
        p for variable in _ICD_VARIABLES for p in os.environ.get(variable, "").split(os.pathsep)
        if p
    ]


def vulkan_drivers():
    """Vulkan driver manifests the loader would find: named by a variable, or installed."""
    named = _named_drivers()
    if named:
        return named
    homes = [os.environ.get("XDG_DATA_HOME", os.path.expanduser("~/.local/share"))]
    homes += os.environ.get("XDG_DATA_DIRS", "").split(os.pathsep)
    dirs = list(_ICD_DIRS) + [os.path.join(h, "vulkan", "icd.d") for h in homes if h]
    return sorted({p for d in dirs for p in glob.glob(os.path.join(d, "*.json"))})


def _loader_loadable():
    try:
        ctypes.CDLL("libvulkan.so.1")
        return True
    except OSError:
        return False


def use_swiftshader(icd=SWIFTSHADER_ICD):
    """Makes SwiftShader (software Vulkan, from Debian's chromium) this process's Vulkan device.

    Call it before the first GPU model of the process: Dawn looks for Vulkan once and remembers
    a failure. Sets `VK_ICD_FILENAMES` (so a real GPU's driver is not used), `XDG_RUNTIME_DIR`
    when unset, and loads the Vulkan loader that chromium ships next to the driver when the
    system has none (Debian's chromium does not depend on libvulkan1). Returns the manifest path.
    """
    icd = Path(icd)
    if not icd.is_file():
        raise GpuUnavailableError(
            f"icd={str(icd)!r} does not exist; allowed: SwiftShader's Vulkan driver manifest "
            "(vk_swiftshader_icd.json: apt-get install chromium installs it under "
            "/usr/lib/chromium)."
        )
    os.environ["VK_ICD_FILENAMES"] = str(icd)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="keras_csp_xdg_")
    if not _loader_loadable():
        bundled = icd.parent / "libvulkan.so.1"
        if not bundled.is_file():
            raise GpuUnavailableError(
                f"no Vulkan loader (libvulkan.so.1) on this system or next to {str(icd)!r}; "
                "allowed: install one (apt-get install libvulkan1)."
            )
        # Loaded globally under its soname, it serves Dawn's later dlopen("libvulkan.so.1").
        ctypes.CDLL(str(bundled), mode=ctypes.RTLD_GLOBAL)
        global bundled_loader
        bundled_loader = str(bundled)
    return str(icd)


def _swiftshader_hint():
    if not os.path.isfile(SWIFTSHADER_ICD):
        return (
            "for a software Vulkan device (SwiftShader: checks what the GPU engine runs, not its "
            "speed), apt-get install chromium, then call keras_csp.lite.use_swiftshader() first"
        )
    loader = "" if _loader_loadable() else " LD_LIBRARY_PATH=/usr/lib/chromium"
    return (
        f"for SwiftShader (software Vulkan from chromium, installed here: checks what the GPU "
        f"engine runs, not its speed) call keras_csp.lite.use_swiftshader() before the first "
        f"GPU model, or start the process with VK_ICD_FILENAMES={SWIFTSHADER_ICD}{loader} "
        f"XDG_RUNTIME_DIR=<a writable folder> (Dawn looks for Vulkan once per process)"
    )
