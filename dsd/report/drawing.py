"""Writing a figure: the PNG, atomically, holding what it shows.

Every figure the report draws goes through ``save_figure``, so that each PNG under
``results/figures`` carries its ``FigureEntry`` (``dsd.records.figures``: its kind, its study or
sweep, its caption) and the report page places it by that entry, never by its file name.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dsd.records.figures import FigureEntry, write_figure


def save_figure(figure: Figure, out_path: Path, entry: FigureEntry | None = None) -> Path:
    """``figure`` as a PNG at ``out_path`` (written atomically), holding ``entry``."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return write_figure(Path(out_path), buffer.getvalue(), entry)
