"""Models and the compute device: loaded on the worker, onto the device the user chose.

``auto`` picks CUDA, then Apple MPS, then the CPU (``engine.explain.session.resolve_device``);
the choice persists, is offered in View ▸ Compute device, and the status bar shows what it
resolved to. Nothing here touches torch on the GUI thread: devices are probed, models loaded
and each explainer's fitness for the model judged by worker jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import shiboken6
from PySide6.QtWidgets import QFileDialog, QMessageBox

from gui.explain_panel import OPEN_CARD

#: Device choices offered, in menu order.
DEVICES = ("auto", "cpu", "cuda", "mps")
#: What the error message calls each device.
DEVICE_NAMES = {"auto": "device", "cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}
#: Model files that carry no card of their own (a card can be written for them in the GUI).
BARE_MODEL_SUFFIXES = (".pt", ".pth", ".pt2", ".pkl")


@dataclass
class TrustNeeded:
    """Returned by a model-load job when the file can run code and was not trusted."""

    spec: str
    name: str
    message: str


@dataclass
class Loaded:
    """A model loaded on the worker, with why each explainer cannot run on it (if so)."""

    model: object
    reasons: dict = field(default_factory=dict)


def probe_devices() -> dict[str, bool]:
    """Which accelerators this machine has (worker thread: it imports torch)."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return {"cpu": True, "cuda": torch.cuda.is_available(),
            "mps": mps is not None and mps.is_available()}


def resolve(choice: str) -> str:
    """Return the device ``choice`` resolves to here, e.g. ``cpu`` (worker thread)."""
    from engine.explain.session import resolve_device

    return str(resolve_device(choice))


def architecture_names() -> list[str]:
    """Every architecture a card can name (worker thread: it imports torchvision and timm)."""
    from engine.models.loaders import known_architectures

    return known_architectures()


def load(spec: str, trust: bool, device: str):
    """Load a model on the worker thread, discovering its layers there too."""
    from engine.core.errors import TrustRequired
    from engine.explain.registry import registry
    from engine.models.loaded import load_model

    try:
        model = load_model(spec, trust=trust, device=device)
    except TrustRequired as exc:
        name = Path(exc.path).name if exc.path is not None else str(spec)
        return TrustNeeded(spec, name, exc.message)
    model.layers()  # the dry forward pass is cached on the model; do it off the GUI thread
    reasons = {}
    reg = registry()
    for name in reg.names():
        check = getattr(reg.get(name), "unavailable_reason", None)
        reasons[name] = check(model) if check is not None else None
    return Loaded(model, reasons)


