"""Render the KWOK configuration (Pod stages) with the configured delays."""

from __future__ import annotations

import re
from dataclasses import asdict

from .settings import REPO_ROOT, SimulatedDelays

STAGES_TEMPLATE = REPO_ROOT / "cluster" / "kwok" / "stages.yaml"


def render_kwok_config(delays: SimulatedDelays, template: str | None = None) -> str:
    text = STAGES_TEMPLATE.read_text() if template is None else template
    for name, value in asdict(delays).items():
        text = text.replace(f"@{name.upper()}_MS@", str(int(value)))
    leftover = re.findall(r"@[A-Z]+_MS@", text)
    if leftover:
        raise ValueError(f"stages.yaml has delay tokens SimulatedDelays does not define: {leftover}")
    return text
