"""The application frame that issued a statement: file, line and function of the first
frame outside Django, installed packages, the standard library and telemetry itself."""

import os
import sys
import sysconfig
from types import FrameType
from typing import cast

_SKIPPED_PREFIXES = tuple(sorted({
    os.path.dirname(os.path.dirname(os.path.abspath(cast(str, __import__("django").__file__)))),
    sysconfig.get_paths()["stdlib"],
    sysconfig.get_paths()["purelib"],
    sysconfig.get_paths()["platlib"],
    os.path.dirname(os.path.abspath(__file__)),
}))
_ROOT = os.getcwd()
_decisions: dict[str, bool] = {}


def _is_application(filename):
    decision = _decisions.get(filename)
    if decision is None:
        decision = _decisions[filename] = not (
            filename.startswith(_SKIPPED_PREFIXES) or filename.startswith("<")
        )
    return decision


def find(limit: int = 80) -> str:
    """``"path/to/file.py:42 in function"`` of the nearest application frame, or ``""``."""
    frame: FrameType | None = sys._getframe(2)
    depth = 0
    while frame is not None and depth < limit:
        code = frame.f_code
        if _is_application(code.co_filename):
            filename = os.path.relpath(code.co_filename, _ROOT) if code.co_filename.startswith(_ROOT) \
                else code.co_filename
            return f"{filename}:{frame.f_lineno} in {code.co_name}"
        frame = frame.f_back
        depth += 1
    return ""
