"""Committed notebook outputs: no tool chatter, no machine paths, no stale widget views."""

from __future__ import annotations

import json

import nbformat
import pytest

from helpers import notebooks as N
from helpers import series as S
from helpers.repository import root

NOTEBOOKS = N.notebook_paths()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_outputs_are_clean(path):
    problems = N.output_problems(nbformat.read(path, as_version=4))
    assert problems == [], f"{path.name}: re-execute with `python -m helpers notebooks`:\n" + "\n".join(problems)


def _nb(outputs, metadata=None):
    nb = nbformat.v4.new_notebook(metadata=metadata or {})
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    nb.cells = [cell]
    return nb


def _stream(text, name="stderr"):
    return {"output_type": "stream", "name": name, "text": text}


@pytest.mark.parametrize("text", [
    "I0000 00:00:1795651889.032684   14736 cudart_stub.cc:31] Could not find cuda drivers",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "/usr/lib/python3/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found.",
    "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x56198bca1d80] moov atom not found",
    "Kernel is running over TCP without encryption.",
    "WARNING:tensorflow:5 out of the last 16 calls to <function f at 0x7f> triggered tf.function retracing.",
    "demo data in /home/reader/series/data/demo",
    "source: /tmp/tmpab12/demo",
    "2024-05-01 12:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.",
])
def test_each_kind_of_chatter_is_found(text):
    assert len(N.output_problems(_nb([_stream("fine\n" + text + "\n")]))) == 1


@pytest.mark.parametrize("text", ["demo data in data/demo", "see ~/tmp/ or https://example.org/home/x",
                                  "Epoch 3/40: loss 0.1", "I like 1 2 3"])
def test_ordinary_text_is_fine(text):
    assert N.output_problems(_nb([_stream(text, "stdout")])) == []


def _tqdm_state(value, total, left, right):
    state = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": left}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": value, "max": total}},
        "r": {"model_name": "HTMLModel", "state": {"value": right}},
    }
    return {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2}}}


def _view(model_id, plain):
    return {"output_type": "display_data", "metadata": {},
            "data": {N.WIDGET_VIEW: {"model_id": model_id, "version_major": 2}, "text/plain": plain}}


def test_a_tqdm_widget_becomes_its_final_text():
    nb = _nb([_view("box", "demo clips:   0%|          | 0/200 [00:00<?, ?clip/s]")],
             _tqdm_state(200, 200, "demo clips: 100%", "200/200 [00:21&lt;00:00,  9.40clip/s]"))
    assert len(N.output_problems(nb)) == 2  # widget state kept, widget view
    N.finalise_widgets(nb)
    assert N.output_problems(nb) == []
    assert nb.cells[0].outputs[0]["data"] == {"text/plain": "demo clips: 100%|██████████|200/200 [00:21<00:00,  9.40clip/s]"}
    json.dumps(nb)  # still plain JSON


def test_an_unknown_widget_keeps_its_text_and_a_closed_one_goes():
    nb = _nb([_view("gone", ""), _view("slider", "IntSlider(value=3)"), _stream("after\n")], _tqdm_state(1, 2, "a", "b"))
    N.finalise_widgets(nb)
    outputs = nb.cells[0].outputs
    assert [o.get("data", {}).get("text/plain", o.get("text")) for o in outputs] == ["IntSlider(value=3)", "after\n"]
    assert "widgets" not in nb.metadata



def test_finalise_widgets_leaves_markdown_cells_without_outputs():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_code_cell("1")])
    nb.cells[0]["outputs"] = []  # as an earlier version of finalise_widgets left them
    N.finalise_widgets(nb)
    assert "outputs" not in nb.cells[0] and nb.cells[1].outputs == []
    nbformat.validate(nb)  # a markdown cell with "outputs" is not valid nbformat

def test_the_checkouts_own_folder_is_a_machine_path():
    problems = N.output_problems(_nb([_stream(f"saved to {root()}/data/runs\n", "stdout")]))
    assert len(problems) == 1 and "machine path" in problems[0]


def test_shown_paths_are_relative_to_the_repository(tmp_path):
    assert S.shown(S.data_dir() / "demo") == "data/demo"
    assert S.shown(tmp_path) == str(tmp_path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebooks_carry_the_kernel_metadata_jupyterlab_writes(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert {"version", "codemirror_mode", "pygments_lexer"} <= set(nb["metadata"]["language_info"])
    timed = [i for i, c in enumerate(nb["cells"]) if "execution" in c.get("metadata", {})]
    assert timed == [], f"{path.name}: cells {timed} hold timing metadata; re-execute with `python -m helpers notebooks`"


def test_an_executed_notebook_gets_the_kernels_metadata_and_no_timings(tmp_path):
    import platform

    path = tmp_path / "01_tiny.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"display_name": "Python 3", "name": "python3"}})
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)", metadata={"execution": {"iopub.status.busy": "then"}})]
    nbformat.write(nb, path)
    run = N.execute_notebook(path, timeout=120)
    done = json.loads(path.read_text(encoding="utf-8"))
    assert run.problems == [] and done["cells"][0]["outputs"][0]["text"] == ["42\n"]
    assert done["metadata"]["language_info"]["version"] == platform.python_version()
    from jupyter_client.kernelspec import KernelSpecManager

    assert done["metadata"]["kernelspec"]["display_name"] == KernelSpecManager().get_kernel_spec("python3").display_name
    assert "execution" not in done["cells"][0]["metadata"]


#: The series' prose budget: words of Markdown in all numbered notebooks, and in any one.
WORD_BUDGET, NOTEBOOK_WORD_BUDGET = 11_000, 1_800


def markdown_words(path) -> int:
    """Whitespace-separated words in a notebook's Markdown cells."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return sum(len("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")


def test_the_series_keeps_its_word_budget():
    words = {p.name: markdown_words(p) for p in NOTEBOOKS}
    assert sum(words.values()) <= WORD_BUDGET, words
    assert max(words.values()) <= NOTEBOOK_WORD_BUDGET, words
