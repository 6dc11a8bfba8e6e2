"""Too few or too small demo phantoms: one line in the words of any caller, not CLI flags."""

from __future__ import annotations

import pytest

from engine.core.errors import UsageError
from engine.demo.files import write_demo_set


@pytest.mark.parametrize(("n", "size"), [(0, 128), (4, 16)])
def test_too_few_or_too_small_phantoms_say_so_without_flags(tmp_path, n, size):
    with pytest.raises(UsageError) as caught:
        write_demo_set(tmp_path, n, 0, size=size)
    line = caught.value.one_line()
    assert line.startswith(f"cannot make {n} phantoms of {size} × {size} pixels")
    assert "--" not in line and "Fix: ask for more phantoms or a larger size" in line
    assert not any(tmp_path.iterdir())
