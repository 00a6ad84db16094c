"""``python -m msca_fast.demo``: the hand-set style transfer paints the target layout with the
exemplar's colours and writes its picture; errors are reported like every command's."""

from __future__ import annotations

import numpy as np
from PIL import Image

from msca_fast import demo


def test_style_transfer_by_hand_set_attention_writes_its_strip(tmp_path):
    error = demo.style_transfer_demo(str(tmp_path / "out"), size=32)
    assert error < 0.01  # 0.0023 measured: the exemplar's noise (std 0.05) averaged over each region
    picture = np.asarray(Image.open(tmp_path / "out" / "msca_style_transfer.png"))
    assert picture.shape == (32, 4 * 32 + 3 * 4, 3)  # four panels, three 4-pixel gaps


def test_an_unwritable_folder_is_one_line_and_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert demo.main(["--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("demo: error:") and "Traceback" not in err