def trust_box(parent, name: str, message: str):
    """The question asked before loading a file that can run code: (box, its Load button).

    It speaks of buttons, not command-line flags: the engine's message says what the file is,
    without its fix (which names ``--trust-model``).
    """
    box = QMessageBox(QMessageBox.Icon.Warning, "Load a model that can run code?",
                      f"{name} {message}.", parent=parent)
    box.setInformativeText("Loading it runs whatever code it contains, with your permissions. "
                           "Choose “Load it” only if you trust where it came from.")
    load_button = box.addButton("Load it", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Don't load", QMessageBox.ButtonRole.RejectRole)
    return box, load_button


class ModelLoader:
    """Loads models and switches devices for the window, on its worker.

    Parameters
    ----------
    window : QtMainWindow
    """

    def __init__(self, window) -> None:
        self.window = window
        #: Specs the user confirmed as trusted in this window (asked once per file).
        self.trusted: set[str] = set()
        #: Whether the model may follow what is shown between the demo's 2-D and 3-D models:
        #: only while the demo's own study is open (set by ``FileOpener.open_paths``) and until
        #: the user picks a model. Switching models is otherwise always the user's act.
        self.follows_demo = False
        #: Every architecture a card or a typed source can name, once listed on the worker.
        self.architectures: list[str] | None = None
        self._waiting: list = []

    def list_architectures(self, apply) -> None:
        """Hand ``apply`` the architecture names, listed on the worker the first time.

        The list runs to over a thousand names with timm, whose import takes seconds: the
        dialogs open at once and their completers fill when the list arrives.
        """
        if self.architectures is not None:
            apply(self.architectures)
            return
        self._waiting.append(apply)
        if len(self._waiting) == 1:
            # In the background: a model load or an explanation asked for meanwhile goes first.
            self.window.jobs.submit("architectures", lambda *_a: architecture_names(),
                                    on_done=self._listed, background=True)

    def _listed(self, names: list[str], _context: dict) -> None:
        self.architectures = list(names)
        waiting, self._waiting = self._waiting, []
        for apply in waiting:
            apply(self.architectures)

    def trust_for(self, spec: str) -> bool:
        """Whether ``spec`` may run code when loaded (``--trust-model`` or a confirmation)."""
        return self.window.trust_model or spec in self.trusted

    def load(self, spec: str, trust: bool | None = None) -> int:
        """Load a model (``demo``, ``demo-biased`` or a card/model path) on the worker."""
        window = self.window
        trust = self.trust_for(spec) if trust is None else trust
        choice = window.device_choice

        def run(_p, _c, _partial):
            outcome = load(spec, trust, resolve(choice))
            if isinstance(outcome, Loaded):
                # Captures are keyed by the model object's id, which a new model may reuse.
                window.session.clear_cache()
            return outcome

        return window.jobs.submit("model", run, on_done=self._loaded, on_failed=self._failed,
                                  spec=spec, trust=trust)

    def _failed(self, text: str, context: dict) -> None:
        window = self.window
        spec = context["spec"]
        # Every message names its file, even when the engine's does not.
        window.show_error(text if Path(spec).name in text else f"{spec}: {text}")
        if Path(spec).suffix.lower() in BARE_MODEL_SUFFIXES and Path(spec).is_file():
            # A bare model file says nothing of its input or classes: let the user say it.
            window.describe_model(spec)

    def requested(self, spec: str) -> None:
        """The panel's model picker chose ``spec`` (or asked to pick a card file)."""
        window = self.window
        self.follows_demo = False  # the user chose: the model stays what they chose
        if spec == OPEN_CARD:
            path, _ = QFileDialog.getOpenFileName(
                window, "Open model card", "",
                "Model cards and files (*.toml *.pt *.pth *.pt2 *.onnx *.pkl);;All files (*)")
            if not path:
                if window.model_spec:
                    window.panel.set_model(window.model, window.model_spec)
                return
            spec = path
        self.load(spec)

    def open_dialog(self):
        """File ▸ Open model: a card, file, folder or typed source, loaded on the worker.

        Returns the job id, or None when the user cancelled.
        """
        from gui.model_open_dialog import QtOpenModelDialog

        window = self.window
        dialog = QtOpenModelDialog(window, window.model_spec if window.model_spec
                                   not in (None, "demo", "demo-biased", "demo-3d") else "")
        self.list_architectures(lambda names: shiboken6.isValid(dialog)
                                and dialog.set_architectures(names))
        accepted = dialog.exec() == QtOpenModelDialog.DialogCode.Accepted
        spec = dialog.chosen()
        dialog.deleteLater()  # a child of the window: one per opening would pile up
        if not accepted:
            return None
        self.follows_demo = False  # the user chose: the model stays what they chose
        return self.load(spec)

    def ask_trust(self, name: str, message: str) -> bool:
        """Ask, in the GUI's words, whether a model file that can run code may be loaded."""
        box, load_button = trust_box(self.window, name, message)
        box.exec()
        return box.clickedButton() is load_button

    def _loaded(self, outcome, context: dict) -> None:
        window = self.window
        if isinstance(outcome, TrustNeeded):
            if window.confirm_trust(outcome.name, outcome.message):
                self.trusted.add(outcome.spec)
                self.load(outcome.spec, trust=True)
            else:
                window.show_error(f"{outcome.name} {outcome.message}; not loaded. Fix: load it "
                                  "again and choose \u201cLoad it\u201d if you trust its source")
            return
        window.model_ready(outcome.model, outcome.reasons, context["spec"])

    def describe(self, spec: str | None):
        """Open the card dialog for model file ``spec``; return the dialog.

        Offered from the Tools menu, and by itself when a bare model file cannot be loaded
        for want of a card. Saving it loads the card, with the trust given to the file.
        """
        from gui.card_dialog import QtCardDialog

        window = self.window
        model = window.model if spec == window.model_spec else None
        dialog = QtCardDialog(window, model, spec, trust=self.trust_for(spec))
        self.list_architectures(lambda names: shiboken6.isValid(dialog)
                                and dialog.set_architectures(names))
        dialog.sig_card_saved.connect(lambda path: self.load(path, trust=self.trust_for(spec)))
        dialog.show()
        return dialog

    # -- device ----------------------------------------------------------------------------
    def set_device(self, choice: str) -> int | None:
        """Run models on ``choice`` (one of :data:`DEVICES`); a loaded model moves there."""
        window = self.window
        if choice not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {choice!r}")
        window.device_choice = choice
        window.settings.setValue("device", choice)
        window.status.set_device(choice, None)
        window.sync_device_menu()

        def run(_p, _c, _partial):
            available = probe_devices()
            return (resolve(choice) if available.get(choice, True) else None), available

        return window.jobs.submit("device", run, on_done=self._device_resolved, choice=choice)

    def _device_resolved(self, outcome: tuple, context: dict) -> None:
        window = self.window
        device, available = outcome
        window.sync_device_menu(available)
        if device is None:
            window.show_error(f"there is no {DEVICE_NAMES[context['choice']]} on this machine. "
                              "Fix: choose another device in View ▸ Compute device; models "
                              "now run on the automatic choice")
            self.set_device("auto")
            return
        moved = device != window.device
        window.device = device
        window.status.set_device(context["choice"], device)
        if moved and window.model_spec is not None:
            self.load(window.model_spec)
