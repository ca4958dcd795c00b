"""Every Colab/Binder badge and clone URL comes from the one setting in helpers/repository.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import repository as R


def test_committed_links_agree_with_the_setting():
    assert R.link_mismatches() == []


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = R.root()
    (tmp_path / "helpers").mkdir()
    shutil.copy2(root / "helpers" / "repository.py", tmp_path / "helpers" / "repository.py")
    shutil.copy2(root / "README.md", tmp_path / "README.md")
    shutil.copytree(root / "notebooks", tmp_path / "notebooks")
    return tmp_path


def test_set_repository_rewrites_every_link(copy: Path):
    changed = R.set_repository("octocat/fi-fork", "workshop", base=copy)
    assert {p.name for p in changed} >= {"README.md", "repository.py", "00_overview.ipynb"}
    assert R.link_mismatches(copy, "octocat/fi-fork", "workshop") == []
    # ... and nothing points at the old setting any more.
    assert R.link_mismatches(copy)
    everything = "".join(p.read_text(encoding="utf-8") for p in R.linked_files(copy))
    links = [m.group("repository") for pattern, _ in R.LINK_PATTERNS for m in pattern.finditer(everything)]
    assert len(links) >= 2 * len(R.linked_files(copy)) - 1 and set(links) == {"octocat/fi-fork"}
    setting = (copy / "helpers" / "repository.py").read_text(encoding="utf-8")
    assert 'REPOSITORY = "octocat/fi-fork"' in setting and 'BRANCH = "workshop"' in setting
    assert "--branch workshop https://github.com/octocat/fi-fork\\n" in (copy / "notebooks" / "05_model_training.ipynb").read_text()
    # Running it again changes nothing.
    assert R.set_repository("octocat/fi-fork", "workshop", base=copy) == []


def test_a_link_typed_by_hand_is_caught(copy: Path):
    readme = copy / "README.md"
    readme.write_text(readme.read_text() + "\nSee https://mybinder.org/v2/gh/someone/else/main?urlpath=lab\n")
    problems = R.link_mismatches(copy)
    assert problems == ["README.md: https://mybinder.org/v2/gh/someone/else/main"]


def test_an_edited_setup_cell_is_caught(copy: Path):
    path = copy / "notebooks" / "02_face_detection.ipynb"
    path.write_text(path.read_text().replace("helpers.setup.run()", "pass  # helpers.setup.run()"))
    assert R.link_mismatches(copy) == ["notebooks/02_face_detection.ipynb: 1 setup cells, expected one equal to "
                                       "repository.setup_cell()"]


def test_the_last_notebook_closes_without_a_next_one(copy: Path):
    import nbformat

    notebooks = R.linked_files(copy)[1:]
    assert nbformat.read(notebooks[-1], as_version=4).cells[-1].source == R.LAST_CLOSING_NOTE
    assert all(nbformat.read(p, as_version=4).cells[-1].source == R.CLOSING_NOTE for p in notebooks[:-1])
    # A notebook added after it becomes the last; the one before now has a next notebook.
    nb = nbformat.read(notebooks[-1], as_version=4)
    nbformat.write(nb, copy / "notebooks" / "99_more.ipynb")
    problems = R.link_mismatches(copy)
    assert f"{notebooks[-1].relative_to(copy).as_posix()}: last cell is not repository.CLOSING_NOTE" in problems
    assert "notebooks/99_more.ipynb: last cell is not repository.LAST_CLOSING_NOTE" not in problems
    R.set_repository(R.REPOSITORY, R.BRANCH, base=copy)
    assert nbformat.read(notebooks[-1], as_version=4).cells[-1].source == R.CLOSING_NOTE
    assert not any("last cell" in p for p in R.link_mismatches(copy))


def test_a_new_notebook_without_badge_gets_one(copy: Path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 07 · More\n\nText."), nbformat.v4.new_code_cell("# Setup\nold")]
    nbformat.write(nb, copy / "notebooks" / "07_more.ipynb")
    problems = R.link_mismatches(copy)
    assert [p.split(": ")[1].split()[0] for p in problems] == ["1", "last", "missing"]
    R.set_repository(R.REPOSITORY, R.BRANCH, base=copy)
    assert R.link_mismatches(copy) == []
    cells = nbformat.read(copy / "notebooks" / "07_more.ipynb", as_version=4).cells
    assert cells[0].source.splitlines()[:3] == ["# 07 · More", "", R.notebook_badge("07_more.ipynb")]
    assert cells[-1].cell_type == "markdown" and cells[-1].source == R.CLOSING_NOTE and len(cells) == 3


BAD_SETTINGS = [("no-slash", "main"), ("a/b/c", "main"), ("a/b.git", "main"), ("owner/name", "two words"),
                ("owner/na me", "main"), ("owner/name", "feature/x"),
                # a trailing newline ('$' in re.match would let it through), shell text, git's ref rules
                ("me/fork\n", "main"), ("me/fork", "main\n"), ("owner/name", "main;id"), ("owner/name", "$(id)"),
                ("owner/name", "`id`"), ("owner/name", "a|b"), ("owner/name", "-rf"), ("owner/name", ".hidden"),
                ("owner/name", "a..b"), ("owner/name", "x.lock"), ("owner/name", "end."), ("owner/name", ""),
                ("owner/name", "x" * 256), ("-owner/name", "main"), ("own--er/name", "main"), ("o" * 40 + "/n", "main"),
                ("owner/..", "main"), ("owner/", "main"), ("/name", "main"), ('own"er/name', "main"),
                ("owner/name\"", "main"), ("owner/n\u00e4me", "main")]


@pytest.mark.parametrize("repository, branch", BAD_SETTINGS)
def test_bad_settings_are_refused_before_anything_is_written(repository, branch, copy: Path):
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="OWNER/NAME|branch") as err:
        R.set_repository(repository, branch, base=copy)
    assert "nothing was changed" in str(err.value) and "\n" not in str(err.value)
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("repository, branch", [("octocat/first-impressions-tutorial", "main"),
                                                ("a/b", "v1.2"), ("Org-1/x_y.z", "release-2026_12"),
                                                ("o" * 39 + "/" + "n" * 100, "b" * 255)])
def test_good_settings_pass(repository, branch):
    R.check_repository(repository, branch)


def test_the_command_refuses_a_bad_setting_without_a_traceback(copy: Path, monkeypatch, capsys):
    from helpers.__main__ import main

    monkeypatch.setattr(R, "root", lambda: copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert main(["set-repository", "me/fork\n"]) == 2
    assert main(["set-repository", "me/fork", "--branch", "main;id"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ValueError: ") for line in err), err
    assert "'me/fork\\n'" in err[0] and "'main;id'" in err[1]
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_the_command_line_parses_set_repository():
    from helpers.__main__ import build_parser

    args = build_parser().parse_args(["set-repository", "octocat/x", "--branch", "dev"])
    assert (args.repository, args.branch) == ("octocat/x", "dev")
