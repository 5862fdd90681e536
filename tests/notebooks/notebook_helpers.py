"""Running the notebooks of notebooks/ in tests: parameters injected as papermill does, executed by
nbclient in a temporary folder (never written back into the repository), and a JupyterLab server
for the browser test."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = (
    "01_split_ratio_explorer.ipynb",
    "02_fusion_strategies.ipynb",
    "03_export_and_run_on_device.ipynb",
)
# Where tests leave what a person may want to look at (screenshots); ignored by git.
ARTIFACTS = ROOT / "tests" / "artifacts"


def load(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def parameters_index(nb):
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.metadata.get("tags", []):
            return i
    raise AssertionError("the notebook has no cell tagged 'parameters'")


def inject_parameters(nb, **params):
    """Adds a cell after the `parameters` cell that overrides `params`, as papermill does."""
    source = "# Injected parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    cell["id"] = "injected-parameters"
    nb.cells.insert(parameters_index(nb) + 1, cell)
    return nb


def append_cell(nb, source, cell_id):
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = cell_id
    nb.cells.append(cell)
    return nb


def isolated_env(home, quick=True):
    """Environment for kernels and servers: a private HOME and Jupyter/IPython/matplotlib dirs."""
    home = Path(home)
    env = dict(os.environ)
    dirs = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_RUNTIME_DIR": home / "runtime",
        "JUPYTER_CONFIG_DIR": home / "jupyter" / "config",
        "JUPYTER_DATA_DIR": home / "jupyter" / "data",
        "JUPYTER_RUNTIME_DIR": home / "jupyter" / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "jupyter" / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "jupyter" / "lab-workspaces",
        "IPYTHONDIR": home / "ipython",
        "MPLCONFIGDIR": home / "matplotlib",
    }
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    os.chmod(dirs["XDG_RUNTIME_DIR"], 0o700)
    env["KERAS_CSP_NOTEBOOK_QUICK"] = "1" if quick else "0"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    # Kernels and `jupyter` run from this interpreter's environment.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@contextlib.contextmanager
def patched_environ(env):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute(nb, workdir, home, timeout=900, quick=True):
    """Runs every cell with nbclient in `workdir` (the kernel's cwd); returns the executed copy.

    Raises nbclient's CellExecutionError (with the cell's traceback) if a cell fails.
    """
    from nbclient import NotebookClient

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with patched_environ(isolated_env(home, quick)):
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", allow_errors=False,
            resources={"metadata": {"path": str(workdir)}},
        )
        client.execute()
    return nb


def text_outputs(nb):
    """All stream text and text/plain and text/html outputs of the notebook, joined."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out:
                for key in ("text/plain", "text/html"):
                    value = out["data"].get(key)
                    if value:
                        parts.append(value if isinstance(value, str) else "".join(value))
            elif out.get("output_type") == "error":
                parts.append("\n".join(out.get("traceback", [])))
    return "\n".join(parts)


def png_outputs(nb):
    """How many PNG images the notebook's cells display."""
    return sum(
        "image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])
    )


# --- JupyterLab ----------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """`jupyter lab` on 127.0.0.1 with a token, serving `root_dir`, with all of its state (and the
    kernel's) in `home`; autosave, news and update checks off. A context manager."""

    def __init__(self, root_dir, home, quick=True, token="keras-csp-test-token"):
        self.root_dir = Path(root_dir)
        self.home = Path(home)
        self.token = token
        self.port = free_port()
        self.env = isolated_env(home, quick)
        self.process = None
        self.log_path = self.home / "jupyterlab.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _write_settings(self):
        settings = Path(self.env["JUPYTERLAB_SETTINGS_DIR"])
        docmanager = settings / "@jupyterlab" / "docmanager-extension"
        docmanager.mkdir(parents=True, exist_ok=True)
        # Never write the notebook (outputs) back to disk on its own.
        (docmanager / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
        # Render every cell (no windowing), so that off-screen prompts can be read.
        tracker = settings / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        news = settings / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)
        (news / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )

    def start(self, timeout=120):
        self._write_settings()
        checkpoints = self.home / "checkpoints"
        checkpoints.mkdir(exist_ok=True)
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
            f"--FileCheckpoints.checkpoint_dir={checkpoints}",
            "--LanguageServerManager.autodetect=False",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            cmd, cwd=self.root_dir, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.process.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{self.log()}")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self):
        if self.process is None:
            return
        try:
            request = urllib.request.Request(
                f"{self.url}/api/shutdown?token={self.token}", method="POST", data=b""
            )
            urllib.request.urlopen(request, timeout=10).close()
            self.process.wait(timeout=20)
        except Exception:
            pass
        if self.process.poll() is None:
            # Only the process group this object started (the server and its kernels).
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def copy_notebook(name, folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(NOTEBOOKS / name, folder / name)
    return folder / name
