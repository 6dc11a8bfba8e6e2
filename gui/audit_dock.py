"""The bias-audit dock of the review window: opened on demand, its rows open their image.

A mixin of :class:`gui.main_window.QtMainWindow`: the audits run on the window's worker with
the window's model, trust and device, and a row opens its image with the audited model,
method and layer.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from gui.screen_fit import scrolling


class AuditDock:
    """The window's Audit dock (Tools ▸ Bias audit)."""

    def open_audit_view(self) -> None:
        """Show the bias-audit dock; its audits run on this window's worker."""
        if self.audit_view is None:
            from gui.audit_view import QtAuditView

            self.audit_view = QtAuditView(self.jobs, model_choice=self._audit_model)
            self.audit_view.sig_open_image.connect(self._open_from_audit)
            self.docks["audit"] = self.add_dock("Audit", scrolling(self.audit_view),
                                                Qt.DockWidgetArea.BottomDockWidgetArea)
        self.docks["audit"].show()

    def open_audit_dialog(self) -> None:
        """File ▸ Open audit…: show a finished audit folder in the Audit dock."""
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Open audit folder")
        if folder:
            self.open_audit_view()
            self.audit_view.open_audit(folder)

    def _audit_model(self) -> tuple[str | None, bool, str]:
        spec = self.model_spec
        return spec, spec is not None and self.models.trust_for(spec), self.device_choice

    def _open_from_audit(self, path: str, method: str, layer: str) -> None:
        model = self.audit_view.audited_model
        if model and model != self.model_spec:
            self._layer_after_load = layer or None
            self.load_model(model)
        if method in self.explainers:
            self.method = method
            self.panel.select_method(method)
        if layer:
            self.layer = layer
        self.open_paths([path])
