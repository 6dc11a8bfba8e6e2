"""The compare grid's side of the explain controller: its cells, their maps and their scale.

:class:`CompareRequests` is a part of :class:`gui.explain_controller.ExplainController`: it
lays out the methods × layers grid, draws the cached maps into its cells, asks the worker for
the missing methods, settles every cell when a job ends, and gives the cells the maxima they
share. It uses the controller's cache, keys and requests (``cached``, ``map_key``,
``compared_maps``, ``_submit``...).
"""

from __future__ import annotations

from engine.explain.scale import shared_maxima
from gui.overlay_layer import map_info


class CompareRequests:
    """The compare grid's requests, as methods of the explain controller.

    The controller holds ``window``, ``compare_methods`` and ``compare_layers``.
    """

    def _refresh_compare_scale(self) -> None:
        window = self.window
        maxima = shared_maxima(self.compared_maps())
        for cell in window.compare.cells.values():
            layer = cell.viewer.layer
            if layer.heatmap is not None:
                layer.set_shared_max(maxima.get(layer.info.units))
                cell.show_map_state()
        # The grid's cells share maxima of their own: the scale picker names those.
        window.overlay_controls.show_shared(maxima)

    def _request_compare(self, ctx: tuple, submit: bool) -> int | None:
        window = self.window
        rebuilt = window.compare.set_grid(
            window.image, window.viewer.frame,
            [(m, self.explainer(m).title) for m in self.compare_methods],
            self.compare_layers, window.viewer.window, window.viewer.invert)
        self._show_outline(ctx)
        missing_methods = []
        for method in self.compare_methods:
            reason = self.reason(method)
            if reason:
                window.compare.set_status(method, f"unavailable: {reason}")
                continue
            # Every cached layer is drawn now, even when another layer of the method is
            # missing: the job brings the missing ones, and a map it returns that was cached
            # already is not drawn again (see _store).
            for layer in self.compare_layers:
                cached = self.cached(self.map_key(ctx, method, layer))
                if cached is None:
                    if method not in missing_methods:
                        missing_methods.append(method)
                else:
                    window.compare.set_map(method, layer, cached, map_info(cached))
        self._refresh_compare_scale()
        if window.compare.cells and len(missing_methods) == 0:
            window.sig_map_drawn.emit("compare", "")
        if not (missing_methods and self.compare_layers and submit) or \
                window.viewer.is_playing():
            return None
        if rebuilt:
            # New cells lay themselves out and paint over the next passes of the event loop;
            # start the worker after that, so the two do not compete for the CPU meanwhile.
            layers = list(self.compare_layers)

            def submit() -> None:
                if window.compare_on and self.ready() and self.context_key() == ctx \
                        and layers == self.compare_layers:
                    self._submit(ctx, missing_methods, layers)

            window.compare.when_built(submit)
            return None
        return self._submit(ctx, missing_methods, list(self.compare_layers))

    def _end_compare_cells(self, context: dict, why: str) -> None:
        """An explain job ended (done, failed or cancelled): every compare cell of its methods
        shows its map when there is one (cached before the job, and so not drawn again as the
        job returned it), else ``why``; none is left saying it is computing."""
        window = self.window
        if not window.compare_on or window.image is None or window.model is None \
                or context.get("key") != self.context_key():
            return
        ctx = context["key"]
        for method in context.get("methods", []):
            maps = {layer: self.cached(self.map_key(ctx, method, layer))
                    for layer in self.compare_layers}
            window.compare.settle(method, {k: m for k, m in maps.items() if m is not None}, why)
        self._refresh_compare_scale()

    def compare_changed(self, on: bool, methods: list, layers: list) -> None:
        """The panel's compare choice changed: switch the grid on or off, or redraw it.

        Parameters
        ----------
        on : bool
            Whether the grid is wanted.
        methods, layers : list of str
            The grid's rows and columns.
        """
        self.compare_methods, self.compare_layers = list(methods), list(layers)
        if on != self.window.compare_on:
            self.set_compare(on)
        elif on:
            self.request()

    def set_compare(self, on: bool) -> None:
        """Switch between the single viewer and the methods × layers grid."""
        window = self.window
        on = bool(on)
        if window.panel.compare_box.isChecked() != on:
            # The panel's toggle comes back through compare_changed, which calls this again.
            window.panel.compare_box.setChecked(on)
            return
        window.compare_on = on
        window.actions_by_id["compare"].setChecked(on)
        self.compare_methods, self.compare_layers = window.panel.compare_selection()
        window.stack.setCurrentWidget(window.compare if on else window.viewer)
        window.update_caption()
        self.request()
